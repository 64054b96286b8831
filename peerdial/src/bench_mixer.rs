//! `peerdial bench mixer`: the conference mixer (`peerdial_media::room`)
//! next to Janus 1.1's AudioBridge with plain-RTP participants, in the
//! same rooms with the same codecs and the same RTP load.
//!
//! The bench is every participant: one UDP socket each on loopback,
//! sending a 20 ms packet every 20 ms from the port it receives on. In
//! each room `--talkers` participants speak (a tone) and the rest send
//! silence, as in a real conference; `--talkers 0` means everyone speaks.
//! What is measured is the server's CPU (our rooms run on one thread of
//! this process; Janus is a whole process) per participant per second, and
//! whether each participant gets its 50 packets a second (read on a sample
//! of the sockets). By default the server runs on core 0 and the load on
//! core 1.
//!
//! For each server and codec: a first step of four rooms gives the CPU per
//! participant; from it the capacity of one core is estimated, then tried
//! (80 % of it first, then up by 20 % while it keeps real time, down by
//! 15 % when it does not, a few steps at most). "Real time" is at least 98 % of packets delivered with
//! the server's core below 95 % busy.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peerdial_media::codec::Encoder;
use peerdial_media::mixer::{MixerConfig, ParticipantConfig};
use peerdial_media::room::{Room, RoomConfig};
use peerdial_media::rtp::{self, RtpHeader};
use peerdial_media::CodecKind;

use crate::bench_presence::wait_until;
use crate::bench_tools::{tool, DRIVER_CORE, SERVER_CORE};

pub(crate) struct MixerBench {
    pub(crate) codecs: Vec<String>,
    pub(crate) room: usize,
    pub(crate) talkers: usize,
    pub(crate) seconds: u32,
    pub(crate) steps: u32,
    pub(crate) pin: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Peerdial,
    Janus,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Peerdial => "peerdial",
            Server::Janus => "Janus AudioBridge",
        }
    }
}

/// One step's figures.
struct Step {
    participants: usize,
    cpu_ms: f64,
    busy: f64,
    delivered: f64,
}

impl Step {
    fn real_time(&self) -> bool {
        self.delivered >= 0.98 && self.busy <= 0.95
    }
}

fn codec_of(name: &str) -> Result<(CodecKind, u8, u32)> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "pcmu" => (CodecKind::Pcmu, 0, 8000),
        "pcma" => (CodecKind::Pcma, 8, 8000),
        "opus" => (CodecKind::Opus, 111, 48_000),
        other => bail!("{other:?}: codecs are pcmu, pcma and opus"),
    })
}

pub(crate) fn mixer(b: MixerBench) -> Result<()> {
    if b.room < 2 {
        bail!("--room must be at least 2");
    }
    if b.pin && !Path::new("/usr/bin/taskset").exists() {
        bail!("taskset is not installed (use --no-pin)");
    }
    let janus = tool("janus")?;
    println!(
        "rooms of {}, {} talking; {} s per step; server on core {}, load on core {}",
        b.room,
        if b.talkers == 0 || b.talkers >= b.room {
            "all".to_string()
        } else {
            b.talkers.to_string()
        },
        b.seconds,
        if b.pin { SERVER_CORE } else { "any" },
        if b.pin { DRIVER_CORE } else { "any" },
    );
    let mut rows = Vec::new();
    for name in &b.codecs {
        let codec = codec_of(name)?;
        let mut best = Vec::new();
        for server in [Server::Peerdial, Server::Janus] {
            let (steps, max) = ramp(&b, server, codec, &janus)?;
            for s in &steps {
                println!(
                    "  {} {}: {} participants, {:.3} ms CPU per participant-second, core {:.0} % busy, {:.1} % delivered{}",
                    server.name(),
                    codec.0.name(),
                    s.participants,
                    s.cpu_ms,
                    s.busy * 100.0,
                    s.delivered * 100.0,
                    if s.real_time() { "" } else { " (not real time)" }
                );
            }
            best.push((steps, max));
        }
        rows.push((codec.0, best));
    }
    println!();
    println!("| codec | server | CPU ms per participant-second ({} participants) | participants per core (from CPU at the largest real-time step) | largest step in real time |", 4 * b.room);
    println!("|---|---|---|---|---|");
    for (codec, best) in &rows {
        let mut per_core = Vec::new();
        for (server, (steps, max)) in [Server::Peerdial, Server::Janus].iter().zip(best) {
            let at_cap = if max + b.room > LOAD_CAP { "≥ " } else { "" };
            let basis = steps
                .iter()
                .filter(|s| s.real_time())
                .max_by_key(|s| s.participants)
                .unwrap_or(&steps[0]);
            let core = (1000.0 / basis.cpu_ms) as usize;
            per_core.push(core);
            println!(
                "| {} | {} | {:.3} | {core} | {at_cap}{max} |",
                codec.name(),
                server.name(),
                steps[0].cpu_ms
            );
        }
        let (ours, theirs) = (&best[0], &best[1]);
        println!(
            "| {} | ratio | {:.1}× less CPU | {:.1}× | {:.1}× |",
            codec.name(),
            theirs.0[0].cpu_ms / ours.0[0].cpu_ms,
            per_core[0] as f64 / per_core[1].max(1) as f64,
            ours.1 as f64 / theirs.1.max(1) as f64
        );
    }
    Ok(())
}

