//! `peerdial top` as a test peer: started on the given addresses with the
//! test join token, its ready line read for the addresses it really has,
//! stopped by PID on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{http, peerdial_bin};

/// The join token every test top wants (and its operator's password).
pub const TOKEN: &str = "tree-test-token";

/// A top on loopback port 0.
pub fn start(data: &Path) -> TopNode {
    TopNode::start(data, "127.0.0.1:0", "127.0.0.1:0", &[])
}

pub struct TopNode {
    child: Child,
    pub dns: SocketAddr,
    pub http: SocketAddr,
    /// The top's third-party call controller (UDP).
    pub sip: SocketAddr,
}

impl TopNode {
    pub fn start(data: &Path, dns: &str, http: &str, extra: &[&str]) -> TopNode {
        let mut child = Command::new(peerdial_bin())
            .args([
                "top",
                "--data",
                data.to_str().unwrap(),
                "--dns",
                dns,
                "--http",
                http,
                "--join-token",
                TOKEN,
            ])
            .args(extra)
            .env("PEERDIAL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("peerdial top ready:"), "{line:?}");
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .unwrap()
                .parse()
                .unwrap()
        };
        TopNode {
            dns: field("dns"),
            http: field("http"),
            sip: field("sip"),
            child,
        }
    }

    pub fn join(&self, body: &str) -> (u16, serde_json::Value) {
        http(self.http, "POST", "/api/v1/join", body.as_bytes())
    }
}

impl Drop for TopNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
