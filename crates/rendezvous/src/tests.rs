//! The core with simulated time: registration by code, pairing in either
//! order, the window, what a stranger learns, and limits.

use rand::SeedableRng;

use super::*;

const A: &str = "+886912000001";
const B: &str = "+886912000002";
const IMSI_A: &str = "466920000000001";
const IMSI_B: &str = "466920000000002";

fn core(cfg: Config) -> Rendezvous {
    Rendezvous::new(b"test secret", cfg, StdRng::seed_from_u64(7))
}

fn dev(m: &str, i: &str) -> DeviceRequest {
    DeviceRequest {
        msisdn: Msisdn::parse(m).unwrap(),
        imsi: Imsi::parse(i).unwrap(),
    }
}

fn verify_req(m: &str, i: &str, code: &str) -> VerifyRequest {
    VerifyRequest {
        msisdn: Msisdn::parse(m).unwrap(),
        imsi: Imsi::parse(i).unwrap(),
        code: code.into(),
    }
}

fn code_of(r: Requested) -> String {
    match r {
        Requested::SendCode { code, .. } => code,
        other => panic!("no code: {other:?}"),
    }
}

/// Registers a device through the whole code exchange.
fn registered(r: &mut Rendezvous, m: &str, i: &str, now: u64) {
    let code = code_of(r.register(&dev(m, i), "src", now).unwrap());
    let change = r.verify(&verify_req(m, i, &code), now + 1).unwrap();
    r.apply(&change);
}

fn call(m: &str, i: &str, callee: &str) -> CallRequest {
    CallRequest {
        msisdn: Msisdn::parse(m).unwrap(),
        imsi: Imsi::parse(i).unwrap(),
        callee: Msisdn::parse(callee).unwrap(),
        contact: format!("sip:caller{}@127.0.0.1:5070", &m[m.len() - 1..]),
    }
}

fn ring(i: &str, check: Option<&str>) -> RingRequest {
    RingRequest {
        imsi: Imsi::parse(i).unwrap(),
        msisdn: check.map(|c| Msisdn::parse(c).unwrap()),
        contact: "sip:callee@127.0.0.1:5072".into(),
    }
}

fn events(r: &mut Rendezvous) -> Vec<Outcome> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

#[test]
fn a_code_registers_once_and_wrong_expired_or_reused_codes_do_not() {
    let mut r = core(Config::default());
    let code = code_of(r.register(&dev(A, IMSI_A), "src", 0).unwrap());
    assert_eq!(code.len(), 6);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        r.verify(&verify_req(A, IMSI_A, wrong), 1),
        Err(RendezvousError::WrongCode { left: 4 })
    );
    // The right code for another SIM is no code.
    assert_eq!(r.verify(&verify_req(A, IMSI_B, &code), 1), Err(RendezvousError::NoCode));
    let change = r.verify(&verify_req(A, IMSI_A, &code), 2).unwrap();
    assert_eq!(r.devices(), 0, "nothing changes before the change is applied");
    r.apply(&change);
    assert_eq!(r.devices(), 1);
    assert_eq!(r.verify(&verify_req(A, IMSI_A, &code), 3), Err(RendezvousError::CodeUsed));
    assert_eq!(r.register(&dev(A, IMSI_A), "src", 4), Ok(Requested::AlreadyRegistered));

    // A new SIM: its own code, expiring; the old mapping stays until proven.
    let code = code_of(r.register(&dev(A, IMSI_B), "src", 10).unwrap());
    assert_eq!(
        r.verify(&verify_req(A, IMSI_B, &code), 10 + 5 * 60_000),
        Err(RendezvousError::CodeExpired)
    );
    assert_eq!(r.remove(&dev(A, IMSI_B)), Err(RendezvousError::NotRegistered));
    let code = code_of(r.register(&dev(A, IMSI_B), "src", 20).unwrap());
    let change = r.verify(&verify_req(A, IMSI_B, &code), 21).unwrap();
    r.apply(&change);
    assert_eq!(
        r.remove(&dev(A, IMSI_A)),
        Err(RendezvousError::NotRegistered),
        "the old SIM is replaced"
    );
    let change = r.remove(&dev(A, IMSI_B)).unwrap();
    r.apply(&change);
    assert_eq!(r.devices(), 0);
}

#[test]
fn five_wrong_codes_void_the_code_and_sms_codes_are_rate_limited() {
    let mut r = core(Config::default());
    let code = code_of(r.register(&dev(A, IMSI_A), "src", 0).unwrap());
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        assert!(matches!(
            r.verify(&verify_req(A, IMSI_A, wrong), 1),
            Err(RendezvousError::WrongCode { .. })
        ));
    }
    assert_eq!(r.verify(&verify_req(A, IMSI_A, wrong), 1), Err(RendezvousError::TooManyAttempts));
    assert_eq!(r.verify(&verify_req(A, IMSI_A, &code), 1), Err(RendezvousError::NoCode));
    // Three codes at once, then one a minute.
    assert!(r.register(&dev(A, IMSI_A), "src", 2).is_ok());
    assert!(r.register(&dev(A, IMSI_A), "src", 3).is_ok());
    assert!(matches!(
        r.register(&dev(A, IMSI_A), "src", 4),
        Err(RendezvousError::RateLimited { .. })
    ));
    assert!(r.register(&dev(A, IMSI_A), "src", 60_004).is_ok());
}