/// The most participants the bench's one sending thread drives at 50
/// packets a second each (150,000 datagrams a second).
const LOAD_CAP: usize = 3000;

/// The first step, then the search for the most participants in real
/// time; returns every step and that most.
fn ramp(b: &MixerBench, server: Server, codec: (CodecKind, u8, u32), janus: &Path) -> Result<(Vec<Step>, usize)> {
    let mut steps = vec![step(b, server, codec, 4 * b.room, janus)?];
    let mut n = ((1000.0 / steps[0].cpu_ms.max(0.001)) * 0.8) as usize;
    let mut max = if steps[0].real_time() { steps[0].participants } else { 0 };
    for _ in 0..b.steps {
        // Whole rooms, at most what one load thread can send.
        n = (n / b.room).clamp(1, LOAD_CAP / b.room) * b.room;
        if steps.iter().any(|s| s.participants == n) {
            break;
        }
        let s = step(b, server, codec, n, janus)?;
        let ok = s.real_time();
        steps.push(s);
        if ok {
            max = max.max(n);
            n = n * 120 / 100 + b.room;
        } else if n <= max {
            break;
        } else {
            n = (n * 85 / 100).max(max + b.room);
        }
    }
    Ok((steps, max))
}

/// The participants' side: sockets, the pre-encoded frames, the sender.
struct Load {
    sockets: Vec<UdpSocket>,
    talking: Vec<Vec<u8>>,
    silent: Vec<Vec<u8>>,
    pt: u8,
    step: u32,
}

