//! `peerdial bench mouth-to-ear`: the latency two phones add between one
//! person's mouth and the other's ear, through the sound device layer, and
//! the CPU each phone spends per second of call; our phone (`--audio
//! device`, feature `sound`) next to baresip (its ALSA module), both on the
//! same devices.
//!
//! Each phone's ALSA configuration (`ALSA_CONFIG_PATH`) makes its default
//! capture device read a named pipe and its playback device write one, at
//! 48 kHz mono through ALSA's `plug`, `file` and `null` plugins: a sound
//! card that keeps real time. The bench is the person at both ends: it
//! speaks into the caller's microphone pipe at the card's pace, 20 ms at a
//! time (a 100 ms burst of 1 kHz every second, silence between), and
//! listens on the callee's speaker pipe, noting when each burst starts to
//! sound. The difference is everything between mouth and ear: the capture
//! buffer, packetisation, the network (loopback), the jitter buffer, the
//! playout buffer and the playback buffer.
//!
//! ALSA's null device keeps no time of its own: the pipes are the card's
//! clock. Both ends are read and written 10–20 ms at a time at real-time
//! pace, and each pipe holds one page (4 KiB) so that neither side can run
//! ahead. The `file` plugin itself holds back one whole ring buffer (two
//! periods) of what is played before it writes it on: that is the card's
//! ring, the same for every row. A pull-model player (cpal's callback,
//! baresip's thread) always has something to write, so the speaker pipe
//! behind the ring stays full, a buffer a real card does not have; the
//! speaker side is therefore 8 channels of 32-bit samples, so that its page
//! is 128 frames (2.7 ms), and the bench reports how full it was (FIONREAD
//! before each read). With mono 16-bit samples the page was 43 ms, charged
//! to whichever player kept it full.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench_tools::{cpu_of, free_port, percentile, start_region, tool};

const RATE: usize = 48_000;
/// Samples in 20 ms: what the feeder writes at a time.
const FRAME: usize = RATE / 50;
/// A burst every this many frames (1 s), lasting `BURST` frames.
const EVERY: u64 = 50;
const BURST: u64 = 5;
/// The speaker pipe's frames: 8 channels of S32_LE (a 4 KiB page is
/// 128 frames, 2.7 ms); the bench listens to the first channel.
const SPEAKER_CHANNELS: usize = 8;
const SPEAKER_FRAME_BYTES: usize = SPEAKER_CHANNELS * 4;

/// One phone's sound card: its ALSA configuration and the two pipes.
struct Card {
    conf: PathBuf,
    mic: PathBuf,
    speaker: PathBuf,
}

impl Card {
    fn new(dir: &Path, name: &str) -> Result<Card> {
        let (mic, speaker) = (dir.join(format!("{name}-mic")), dir.join(format!("{name}-speaker")));
        for p in [&mic, &speaker] {
            let ok = Command::new("mkfifo").arg(p).status()?.success();
            if !ok {
                bail!("mkfifo {} failed", p.display());
            }
        }
        let conf = dir.join(format!("{name}-asound.conf"));
        std::fs::write(
            &conf,
            format!(
                r#"pcm.!default {{ type asym capture.pcm "mic" playback.pcm "speaker" }}
pcm.mic {{ type plug slave {{ pcm "micfile" rate {RATE} channels 1 format S16_LE }} }}
pcm.micfile {{ type file slave.pcm {{ type null }} file "/dev/null" infile "{}" format "raw" }}
pcm.speaker {{ type plug slave {{ pcm "speakerfile" rate {RATE} channels {SPEAKER_CHANNELS} format S32_LE }} }}
pcm.speakerfile {{ type file slave.pcm {{ type null }} file "{}" format "raw" }}
pcm.silent {{ type null }}
"#,
                mic.display(),
                speaker.display()
            ),
        )?;
        Ok(Card { conf, mic, speaker })
    }
}

/// The frame the bench speaks as frame `n`: a burst, or silence.
fn frame(n: u64) -> Vec<u8> {
    let loud = n % EVERY < BURST;
    (0..FRAME)
        .flat_map(|i| {
            let t = (n as usize * FRAME + i) as f64 / RATE as f64;
            let v = if loud {
                ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 12_000.0) as i16
            } else {
                0
            };
            v.to_le_bytes()
        })
        .collect()
}

