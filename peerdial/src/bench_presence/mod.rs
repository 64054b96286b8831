//! `peerdial bench presence`: presence fan-out driven by SIPp. Watchers
//! hold many subscriptions over fewer presentities; presentities change
//! state (PUBLISH) at fixed rates; the bench counts the NOTIFYs delivered
//! per second and the time from each change's PUBLISH to each NOTIFY
//! carrying it (p50/p99). The reference is Kamailio's presence module in
//! memory (`subs_db_mode 0`, `publ_cache 2`, kamailio.rs); both servers get
//! the same SIPp scenarios and the same workload.
//!
//! SIPp cannot correlate a PUBLISH in one dialog with NOTIFYs in others,
//! so each change carries a mark in its PIDF `<note>`: the publisher SIPp
//! logs each mark with its send time, the watcher SIPps log each mark they
//! receive with its receive time (both SIPp's `gettimeofday`), and this
//! module joins the logs (sipp.rs runs the processes). Every load is
//! bounded (changes per step = rate × seconds, waits with time limits);
//! every process is stopped by its PID.
//!
//! What this is not: a conformance test (peerdial/tests/ has those).

mod kamailio;
mod sipp;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peerdial_number::Number;
use peerdial_sip::digest::challenge_nonce;
use peerdial_sip::Message;

use crate::bench_tools::{area, cpu_of_tree, free_port, percentile, pin_self, provision_many, register_once, DRIVER_CORE, SERVER_CORE};
use kamailio::KamailioPresence;
use sipp::{Target, Watchers};

/// The workload.
#[derive(Clone, Debug)]
pub struct Workload {
    pub presentities: u32,
    pub watchers_per: u32,
    /// Changes per second, one step each.
    pub rates: Vec<u32>,
    pub seconds: u32,
    /// Watcher addresses (127.0.1.x), so a server's per-address limits see
    /// several sources.
    pub addresses: u32,
    /// Watcher SIPp processes (SIPp is single-threaded).
    pub sipp_watchers: u32,
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
    /// Changes planned (rate × seconds), sent, answered 200, refused.
    pub planned: u32,
    pub changes: u32,
    pub answered: u32,
    pub refused: u32,
    pub expected: u64,
    pub delivered: u64,
    pub notifies_per_s: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub server_cpu_us_per_notify: f64,
    /// Share of a core the busiest watcher SIPp used, and all of them.
    pub sipp_busiest: f64,
    pub sipp_all: f64,
}

pub struct Outcome {
    pub subscriptions: u64,
    pub subscribe_s: f64,
    /// Initial publications answered 200, of the presentities.
    pub initial: u32,
    pub steps: Vec<Step>,
}

