//! `peerdial bench presence`: presence fan-out. Watchers hold many
//! subscriptions over fewer presentities; presentities change state
//! (PUBLISH) at fixed rates; the bench counts the NOTIFYs delivered per
//! second and the time from each change's PUBLISH to each NOTIFY carrying
//! it (p50/p99). The reference is Kamailio's presence module in memory
//! (`subs_db_mode 0`, `publ_cache 2`).
//!
//! The load generator is this process, not SIPp: the latency is from a
//! PUBLISH in one dialog to NOTIFYs in many others, which one SIPp scenario
//! cannot correlate; the harness answers every NOTIFY with 200 OK as a
//! phone would, marks each change with a sequence number in the PIDF
//! `<note>`, and timestamps both ends. Every load is bounded (changes per
//! step = rate × seconds, waits with time limits); Kamailio is stopped by
//! its PID.
//!
//! What this is not: a conformance test (peerdial/tests/ has those).

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peerdial_number::Number;
use peerdial_sip::message::StartLine;
use peerdial_sip::Message;

use peerdial_sip::digest::{challenge_nonce, Algorithm, Credentials};

use crate::bench::{area, cpu_of_tree, free_port, percentile, pin_self, provision_many, register_once, tool, DRIVER_CORE, SERVER_CORE};

/// Kamailio 5.6 as a presence server, configured as in
/// ../shared/peer-configs/kamailio-presence.cfg (in-memory modes) on its
/// own port and directory.
struct KamailioPresence {
    child: std::process::Child,
    pid: u32,
    addr: SocketAddr,
}

