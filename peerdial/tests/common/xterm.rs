//! A real graphics terminal for tests: Xvfb (an X server whose screen is a
//! file, `-fbdir`, in XWD format, read here directly) with xterm on it as a
//! VT340, which draws sixel pictures. A test sees what a user would see,
//! pixel by pixel, without a window manager, ImageMagick or x11-apps.
//!
//! Not a terminal emulator of our own, and not tmux (which passes no
//! pictures through unless told to, and has no pixels to look at).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{eventually, http, peerdial_bin, phone_args, require, unsafe_kill, Region};

/// Xvfb on a display number it found free (`-displayfd`), stopped by PID.
pub struct Xvfb {
    child: Child,
    pub display: String,
    dir: tempfile::TempDir,
}

impl Xvfb {
    /// Starts Xvfb if it and xterm are installed. Missing tools skip the
    /// caller's section on a developer's machine (None), and fail in CI
    /// (`CI` set) and under the test command (`PEERDIAL_REQUIRE_XTERM`),
    /// which installs them.
    pub fn start_if_installed() -> Option<Xvfb> {
        let installed = |tool: &str| {
            std::env::var("PATH")
                .unwrap_or_default()
                .split(':')
                .any(|d| Path::new(d).join(tool).exists())
        };
        let required = std::env::var_os("CI").is_some() || std::env::var_os("PEERDIAL_REQUIRE_XTERM").is_some();
        if !(required || installed("Xvfb") && installed("xterm")) {
            eprintln!("Xvfb or xterm is not installed: the graphics terminal section is skipped (scripts/test installs them)");
            return None;
        }
        require("xterm");
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("xvfb.log")).unwrap();
        let mut child = Command::new(require("Xvfb"))
            .args(["-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp", "-fbdir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start Xvfb");
        // It writes the display number once it listens (EOF if it failed).
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let n = line.trim().to_string();
        if n.parse::<u32>().is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Xvfb did not start: {}",
                std::fs::read_to_string(dir.path().join("xvfb.log")).unwrap_or_default()
            );
        }
        Some(Xvfb {
            child,
            display: format!(":{n}"),
            dir,
        })
    }

    /// The screen as it is now.
    pub fn screen(&self) -> Screen {
        Screen::from_xwd(&std::fs::read(self.dir.path().join("Xvfb_screen0")).unwrap())
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A box on the screen: x0, y0, x1, y1 (the ends excluded).
pub type Bounds = (usize, usize, usize, usize);

/// A screen's pixels (RGB), read from an XWD file (X Window Dump, the
/// format of Xvfb's `-fbdir` framebuffer).
pub struct Screen {
    pub width: usize,
    pub height: usize,
    rgb: Vec<[u8; 3]>,
}

impl Screen {
    /// A 24/32-bit TrueColor ZPixmap dump: a header of big-endian 32-bit
    /// fields (its own length first), the colormap, then the rows.
    pub fn from_xwd(b: &[u8]) -> Screen {
        let field = |i: usize| u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
        let (header, format, width, height) = (field(0), field(2), field(4), field(5));
        let (byte_order, bits_per_pixel, bytes_per_line) = (field(7), field(11), field(12));
        let (red_mask, green_mask, blue_mask, ncolors) = (field(14), field(15), field(16), field(19));
        assert_eq!((format, bits_per_pixel), (2, 32), "not a 32-bit ZPixmap XWD");
        assert_eq!((red_mask, green_mask, blue_mask), (0xff0000, 0xff00, 0xff), "not 8-bit RGB");
        let data = &b[header + ncolors * 12..];
        let mut rgb = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                let p: [u8; 4] = data[y * bytes_per_line + x * 4..][..4].try_into().unwrap();
                let v = if byte_order == 0 {
                    u32::from_le_bytes(p)
                } else {
                    u32::from_be_bytes(p)
                };
                rgb.push([(v >> 16) as u8, (v >> 8) as u8, v as u8]);
            }
        }
        Screen { width, height, rgb }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[y * self.width + x]
    }

    /// Which of `colours` the pixel is (each channel within `tol`).
    pub fn which(&self, x: usize, y: usize, colours: &[[u8; 3]], tol: u8) -> Option<usize> {
        let p = self.pixel(x, y);
        colours.iter().position(|c| c.iter().zip(p).all(|(a, b)| a.abs_diff(b) <= tol))
    }

    /// Pixels of each of `colours`, and the box around all of them (None
    /// if there are none).
    pub fn find(&self, colours: &[[u8; 3]], tol: u8) -> (Vec<usize>, Option<Bounds>) {
        let mut counts = vec![0; colours.len()];
        let mut bounds: Option<Bounds> = None;
        for y in 0..self.height {
            for x in 0..self.width {
                if let Some(i) = self.which(x, y, colours, tol) {
                    counts[i] += 1;
                    let b = bounds.get_or_insert((x, y, x + 1, y + 1));
                    *b = (b.0.min(x), b.1.min(y), b.2.max(x + 1), b.3.max(y + 1));
                }
            }
        }
        (counts, bounds)
    }

    /// The lengths of the runs of one colour of `colours` along `points`
    /// (a row or a column); any other pixel ends a run.
    pub fn runs(&self, points: impl Iterator<Item = (usize, usize)>, colours: &[[u8; 3]], tol: u8) -> Vec<usize> {
        let mut runs = Vec::new();
        let mut current: Option<(usize, usize)> = None;
        for (x, y) in points {
            current = match (current, self.which(x, y, colours, tol)) {
                (Some((c, n)), Some(w)) if c == w => Some((c, n + 1)),
                (prev, now) => {
                    runs.extend(prev.map(|(_, n)| n));
                    now.map(|w| (w, 1))
                }
            };
        }
        runs.extend(current.map(|(_, n)| n));
        runs
    }
}