/// Runs the workload against the presence server `t`; `pres` are the
/// presentities (user, password), `server_cpu` reads the server's CPU
/// seconds.
fn run(dir: &Path, t: &Target, pres: &[(String, String)], w: &Workload, pin: bool, server_cpu: impl Fn() -> f64) -> Result<Outcome> {
    let names: Vec<String> = pres.iter().map(|(u, _)| u.clone()).collect();
    let mut etags: Vec<Option<String>> = vec![None; pres.len()];
    // 0. Every presentity publishes once (a new publication: its ETag).
    let n = pres.len() as u32;
    let initial = sipp::publish(&dir.join("publish-0"), t, pres, &mut etags, 0, (0, n, 1, 1000), pin)?;
    eprintln!("  {} of {n} initial PUBLISHes answered 200; subscribing…", initial.answered);
    // 1. Subscriptions; the watchers stay until stopped (the idle bound is
    // the whole run's length).
    let planned: u64 = w.rates.iter().map(|_| w.seconds as u64 + 15).sum::<u64>() + 120;
    let t0 = Instant::now();
    let mut watchers = Watchers::start(
        &dir.join("watch"),
        t,
        &names,
        w.watchers_per,
        w.addresses,
        w.sipp_watchers,
        planned,
        pin,
    )?;
    let total = watchers.total;
    wait_until(Duration::from_secs(60), || watchers.subscribed() >= total || watchers.any_exited());
    let subscriptions = watchers.subscribed();
    let subscribe_s = t0.elapsed().as_secs_f64();
    eprintln!("  {subscriptions} of {total} subscriptions answered 200 in {subscribe_s:.1} s");
    if subscriptions == 0 {
        watchers.stop();
        bail!("no subscription accepted (see the SIPp logs)");
    }
    // Initial NOTIFYs.
    wait_quiet(Duration::from_millis(700), Duration::from_secs(20), || watchers.logged());
    // 2. Changes at each rate in turn, each followed by a drain.
    let mut runs = Vec::new();
    let mut first = 0usize;
    for (i, &rate) in w.rates.iter().enumerate() {
        let changes = rate * w.seconds;
        let calls = changes.min(n).max(1);
        let rounds = changes.div_ceil(calls);
        eprintln!("  {rate} changes/s for {} s ({calls} presentities × {rounds})…", w.seconds);
        let (cpu0, sipp0, at0) = (server_cpu(), watchers.cpu(), Instant::now());
        let step = i as u32 + 1;
        let publ = sipp::publish(
            &dir.join(format!("publish-{step}")),
            t,
            pres,
            &mut etags,
            step,
            (first, calls, rounds, rate),
            pin,
        )?;
        first = (first + calls as usize) % pres.len();
        wait_quiet(Duration::from_millis(500), Duration::from_secs(10), || watchers.logged());
        let wall = at0.elapsed().as_secs_f64();
        let busy: Vec<f64> = watchers.cpu().iter().zip(&sipp0).map(|(a, b)| (a - b) / wall).collect();
        let (busiest, all) = (busy.iter().copied().fold(0.0, f64::max), busy.iter().sum::<f64>());
        runs.push((rate, publ, server_cpu() - cpu0, busiest, all));
    }
    let received = watchers.stop();
    // 3. Join: mark → send time; each receive of a mark → one sample.
    let mut by_step: HashMap<u32, Vec<(f64, f64)>> = HashMap::new();
    for r in &received {
        let Some(step) = sipp::step_of(&r.mark) else { continue };
        let Some(Some(sent)) = runs.get((step as usize).wrapping_sub(1)).map(|x| x.1.sent.get(&r.mark)) else {
            continue;
        };
        by_step.entry(step).or_default().push(((r.at_us - sent) / 1000.0, r.at_us));
    }
    let mut steps = Vec::new();
    for (i, (rate, publ, cpu, busiest, all)) in runs.into_iter().enumerate() {
        let samples = by_step.remove(&(i as u32 + 1)).unwrap_or_default();
        let mut lat: Vec<f64> = samples.iter().map(|s| s.0).collect();
        lat.sort_by(f64::total_cmp);
        let first_sent = publ.sent.values().copied().fold(f64::INFINITY, f64::min);
        let last = samples.iter().map(|s| s.1).fold(first_sent, f64::max);
        let delivered = lat.len() as u64;
        let span = (last - first_sent) / 1e6;
        let pick = |p: f64| if lat.is_empty() { f64::NAN } else { percentile(&lat, p) };
        steps.push(Step {
            rate,
            planned: rate * w.seconds,
            changes: publ.sent.len() as u32,
            answered: publ.answered,
            refused: publ.refused,
            expected: publ.sent.len() as u64 * w.watchers_per as u64,
            delivered,
            notifies_per_s: delivered as f64 / span.max(1e-3),
            p50: pick(0.5),
            p99: pick(0.99),
            max: lat.last().copied().unwrap_or(f64::NAN),
            server_cpu_us_per_notify: cpu * 1e6 / delivered.max(1) as f64,
            sipp_busiest: busiest,
            sipp_all: all,
        });
    }
    Ok(Outcome {
        subscriptions,
        subscribe_s,
        initial: initial.answered,
        steps,
    })
}

fn presentity(p: u32) -> String {
    Number::new(area(), 1000 + p).digits()
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
        stop_by_pid(&mut self.child, Duration::from_secs(10));
    }
}

