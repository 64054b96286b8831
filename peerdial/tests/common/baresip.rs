//! baresip as a test peer: a config folder with one account (and contacts
//! to watch), the modules a test asks for, stdin commands, and its output
//! kept (stdout and stderr) for assertions. Stopped by PID on drop.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use super::{free_udp_port, require};

pub struct Baresip {
    pub child: std::process::Child,
    pub port: u16,
    out: Arc<Mutex<String>>,
}

impl Baresip {
    /// `modules`: the `module`/`module_app` lines beyond the base (stdio,
    /// g711, aufile, account, menu), e.g. `&["module_app contact.so"]`.
    pub fn start(dir: &Path, account: &str, contacts: &str, modules: &[&str]) -> Baresip {
        Baresip::launch(dir, account, contacts, Path::new("/dev/null"), modules)
    }

    /// As [`Baresip::start`], playing `source` (a WAV file) in calls and
    /// dumping what it hears into `dump` (`*-dec.wav`, written when the
    /// call ends; see [`Baresip::heard`]).
    pub fn start_with_audio(dir: &Path, account: &str, source: &Path, dump: &Path) -> Baresip {
        std::fs::create_dir_all(dump).unwrap();
        let snd_path = format!("snd_path {}", dump.display());
        Baresip::launch(dir, account, "", source, &["module sndfile.so", &snd_path])
    }

    /// What it heard, at 8 kHz: its dumps in order (it starts a new one
    /// each time a call's audio restarts, as after a re-INVITE).
    pub fn heard(dump: &Path) -> Vec<i16> {
        let mut files: Vec<_> = std::fs::read_dir(dump)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        assert!(!files.is_empty(), "no decoded dump in {}", dump.display());
        files.sort();
        files
            .iter()
            .flat_map(|f| peerdial_media::audio::read_wav(f, 8000).unwrap())
            .collect()
    }

    /// Starts baresip, again on other ports if the ones chosen were taken
    /// before it bound them (it prints "Address already in use" and never
    /// gets ready), until it says it is ready.
    fn launch(dir: &Path, account: &str, contacts: &str, source: &Path, modules: &[&str]) -> Baresip {
        let mut last = String::new();
        for _ in 0..5 {
            let b = Baresip::launch_once(dir, account, contacts, source, modules);
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let log = b.log();
                if log.contains("baresip is ready") {
                    return b;
                }
                if log.contains("Address already in use") {
                    last = log;
                    break;
                }
                if std::time::Instant::now() > until {
                    // Slow, not refused: carry on as before and let the
                    // test's own checks say what is wrong.
                    return b;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        panic!("baresip could not bind its ports in 5 tries:\n{last}");
    }

    /// A port for baresip's `sip_listen`: it binds UDP and TCP on it and
    /// TCP on the next one (TLS), so all three must be free.
    fn free_sip_port() -> u16 {
        for _ in 0..50 {
            let p = free_udp_port();
            let free = std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && p < u16::MAX
                && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok();
            if free {
                return p;
            }
        }
        panic!("no free port for baresip");
    }

    fn launch_once(dir: &Path, account: &str, contacts: &str, source: &Path, modules: &[&str]) -> Baresip {
        let conf = dir.join("baresip");
        std::fs::create_dir_all(&conf).unwrap();
        let port = Baresip::free_sip_port();
        let mut config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\n\
audio_player aufile,/dev/null\naudio_source aufile,{}\nmodule_path /usr/lib/baresip/modules\n\
module stdio.so\nmodule g711.so\nmodule aufile.so\nmodule_app account.so\nmodule_app menu.so\n",
            source.display()
        );
        for m in modules {
            config.push_str(m);
            config.push('\n');
        }
        std::fs::write(conf.join("config"), config).unwrap();
        std::fs::write(conf.join("accounts"), account).unwrap();
        std::fs::write(conf.join("contacts"), contacts).unwrap();
        let mut child = Command::new(require("baresip"))
            .args(["-t", "60", "-f", conf.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        for mut pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    out.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Baresip { child, port, out }
    }

    pub fn command(&mut self, c: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{c}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Everything it printed so far, without colour sequences.
    pub fn log(&self) -> String {
        plain(&self.out.lock().unwrap())
    }

    /// Kills it at once (no unregister), by PID.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Text without ANSI colour sequences.
pub fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for c in it.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Baresip {
    fn drop(&mut self) {
        // By PID; it waits for final NOTIFYs on a polite quit.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