impl KamailioPresence {
    fn start(dir: &Path, pin: bool) -> Result<KamailioPresence> {
        let port = free_port()?;
        std::fs::create_dir_all(dir)?;
        let mpath = ["/usr/lib/x86_64-linux-gnu/kamailio/modules/", "/usr/lib/kamailio/modules/"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("Kamailio modules not found")?;
        let d = dir.display();
        let cfg = format!(
            r#"#!KAMAILIO
#!define DBURL "sqlite://{d}/pres.sqlite"
debug=0
log_stderror=yes
children=2
dns=no
rev_dns=no
maxbuffer=4194304
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="{mpath}"
loadmodule "db_sqlite.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"
modparam("presence", "db_url", DBURL)
modparam("presence", "server_address", "sip:127.0.0.1:{port}")
modparam("presence", "subs_db_mode", 0)
modparam("presence", "publ_cache", 2)
modparam("presence_xml", "db_url", DBURL)
modparam("presence_xml", "force_active", 1)
request_route {{
  if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483","Too Many Hops"); exit; }}
  if (is_method("PUBLISH|SUBSCRIBE")) route(PRESENCE);
  if (is_method("ACK")) exit;
  sl_send_reply("405","Method Not Allowed"); exit;
}}
route[PRESENCE] {{
  if (!t_newtran()) {{ sl_reply_error(); exit; }}
  if (is_method("PUBLISH")) handle_publish(); else handle_subscribe();
  t_release(); exit;
}}
"#
        );
        std::fs::write(dir.join("kamailio.cfg"), cfg)?;
        let mut cmd = if pin {
            let mut c = std::process::Command::new("taskset");
            c.args(["-c", SERVER_CORE]).arg(tool("kamailio")?);
            c
        } else {
            std::process::Command::new(tool("kamailio")?)
        };
        let mut child = cmd
            .args([
                "-f",
                "kamailio.cfg",
                "-DD",
                "-E",
                "-Y",
                ".",
                "-P",
                "kamailio.pid",
                "-m",
                "512",
                "-M",
                "16",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("kamailio.log"))?)
            .spawn()?;
        let pid = child.id();
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(Some(st)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default();
            bail!("Kamailio exited ({st}): {log}");
        }
        Ok(KamailioPresence {
            child,
            pid,
            addr: format!("127.0.0.1:{port}").parse()?,
        })
    }

    pub(crate) fn stop(mut self) {
        let _ = std::process::Command::new("kill").arg(self.pid.to_string()).status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workload.
#[derive(Clone, Debug)]
pub struct Workload {
    pub presentities: u32,
    pub watchers_per: u32,
    /// Changes per second, one step each.
    pub rates: Vec<u32>,
    pub seconds: u32,
    /// Watcher sockets, each on its own loopback address (127.0.1.x), so a
    /// server's per-address limits see several sources.
    pub sockets: u32,
}

/// One NOTIFY that carried a change: (change, ms from its PUBLISH).
type Sample = (u32, f64, u64);

/// What watcher threads, the publisher and the driver share.
struct Board {
    start: Instant,
    /// Send time of each change, µs since `start` plus one (0: not sent).
    sent: Vec<AtomicU64>,
    stop: AtomicBool,
    sub_ok: AtomicU64,
    sub_refused: AtomicU64,
    /// NOTIFYs that carried no change (initial state, the first PUBLISH).
    other_notifies: AtomicU64,
    change_notifies: AtomicU64,
    pub_ok: AtomicU64,
    pub_refused: AtomicU64,
    /// Each presentity's latest SIP-ETag.
    etags: Mutex<Vec<Option<String>>>,
}

fn now_us(b: &Board) -> u64 {
    b.start.elapsed().as_micros() as u64
}

fn ok_for(req: &Message) -> Vec<u8> {
    let mut s = String::from("SIP/2.0 200 OK\r\n");
    for (n, v) in &req.headers {
        if matches!(n.as_str(), "Via" | "From" | "To" | "Call-ID" | "CSeq") {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

/// The change number in a PIDF note `chgN.`, if any.
fn change_of(body: &[u8]) -> Option<u32> {
    let at = body.windows(3).position(|w| w == b"chg")?;
    let digits: String = body[at + 3..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok()
}

/// A watcher socket's loop: answers NOTIFYs, counts SUBSCRIBE answers,
/// and records one sample per (change, dialog) (retransmissions count once).
fn watcher(sock: UdpSocket, board: Arc<Board>) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut seen: HashSet<(u32, String)> = HashSet::new();
    let mut buf = vec![0u8; 65536];
    while !board.stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let at = now_us(&board);
        let Ok(m) = Message::parse(&buf[..n]) else {
            continue;
        };
        match &m.start {
            StartLine::Request { method, .. } if method == "NOTIFY" => {
                let _ = sock.send_to(&ok_for(&m), from);
                match change_of(&m.body) {
                    Some(k) => {
                        let sent = board.sent.get(k as usize).map_or(0, |s| s.load(Ordering::Relaxed));
                        let call = m.header("Call-ID").unwrap_or_default().to_string();
                        if sent > 0 && seen.insert((k, call)) {
                            board.change_notifies.fetch_add(1, Ordering::Relaxed);
                            out.push((k, at.saturating_sub(sent - 1) as f64 / 1000.0, at));
                        }
                    }
                    None => {
                        board.other_notifies.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            StartLine::Request { .. } => {}
            StartLine::Response { code, .. } => {
                if (200..300).contains(code) {
                    board.sub_ok.fetch_add(1, Ordering::Relaxed);
                } else if *code >= 300 {
                    board.sub_refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    out
}

/// The publisher socket's receive loop: counts answers, keeps ETags.
fn publisher_answers(sock: UdpSocket, board: Arc<Board>) {
    let mut buf = vec![0u8; 65536];
    while !board.stop.load(Ordering::Relaxed) {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = Message::parse(&buf[..n]) else {
            continue;
        };
        let StartLine::Response { code, .. } = m.start else {
            continue;
        };
        if !(200..300).contains(&code) {
            if code >= 300 {
                board.pub_refused.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        board.pub_ok.fetch_add(1, Ordering::Relaxed);
        let p = m
            .header("Call-ID")
            .and_then(|c| c.strip_prefix("pub"))
            .and_then(|c| c.split('@').next())
            .and_then(|c| c.parse::<usize>().ok());
        if let (Some(p), Some(tag)) = (p, m.header("SIP-ETag")) {
            if let Some(slot) = board.etags.lock().expect("etags").get_mut(p) {
                *slot = Some(tag.to_string());
            }
        }
    }
}

fn presentity(p: u32) -> String {
    Number::new(area(), 1000 + p).digits()
}

/// Presentities for a server that wants no credentials.
fn anonymous(n: u32) -> Result<Presentities> {
    Ok(Presentities {
        names: (0..n).map(presentity).collect(),
        socket: UdpSocket::bind("127.0.0.1:0")?,
        auth: vec![None; n as usize],
    })
}

/// Waits until `done()` or `limit`; true if done.
pub(crate) fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// Waits until `count()` has not moved for `quiet`, at most `limit`.
fn wait_quiet(quiet: Duration, limit: Duration, count: impl Fn() -> u64) {
    let end = Instant::now() + limit;
    let mut last = (count(), Instant::now());
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        let c = count();
        if c != last.0 {
            last = (c, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return;
        }
    }
}

/// One step's figures.
pub struct Step {
    pub rate: u32,
    pub changes: u32,
    pub expected: u64,
    pub delivered: u64,
    pub notifies_per_s: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub server_cpu_us_per_notify: f64,
}

pub struct Outcome {
    /// PUBLISHes answered 2xx, and refused.
    pub published: (u64, u64),
    pub subscriptions: u64,
    pub refused: u64,
    pub subscribe_s: f64,
    pub steps: Vec<Step>,
}

/// The presentities' side of a run: their user parts, the socket their
/// PUBLISHes leave from, and each one's Authorization header (if the
/// server wants one).
pub struct Presentities {
    pub names: Vec<String>,
    pub socket: UdpSocket,
    pub auth: Vec<Option<String>>,
}

/// Runs the workload against the presence server at `server` (host part
/// `domain`), reading the server's CPU seconds with `server_cpu`.
pub fn run(server: SocketAddr, domain: &str, pres: Presentities, w: &Workload, server_cpu: impl Fn() -> f64) -> Result<Outcome> {
    let total_changes: u64 = w.rates.iter().map(|r| *r as u64 * w.seconds as u64).sum();
    let board = Arc::new(Board {
        start: Instant::now(),
        sent: (0..total_changes).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
        sub_ok: AtomicU64::new(0),
        sub_refused: AtomicU64::new(0),
        other_notifies: AtomicU64::new(0),
        change_notifies: AtomicU64::new(0),
        pub_ok: AtomicU64::new(0),
        pub_refused: AtomicU64::new(0),
        etags: Mutex::new(vec![None; w.presentities as usize]),
    });
    let sockets = w.sockets.clamp(1, 250);
    let mut socks = Vec::new();
    let mut threads = Vec::new();
    for j in 0..sockets {
        let s = UdpSocket::bind(format!("127.0.1.{}:0", j + 1))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        let _ = set_buffers(&s);
        let (rx, b) = (s.try_clone()?, board.clone());
        threads.push(std::thread::spawn(move || watcher(rx, b)));
        socks.push(s);
    }
    let publ = pres.socket;
    publ.set_read_timeout(Some(Duration::from_millis(100)))?;
    let _ = set_buffers(&publ);
    let pub_thread = {
        let (rx, b) = (publ.try_clone()?, board.clone());
        std::thread::spawn(move || publisher_answers(rx, b))
    };
    let result = drive(
        server,
        domain,
        (&pres.names, &pres.auth),
        w,
        &board,
        &socks,
        &publ,
        total_changes,
        &server_cpu,
    );
    board.stop.store(true, Ordering::Relaxed);
    let mut samples: Vec<Sample> = Vec::new();
    for t in threads {
        samples.extend(t.join().unwrap_or_default());
    }
    let _ = pub_thread.join();
    let (subscriptions, refused, subscribe_s, windows) = result?;
    let mut steps = Vec::new();
    let mut base = 0u32;
    for (rate, (first_us, cpu)) in w.rates.iter().zip(windows) {
        let changes = rate * w.seconds;
        let range = base..base + changes;
        base += changes;
        let mut lat: Vec<f64> = samples.iter().filter(|s| range.contains(&s.0)).map(|s| s.1).collect();
        let last = samples
            .iter()
            .filter(|s| range.contains(&s.0))
            .map(|s| s.2)
            .max()
            .unwrap_or(first_us);
        lat.sort_by(f64::total_cmp);
        let delivered = lat.len() as u64;
        let span = (last.saturating_sub(first_us)) as f64 / 1e6;
        let pick = |p: f64| if lat.is_empty() { f64::NAN } else { percentile(&lat, p) };
        steps.push(Step {
            rate: *rate,
            changes,
            expected: changes as u64 * w.watchers_per as u64,
            delivered,
            notifies_per_s: delivered as f64 / span.max(1e-3),
            p50: pick(0.5),
            p99: pick(0.99),
            max: lat.last().copied().unwrap_or(f64::NAN),
            server_cpu_us_per_notify: cpu * 1e6 / delivered.max(1) as f64,
        });
    }
    Ok(Outcome {
        published: (board.pub_ok.load(Ordering::Relaxed), board.pub_refused.load(Ordering::Relaxed)),
        subscriptions,
        refused,
        subscribe_s,
        steps,
    })
}

fn set_buffers(s: &UdpSocket) -> std::io::Result<()> {
    // Fan-out arrives in bursts; the default receive buffer would drop some.
    let sock = socket2::SockRef::from(s);
    sock.set_recv_buffer_size(4 << 20)?;
    sock.set_send_buffer_size(4 << 20)
}

type Windows = Vec<(u64, f64)>;

#[allow(clippy::too_many_arguments)]
fn drive(
    server: SocketAddr,
    domain: &str,
    (names, auth): (&[String], &[Option<String>]),
    w: &Workload,
    board: &Board,
    socks: &[UdpSocket],
    publ: &UdpSocket,
    total_changes: u64,
    server_cpu: &impl Fn() -> f64,
) -> Result<(u64, u64, f64, Windows)> {
    // 1. Subscriptions: watcher i of presentity p, dialogs spread over the
    // sockets, at most `window` unanswered at a time.
    let total = w.presentities as u64 * w.watchers_per as u64;
    let window = 200u64;
    let t0 = Instant::now();
    for id in 0..total {
        let p = (id % w.presentities as u64) as u32;
        let s = &socks[(id % socks.len() as u64) as usize];
        let local = s.local_addr()?;
        let user = &names[p as usize];
        let msg = format!(
            "SUBSCRIBE sip:{user}@{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKs{id};rport\r\n\
From: <sip:w{id}@{}>;tag=w{id}\r\nTo: <sip:{user}@{domain}>\r\nCall-ID: w{id}@bench\r\nCSeq: 1 SUBSCRIBE\r\n\
Contact: <sip:w{id}@{local}>\r\nMax-Forwards: 70\r\nEvent: presence\r\nAccept: application/pidf+xml\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n",
            local.ip()
        );
        s.send_to(msg.as_bytes(), server)?;
        if id + 1 >= window {
            let want = id + 1 - window;
            let answered = wait_until(Duration::from_secs(5), || {
                board.sub_ok.load(Ordering::Relaxed) + board.sub_refused.load(Ordering::Relaxed) >= want
            });
            if !answered {
                bail!(
                    "the server stopped answering SUBSCRIBEs: {} of {} answered after 5 s",
                    board.sub_ok.load(Ordering::Relaxed) + board.sub_refused.load(Ordering::Relaxed),
                    id + 1
                );
            }
        }
    }
    let answered = || board.sub_ok.load(Ordering::Relaxed) + board.sub_refused.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(10), || answered() >= total);
    let subscribe_s = t0.elapsed().as_secs_f64();
    eprintln!("  {} SUBSCRIBEs answered in {subscribe_s:.1} s; initial PUBLISHes…", answered());
    let (ok, refused) = (board.sub_ok.load(Ordering::Relaxed), board.sub_refused.load(Ordering::Relaxed));
    if ok == 0 {
        bail!("no subscription accepted ({refused} refused, {} unanswered)", total - ok - refused);
    }
    // Initial NOTIFYs, then each presentity's first PUBLISH (which gives
    // its ETag; its NOTIFYs carry no change number).
    wait_quiet(Duration::from_millis(500), Duration::from_secs(20), || {
        board.other_notifies.load(Ordering::Relaxed)
    });
    let mut cseq = vec![1u32; w.presentities as usize];
    let publish = |p: u32, note: &str, cseq: u32, etag: Option<&str>| -> Result<()> {
        let user = &names[p as usize];
        let local = publ.local_addr()?;
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:{user}@{domain}\"><tuple id=\"t1\"><status><basic>open</basic></status><note>{note}</note></tuple></presence>"
        );
        let mut if_match = etag.map(|e| format!("SIP-If-Match: {e}\r\n")).unwrap_or_default();
        if let Some(a) = &auth[p as usize] {
            if_match.push_str(&format!("Authorization: {a}\r\n"));
        }
        let msg = format!(
            "PUBLISH sip:{user}@{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKp{p}x{cseq};rport\r\n\
From: <sip:{user}@{domain}>;tag=pub{p}\r\nTo: <sip:{user}@{domain}>\r\nCall-ID: pub{p}@bench\r\nCSeq: {cseq} PUBLISH\r\n\
Max-Forwards: 70\r\nEvent: presence\r\nExpires: 3600\r\n{if_match}Content-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        publ.send_to(msg.as_bytes(), server)?;
        Ok(())
    };
    for p in 0..w.presentities {
        publish(p, "initial", cseq[p as usize], None)?;
        cseq[p as usize] += 1;
        if p as u64 + 1 >= window {
            let want = p as u64 + 1 - window;
            let answered = wait_until(Duration::from_secs(5), || {
                board.pub_ok.load(Ordering::Relaxed) + board.pub_refused.load(Ordering::Relaxed) >= want
            });
            if !answered {
                bail!("the server stopped answering PUBLISHes: {want} wanted answered after 5 s");
            }
        }
    }
    wait_until(Duration::from_secs(10), || {
        board.pub_ok.load(Ordering::Relaxed) >= w.presentities as u64
    });
    wait_quiet(Duration::from_millis(500), Duration::from_secs(20), || {
        board.other_notifies.load(Ordering::Relaxed)
    });

    eprintln!(
        "  PUBLISH 2xx {}, refused {}; NOTIFYs so far {}",
        board.pub_ok.load(Ordering::Relaxed),
        board.pub_refused.load(Ordering::Relaxed),
        board.other_notifies.load(Ordering::Relaxed)
    );
    // 2. Changes at each fixed rate in turn, each followed by a drain.
    let mut windows = Vec::new();
    let mut k = 0u64;
    for &rate in &w.rates {
        let changes = rate as u64 * w.seconds as u64;
        eprintln!("  {rate} changes/s for {} s…", w.seconds);
        let cpu0 = server_cpu();
        let step_start = Instant::now();
        let first_us = now_us(board);
        for i in 0..changes {
            let due = step_start + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let p = ((k + i) % w.presentities as u64) as u32;
            let etag = board.etags.lock().expect("etags")[p as usize].clone();
            board.sent[(k + i) as usize].store(now_us(board) + 1, Ordering::Relaxed);
            publish(p, &format!("chg{}.", k + i), cseq[p as usize], etag.as_deref())?;
            cseq[p as usize] += 1;
        }
        k += changes;
        let expected_so_far = k * w.watchers_per as u64;
        wait_until(Duration::from_secs(10), || {
            board.change_notifies.load(Ordering::Relaxed) >= expected_so_far
        });
        wait_quiet(Duration::from_millis(300), Duration::from_secs(2), || {
            board.change_notifies.load(Ordering::Relaxed)
        });
        windows.push((first_us, server_cpu() - cpu0));
    }
    debug_assert_eq!(k, total_changes);
    Ok((ok, refused, subscribe_s, windows))
}

/// A region as its own process (`peerdial region`), so that it can be
/// pinned to the server core like Kamailio while this harness runs on the
/// other; stopped by its PID.
pub(crate) struct RegionProcess {
    child: std::process::Child,
    pub(crate) pid: u32,
    pub(crate) sip: SocketAddr,
    pub(crate) http: SocketAddr,
}

impl RegionProcess {
    pub(crate) fn start(dir: &Path, pin: bool) -> Result<RegionProcess> {
        std::fs::create_dir_all(dir)?;
        let (sip, dns, http) = (free_port()?, free_port()?, free_port()?);
        let exe = std::env::current_exe()?;
        let mut cmd = if pin {
            let mut c = std::process::Command::new("taskset");
            c.args(["-c", SERVER_CORE]).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        };
        // Keep-alives every hour: the run is shorter, so none are sent and
        // the load is the fan-out alone.
        let mut child = cmd
            .args(["region", "--area", &area().to_string(), "--data"])
            .arg(dir)
            .args(["--sip", &format!("127.0.0.1:{sip}"), "--dns", &format!("127.0.0.1:{dns}")])
            .args(["--http", &format!("127.0.0.1:{http}"), "--keepalive", "3600"])
            .env("PEERDIAL_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("region.log"))?)
            .spawn()?;
        let pid = child.id();
        let http: SocketAddr = format!("127.0.0.1:{http}").parse()?;
        let up = wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(http).is_ok());
        if !up {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("region.log")).unwrap_or_default();
            bail!("the region did not start: {log}");
        }
        Ok(RegionProcess {
            child,
            pid,
            sip: format!("127.0.0.1:{sip}").parse()?,
            http,
        })
    }

    pub(crate) fn stop(mut self) {
        let _ = std::process::Command::new("kill").arg(self.pid.to_string()).status();
        if !wait_until(Duration::from_secs(10), || matches!(self.child.try_wait(), Ok(Some(_)))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A quoted parameter of a challenge header.
fn quoted_param(header: &str, name: &str) -> Option<String> {
    let at = header.find(&format!("{name}=\""))? + name.len() + 2;
    Some(header[at..].split('"').next()?.to_string())
}

/// The region's presentities: `n` provisioned numbers, each registered
/// from the publisher socket (so each is reachable and its published note
/// is shown), with the digest answer its PUBLISHes carry (the region's
/// nonces are stateless, so one serves the whole run).
fn region_presentities(region: &RegionProcess, n: u32, domain_out: &mut String) -> Result<Presentities> {
    let users = tokio::runtime::Handle::current().block_on(provision_many(region.http, n))?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    // One PUBLISH without credentials: its challenge names realm and nonce.
    let (user, _) = users.first().context("no numbers provisioned")?;
    let local = sock.local_addr()?;
    let probe = format!(
        "PUBLISH sip:{user}@{} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe;rport\r\nFrom: <sip:{user}@{}>;tag=probe\r\n\
To: <sip:{user}@{}>\r\nCall-ID: probe@bench\r\nCSeq: 1 PUBLISH\r\nMax-Forwards: 70\r\nEvent: presence\r\nContent-Length: 0\r\n\r\n",
        region.sip, region.sip, region.sip
    );
    sock.send_to(probe.as_bytes(), region.sip)?;
    let mut buf = [0u8; 4096];
    let (len, _) = sock.recv_from(&mut buf)?;
    let challenge = Message::parse(&buf[..len])?;
    let www = challenge
        .header("WWW-Authenticate")
        .context("the region did not challenge a PUBLISH")?;
    let realm = quoted_param(www, "realm").context("challenge without realm")?;
    let nonce = challenge_nonce(www).context("challenge without nonce")?;
    *domain_out = realm.clone();
    let mut auth = Vec::new();
    for (i, (user, password)) in users.iter().enumerate() {
        register_once(&sock, region.sip, user, password, &realm, i as u32)?;
        let uri = format!("sip:{user}@{realm}");
        auth.push(Some(
            Credentials::respond(user, &realm, password, Algorithm::Md5, "PUBLISH", &uri, &nonce).to_header(),
        ));
    }
    Ok(Presentities {
        names: users.into_iter().map(|(u, _)| u).collect(),
        socket: sock,
        auth,
    })
}

fn print_steps(name: &str, o: &Outcome) {
    for s in &o.steps {
        println!(
            "| {name} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} |",
            s.rate, s.changes, s.expected, s.delivered, s.notifies_per_s, s.p50, s.p99, s.max, s.server_cpu_us_per_notify
        );
    }
}

fn summary(name: &str, o: &Outcome, w: &Workload) {
    println!(
        "{name}: {} subscriptions accepted ({} refused) over {} presentities in {:.1} s; PUBLISH answered 2xx {}, refused {}",
        o.subscriptions, o.refused, w.presentities, o.subscribe_s, o.published.0, o.published.1
    );
}

pub fn presence(w: Workload, pin: bool) -> Result<()> {
    let pin = pin && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if pin {
        // This process is the load generator: core 1; servers on core 0.
        pin_self(DRIVER_CORE)?;
    }
    let dir = tempfile::tempdir()?;

    eprintln!("peerdial region: provisioning and registering {} presentities…", w.presentities);
    let region = RegionProcess::start(&dir.path().join("region"), pin)?;
    let mut domain = String::new();
    let ours = region_presentities(&region, w.presentities, &mut domain).and_then(|pres| {
        eprintln!("peerdial region: {} subscriptions, then changes…", w.presentities * w.watchers_per);
        let pid = region.pid;
        run(region.sip, &domain, pres, &w, || cpu_of_tree(pid))
    });
    region.stop();
    let ours = ours?;

    eprintln!("Kamailio: {} subscriptions, then changes…", w.presentities * w.watchers_per);
    let kam = KamailioPresence::start(&dir.path().join("kamailio"), pin)?;
    let pid = kam.pid;
    let theirs = anonymous(w.presentities).and_then(|pres| run(kam.addr, &kam.addr.to_string(), pres, &w, || cpu_of_tree(pid)));
    kam.stop();
    let theirs = theirs?;

    println!(
        "| server | changes/s | changes | NOTIFYs expected | delivered | NOTIFYs/s | change → NOTIFY p50 ms | p99 ms | max ms | server CPU µs per NOTIFY |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    print_steps("peerdial region", &ours);
    print_steps("Kamailio 5.6 presence (in memory)", &theirs);
    println!();
    summary("peerdial", &ours, &w);
    summary("Kamailio", &theirs, &w);
    println!(
        "{} watcher addresses (127.0.1.x){}",
        w.sockets,
        if pin {
            "; each server on core 0, this harness on core 1"
        } else {
            ", unpinned"
        }
    );
    let best = |o: &Outcome| o.steps.iter().map(|s| s.notifies_per_s).fold(0.0, f64::max);
    println!(
        "best NOTIFYs/s: peerdial {:.0}, Kamailio {:.0}, ratio {:.2}",
        best(&ours),
        best(&theirs),
        best(&ours) / best(&theirs)
    );
    Ok(())
}