/// SIGTERM to `child` by its PID, then SIGKILL if it has not exited
/// `within`.
fn stop_by_pid(child: &mut std::process::Child, within: Duration) {
    let _ = std::process::Command::new("kill").arg(child.id().to_string()).status();
    if !wait_until(within, || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A quoted parameter of a challenge header.
fn quoted_param(header: &str, name: &str) -> Option<String> {
    let at = header.find(&format!("{name}=\""))? + name.len() + 2;
    Some(header[at..].split('"').next()?.to_string())
}

/// (user, password) of each presentity.
type Users = Vec<(String, String)>;

/// The region's presentities: `n` provisioned numbers, each registered
/// from one socket of this process (so each is reachable and its
/// published note is shown; the socket is kept for the run). Returns the
/// region's domain (its digest realm), the (user, password) pairs, and the
/// socket.
fn region_presentities(region: &RegionProcess, n: u32) -> Result<(String, Users, UdpSocket)> {
    let users = tokio::runtime::Handle::current().block_on(provision_many(region.http, n))?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    // One PUBLISH without credentials: its challenge names the realm.
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
    challenge_nonce(www).context("challenge without nonce")?;
    for (i, (user, password)) in users.iter().enumerate() {
        register_once(&sock, region.sip, user, password, &realm, i as u32)?;
    }
    Ok((realm, users, sock))
}

fn print_steps(name: &str, o: &Outcome) {
    for s in &o.steps {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} % / {:.0} % |",
            s.rate,
            s.changes,
            s.answered,
            s.expected,
            s.delivered,
            s.notifies_per_s,
            s.p50,
            s.p99,
            s.max,
            s.server_cpu_us_per_notify,
            s.sipp_busiest * 100.0,
            s.sipp_all * 100.0
        );
    }
}

fn summary(name: &str, o: &Outcome, w: &Workload) {
    println!(
        "{name}: {} of {} subscriptions accepted over {} presentities in {:.1} s; initial PUBLISHes answered 200: {}",
        o.subscriptions,
        w.presentities * w.watchers_per,
        w.presentities,
        o.subscribe_s,
        o.initial
    );
    for s in &o.steps {
        if s.delivered < s.expected || s.changes < s.planned {
            println!(
                "  {name} at {} changes/s: {} of {} NOTIFYs not delivered; changes planned {}, sent {}, answered 200 {}, refused {}, unanswered {}",
                s.rate,
                s.expected - s.delivered.min(s.expected),
                s.expected,
                s.planned,
                s.changes,
                s.answered,
                s.refused,
                s.changes.saturating_sub(s.answered + s.refused)
            );
        }
    }
}

pub fn presence(w: Workload, pin: bool) -> Result<()> {
    let pin = pin && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if pin {
        // This process only waits and reads logs; the SIPps share its core.
        pin_self(DRIVER_CORE)?;
    }
    let dir = tempfile::tempdir()?;
    let keep = std::env::var_os("PEERDIAL_BENCH_KEEP").is_some();

    eprintln!("peerdial region: provisioning and registering {} presentities…", w.presentities);
    let region = RegionProcess::start(&dir.path().join("region"), pin)?;
    let ours = region_presentities(&region, w.presentities).and_then(|(domain, pres, _sock)| {
        eprintln!("peerdial region: SIPp publishers and watchers…");
        let t = Target {
            server: region.sip,
            domain,
            auth: true,
        };
        let pid = region.pid;
        run(&dir.path().join("sipp-region"), &t, &pres, &w, pin, || cpu_of_tree(pid))
    });
    region.stop();
    let ours = ours?;

    eprintln!("Kamailio: SIPp publishers and watchers…");
    let kam = KamailioPresence::start(&dir.path().join("kamailio"), pin)?;
    let pid = kam.pid;
    let t = Target {
        server: kam.addr,
        domain: kam.addr.to_string(),
        auth: false,
    };
    let pres: Vec<(String, String)> = (0..w.presentities).map(|p| (presentity(p), "unused".into())).collect();
    let theirs = run(&dir.path().join("sipp-kamailio"), &t, &pres, &w, pin, || cpu_of_tree(pid));
    kam.stop();
    let theirs = theirs?;
    if keep {
        eprintln!("SIPp logs kept in {}", dir.keep().display());
    }

    println!(
        "| server | changes/s | changes | answered | NOTIFYs expected | delivered | NOTIFYs/s | change → NOTIFY p50 ms | p99 ms | max ms | server CPU µs per NOTIFY | watcher SIPp CPU busiest / all |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    print_steps("peerdial region", &ours);
    print_steps("Kamailio 5.6 presence (in memory)", &theirs);
    println!();
    summary("peerdial", &ours, &w);
    summary("Kamailio", &theirs, &w);
    println!(
        "{} watcher SIPp processes over {} addresses (127.0.1.x){}",
        w.sipp_watchers.clamp(1, w.addresses.max(1)),
        w.addresses,
        if pin {
            "; each server on core 0, every SIPp on core 1"
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