/// Shrinks a pipe to one page, so it buffers no more than a sound card's
/// period or two.
fn small_pipe(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a file descriptor this File owns; F_SETPIPE_SZ
    // takes an int and touches no memory of ours.
    unsafe {
        libc::fcntl(f.as_raw_fd(), libc::F_SETPIPE_SZ, 4096);
    }
}

/// Speaks into `pipe` at the card's pace until `stop` (reopening it when
/// the device closes it); with `bursts`, notes when each burst begins.
fn speak(pipe: PathBuf, bursts: Option<Arc<Mutex<Vec<Instant>>>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&pipe) else {
                return;
            };
            small_pipe(&f);
            let start = Instant::now();
            let mut k = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let data = if bursts.is_some() { frame(n) } else { vec![0; FRAME * 2] };
                let at = Instant::now();
                if f.write_all(&data).is_err() {
                    break;
                }
                if let (Some(b), 0) = (&bursts, n % EVERY) {
                    b.lock().expect("bursts").push(at);
                }
                n += 1;
                k += 1;
                let due = start + Duration::from_millis(20) * k;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        }
    })
}

/// Bytes waiting in a pipe.
fn queued(f: &std::fs::File) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int, to `n`, which outlives the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r == 0 {
        n.max(0) as usize
    } else {
        0
    }
}

/// What the listener saw: burst onsets, and the speaker pipe's fill before
/// each read (sum in frames, reads).
#[derive(Default)]
struct Heard {
    onsets: Vec<Instant>,
    fill: (u64, u64),
}

/// Listens on `pipe` (the speaker's 8-channel S32_LE frames) as the device
/// fills it until `stop`; with `heard`, notes when each burst starts to
/// sound (the first loud sample after 200 ms of quiet, timed back from
/// when its block arrived) and how full the pipe was.
fn listen(pipe: PathBuf, heard: Option<Arc<Mutex<Heard>>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut quiet = 0usize;
        while !stop.load(Ordering::SeqCst) {
            let Ok(mut f) = std::fs::File::open(&pipe) else { return };
            small_pipe(&f);
            // 10 ms at a time, at the card's pace.
            let mut buf = vec![0u8; FRAME / 2 * SPEAKER_FRAME_BYTES];
            let start = Instant::now();
            let mut k = 0u32;
            while !stop.load(Ordering::SeqCst) {
                k += 1;
                let due = start + Duration::from_millis(10) * k;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let fill = queued(&f) / SPEAKER_FRAME_BYTES;
                if f.read_exact(&mut buf).is_err() {
                    break;
                }
                let now = Instant::now();
                let Some(heard) = &heard else { continue };
                let mut heard = heard.lock().expect("heard");
                heard.fill.0 += fill as u64;
                heard.fill.1 += 1;
                // The first channel's 16 high bits.
                let samples: Vec<i16> = buf
                    .chunks_exact(SPEAKER_FRAME_BYTES)
                    .map(|b| i16::from_le_bytes([b[2], b[3]]))
                    .collect();
                for (i, s) in samples.iter().enumerate() {
                    if s.unsigned_abs() > 3_000 {
                        if quiet >= RATE / 5 {
                            let back = Duration::from_secs_f64((samples.len() - i) as f64 / RATE as f64);
                            heard.onsets.push(now - back);
                        }
                        quiet = 0;
                    } else {
                        quiet += 1;
                    }
                }
            }
        }
    })
}

/// What one pair of phones measured.
struct Measured {
    /// Mouth-to-ear latency of each burst, ms.
    latency: Vec<f64>,
    /// CPU ms per second of call, per phone (caller, callee).
    cpu: (f64, f64),
    bursts: usize,
    /// The speaker pipe's mean fill before each read, ms.
    pipe_ms: f64,
}

