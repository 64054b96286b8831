//! The rendezvous API's request parsers (registration, code, call and
//! ring submissions) never panic on arbitrary bytes, never repeat a
//! 15-digit run of the input (an IMSI) in an error, and what they accept
//! the core takes without panicking either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_rendezvous::{wire, Config, Rendezvous};
use rand::SeedableRng;

/// Every run of exactly 15 ASCII digits in the input.
fn imsi_like(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 15)
        .map(str::to_string)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let secrets = imsi_like(data);
    let clean = |e: &peerdial_rendezvous::RendezvousError| {
        let text = e.to_string();
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "an error repeats an IMSI: {text}");
        }
    };
    let mut core = Rendezvous::new(b"fuzz", Config::default(), rand::rngs::StdRng::seed_from_u64(0));
    match wire::parse_device(data) {
        Ok(req) => {
            assert!(!format!("{req:?}").contains(|c: char| c == '\n'));
            for s in &secrets {
                assert!(!format!("{req:?}").contains(s.as_str()), "Debug shows an IMSI");
            }
            let _ = core.register(&req, "fuzz", 0);
            let _ = core.remove(&req);
        }
        Err(e) => clean(&e),
    }
    match wire::parse_verify(data) {
        Ok(req) => {
            let _ = core.verify(&req, 0);
        }
        Err(e) => clean(&e),
    }
    match wire::parse_call(data) {
        Ok(req) => {
            assert!(wire::contact(&req.contact).is_ok());
            let _ = core.submit_call(&req, "fuzz", 0);
        }
        Err(e) => clean(&e),
    }
    match wire::parse_ring(data) {
        Ok(req) => {
            let _ = core.submit_ring(&req, "fuzz", 0);
        }
        Err(e) => clean(&e),
    }
    core.handle_timeout(u64::MAX / 2);
    while core.poll_event().is_some() {}
});
