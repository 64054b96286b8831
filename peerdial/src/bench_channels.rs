//! `peerdial bench broadcast` and `peerdial bench marquee` (issue 11).
//!
//! Broadcast fan-out: N numbers are registered from K ports, then K SIPp
//! instances take those ports as UAS endpoints that answer each MESSAGE
//! with 200 and exit after their share. The region sends one broadcast
//! (the operator API); Kamailio, with the same N users registered from the
//! same kind of ports, relays N MESSAGEs that a SIPp sender pushes through
//! it (`lookup("location")` + `t_relay`), with as many in flight as the
//! region's fan-out window. Both are timed from the request until the last
//! endpoint has its MESSAGE (every UAS has exited); CPU is the server's.
//!
//! Marquee: N numbers subscribed to a channel with items; wrk asks
//! `GET /api/v1/marquee` with each number's credentials in turn.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::bench_tools::basic;
use anyhow::{bail, Context, Result};

use crate::bench_presence::RegionProcess;
use crate::bench_tools::{
    cpu_of, cpu_of_tree, free_port, pinned, provision_many, register_once, run_sipp, tool, Kamailio, Load, DRIVER_CORE,
};

const UAS: &str = include_str!("../sipp/message-uas.xml");
const UAC: &str = include_str!("../sipp/message-uac.xml");
/// The region's fan-out window (peerdial-channels' default), given to
/// Kamailio's sender too.
const WINDOW: u32 = 2_000;
const OPERATOR: &str = "bench";
const OPERATOR_PASSWORD: &str = "bench-operator-password";
/// Kamailio relays MESSAGE to the registered contact.
const KAMAILIO_MESSAGE: &str = "  if (method==\"MESSAGE\") {\n    if (!lookup(\"location\")) { sl_send_reply(\"404\", \"Not Found\"); exit; }\n    t_relay();\n    exit;\n  }\n";

