//! The SIPp side of `peerdial bench presence`: the watcher and publisher
//! scenarios (peerdial/sipp/presence-*.xml), their injection CSVs, the
//! SIPp processes (pinned to the driver core when asked, stopped by their
//! PIDs) and their `-trace_logs` logs, which carry a change mark with a
//! send time (publisher) or a receive time (watchers), both from SIPp's
//! `gettimeofday`. Joining them is mod.rs's business; this is not a
//! general SIPp wrapper (bench.rs runs the REGISTER ones).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::wait_until;
use crate::bench_tools::{cpu_of, free_port, tool, DRIVER_CORE};

const WATCHER: &str = include_str!("../../sipp/presence-watcher.xml");
const PUBLISHER: &str = include_str!("../../sipp/presence-publisher.xml");

/// The server under test as the scenarios address it.
pub(super) struct Target {
    pub server: SocketAddr,
    /// Host part of the request URIs.
    pub domain: String,
    /// The server challenges PUBLISH: the publisher answers with digest.
    pub auth: bool,
}

/// One SIPp process.
struct Sipp {
    child: std::process::Child,
    pid: u32,
    log: PathBuf,
}

impl Sipp {
    fn spawn(dir: &Path, scenario: &str, rows: &[String], extra: &[String], target: SocketAddr, pin: bool) -> Result<Sipp> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("scenario.xml"), scenario)?;
        std::fs::write(dir.join("rows.csv"), format!("SEQUENTIAL\n{}\n", rows.join("\n")))?;
        let mut cmd = if pin {
            let mut c = std::process::Command::new("taskset");
            c.args(["-c", DRIVER_CORE]).arg(tool("sipp")?);
            c
        } else {
            std::process::Command::new(tool("sipp")?)
        };
        let child = cmd
            .current_dir(dir)
            .args(["-sf", "scenario.xml", "-inf", "rows.csv", "-nostdin"])
            .args(["-cp", &free_port()?.to_string(), "-mp", &free_port()?.to_string()])
            // Fan-out arrives in bursts: SIPp's default socket buffer drops some.
            .args(["-max_socket", "1000", "-buff_size", "4194304"])
            .args(["-trace_logs", "-log_file", "log.txt", "-trace_err", "-error_file", "errors.txt"])
            .args(extra)
            .arg(target.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.txt"))?)
            .spawn()
            .context("starting SIPp")?;
        Ok(Sipp {
            pid: child.id(),
            child,
            log: dir.join("log.txt"),
        })
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM (SIPp ends at once; its log is written as it goes), then
    /// SIGKILL if it is still there after 5 s.
    fn stop(&mut self) {
        super::stop_by_pid(&mut self.child, Duration::from_secs(5));
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A SIPp left running by an early return (an error mid-run) is stopped
/// too.
impl Drop for Sipp {
    fn drop(&mut self) {
        if !self.exited() {
            self.stop();
        }
    }
}

/// Seconds and microseconds as SIPp's `gettimeofday` logs them
/// (`1796282078.000000 397676.000000`), in µs since the epoch.
fn micros(s: &str, us: &str) -> Option<f64> {
    Some(s.parse::<f64>().ok()? * 1e6 + us.parse::<f64>().ok()?)
}

/// The step of a mark `mk<step>c<call>k<round>e`.
pub(super) fn step_of(mark: &str) -> Option<u32> {
    mark.strip_prefix("mk")?.split('c').next()?.parse().ok()
}

/// One NOTIFY that carried a change mark, as a watcher logged it.
pub(super) struct Received {
    pub mark: String,
    pub at_us: f64,
}

/// The watcher SIPp processes: `sipp_watchers` of them sharing the
/// subscriptions and the watcher addresses (127.0.1.x, one socket each:
/// `-t ui`).
pub(super) struct Watchers {
    procs: Vec<Sipp>,
    pub total: u64,
}

impl Watchers {
    /// Subscription `i` watches presentity `i % n` from address
    /// `127.0.1.(i % addresses + 1)`; a process owns whole addresses.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        dir: &Path,
        t: &Target,
        names: &[String],
        per: u32,
        addresses: u32,
        processes: u32,
        idle_s: u64,
        pin: bool,
    ) -> Result<Watchers> {
        let addresses = addresses.clamp(1, 250);
        let processes = processes.clamp(1, addresses);
        let total = names.len() as u64 * per as u64;
        let mut rows: Vec<Vec<String>> = vec![Vec::new(); processes as usize];
        for i in 0..total {
            let a = (i % addresses as u64) as u32;
            let user = &names[(i % names.len() as u64) as usize];
            rows[(a % processes) as usize].push(format!(
                "{user};{};127.0.1.{};w{i};[authentication username=w{i} password=watcher]",
                t.domain,
                a + 1
            ));
        }
        let mut procs = Vec::new();
        for (j, rows) in rows.iter().enumerate() {
            let port = free_port()?;
            let scenario = WATCHER
                .replace("@IDLE@", &(idle_s * 1000).to_string())
                .replace("@EXPIRES@", "3600")
                .replace("@PORT@", &port.to_string());
            let n = rows.len().to_string();
            // 2,000 SUBSCRIBEs/s in all: within the region's per-address burst.
            let rate = (2000 / processes).max(1).to_string();
            let extra = [
                "-t",
                "ui",
                "-ip_field",
                "2",
                "-aa",
                "-p",
                &port.to_string(),
                "-m",
                &n,
                "-l",
                &n,
                "-r",
                &rate,
                "-timeout",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("{}s", idle_s + 60)])
            .collect::<Vec<_>>();
            procs.push(Sipp::spawn(
                &dir.join(format!("watcher-{j}")),
                &scenario,
                rows,
                &extra,
                t.server,
                pin,
            )?);
        }
        Ok(Watchers { procs, total })
    }

    /// Subscriptions answered 2xx so far (the `S` lines).
    pub(super) fn subscribed(&self) -> u64 {
        self.procs
            .iter()
            .map(|p| p.log_text().lines().filter(|l| l.starts_with("S ")).count() as u64)
            .sum()
    }

    /// Bytes logged so far: grows with every NOTIFY.
    pub(super) fn logged(&self) -> u64 {
        self.procs.iter().map(|p| std::fs::metadata(&p.log).map_or(0, |m| m.len())).sum()
    }

    /// CPU seconds of each process.
    pub(super) fn cpu(&self) -> Vec<f64> {
        self.procs.iter().map(|p| cpu_of(&p.pid.to_string()).0).collect()
    }

    pub(super) fn any_exited(&mut self) -> bool {
        self.procs.iter_mut().any(Sipp::exited)
    }

    /// Stops every process by PID and reads what they received: each
    /// (dialog, mark) once (a retransmitted NOTIFY is logged again).
    pub(super) fn stop(mut self) -> Vec<Received> {
        let mut out = Vec::new();
        for p in &mut self.procs {
            p.stop();
        }
        for (j, p) in self.procs.iter().enumerate() {
            let mut seen = std::collections::HashSet::new();
            for line in p.log_text().lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                // N <call> <mark> <s> <us>; an empty mark leaves four fields.
                if let ["N", call, mark, s, us] = f.as_slice() {
                    if let Some(at_us) = micros(s, us) {
                        if seen.insert((j, call.to_string(), mark.to_string())) {
                            out.push(Received {
                                mark: mark.to_string(),
                                at_us,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// What one publisher run did.
pub(super) struct Published {
    /// Mark → send time (µs since the epoch).
    pub sent: HashMap<String, f64>,
    /// Changes answered 200, and refused (500, 503, 412).
    pub answered: u32,
    pub refused: u32,
}

/// One publisher run: `calls` presentities from `first` on (round-robin),
/// `rounds` changes each, `rate` calls started per second, so `rate`
/// changes per second in all. `etags` holds each presentity's current
/// SIP-ETag (None: no publication yet) and is updated from the log.
#[allow(clippy::too_many_arguments)]
pub(super) fn publish(
    dir: &Path,
    t: &Target,
    pres: &[(String, String)],
    etags: &mut [Option<String>],
    step: u32,
    (first, calls, rounds, rate): (usize, u32, u32, u32),
    pin: bool,
) -> Result<Published> {
    let period_ms = (calls as u64 * 1000 / rate.max(1) as u64).max(1);
    let mut scenario = PUBLISHER
        .replace("@STEP@", &step.to_string())
        .replace("@ROUNDS@", &rounds.to_string())
        .replace("@PERIOD@", &period_ms.to_string());
    scenario = if t.auth {
        scenario
            .replace("<!--PROBE", "")
            .replace("PROBE-->", "")
            .replace("@AUTH@", "[field3]")
    } else {
        scenario.replace("      @AUTH@\n", "")
    };
    let mut rows = Vec::new();
    let mut index = HashMap::new();
    for c in 0..calls as usize {
        let p = (first + c) % pres.len();
        let (user, password) = &pres[p];
        index.insert(user.clone(), p);
        let if_match = match &etags[p] {
            Some(e) => format!("SIP-If-Match: {e}"),
            None => "X-Bench: new".into(),
        };
        rows.push(format!(
            "{user};{};{if_match};[authentication username={user} password={password}]",
            t.domain
        ));
    }
    // Every call ends after rounds × period plus its round trips; the
    // bound leaves room for a server that answers late.
    let bound = calls as u64 / rate.max(1) as u64 + rounds as u64 * period_ms / 1000 + 40;
    let port = free_port()?.to_string();
    let n = calls.to_string();
    let extra: Vec<String> = ["-p", &port, "-m", &n, "-l", &n, "-r", &rate.to_string(), "-timeout"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("{bound}s")])
        .collect();
    let mut sipp = Sipp::spawn(dir, &scenario, &rows, &extra, t.server, pin)?;
    if !wait_until(Duration::from_secs(bound + 5), || sipp.exited()) {
        sipp.stop();
    }
    let mut out = Published {
        sent: HashMap::new(),
        answered: 0,
        refused: 0,
    };
    for line in sipp.log_text().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["P", mark, s, us] => {
                if let Some(at) = micros(s, us) {
                    out.sent.insert(mark.to_string(), at);
                }
            }
            ["E", user, etag] => {
                if let Some(&p) = index.get(*user) {
                    etags[p] = Some(etag.to_string());
                    out.answered += 1;
                }
            }
            ["R", _] => out.refused += 1,
            _ => {}
        }
    }
    if out.sent.is_empty() {
        let err = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
        bail!("the SIPp publisher sent nothing: {}", err.trim());
    }
    Ok(out)
}