/// Pairs each onset with the burst spoken just before it.
fn latencies(bursts: &[Instant], onsets: &[Instant]) -> Vec<f64> {
    onsets
        .iter()
        .filter_map(|o| {
            let b = bursts.iter().rev().find(|b| *b <= o)?;
            let ms = o.duration_since(*b).as_secs_f64() * 1000.0;
            // Later than the next burst is no pairing at all.
            (ms < 900.0).then_some(ms)
        })
        .collect()
}

/// The four pipe ends of a call: the caller's mouth, the callee's ear, and
/// the other two kept flowing in silence.
struct Person {
    stop: Arc<AtomicBool>,
    bursts: Arc<Mutex<Vec<Instant>>>,
    heard: Arc<Mutex<Heard>>,
}

impl Person {
    fn start(a: &Card, b: &Card) -> Person {
        let stop = Arc::new(AtomicBool::new(false));
        let (bursts, heard) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Heard::default())));
        speak(a.mic.clone(), Some(bursts.clone()), stop.clone());
        speak(b.mic.clone(), None, stop.clone());
        listen(a.speaker.clone(), None, stop.clone());
        listen(b.speaker.clone(), Some(heard.clone()), stop.clone());
        Person { stop, bursts, heard }
    }

    /// Counts for `seconds` after a 2 s warm-up.
    fn measure(&self, pids: (u32, u32), seconds: u32) -> Measured {
        let cpu = |pid: u32| cpu_of(&pid.to_string()).0;
        std::thread::sleep(Duration::from_secs(2));
        self.bursts.lock().expect("bursts").clear();
        *self.heard.lock().expect("heard") = Heard::default();
        let before = (cpu(pids.0), cpu(pids.1));
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds as u64));
        let secs = t0.elapsed().as_secs_f64();
        let after = (cpu(pids.0), cpu(pids.1));
        let bursts = self.bursts.lock().expect("bursts").clone();
        let heard = std::mem::take(&mut *self.heard.lock().expect("heard"));
        if std::env::var_os("BENCH_PHONE_LOG").is_some() {
            // To place the delay against the phones' logged onsets.
            let lines: Vec<String> = bursts
                .iter()
                .map(|b| format!("spoken {b:?}"))
                .chain(heard.onsets.iter().map(|o| format!("heard {o:?}")))
                .collect();
            // Appended: ours first, then baresip, then the devices alone.
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open("/tmp/latency-bench.log") {
                let _ = writeln!(f, "{}\n---", lines.join("\n"));
            }
        }
        Measured {
            latency: latencies(&bursts, &heard.onsets),
            cpu: ((after.0 - before.0) * 1000.0 / secs, (after.1 - before.1) * 1000.0 / secs),
            bursts: bursts.len(),
            pipe_ms: heard.fill.0 as f64 * 1000.0 / RATE as f64 / heard.fill.1.max(1) as f64,
        }
    }
}

impl Drop for Person {
    fn drop(&mut self) {
        // The pipe threads end when their device closes its end.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Waits for a line containing `needle` on `out` (up to 20 s of lines).
fn wait_line(out: &mut impl BufRead, needle: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            bail!("the program ended before printing {needle:?}");
        }
        if line.contains(needle) {
            return Ok(line);
        }
    }
    bail!("no {needle:?} within 20 s")
}

/// Keeps reading `out` so the child never blocks on a full pipe.
fn sink(mut out: impl BufRead + Send + 'static) {
    std::thread::spawn(move || {
        let mut l = String::new();
        while out.read_line(&mut l).map(|n| n > 0).unwrap_or(false) {
            l.clear();
        }
    });
}