/// Our phone, full-screen in xterm (`-ti vt340`: sixel) on `x`, its
/// debug log (which names the picture protocol) in a file. A shell runs it
/// and, once it exits, records its exit code and the terminal's modes
/// (`stty -a`): what the phone gave back.
pub struct XtermPhone {
    xterm: Child,
    files: PathBuf,
    pub number: String,
}

impl XtermPhone {
    /// Waits until the phone is registered (its region shows it online).
    pub fn start(x: &Xvfb, region: &Region, dir: &Path, mac: &str, resolver: SocketAddr, extra: &[&str]) -> XtermPhone {
        let files = dir.join(format!("xterm-{}", mac.replace(':', "")));
        std::fs::create_dir_all(&files).unwrap();
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let f = |name: &str| quote(files.join(name).to_str().unwrap());
        let mut phone = vec![quote(&peerdial_bin())];
        phone.extend(phone_args(Some(region), dir, mac, resolver, extra).iter().map(|a| quote(a)));
        // Started in the background (so the shell gets its PID) with the
        // terminal as its stdin: a non-interactive shell would give it
        // /dev/null instead.
        let script = format!(
            "exec 3<&0\nPEERDIAL_LOG=warn,peerdial_phone::display=debug {} <&3 3<&- 2>{} &\necho $! >{}\nwait $!\necho $? >{}.tmp\nstty -a >{}\nmv {}.tmp {}\nexec sleep 60\n",
            phone.join(" "),
            f("phone.log"),
            f("pid"),
            f("rc"),
            f("stty"),
            f("rc"),
            f("rc")
        );
        std::fs::write(files.join("run.sh"), script).unwrap();
        let xterm = Command::new(require("xterm"))
            .env("DISPLAY", &x.display)
            // UTF-8 whatever the test runner's locale (the panes' borders).
            .env("LC_ALL", "C.UTF-8")
            .args(["-ti", "vt340", "-xrm", "XTerm*numColorRegisters: 256"])
            .args(["-fa", "monospace", "-fs", "10", "-geometry", "80x24", "-e", "/bin/sh"])
            .arg(files.join("run.sh"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start xterm");
        let mut p = XtermPhone {
            xterm,
            files,
            number: String::new(),
        };
        let identity = dir.join(format!("phone-{}", mac.replace(':', ""))).join("phone.json");
        let provisioned = eventually(10, || {
            let number = std::fs::read(&identity)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|j| j["number"].as_str().map(str::to_string));
            p.number = number.unwrap_or_default();
            !p.number.is_empty()
        });
        assert!(provisioned, "the phone in xterm did not start: {}", p.log());
        let online = eventually(10, || {
            http(region.http, "GET", &format!("/api/v1/presence/{}", p.number), b"").1["state"] == "online"
        });
        assert!(online, "the phone in xterm did not register: {}", p.log());
        p
    }

    /// What the phone logged (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.files.join("phone.log")).unwrap_or_default()
    }

    /// SIGTERM to the phone (by PID); its exit code and the terminal's
    /// modes after it.
    pub fn stop(&mut self) -> (i32, String) {
        let pid = std::fs::read_to_string(self.files.join("pid")).expect("the phone's PID");
        unsafe_kill(pid.trim().parse().unwrap(), 15);
        let rc = self.files.join("rc");
        assert!(eventually(10, || rc.exists()), "the phone did not exit: {}", self.log());
        let code = std::fs::read_to_string(rc).unwrap().trim().parse().unwrap();
        (code, std::fs::read_to_string(self.files.join("stty")).unwrap())
    }
}

impl Drop for XtermPhone {
    fn drop(&mut self) {
        // The pty closes: the shell and a phone still running get SIGHUP.
        let _ = self.xterm.kill();
        let _ = self.xterm.wait();
    }
}
