//! `peerdial bench rendezvous`: the identity rendezvous's core on one
//! core. Pairing latency is the time from the second submission (the
//! callee's IMSI, hashed with the server's key) to the outcome both sides
//! are told; throughput is pairings per second while 10,000 submissions
//! wait in the table (each pairing is followed by a new caller submission,
//! so the table stays full). The HTTP edge adds a request per side.
//!
//! Not a test: nothing here asserts a time.

use std::time::Instant;

use anyhow::{bail, Result};
use peerdial_rendezvous::{CallRequest, Change, Config, Imsi, Msisdn, Outcome, Rendezvous, RingRequest};
use rand::SeedableRng;

use crate::bench_tools::{percentile, pin_self, SERVER_CORE};

fn msisdn(i: u32) -> Msisdn {
    Msisdn::parse(&format!("+8869{i:08}")).expect("valid MSISDN")
}

fn imsi(i: u32) -> Imsi {
    Imsi::parse(&format!("46692{i:010}")).expect("valid IMSI")
}

fn call(caller: u32, callee: u32) -> CallRequest {
    CallRequest {
        msisdn: msisdn(caller),
        imsi: imsi(caller),
        callee: msisdn(callee),
        contact: format!("sip:88602{caller:08}@127.0.0.1:5070"),
    }
}

fn ring(callee: u32) -> RingRequest {
    RingRequest {
        imsi: imsi(callee),
        msisdn: Some(msisdn(callee)),
        contact: format!("sip:88603{callee:08}@127.0.0.1:5072"),
    }
}

/// Drains the outcomes; how many pairings there were.
fn told(r: &mut Rendezvous) -> u32 {
    let mut n = 0;
    while let Some(o) = r.poll_event() {
        n += matches!(o, Outcome::Paired(_)) as u32;
    }
    n
}

pub fn rendezvous(pending: u32, samples: u32, pairings: u32, pin: bool) -> Result<()> {
    if pending == 0 || samples == 0 || pairings == 0 {
        bail!("--pending, --samples and --pairings must be at least 1");
    }
    if pin {
        pin_self(SERVER_CORE)?;
    }
    // The benchmark is one source and few callers: no rate limit.
    let cfg = Config {
        lookups_burst: u32::MAX,
        lookups_per_minute: u32::MAX,
        ..Config::default()
    };
    let mut r = Rendezvous::new(b"bench secret", cfg, rand::rngs::StdRng::seed_from_u64(1));
    // Callees 0..pending, callers pending..2*pending.
    let devices = pending * 2;
    for i in 0..devices {
        let imsi = r.hasher().hash(&imsi(i));
        r.apply(&Change::Put { msisdn: msisdn(i), imsi });
    }
    let mut now = 0u64;

    // Latency: caller first, then the callee's submission is timed.
    let mut lat = Vec::with_capacity(samples as usize);
    for k in 0..samples {
        let (callee, caller) = (k % pending, pending + k % pending);
        r.submit_call(&call(caller, callee), "bench", now)?;
        let t = Instant::now();
        r.submit_ring(&ring(callee), "bench", now)?;
        let n = told(&mut r);
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if n != 1 {
            bail!("submission {k} did not pair");
        }
        now += 1;
    }
    lat.sort_by(|a, b| a.total_cmp(b));

    // Throughput with `pending` submissions waiting.
    for j in 0..pending {
        r.submit_call(&call(pending + j, j), "bench", now)?;
    }
    let t = Instant::now();
    let mut paired = 0;
    for i in 0..pairings {
        let j = i % pending;
        r.submit_ring(&ring(j), "bench", now)?;
        paired += told(&mut r);
        r.submit_call(&call(pending + j, j), "bench", now)?;
        if i % 1024 == 0 {
            now += 1;
            r.handle_timeout(now);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if paired != pairings {
        bail!("{} of {pairings} pairings completed", paired);
    }
    println!("## rendezvous core, one core{}", if pin { " (pinned)" } else { "" });
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| pairing latency, second submission → both told ({samples} pairings) | p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs |",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
    println!(
        "| pairings per second with {pending} submissions waiting ({pairings} pairings, each followed by a new submission) | {:.0} |",
        pairings as f64 / secs
    );
    println!("| waiting at the end | {} |", r.pending());
    Ok(())
}
