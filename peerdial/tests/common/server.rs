//! A `peerdial` server process (`top`, `switch`, `cellular-sim`…) with
//! every line it printed kept; killed by PID on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::{eventually, peerdial_bin};

pub struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `peerdial ARGS`, logging at info, without colour.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(peerdial_bin())
            .args(args)
            .env("PEERDIAL_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(l);
                }
            });
        }
        Server { child, lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The address `key=` names on its ready line (waited for).
    pub fn field(&self, key: &str) -> SocketAddr {
        let key = format!("{key}=");
        let mut addr = None;
        assert!(
            eventually(15, || {
                addr = self.lines.lock().unwrap().iter().find_map(|l| {
                    l.contains(" ready: ")
                        .then(|| l.split_whitespace().find_map(|w| w.strip_prefix(key.as_str())))
                        .flatten()
                        .and_then(|a| a.parse().ok())
                });
                addr.is_some()
            }),
            "no ready line with {key}: {}",
            self.text()
        );
        addr.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