/// One HTTP request with a JSON body; the status.
async fn post(http: SocketAddr, method: &str, path: &str, auth: &str, body: &str) -> Result<u16> {
    let r = peerdial_phone::http::request(
        &http.to_string(),
        method,
        path,
        &[("Authorization", auth), ("Content-Type", "application/json")],
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .await?;
    Ok(r.status)
}

/// A region with an operator account, as its own process.
async fn region(dir: &Path, pin: bool) -> Result<RegionProcess> {
    peerdial_region::admin::add_operator(dir, None, OPERATOR, OPERATOR_PASSWORD).await?;
    RegionProcess::start(dir, pin)
}

/// K sockets on free ports, each registering its share of `users`.
fn endpoints(
    users: &[(String, String)],
    k: usize,
    register: impl Fn(&UdpSocket, &str, &str, u32) -> Result<()> + Sync,
) -> Result<Vec<u16>> {
    let per = users.len().div_ceil(k.max(1));
    let socks: Vec<UdpSocket> = (0..k).map(|_| UdpSocket::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
    std::thread::scope(|s| {
        let mut runs = Vec::new();
        for (i, (sock, share)) in socks.iter().zip(users.chunks(per.max(1))).enumerate() {
            let register = &register;
            runs.push(s.spawn(move || -> Result<()> {
                sock.set_read_timeout(Some(Duration::from_secs(5)))?;
                for (j, (u, p)) in share.iter().enumerate() {
                    register(sock, u, p, (i * per + j) as u32)?;
                }
                Ok(())
            }));
        }
        runs.into_iter()
            .try_for_each(|r| r.join().map_err(|_| anyhow::anyhow!("a registering thread panicked"))?)
    })?;
    Ok(socks
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()?)
}

/// A REGISTER without credentials (Kamailio's usrloc) from `sock`.
fn register_plain(sock: &UdpSocket, to: SocketAddr, user: &str, seq: u32) -> Result<()> {
    let local = sock.local_addr()?;
    let req = format!(
        "REGISTER sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKr{seq};rport\r\nFrom: <sip:{user}@{to}>;tag=r{seq}\r\n\
To: <sip:{user}@{to}>\r\nCall-ID: r{seq}@{local}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{local}>\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), to)?;
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf)?;
    if !buf[..n].starts_with(b"SIP/2.0 200") {
        bail!("Kamailio refused a REGISTER: {}", String::from_utf8_lossy(&buf[..n.min(80)]));
    }
    Ok(())
}

/// The UAS endpoints: one SIPp per port, each exiting after its share.
pub(crate) struct Endpoints {
    runs: Vec<(std::path::PathBuf, tokio::process::Child)>,
}

impl Endpoints {
    async fn start(dir: &Path, ports: &[u16], counts: &[usize], pin: bool) -> Result<Endpoints> {
        Endpoints::start_with(dir, ports, counts, pin, UAS, &[]).await
    }

    /// SIPp endpoints running `scenario` with `extra` arguments; each
    /// exits after its count of calls.
    pub(crate) async fn start_with(
        dir: &Path,
        ports: &[u16],
        counts: &[usize],
        pin: bool,
        scenario: &str,
        extra: &[&str],
    ) -> Result<Endpoints> {
        let mut runs = Vec::new();
        for (i, (&port, &count)) in ports.iter().zip(counts).enumerate() {
            let sub = dir.join(format!("uas-{i}"));
            std::fs::create_dir_all(&sub)?;
            std::fs::write(sub.join("scenario.xml"), scenario)?;
            let _ = std::fs::remove_file(sub.join("stats.csv"));
            let child = pinned(&tool("sipp")?, pin.then_some(DRIVER_CORE))
                .current_dir(&sub)
                .args(extra)
                .args(["-sf", "scenario.xml", "-i", "127.0.0.1", "-p", &port.to_string()])
                .args(["-cp", &free_port()?.to_string(), "-mp", &free_port()?.to_string()])
                .args(["-m", &count.to_string(), "-nostdin", "-trace_stat", "-stf", "stats.csv", "-fd", "1"])
                .args(["-timeout", "600s", "-max_socket", "4096", "-buff_size", "4194304"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            runs.push((sub, child));
        }
        // Let every SIPp bind its port before anything is sent.
        tokio::time::sleep(Duration::from_millis(800)).await;
        Ok(Endpoints { runs })
    }

    /// Waits until every endpoint has had its share (then: when the last
    /// one had it) or `deadline` passes (then: None, and they are stopped
    /// by PID); and how many MESSAGEs they answered in all.
    pub(crate) async fn finish(mut self, deadline: Instant) -> (Option<Instant>, u64) {
        let mut done = None;
        while Instant::now() < deadline {
            if self.runs.iter_mut().all(|(_, c)| matches!(c.try_wait(), Ok(Some(_)))) {
                done = Some(Instant::now());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if done.is_none() {
            // SIPp writes its counters every second: let the last row land.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let mut answered = 0;
        for (sub, mut child) in self.runs {
            let _ = child.kill().await;
            let text = std::fs::read_to_string(sub.join("stats.csv")).unwrap_or_default();
            let mut lines = text.lines().filter(|l| !l.trim().is_empty());
            let header: Vec<&str> = lines.next().unwrap_or_default().split(';').collect();
            let last: Vec<&str> = lines.next_back().unwrap_or_default().split(';').collect();
            let col = header.iter().position(|h| *h == "SuccessfulCall(C)");
            answered += col
                .and_then(|c| last.get(c))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        (done, answered)
    }
}

struct Fanout {
    delivered: u64,
    /// Until every endpoint had it; for a server that lost some, until
    /// its sender was done (marked).
    seconds: f64,
    all: bool,
    cpu: f64,
}

pub(crate) fn shares(n: usize, k: usize) -> Vec<usize> {
    let per = n.div_ceil(k.max(1));
    (0..k).map(|i| per.min(n.saturating_sub(i * per))).filter(|c| *c > 0).collect()
}

async fn peerdial_fanout(dir: &Path, n: u32, k: usize, pin: bool) -> Result<Fanout> {
    let region = region(dir, pin).await?;
    let users = provision_many(region.http, n).await?;
    let realm = "2.0.6.8.8.peerdial.internal";
    let sip = region.sip;
    let ports = endpoints(&users, k, |sock, u, p, seq| register_once(sock, sip, u, p, realm, seq).map(|_| ()))?;
    let counts = shares(users.len(), ports.len());
    let eps = Endpoints::start(dir, &ports, &counts, pin).await?;
    let pid = region.pid.to_string();
    let cpu0 = cpu_of(&pid).0;
    let t0 = Instant::now();
    let auth = basic(OPERATOR, OPERATOR_PASSWORD);
    let status = post(
        region.http,
        "POST",
        "/api/v1/broadcasts",
        &auth,
        r#"{"text": "typhoon warning: stay inside"}"#,
    )
    .await?;
    if status != 201 {
        region.stop();
        bail!("the region answered {status} to the broadcast");
    }
    let (done, delivered) = eps.finish(t0 + Duration::from_secs(120)).await;
    let cpu = cpu_of(&pid).0 - cpu0;
    region.stop();
    let seconds = done.unwrap_or_else(Instant::now).duration_since(t0).as_secs_f64();
    Ok(Fanout {
        delivered,
        seconds,
        all: done.is_some(),
        cpu,
    })
}

async fn kamailio_fanout(dir: &Path, n: u32, k: usize, pin: bool) -> Result<Fanout> {
    let kam = Kamailio::start_with(&dir.join("kamailio"), pin, KAMAILIO_MESSAGE).await?;
    let users: Vec<(String, String)> = (0..n).map(|i| (format!("88602{:08}", 10_000_000 + i), String::new())).collect();
    let to = kam.addr;
    let ports = endpoints(&users, k, |sock, u, _, seq| register_plain(sock, to, u, seq))?;
    let counts = shares(users.len(), ports.len());
    let eps = Endpoints::start(dir, &ports, &counts, pin).await?;
    let cpu0 = cpu_of_tree(kam.pid);
    let t0 = Instant::now();
    let rows: Vec<String> = users.iter().map(|(u, _)| u.clone()).collect();
    let sender = run_sipp(
        &dir.join("sender"),
        UAC,
        &rows,
        kam.addr,
        1_000_000,
        Load {
            instances: 1,
            limit: WINDOW,
        },
        pin,
    )
    .await;
    let sent = Instant::now();
    // The sender is done when every MESSAGE was answered or given up on.
    let (done, delivered) = eps.finish(sent + Duration::from_secs(3)).await;
    let cpu = cpu_of_tree(kam.pid) - cpu0;
    kam.stop().await;
    sender?;
    let seconds = done.unwrap_or(sent).duration_since(t0).as_secs_f64();
    Ok(Fanout {
        delivered,
        seconds,
        all: done.is_some(),
        cpu,
    })
}

pub async fn broadcast(endpoints: Vec<u32>, uas: u32, pin: bool) -> Result<()> {
    println!("| server | endpoints | delivered | seconds until all have it | MESSAGEs/s | server CPU s | CPU µs per delivery |");
    println!("|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for n in endpoints {
        let dir = tempfile::tempdir()?;
        let ours = peerdial_fanout(&dir.path().join("peerdial"), n, uas as usize, pin)
            .await
            .context("peerdial's fan-out")?;
        let theirs = kamailio_fanout(&dir.path().join("kamailio"), n, uas as usize, pin)
            .await
            .context("Kamailio's relay")?;
        for (name, f) in [("peerdial", &ours), ("Kamailio", &theirs)] {
            println!(
                "| {name} | {n} | {} | {:.2}{} | {:.0} | {:.2} | {:.1} |",
                f.delivered,
                f.seconds,
                if f.all {
                    ""
                } else {
                    " (some never arrived: until the sender gave up)"
                },
                f.delivered as f64 / f.seconds,
                f.cpu,
                f.cpu * 1e6 / f.delivered.max(1) as f64
            );
        }
        ratios.push((
            n,
            (ours.delivered as f64 / ours.seconds) / (theirs.delivered as f64 / theirs.seconds),
        ));
    }
    for (n, r) in ratios {
        println!("\n{n} endpoints: peerdial's delivery rate is {r:.2}× Kamailio's");
    }
    Ok(())
}

pub async fn marquee(phones: u32, items: u32, seconds: u32, connections: u32, pin: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let region = region(dir.path(), pin).await?;
    let http = region.http;
    let run = async {
        let users = provision_many(http, phones).await?;
        let op = basic(OPERATOR, OPERATOR_PASSWORD);
        let s = post(http, "POST", "/api/v1/channels", &op, r#"{"name": "news"}"#).await?;
        if s != 201 {
            bail!("creating the channel: {s}");
        }
        for i in 0..items {
            let s = post(
                http,
                "POST",
                "/api/v1/channels/news/items",
                &op,
                &format!(r#"{{"text": "news item {i}"}}"#),
            )
            .await?;
            if s != 201 {
                bail!("posting an item: {s}");
            }
        }
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = Vec::new();
        for (u, p) in &users {
            let (auth, gate) = (basic(u, p), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _g = gate.acquire().await?;
                post(http, "PUT", "/api/v1/channels/news/subscription", &auth, "").await
            }));
        }
        for t in tasks {
            let s = t.await??;
            if s != 200 {
                bail!("subscribing: {s}");
            }
        }
        let reqs: Vec<(String, Vec<(&str, String)>)> = users
            .iter()
            .map(|(u, p)| ("/api/v1/marquee".to_string(), vec![("Authorization", basic(u, p))]))
            .collect();
        let script = crate::bench_greetings::wrk_requests(http, &reqs);
        let pid = region.pid.to_string();
        crate::bench_greetings::wrk(dir.path(), "marquee", http, &script, connections, seconds, pin, || cpu_of(&pid).0).await
    };
    let out = run.await;
    region.stop();
    let w = out?;
    println!("| phones subscribed | items | connections | requests/s | p50 ms | p99 ms | non-2xx | server CPU µs/request |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {phones} | {items} | {connections} | {:.0} | {:.2} | {:.2} | {} | {:.0} |",
        w.rate,
        w.p50,
        w.p99,
        w.bad,
        w.cpu * 1e6 / w.requests.max(1) as f64
    );
    println!("\ntarget p99 < 10 ms: {}", if w.p99 < 10.0 { "met" } else { "NOT met" });
    Ok(())
}