/// Stops children by PID when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Our two phones, the callee answering at once.
async fn ours(dir: &Path, seconds: u32) -> Result<Measured> {
    let region = start_region(&dir.join("region"), |_| {}).await?;
    let (a, b) = (Card::new(dir, "ours-a")?, Card::new(dir, "ours-b")?);
    let person = Person::start(&a, &b);
    let phone = |card: &Card, name: &str, extra: &[&str]| -> Result<Child> {
        Ok(Command::new(std::env::current_exe()?)
            .args(["phone", "--region", &format!("http://{}", region.endpoints.http)])
            .args(["--data", dir.join(name).to_str().context("path")?])
            .args(["--mac", if name == "a" { "02:00:00:00:e1:01" } else { "02:00:00:00:e1:02" }])
            .args(["--sip", "127.0.0.1:0", "--resolver", &region.endpoints.dns.to_string()])
            .args(["--audio", "device", "--codecs", "pcmu"])
            .args(extra)
            .env("ALSA_CONFIG_PATH", &card.conf)
            .env("PEERDIAL_LOG", std::env::var("BENCH_PHONE_LOG").unwrap_or("error".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match std::env::var("BENCH_PHONE_LOG") {
                Ok(_) => Stdio::from(std::fs::File::create(format!("/tmp/latency-{name}.log"))?),
                Err(_) => Stdio::null(),
            })
            .spawn()?)
    };
    let mut callee = phone(&b, "b", &["--auto-answer", "--answer-after", "0"])?;
    let mut out_b = BufReader::new(callee.stdout.take().context("stdout")?);
    let ready = wait_line(&mut out_b, "registered number=")?;
    let number = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("number="))
        .context("number")?
        .to_string();
    sink(out_b);
    let mut caller = phone(&a, "a", &["call", &number])?;
    let mut out_a = BufReader::new(caller.stdout.take().context("stdout")?);
    wait_line(&mut out_a, "answered codec=")?;
    sink(out_a);
    let pids = (caller.id(), callee.id());
    let _children = Children(vec![caller, callee]);
    let m = tokio::task::spawn_blocking(move || person.measure(pids, seconds)).await?;
    drop(region);
    Ok(m)
}

/// Two baresips (ALSA module), the callee answering at once.
fn baresip(dir: &Path, seconds: u32) -> Result<Measured> {
    let (a, b) = (Card::new(dir, "baresip-a")?, Card::new(dir, "baresip-b")?);
    let person = Person::start(&a, &b);
    let exe = tool("baresip")?;
    let start = |card: &Card, name: &str, port: u16, auto: bool| -> Result<Child> {
        let conf = dir.join(name);
        std::fs::create_dir_all(&conf)?;
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\n\
audio_player alsa,default\naudio_source alsa,default\naudio_alert alsa,silent\n\
module_path /usr/lib/baresip/modules\nmodule stdio.so\nmodule g711.so\nmodule alsa.so\n\
module_app account.so\nmodule_app menu.so\n"
            ),
        )?;
        let answer = if auto { ";answermode=auto" } else { "" };
        std::fs::write(
            conf.join("accounts"),
            format!("<sip:{name}@127.0.0.1:{port}>;regint=0;mwi=no;audio_codecs=PCMU{answer}\n"),
        )?;
        Ok(Command::new(&exe)
            .args(["-f", conf.to_str().context("path")?])
            .env("ALSA_CONFIG_PATH", &card.conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?)
    };
    // Two ports apart: each baresip also takes the next one (TLS).
    let port_b = free_port()?;
    let mut callee = start(&b, "b", port_b, true)?;
    let mut out_b = BufReader::new(callee.stdout.take().context("stdout")?);
    wait_line(&mut out_b, "baresip is ready")?;
    sink(out_b);
    let mut port_a = free_port()?;
    while port_a.abs_diff(port_b) < 2 {
        port_a = free_port()?;
    }
    let mut caller = start(&a, "a", port_a, false)?;
    let mut out_a = BufReader::new(caller.stdout.take().context("stdout")?);
    wait_line(&mut out_a, "baresip is ready")?;
    let stdin = caller.stdin.as_mut().context("stdin")?;
    writeln!(stdin, "/dial sip:b@127.0.0.1:{port_b}")?;
    stdin.flush()?;
    wait_line(&mut out_a, "Call established")?;
    sink(out_a);
    let pids = (caller.id(), callee.id());
    let _children = Children(vec![caller, callee]);
    Ok(person.measure(pids, seconds))
}

