//! `peerdial bench …`: benchmarks, each run side by side with the peer it
//! is compared with, on this machine, in one run. Results are printed as a
//! Markdown table row ready for docs/benchmarks.md.
//!
//! Every load is bounded (a count of requests or a number of seconds) and
//! every process started here is stopped by its PID.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use peerdial_number::{Area, Number};
use peerdial_region::{Region, RegionConfig};
use peerdial_sip::digest::{challenge_nonce, Algorithm, Credentials};
use tokio::process::Command;

pub(crate) const SIPP_AUTH: &str = include_str!("../sipp/register.xml");
pub(crate) const SIPP_NOAUTH: &str = include_str!("../sipp/register-noauth.xml");

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {
    /// REGISTER throughput (digest auth, database write, DNS update), SIPp
    /// against peerdial and against Kamailio (in-memory usrloc, no auth).
    Register {
        /// Users, each registered once per load (after the first load from
        /// a new address, so each registration changes the binding).
        #[arg(long, default_value_t = 20_000)]
        registrations: u32,
        /// Target rate SIPp tries to reach, per second.
        #[arg(long, default_value_t = 20_000)]
        rate: u32,
        /// Loads to run, each as SIPp drivers × registrations in flight per
        /// driver; each server's peak over them is compared.
        #[arg(long, value_delimiter = ',', default_value = "1x200,1x1000,2x500")]
        loads: Vec<Load>,
        /// Times every load is run against each server (medians are compared).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Let the servers and SIPp share every core. By default each server
        /// runs on core 0 and the SIPp drivers on core 1, so the driver's
        /// work (twice the messages for a digest registration) does not
        /// count against the server it drives.
        #[arg(long)]
        no_pin: bool,
    },
    /// NAPTR query throughput with dnsperf, peerdial's embedded DNS against
    /// NSD serving the same zone.
    Dns {
        /// Registered numbers in the zone.
        #[arg(long, default_value_t = 100_000)]
        numbers: u32,
        /// Seconds of load for each server.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// dnsperf client sockets.
        #[arg(long, default_value_t = 8)]
        clients: u32,
    },
    /// Registration → DNS visibility latency, p50 and p99.
    Latency {
        #[arg(long, default_value_t = 1000)]
        samples: u32,
    },
    /// Resident memory per provisioned and registered number.
    Memory {
        #[arg(long, default_value_t = 1_000_000)]
        numbers: u32,
    },
    /// Call setup time, dial → 180 and → 200, with the lookup through
    /// unbound (warm and cold cache), with and without signed caller
    /// identity, next to SIPp UAC → SIPp UAS.
    Calls {
        #[arg(long, default_value_t = 1000)]
        calls: u32,
        /// The callee in another region: unbound walks from the top (root:
        /// servers on port 53 of 127.55.0.x).
        #[arg(long)]
        cross_region: bool,
    },
    /// Registration → answer at NSD and BIND secondaries (NOTIFY + IXFR),
    /// and IXFR bytes per change.
    Propagation {
        #[arg(long, default_value_t = 300)]
        samples: u32,
    },
    /// A large zone to a BIND secondary (AXFR, then IXFR after a batch of
    /// changes), from a region and from Knot as the primary.
    Transfer {
        #[arg(long, default_value_t = 1_000_000)]
        numbers: u32,
        #[arg(long, default_value_t = 1000)]
        changes: u32,
    },
    /// Mouth-to-ear latency and CPU per call through the sound device layer
    /// (ALSA plugins on named pipes): two of our phones next to two
    /// baresips. Needs the `sound` feature.
    MouthToEar {
        /// Seconds each pair is measured (a burst a second).
        #[arg(long, default_value_t = 30)]
        seconds: u32,
    },
    /// CPU per concurrent call in the phone's media engine (Opus, PCMU, PCMA).
    Media {
        #[arg(long, default_value_t = 20)]
        calls: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u32,
    },
    /// Greeting downloads: full GETs and 304 revalidations per second from
    /// the region's HTTP API, next to nginx serving the same PNG files
    /// (load by wrk, keep-alive).
    Greetings {
        /// Numbers, each with a caller greeting.
        #[arg(long, default_value_t = 100)]
        numbers: u32,
        /// Seconds of load per server, kind of request and round.
        #[arg(long, default_value_t = 3)]
        seconds: u32,
        /// Rounds (the medians are compared).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// wrk's keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// Let the servers and wrk share every core (by default each
        /// server runs on core 0, wrk on core 1).
        #[arg(long)]
        no_pin: bool,
    },
    /// Presence fan-out: NOTIFYs delivered per second and change → NOTIFY
    /// p50/p99, Kamailio's presence module (in memory) as the reference,
    /// both driven by SIPp (watcher and publisher scenarios).
    Presence {
        #[arg(long, default_value_t = 1000)]
        presentities: u32,
        /// Subscriptions per presentity.
        #[arg(long, default_value_t = 10)]
        watchers: u32,
        /// State changes per second, one step each.
        #[arg(long, value_delimiter = ',', default_value = "200,1000,2000,3000")]
        rates: Vec<u32>,
        /// Seconds of changes per step.
        #[arg(long, default_value_t = 4)]
        seconds: u32,
        /// Watcher addresses (127.0.1.x, one SIPp socket each). 50 keeps
        /// each address within the region's default flood limits (200
        /// subscriptions per address arrive within the burst).
        #[arg(long, default_value_t = 50)]
        addresses: u32,
        /// Watcher SIPp processes sharing the addresses (SIPp is
        /// single-threaded).
        #[arg(long, default_value_t = 4)]
        sipp_watchers: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// PASSporT signatures and verifications per second on one core, next
    /// to `openssl speed ecdsap256`.
    Identity {
        /// Most operations of each kind.
        #[arg(long, default_value_t = 100_000)]
        count: u32,
        /// Most seconds for each kind (and OpenSSL's run time per kind).
        #[arg(long, default_value_t = 3)]
        seconds: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Switch designation (issue 15): a top and a switch in this process,
    /// --clients asking the top as the switch; p50/p99 from the request to
    /// the caller holding address and key, and designations per second.
    Designate {
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        #[arg(long, default_value_t = 16)]
        clients: u32,
    },
    /// The identity rendezvous's core on one core: pairing latency
    /// (second submission → both sides told) p50/p99, and pairings per
    /// second with --pending submissions waiting.
    Rendezvous {
        #[arg(long, default_value_t = 10_000)]
        pending: u32,
        /// Pairings timed one by one for the latency.
        #[arg(long, default_value_t = 100_000)]
        samples: u32,
        /// Pairings for the throughput.
        #[arg(long, default_value_t = 1_000_000)]
        pairings: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Yellow-pages keyword search over made-up profiles: searches per
    /// second and p50/p99 on SQLite (FTS5) and, with --postgres, on
    /// PostgreSQL (the store's posting table), next to a plain LIKE scan.
    Yellow(crate::bench_yellow::YellowArgs),
    /// The portal's pages under concurrent load (wrk): the yellow pages
    /// (a keyword search per request) and a signed-in profile page.
    Pages {
        #[arg(long, default_value_t = 100_000)]
        profiles: u32,
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        #[arg(long, default_value_t = 16)]
        connections: u32,
    },
    /// Broadcast fan-out: one broadcast to N registered SIPp endpoints,
    /// next to Kamailio relaying N MESSAGEs from a SIPp sender to the same
    /// kind of endpoints; time until all have it, rate, server CPU.
    Broadcast {
        /// Registered endpoints, one run each.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        endpoints: Vec<u32>,
        /// SIPp UAS processes sharing the endpoints.
        #[arg(long, default_value_t = 4)]
        uas: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Offline text messages: stored per second, then delivered per second
    /// when their users register, the region's mailbox next to Kamailio's
    /// msilo (SQLite) on the same SIPp workload.
    Msilo {
        /// Users nobody has registered when the texts are sent.
        #[arg(long, default_value_t = 1000)]
        users: u32,
        /// Texts per user.
        #[arg(long, default_value_t = 5)]
        per_user: u32,
        /// MESSAGEs SIPp keeps in flight while storing.
        #[arg(long, default_value_t = 200)]
        inflight: u32,
        /// SIPp endpoints the users register from (UAS processes).
        #[arg(long, default_value_t = 4)]
        endpoints: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Concurrent voice-message deposits: SIPp calls streaming G.711 RTP
    /// into the mailbox, each step C calls at once; packets lost or late,
    /// and the region's CPU per recorded second.
    Deposits {
        /// Concurrent deposits, one step each.
        #[arg(long, value_delimiter = ',', default_value = "100,250,500,750")]
        concurrent: Vec<u32>,
        /// Seconds of audio each caller streams.
        #[arg(long, default_value_t = 20)]
        seconds: u32,
        /// New calls per second while a step ramps up.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Third-party call setup: controller start → both talkers connected,
    /// SIPp UASes as talkers.
    Dial {
        #[arg(long, default_value_t = 500)]
        calls: usize,
    },
    /// The conference mixer next to Janus's AudioBridge (plain RTP): CPU
    /// per participant per second and the most participants one core
    /// mixes in real time.
    Mixer {
        /// Codecs, one comparison each (pcmu, pcma, opus).
        #[arg(long, value_delimiter = ',', default_value = "pcmu,opus")]
        codecs: Vec<String>,
        /// Participants per room.
        #[arg(long, default_value_t = 10)]
        room: usize,
        /// Participants speaking in each room (0: all); the rest send silence.
        #[arg(long, default_value_t = 3)]
        talkers: usize,
        /// Seconds measured per step (after 2 s of warm-up).
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// Most steps searching for the real-time limit.
        #[arg(long, default_value_t = 5)]
        steps: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Push dispatches per second to a local Web Push service (encrypt,
    /// VAPID, send; the service verifies and decrypts each).
    Push {
        #[arg(long, default_value_t = 5_000)]
        dispatches: u32,
        /// Dispatches in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: u32,
    },
    /// Marquee requests per second and p50/p99 with N subscribed phones.
    Marquee {
        #[arg(long, default_value_t = 100_000)]
        phones: u32,
        /// Items in the channel.
        #[arg(long, default_value_t = 20)]
        items: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        #[arg(long, default_value_t = 32)]
        connections: u32,
        #[arg(long)]
        no_pin: bool,
    },
}

pub async fn run(args: BenchArgs) -> Result<()> {
    match args.which {
        Which::Register {
            registrations,
            rate,
            loads,
            rounds,
            no_pin,
        } => crate::bench_spine::register(registrations, rate, loads, rounds, !no_pin).await,
        Which::Dns { numbers, seconds, clients } => crate::bench_spine::dns(numbers, seconds, clients).await,
        Which::Latency { samples } => crate::bench_spine::latency(samples).await,
        Which::Memory { numbers } => crate::bench_spine::memory(numbers),
        Which::Calls { calls, cross_region } => crate::bench_calls::calls(calls, cross_region).await,
        Which::Propagation { samples } => crate::bench_tree::propagation(samples).await,
        Which::Transfer { numbers, changes } => crate::bench_tree::transfer(numbers, changes).await,
        Which::Media { calls, seconds } => crate::bench_calls::media(calls, seconds),
        Which::MouthToEar { seconds } => crate::bench_sound::mouth_to_ear(seconds).await,
        Which::Greetings {
            numbers,
            seconds,
            connections,
            rounds,
            no_pin,
        } => crate::bench_greetings::greetings(numbers, seconds, connections, rounds, !no_pin).await,
        Which::Presence {
            presentities,
            watchers,
            rates,
            seconds,
            addresses,
            sipp_watchers,
            no_pin,
        } => {
            let w = crate::bench_presence::Workload {
                presentities,
                watchers_per: watchers,
                rates,
                seconds,
                addresses,
                sipp_watchers,
            };
            tokio::task::spawn_blocking(move || crate::bench_presence::presence(w, !no_pin)).await?
        }
        Which::Identity { count, seconds, no_pin } => crate::bench_identity::identity(count, seconds, !no_pin),
        Which::Broadcast { endpoints, uas, no_pin } => crate::bench_channels::broadcast(endpoints, uas, !no_pin).await,
        Which::Dial { calls } => crate::bench_dial::dial(calls).await,
        Which::Mixer {
            codecs,
            room,
            talkers,
            seconds,
            steps,
            no_pin,
        } => {
            let b = crate::bench_mixer::MixerBench {
                codecs,
                room,
                talkers,
                seconds,
                steps,
                pin: !no_pin,
            };
            tokio::task::spawn_blocking(move || crate::bench_mixer::mixer(b)).await?
        }
        Which::Push { dispatches, concurrency } => crate::bench_push::push(dispatches, concurrency).await,
        Which::Marquee {
            phones,
            items,
            seconds,
            connections,
            no_pin,
        } => crate::bench_channels::marquee(phones, items, seconds, connections, !no_pin).await,
        Which::Designate { seconds, clients } => crate::bench_designate::designate(seconds, clients).await,
        Which::Rendezvous {
            pending,
            samples,
            pairings,
            no_pin,
        } => crate::bench_rendezvous::rendezvous(pending, samples, pairings, !no_pin),
        Which::Yellow(args) => crate::bench_yellow::yellow(args).await,
        Which::Msilo {
            users,
            per_user,
            inflight,
            endpoints,
            no_pin,
        } => crate::bench_mailbox::msilo(users, per_user, inflight, endpoints, !no_pin).await,
        Which::Deposits {
            concurrent,
            seconds,
            rate,
            no_pin,
        } => crate::bench_mailbox::deposits(concurrent, seconds, rate, !no_pin).await,
        Which::Pages {
            profiles,
            seconds,
            connections,
        } => crate::bench_yellow::pages(profiles, seconds, connections).await,
    }
}

pub(crate) fn area() -> Area {
    Area::parse("886-02").expect("literal area")
}

pub(crate) fn tool(name: &str) -> Result<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/sbin", "/sbin"]) {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("{name} is not installed (scripts/test installs every peer: see ../shared/peers.md)")
}

/// An HTTP Basic `Authorization` value.
pub(crate) fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) async fn start_region(dir: &Path, tweak: impl FnOnce(&mut RegionConfig)) -> Result<Region> {
    let mut cfg = RegionConfig::new(area(), dir.to_path_buf());
    cfg.sip = "127.0.0.1:0".parse()?;
    cfg.dns = "127.0.0.1:0".parse()?;
    cfg.http = "127.0.0.1:0".parse()?;
    tweak(&mut cfg);
    Ok(Region::start(cfg).await?)
}

/// Provisions `n` devices over the HTTP API; returns (user, password).
pub(crate) async fn provision_many(http: SocketAddr, n: u32) -> Result<Vec<(String, String)>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::new();
    for i in 0..n {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _p = gate.acquire().await?;
            let body = format!(
                r#"{{"mac":"02:{:02x}:{:02x}:{:02x}:{:02x}:01"}}"#,
                i >> 24,
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            );
            let mut s = tokio::net::TcpStream::connect(http).await?;
            let req = format!(
                "POST /api/v1/provision HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await?;
            let mut resp = Vec::new();
            s.read_to_end(&mut resp).await?;
            let text = String::from_utf8_lossy(&resp);
            let json = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(json).with_context(|| format!("provisioning answer: {text}"))?;
            anyhow::Ok((
                v["sip_username"].as_str().context("sip_username")?.to_string(),
                v["sip_password"].as_str().context("sip_password")?.to_string(),
            ))
        }));
    }
    let mut out = Vec::with_capacity(n as usize);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// SIPp's final counters, from its `-trace_stat` CSV.
pub(crate) struct SippResult {
    pub(crate) successful: u64,
    pub(crate) failed: u64,
    pub(crate) retransmissions: u64,
    pub(crate) seconds: f64,
    /// Mean response times in ms (SIPp's `rtd` 1 and 2), weighted by calls.
    pub(crate) response_ms: [f64; 2],
}

/// Runs `instances` SIPp processes at once, each on its own slice of the
/// CSV rows (one registration per row), and adds up their counters. One
/// SIPp paces every round trip through its own loop; several keep the
/// server, not SIPp, the limit.
pub(crate) async fn run_sipp(
    dir: &Path,
    scenario: &str,
    rows: &[String],
    target: SocketAddr,
    rate: u32,
    load: Load,
    pin: bool,
) -> Result<SippResult> {
    let Load { instances, limit } = load;
    let per = rows.len().div_ceil(instances.max(1));
    let mut runs = Vec::new();
    let started = Instant::now();
    for (i, slice) in rows.chunks(per.max(1)).enumerate() {
        let sub = dir.join(format!("sipp-{i}"));
        std::fs::create_dir_all(&sub)?;
        std::fs::write(sub.join("scenario.xml"), scenario)?;
        std::fs::write(sub.join("users.csv"), format!("SEQUENTIAL\n{}\n", slice.join("\n")))?;
        let _ = std::fs::remove_file(sub.join("stats.csv"));
        let count = slice.len();
        let rate = (rate as usize / instances.max(1)).max(1);
        runs.push(tokio::spawn(sipp_once(sub, target, count, rate, limit, pin)));
    }
    let mut total = SippResult {
        successful: 0,
        failed: 0,
        retransmissions: 0,
        seconds: 0.0,
        response_ms: [0.0; 2],
    };
    for r in runs {
        let one = r.await??;
        for (t, o) in total.response_ms.iter_mut().zip(one.response_ms) {
            *t += o * one.successful as f64;
        }
        total.successful += one.successful;
        total.failed += one.failed;
        total.retransmissions += one.retransmissions;
    }
    for t in &mut total.response_ms {
        *t /= total.successful.max(1) as f64;
    }
    total.seconds = started.elapsed().as_secs_f64();
    if (total.successful + total.failed) < rows.len() as u64 {
        // A driver that could not start (e.g. its port was taken) would
        // otherwise make the rate look like the server's doing.
        bail!(
            "SIPp completed {} of {} registrations: a driver did not run; run the bench again",
            total.successful + total.failed,
            rows.len()
        );
    }
    Ok(total)
}

async fn sipp_once(dir: PathBuf, target: SocketAddr, total: usize, rate: usize, limit: u32, pin: bool) -> Result<SippResult> {
    let mut cmd = pinned(&tool("sipp")?, pin.then_some(DRIVER_CORE));
    let out = cmd
        .current_dir(&dir)
        .args(["-sf", "scenario.xml", "-inf", "users.csv", "-i", "127.0.0.1"])
        .args([
            "-p",
            &free_port()?.to_string(),
            "-cp",
            &free_port()?.to_string(),
            "-mp",
            &free_port()?.to_string(),
        ])
        .args([
            "-m",
            &total.to_string(),
            "-r",
            &rate.to_string(),
            "-l",
            &limit.to_string(),
            "-nostdin",
        ])
        .args(["-trace_stat", "-stf", "stats.csv", "-fd", "1", "-timeout", "300s", "-timeout_error"])
        // Our answers leave in bursts (one per group commit): SIPp's default
        // 64 KiB socket buffer would drop some and count retransmissions.
        .args(["-max_socket", "4096", "-buff_size", "4194304"])
        .arg(target.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await?;
    let stats = dir.join("stats.csv");
    let text =
        std::fs::read_to_string(&stats).with_context(|| format!("SIPp wrote no statistics: {}", String::from_utf8_lossy(&out.stderr)))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().context("empty SIPp statistics")?.split(';').collect();
    let last: Vec<&str> = lines.next_back().context("no SIPp statistics row")?.split(';').collect();
    let cell = |name: &str| header.iter().position(|h| *h == name).map(|i| last.get(i).map_or("", |v| v.trim()));
    let col = |name: &str| -> Result<u64> {
        let v = cell(name).with_context(|| format!("no {name} column"))?;
        Ok(v.parse().unwrap_or(0))
    };
    // SIPp writes times as HH:MM:SS:uuuuuu; absent for scenarios
    // without that rtd.
    let ms = |name: &str| -> f64 {
        let Some(v) = cell(name) else {
            return 0.0;
        };
        let parts: Vec<f64> = v.split(':').filter_map(|p| p.parse().ok()).collect();
        match parts.as_slice() {
            [h, m, s, us] => ((h * 60.0 + m) * 60.0 + s) * 1000.0 + us / 1000.0,
            _ => 0.0,
        }
    };
    Ok(SippResult {
        successful: col("SuccessfulCall(C)")?,
        failed: col("FailedCall(C)")?,
        retransmissions: col("Retransmissions(C)")?,
        seconds: 0.0,
        response_ms: [ms("ResponseTime1(C)"), ms("ResponseTime2(C)")],
    })
}

/// A command for `program`, run on `core` when given (through taskset,
/// which execs it: the pid is the program's).
pub(crate) fn pinned(program: &Path, core: Option<&str>) -> Command {
    match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.args(["-c", core]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// CPU seconds (user + system) of a process from /proc: its own, and its
/// waited-for children's.
pub(crate) fn cpu_of(pid: &str) -> (f64, f64) {
    let tck = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name.
    let f: Vec<f64> = stat
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0);
    // utime, stime, cutime, cstime are fields 14-17: 11-14 after ')'.
    ((get(11) + get(12)) / tck, (get(13) + get(14)) / tck)
}

/// CPU seconds of a process and its direct children (Kamailio's workers).
pub(crate) fn cpu_of_tree(pid: u32) -> f64 {
    let mut total = cpu_of(&pid.to_string()).0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|x| x.1.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if ppid == Some(pid) {
            total += cpu_of(&name).0;
        }
    }
    total
}

/// Cores for the servers and for the SIPp drivers when pinned.
pub(crate) const SERVER_CORE: &str = "0";
pub(crate) const DRIVER_CORE: &str = "1";

/// Pins every thread of this process (and threads started later) to `core`.
pub(crate) fn pin_self(core: &str) -> Result<()> {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", core, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("taskset could not pin this process to core {core} (use --no-pin)");
    }
    Ok(())
}

/// One SIPp load shape: this many drivers, each with at most `limit`
/// registrations in flight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Load {
    pub(crate) instances: usize,
    pub(crate) limit: u32,
}

impl std::str::FromStr for Load {
    type Err = String;
    fn from_str(s: &str) -> Result<Load, String> {
        let (i, l) = s
            .split_once('x')
            .ok_or_else(|| format!("{s:?}: expected INSTANCESxLIMIT, e.g. 3x200"))?;
        let instances: usize = i.parse().map_err(|_| format!("{s:?}: bad instance count"))?;
        let limit: u32 = l.parse().map_err(|_| format!("{s:?}: bad limit"))?;
        if instances == 0 || limit == 0 {
            return Err(format!("{s:?}: instances and limit must be at least 1"));
        }
        Ok(Load { instances, limit })
    }
}

/// Where Debian's Kamailio keeps its modules.
pub(crate) fn kamailio_mpath() -> Result<&'static str> {
    ["/usr/lib/x86_64-linux-gnu/kamailio/modules/", "/usr/lib/kamailio/modules/"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("Kamailio modules not found")
}

/// Kamailio as the reference registrar: in-memory usrloc, no auth, one
/// contact per AoR (save flag 0x04), so a re-registration from a new
/// address replaces the binding as peerdial's does.
pub(crate) struct Kamailio {
    child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
}

impl Kamailio {
    pub(crate) async fn start(kdir: &Path, pin: bool) -> Result<Kamailio> {
        Kamailio::start_with(kdir, pin, "").await
    }

    /// With `routes`: more request_route statements before the final 403
    /// (e.g. relaying MESSAGE to registered users).
    pub(crate) async fn start_with(kdir: &Path, pin: bool, routes: &str) -> Result<Kamailio> {
        let port = free_port()?;
        std::fs::create_dir_all(kdir)?;
        let mpath = kamailio_mpath()?;
        let cfg = format!(
            "#!KAMAILIO\ndebug=0\nlog_stderror=yes\nchildren=2\nmaxbuffer=4194304\nlisten=udp:127.0.0.1:{port}\nmpath=\"{mpath}\"\n\
loadmodule \"tm.so\"\nloadmodule \"sl.so\"\nloadmodule \"pv.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
modparam(\"usrloc\", \"db_mode\", 0)\n\
request_route {{\n  if (method==\"REGISTER\") {{ save(\"location\", \"0x04\"); exit; }}\n{routes}  sl_send_reply(\"403\", \"Forbidden\");\n}}\n"
        );
        Kamailio::start_cfg(kdir, pin, port, &cfg).await
    }

    /// Kamailio with the configuration `cfg`, listening on UDP `port`.
    pub(crate) async fn start_cfg(kdir: &Path, pin: bool, port: u16, cfg: &str) -> Result<Kamailio> {
        std::fs::write(kdir.join("kamailio.cfg"), cfg)?;
        let child = pinned(&tool("kamailio")?, pin.then_some(SERVER_CORE))
            .args(["-f", "kamailio.cfg", "-DD", "-E", "-Y", ".", "-P", "kamailio.pid", "-m", "512"])
            .current_dir(kdir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("Kamailio's pid")?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(Kamailio {
            child,
            pid,
            addr: format!("127.0.0.1:{port}").parse()?,
        })
    }

    pub(crate) async fn stop(mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

pub(crate) async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The SIP URI a server's NAPTR for `n` points at, if any.
pub(crate) fn naptr(server: SocketAddr, n: Number) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut q = Message::new();
    q.set_id(rand::random()).add_query(Query::query(
        Name::from_ascii(n.enum_name("peerdial.internal.")).ok()?,
        RecordType::NAPTR,
    ));
    s.send_to(&q.to_vec().ok()?, server).ok()?;
    let mut buf = [0u8; 2048];
    let (len, _) = s.recv_from(&mut buf).ok()?;
    let m = Message::from_vec(&buf[..len]).ok()?;
    m.answers().iter().find_map(|r| match r.data() {
        RData::NAPTR(x) => Some(
            String::from_utf8_lossy(x.regexp())
                .trim_start_matches("!^.*$!")
                .trim_end_matches('!')
                .to_string(),
        ),
        _ => None,
    })
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One REGISTER (challenge, then digest answer) from `sock`. Returns the
/// instant the 200 OK arrived and the time from sending the answer to it.
pub(crate) fn register_once(
    sock: &UdpSocket,
    registrar: SocketAddr,
    user: &str,
    password: &str,
    realm: &str,
    seq: u32,
) -> Result<(Instant, f64)> {
    let local = sock.local_addr()?;
    let req = |cseq: u32, auth: Option<String>| {
        let mut s = format!(
            "REGISTER sip:{registrar} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{seq}x{cseq};rport\r\nFrom: <sip:{user}@{registrar}>;tag={seq}\r\n\
To: <sip:{user}@{registrar}>\r\nCall-ID: lat{seq}@{local}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\nExpires: 600\r\n"
        );
        if let Some(a) = auth {
            s.push_str(&format!("Authorization: {a}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s
    };
    let mut buf = [0u8; 4096];
    sock.send_to(req(1, None).as_bytes(), registrar)?;
    let (n, _) = sock.recv_from(&mut buf)?;
    let challenge = peerdial_sip::Message::parse(&buf[..n])?;
    let nonce = challenge
        .header("WWW-Authenticate")
        .and_then(challenge_nonce)
        .context("no challenge")?;
    let auth = Credentials::respond(
        user,
        realm,
        password,
        Algorithm::Md5,
        "REGISTER",
        &format!("sip:{registrar}"),
        &nonce,
    )
    .to_header();
    let sent = Instant::now();
    sock.send_to(req(2, Some(auth)).as_bytes(), registrar)?;
    let (n, _) = sock.recv_from(&mut buf)?;
    let ok = Instant::now();
    if !buf[..n].starts_with(b"SIP/2.0 200") {
        bail!(
            "REGISTER refused: {}",
            String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default()
        );
    }
    Ok((ok, ok.duration_since(sent).as_secs_f64() * 1000.0))
}