impl Load {
    fn new(n: usize, (kind, pt, _): (CodecKind, u8, u32)) -> Result<Load> {
        let sockets = (0..n)
            .map(|_| UdpSocket::bind("127.0.0.1:0").and_then(|s| s.set_nonblocking(true).map(|_| s)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let rate = kind.clock_rate();
        let f = rate as usize / 50;
        let encode = |amp: f32| -> Result<Vec<Vec<u8>>> {
            let mut enc = Encoder::new(kind)?;
            let pcm = peerdial_media::audio::tone(500.0, rate, f * 50, amp);
            pcm.chunks(f)
                .map(|c| {
                    let mut out = Vec::new();
                    enc.encode(c, &mut out)?;
                    Ok(out)
                })
                .collect()
        };
        Ok(Load {
            sockets,
            talking: encode(8000.0)?,
            silent: encode(0.0)?,
            pt,
            step: f as u32,
        })
    }

    fn ports(&self) -> Vec<u16> {
        self.sockets.iter().map(|s| s.local_addr().map(|a| a.port()).unwrap_or(0)).collect()
    }

    /// Sends every 20 ms from every socket to its target until `stop`;
    /// counts packets received on every `sample`-th socket.
    fn run(
        self,
        targets: Vec<SocketAddr>,
        talkers: impl Fn(usize) -> bool + Send + 'static,
        sample: usize,
        received: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
        core: Option<&'static str>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            if let Some(c) = core {
                pin_thread(c);
            }
            let start = Instant::now();
            let mut buf = [0u8; 2048];
            let mut k = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let frame = (k % 50) as usize;
                for (i, (s, to)) in self.sockets.iter().zip(&targets).enumerate() {
                    let h = RtpHeader {
                        marker: k == 0,
                        payload_type: self.pt,
                        seq: k as u16,
                        timestamp: k.wrapping_mul(self.step),
                        ssrc: i as u32,
                    };
                    let payload = if talkers(i) { &self.talking[frame] } else { &self.silent[frame] };
                    let _ = s.send_to(&rtp::build(&h, payload), to);
                }
                for s in self.sockets.iter().step_by(sample) {
                    while s.recv(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                k += 1;
                let due = start + Duration::from_millis(20) * k;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        })
    }
}

/// Pins the calling thread to `core` (a number).
fn pin_thread(core: &str) {
    let Ok(c) = core.parse::<usize>() else { return };
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
    // within it; sched_setaffinity(0) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(c, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The server under test for one step.
pub(crate) enum Running {
    Peerdial {
        rooms: Vec<Room>,
        handle: tokio::runtime::Handle,
        tid: i32,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    Janus {
        child: Child,
        _dir: tempfile::TempDir,
    },
}

impl Running {
    /// CPU seconds so far, to the nanosecond (schedstat's run time: our
    /// mixer thread, or every thread of Janus).
    fn cpu(&self) -> f64 {
        let read = |p: &Path| -> f64 {
            std::fs::read_to_string(p.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
                .unwrap_or(0.0)
                / 1e9
        };
        match self {
            Running::Peerdial { tid, .. } => read(Path::new(&format!("/proc/self/task/{tid}"))),
            Running::Janus { child, .. } => std::fs::read_dir(format!("/proc/{}/task", child.id()))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| read(&e.path()))
                .sum(),
        }
    }

    pub(crate) fn stop(self) {
        match self {
            Running::Peerdial {
                rooms,
                handle,
                mut stop,
                mut thread,
                ..
            } => {
                {
                    let _g = handle.enter();
                    drop(rooms);
                }
                if let Some(s) = stop.take() {
                    let _ = s.send(());
                }
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
            Running::Janus { mut child, .. } => {
                let _ = Command::new("kill").arg(child.id().to_string()).status();
                if !wait_until(Duration::from_secs(5), || matches!(child.try_wait(), Ok(Some(_)))) {
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
        }
    }
}

fn step(b: &MixerBench, server: Server, codec: (CodecKind, u8, u32), n: usize, janus: &Path) -> Result<Step> {
    let load = Load::new(n, codec)?;
    let remotes: Vec<SocketAddr> = load.ports().into_iter().map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
    let core = b.pin.then_some(SERVER_CORE);
    let (running, targets) = match server {
        Server::Peerdial => start_ours(b, codec, &remotes, core)?,
        Server::Janus => crate::bench_mixer_janus::start_janus(b, codec, &remotes, janus, core)?,
    };
    let talkers = if b.talkers == 0 { b.room } else { b.talkers };
    let room = b.room;
    let sample = (n / 200).max(1);
    let sampled = n.div_ceil(sample);
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = load.run(
        targets,
        move |i| i % room < talkers,
        sample,
        received.clone(),
        stop.clone(),
        b.pin.then_some(DRIVER_CORE),
    );
    std::thread::sleep(Duration::from_secs(2));
    let (c0, r0, t0) = (running.cpu(), received.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(b.seconds as u64));
    let (c1, r1, secs) = (running.cpu(), received.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    running.stop();
    let cpu = c1 - c0;
    let delivered = (r1 - r0) as f64 / (sampled as f64 * 50.0 * secs);
    Ok(Step {
        participants: n,
        // Per participant-second actually mixed: a starved server that
        // skipped ticks did less work, and is not credited for it.
        cpu_ms: cpu * 1000.0 / (n as f64 * secs * delivered.max(0.01)),
        busy: cpu / secs,
        delivered,
    })
}

/// Our rooms on a thread of their own (a current-thread tokio runtime).
fn start_ours(
    b: &MixerBench,
    (kind, pt, rate): (CodecKind, u8, u32),
    remotes: &[SocketAddr],
    core: Option<&'static str>,
) -> Result<(Running, Vec<SocketAddr>)> {
    let (htx, hrx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        if let Some(c) = core {
            pin_thread(c);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let _ = htx.send((rt.handle().clone(), tid));
        rt.block_on(async {
            let _ = stop_rx.await;
        });
    });
    let (handle, tid) = hrx.recv().context("mixer thread")?;
    let _g = handle.enter();
    let mut rooms = Vec::new();
    let mut targets = Vec::new();
    for group in remotes.chunks(b.room) {
        let room = Room::create(RoomConfig {
            ip: "127.0.0.1".parse()?,
            mixer: MixerConfig {
                rate,
                max_participants: b.room,
                ..MixerConfig::default()
            },
        })?;
        for r in group {
            let cfg = ParticipantConfig {
                codec: kind,
                payload_type: pt,
                dtmf_payload_type: Some(101),
            };
            let (_, port) = room.add(*r, cfg)?;
            targets.push(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        rooms.push(room);
    }
    drop(_g);
    Ok((
        Running::Peerdial {
            rooms,
            handle,
            tid,
            stop: Some(stop_tx),
            thread: Some(thread),
        },
        targets,
    ))
}