/// The device layer alone, no phone: `arecord` on the caller's card piped
/// into `aplay` on the callee's, both with 10 ms periods and a ring of two
/// (what our phone asks for). What the phones add is the difference.
fn devices_alone(dir: &Path, seconds: u32) -> Result<Measured> {
    let (a, b) = (Card::new(dir, "alone-a")?, Card::new(dir, "alone-b")?);
    let person = Person::start(&a, &b);
    let format = ["-t", "raw", "-f", "S16_LE", "-r", "48000", "-c", "1"];
    let periods = ["--period-time=10000", "--buffer-time=20000", "-q", "-D", "default"];
    let mut rec = Command::new(tool("arecord")?)
        .args(format)
        .args(periods)
        .env("ALSA_CONFIG_PATH", &a.conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let play = Command::new(tool("aplay")?)
        .args(format)
        .args(periods)
        .env("ALSA_CONFIG_PATH", &b.conf)
        .stdin(Stdio::from(rec.stdout.take().context("arecord's stdout")?))
        .stderr(Stdio::null())
        .spawn()?;
    let pids = (rec.id(), play.id());
    let _children = Children(vec![rec, play]);
    Ok(person.measure(pids, seconds))
}

fn row(name: &str, m: &mut Measured) -> String {
    m.latency.sort_by(f64::total_cmp);
    format!(
        "| {name} | {} of {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} |",
        m.latency.len(),
        m.bursts,
        percentile(&m.latency, 0.5),
        percentile(&m.latency, 0.99),
        m.latency.last().copied().unwrap_or(f64::NAN),
        m.pipe_ms,
        m.cpu.0,
        m.cpu.1
    )
}

pub async fn mouth_to_ear(seconds: u32) -> Result<()> {
    if !cfg!(feature = "sound") {
        bail!("this benchmark needs the sound device: cargo run --release --features sound -- bench mouth-to-ear");
    }
    let dir = tempfile::tempdir()?;
    let _ = std::fs::remove_file("/tmp/latency-bench.log");
    let mut ours = ours(dir.path(), seconds).await?;
    let path = dir.path().to_path_buf();
    let mut theirs = tokio::task::spawn_blocking(move || baresip(&path, seconds)).await??;
    let path = dir.path().to_path_buf();
    let mut alone = tokio::task::spawn_blocking(move || devices_alone(&path, seconds)).await??;
    println!("mouth-to-ear through the sound device layer (ALSA plug/file/null at 48 kHz), PCMU, {seconds} s a pair");
    println!("| phones | bursts heard | p50 ms | p99 ms | max ms | speaker pipe ms | CPU ms/s caller / callee |");
    println!("|---|---|---|---|---|---|---|");
    println!("{}", row("peerdial phone ↔ peerdial phone", &mut ours));
    println!("{}", row("baresip ↔ baresip (alsa)", &mut theirs));
    println!("{}", row("the devices alone (arecord | aplay, 10 ms periods)", &mut alone));
    let p99 = |m: &Measured| percentile(&m.latency, 0.99);
    let p50 = |m: &Measured| percentile(&m.latency, 0.5);
    println!(
        "added by the phones (p50, p99 minus the devices alone): peerdial {:.1} / {:.1} ms, baresip {:.1} / {:.1} ms",
        p50(&ours) - p50(&alone),
        p99(&ours) - p99(&alone),
        p50(&theirs) - p50(&alone),
        p99(&theirs) - p99(&alone)
    );
    println!(
        "ratio p99 baresip / peerdial: {:.2}; CPU per call baresip / peerdial: {:.2}",
        p99(&theirs) / p99(&ours),
        (theirs.cpu.0 + theirs.cpu.1) / (ours.cpu.0 + ours.cpu.1)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onsets_pair_with_the_burst_before_them() {
        let t = Instant::now();
        let ms = |m: u64| t + Duration::from_millis(m);
        let bursts = [ms(0), ms(500), ms(1000)];
        // 40 ms after the first, 55 after the second; one stray far after
        // the third is no pairing.
        let got = latencies(&bursts, &[ms(40), ms(555), ms(1950)]);
        assert_eq!(got.len(), 2);
        assert!((got[0] - 40.0).abs() < 0.01 && (got[1] - 55.0).abs() < 0.01, "{got:?}");
        assert!(frame(0).iter().any(|b| *b != 0) && frame(BURST).iter().all(|b| *b == 0));
    }
}
