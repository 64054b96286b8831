//! Our softphone (`peerdial phone`) as a child process, and the ways the
//! tests start one (a phone, a caller, a voicemail).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{peerdial_bin, unsafe_kill, Region};

/// Our softphone (`peerdial phone`) as a child process, driven the way a
/// script would: its plain output lines, and commands on its stdin.
pub struct Softphone {
    pub child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Output streams that reached EOF (2: the process is gone).
    closed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stdin: Option<std::process::ChildStdin>,
    pub number: String,
    pub sip: SocketAddr,
}

impl Softphone {
    /// `peerdial phone` with a fresh data dir under `dir`, named by `mac`.
    pub fn start(region: &Region, dir: &Path, mac: &str, resolver: SocketAddr, extra: &[&str]) -> Softphone {
        let args = phone_args(Some(region), dir, mac, resolver, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let p = Softphone::spawn(&args, &[]);
        assert!(
            p.wait_line("registered number=", 10).is_some(),
            "phone did not register: {:?}",
            p.lines()
        );
        p
    }

    /// Any `peerdial` command line; waits for the ready line unless the
    /// phone may fail before it.
    pub fn spawn(args: &[&str], prefix: &[&str]) -> Softphone {
        let exe = peerdial_bin();
        let mut cmd = if prefix.is_empty() {
            Command::new(exe)
        } else {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg(exe);
            c
        };
        let mut child = cmd
            .args(args)
            .env("PEERDIAL_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start peerdial phone");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (lines, closed) = (lines.clone(), closed.clone());
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(l);
                }
                closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let mut p = Softphone {
            stdin: child.stdin.take(),
            child,
            lines,
            closed,
            number: String::new(),
            sip: "0.0.0.0:0".parse().unwrap(),
        };
        if let Some(ready) = p.wait_line("peerdial phone ready:", 10) {
            let field = |k: &str| {
                ready
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .unwrap_or_default()
                    .to_string()
            };
            p.number = field("number");
            p.sip = field("sip").parse().unwrap_or(p.sip);
        }
        p
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first output line containing `needle`, waiting up to `secs`.
    pub fn wait_line(&self, needle: &str, secs: u64) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            if Instant::now() > deadline || self.closed.load(std::sync::atomic::Ordering::SeqCst) == 2 {
                return self.lines.lock().unwrap().iter().find(|l| l.contains(needle)).cloned();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A line with `needle`, waiting up to `secs` — and at least 3 s: a
    /// line printed together with one already seen may still be on its way
    /// through the pipe (a present line returns at once; only a failure
    /// waits longer).
    pub fn expect_line(&self, needle: &str, secs: u64) -> String {
        self.wait_line(needle, secs.max(3))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {:#?}", self.lines()))
    }

    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, secs: u64) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the readers drain the pipes (both at EOF), boundedly.
                let drained = Instant::now() + Duration::from_secs(3);
                while self.closed.load(std::sync::atomic::Ordering::SeqCst) < 2 && Instant::now() < drained {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                panic!("phone did not exit in {secs} s: {:#?}", self.lines());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (by PID) and wait.
    pub fn stop(&mut self) -> i32 {
        unsafe_kill(self.child.id() as i32, 15);
        self.wait_exit(10)
    }
}

impl Drop for Softphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A caller: `peerdial phone … call NUMBER`, which exits when the call ends.
pub fn dial(region: &Region, dir: &Path, mac: &str, resolver: SocketAddr, number: &str, extra: &[&str]) -> Softphone {
    call_with(Some(region), dir, mac, resolver, number, extra)
}

/// A caller provisioned before (its identity is in `dir`), run with no
/// region at all.
pub fn dial_without_region(dir: &Path, mac: &str, resolver: SocketAddr, number: &str, extra: &[&str]) -> Softphone {
    call_with(None, dir, mac, resolver, number, extra)
}

/// `peerdial phone … voicemail NUMBER`: a message straight to the mailbox.
pub fn voicemail(region: &Region, dir: &Path, mac: &str, resolver: SocketAddr, number: &str, extra: &[&str]) -> Softphone {
    let mut args = phone_args(Some(region), dir, mac, resolver, extra);
    args.extend(["voicemail".to_string(), number.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Softphone::spawn(&args, &[])
}

fn call_with(region: Option<&Region>, dir: &Path, mac: &str, resolver: SocketAddr, number: &str, extra: &[&str]) -> Softphone {
    let mut args = phone_args(region, dir, mac, resolver, extra);
    args.extend(["call".to_string(), number.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Softphone::spawn(&args, &[])
}

/// `peerdial phone` for the phone of `mac` (one data folder per MAC under
/// `dir`; provisioned from `region` when given), SIP on a free loopback
/// port, looking numbers up through `resolver`, then `extra`.
pub(crate) fn phone_args(region: Option<&Region>, dir: &Path, mac: &str, resolver: SocketAddr, extra: &[&str]) -> Vec<String> {
    let data = dir.join(format!("phone-{}", mac.replace(':', "")));
    let mut args: Vec<String> = vec!["phone".into()];
    if let Some(r) = region {
        args.extend(["--region".into(), format!("http://{}", r.http), "--mac".into(), mac.into()]);
    }
    args.extend(["--data".into(), data.to_str().unwrap().into(), "--sip".into(), "127.0.0.1:0".into()]);
    args.extend(["--resolver".into(), resolver.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}