#[test]
fn caller_then_callee_pair_with_one_key_for_both() {
    let mut r = core(Config::default());
    registered(&mut r, A, IMSI_A, 0);
    registered(&mut r, B, IMSI_B, 0);
    let ct = r.submit_call(&call(A, IMSI_A, B), "a", 100).unwrap();
    assert!(events(&mut r).is_empty());
    assert_eq!(r.poll_timeout(), Some(100 + 30_000));
    let et = r.submit_ring(&ring(IMSI_B, Some(B)), "b", 2_000).unwrap();
    let ev = events(&mut r);
    let [Outcome::Paired(p)] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!((p.caller_ticket, p.callee_ticket), (ct, et));
    assert_eq!((p.caller.as_str(), p.callee.as_str()), (A, B));
    assert_eq!(p.caller_contact, "sip:caller1@127.0.0.1:5070");
    assert_eq!(p.callee_contact, "sip:callee@127.0.0.1:5072");
    assert_eq!(p.expires, 2_000 + 30_000);
    assert_eq!(r.pending(), 0);
    r.handle_timeout(40_000);
    assert!(events(&mut r).is_empty(), "a paired submission does not also time out");

    // The other order, and each pairing has its own key.
    let et = r.submit_ring(&ring(IMSI_B, None), "b", 50_000).unwrap();
    let ct = r.submit_call(&call(A, IMSI_A, B), "a", 50_500).unwrap();
    let ev = events(&mut r);
    let [Outcome::Paired(q)] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!((q.caller_ticket, q.callee_ticket), (ct, et));
    assert_ne!(q.key, p.key);
}

#[test]
fn the_window_ends_unmatched_submissions_alike_for_known_and_unknown_numbers() {
    let mut r = core(Config::default());
    registered(&mut r, A, IMSI_A, 0);
    registered(&mut r, B, IMSI_B, 0);
    // B is registered but its device does not answer; C is nobody.
    let known = r.submit_call(&call(A, IMSI_A, B), "a", 0).unwrap();
    let unknown = r.submit_call(&call(A, IMSI_A, "+886912999999"), "a", 0).unwrap();
    r.handle_timeout(29_999);
    assert!(events(&mut r).is_empty());
    r.handle_timeout(30_000);
    assert_eq!(
        events(&mut r),
        vec![Outcome::NoMatch { ticket: known }, Outcome::NoMatch { ticket: unknown }]
    );
    // A late ring finds nothing and waits its own window.
    let late = r.submit_ring(&ring(IMSI_B, None), "b", 30_001).unwrap();
    assert!(events(&mut r).is_empty());
    r.handle_timeout(60_001);
    assert_eq!(events(&mut r), vec![Outcome::NoMatch { ticket: late }]);
    assert_eq!(r.pending(), 0);
}

#[test]
fn knowing_a_number_without_its_sim_pairs_with_nothing() {
    let mut r = core(Config::default());
    registered(&mut r, A, IMSI_A, 0);
    registered(&mut r, B, IMSI_B, 0);
    // A stranger claims to be B's device with the wrong IMSI: refused like
    // an IMSI nobody registered, whether or not it names B.
    let stranger = "466929999999999";
    assert_eq!(r.submit_ring(&ring(stranger, Some(B)), "x", 0), Err(RendezvousError::NotRegistered));
    assert_eq!(r.submit_ring(&ring(stranger, None), "x", 0), Err(RendezvousError::NotRegistered));
    // B's own SIM with someone else's MSISDN as the check: refused too.
    assert_eq!(r.submit_ring(&ring(IMSI_B, Some(A)), "x", 0), Err(RendezvousError::NotRegistered));
    // A caller must be a registered device itself.
    assert_eq!(r.submit_call(&call(A, stranger, B), "x", 0), Err(RendezvousError::NotRegistered));
    assert_eq!(r.submit_call(&call(A, IMSI_A, A), "x", 0), Err(RendezvousError::SelfCall));
    assert_eq!(r.pending(), 0);
}

#[test]
fn lookups_are_rate_limited_per_caller_and_per_source() {
    let mut r = core(Config {
        lookups_burst: 3,
        lookups_per_minute: 6,
        ..Config::default()
    });
    registered(&mut r, A, IMSI_A, 0);
    for (i, n) in ["+886912100001", "+886912100002"].iter().enumerate() {
        assert!(r.submit_call(&call(A, IMSI_A, n), &format!("src{i}"), 0).is_ok());
    }
    // The registration spent one of "src"'s; the caller's own budget runs out first.
    assert!(r.submit_call(&call(A, IMSI_A, "+886912100003"), "src9", 0).is_ok());
    assert_eq!(
        r.submit_call(&call(A, IMSI_A, "+886912100004"), "src8", 0),
        Err(RendezvousError::RateLimited { retry_after_ms: 10_000 })
    );
    assert!(r.submit_call(&call(A, IMSI_A, "+886912100004"), "src8", 10_000).is_ok());
}

#[test]
fn a_full_table_refuses_rather_than_grows() {
    let mut r = core(Config {
        pairing: PairingConfig {
            max_pending: 1,
            ..PairingConfig::default()
        },
        ..Config::default()
    });
    registered(&mut r, A, IMSI_A, 0);
    assert!(r.submit_call(&call(A, IMSI_A, B), "a", 0).is_ok());
    assert_eq!(r.submit_call(&call(A, IMSI_A, B), "a", 0), Err(RendezvousError::Overloaded));
}

#[test]
fn a_sim_moved_to_another_number_leaves_the_first_unmapped() {
    let mut r = core(Config::default());
    registered(&mut r, A, IMSI_A, 0);
    // A's SIM now proves B's number: A's number no longer maps to anything.
    registered(&mut r, B, IMSI_A, 10);
    assert_eq!(r.devices(), 1);
    assert_eq!(r.remove(&dev(A, IMSI_A)), Err(RendezvousError::NotRegistered));
    assert!(r.submit_ring(&ring(IMSI_A, Some(B)), "x", 20).is_ok());
}
