//! The phone's sound device (feature `sound`), through ALSA's own plugins
//! so audio really passes through the device layer: the capture device
//! reads a named pipe this test writes a tone into at the sound card's pace
//! (20 ms at a time), the playback device writes a named pipe this test
//! drains at that pace. Run with `cargo test -p peerdial --features sound
//! --test sound`.
#![cfg(feature = "sound")]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use peerdial_media::audio::{frequency, read_wav, rms, tone, tone_share, write_wav};

const RATE: usize = 48_000;
/// 20 ms of 16-bit mono at 48 kHz: a network frame (two of the 10 ms
/// periods the phone asks for).
const CHUNK: usize = RATE / 50 * 2;

fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo").arg(p).status().unwrap().success();
    assert!(ok, "mkfifo {}", p.display());
}

/// An ALSA configuration whose default capture device plays `mic` (raw
/// samples) and whose default playback device writes to `speaker`.
fn alsa_conf(dir: &Path, mic: &Path, speaker: &Path) -> PathBuf {
    let conf = dir.join("asound.conf");
    let text = format!(
        r#"pcm.!default {{
    type asym
    capture.pcm "mic"
    playback.pcm "speaker"
}}
pcm.mic {{
    type file
    slave.pcm {{ type null }}
    file "/dev/null"
    infile "{}"
    format "raw"
    hint {{ show on description "test microphone" }}
}}
pcm.speaker {{
    type file
    slave.pcm {{ type null }}
    file "{}"
    format "raw"
    hint {{ show on description "test speaker" }}
}}
"#,
        mic.display(),
        speaker.display()
    );
    std::fs::write(&conf, text).unwrap();
    conf
}

/// Writes `samples` (looping) into the pipe every 20 ms, reopening it each
/// time the device closes it, until `stop`.
fn feed(pipe: PathBuf, samples: Vec<i16>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut pos = 0;
        while !stop.load(Ordering::SeqCst) {
            // Blocks until the device opens its end.
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&pipe) else {
                return;
            };
            let start = Instant::now();
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                if pos + CHUNK > bytes.len() {
                    pos = 0;
                }
                if f.write_all(&bytes[pos..pos + CHUNK]).is_err() {
                    break; // the device closed it; it may open it again
                }
                pos += CHUNK;
                n += 1;
                let due = start + Duration::from_millis(20) * n;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        }
    })
}

/// Reads the pipe at the sound card's pace into `heard` until `stop`, then
/// closes it (the device disappears).
fn drain(pipe: PathBuf, heard: Arc<Mutex<Vec<i16>>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let Ok(mut f) = std::fs::File::open(&pipe) else { return };
            let start = Instant::now();
            let mut n = 0u32;
            let mut buf = vec![0u8; CHUNK];
            while !stop.load(Ordering::SeqCst) {
                if f.read_exact(&mut buf).is_err() {
                    break;
                }
                heard
                    .lock()
                    .unwrap()
                    .extend(buf.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                n += 1;
                let due = start + Duration::from_millis(20) * n;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        }
    })
}

/// Whether some 200 ms stretch of `s` is a loud mix of every one of
/// `freqs` (Hz). Goertzel per frequency: zero crossings cannot tell what a
/// two-sine ring is made of.
fn has_tone(s: &[i16], freqs: &[f32]) -> bool {
    let least = 0.6 / freqs.len() as f64;
    s.chunks_exact(RATE / 5)
        .any(|w| rms(w) > 1000.0 && freqs.iter().all(|&f| tone_share(w, RATE as u32, f) > least))
}

/// `peerdial phone` for `mac` with `--audio device`, then `extra`.
fn device_phone_args(r: &Region, dir: &Path, mac: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["phone", "--region", &format!("http://{}", r.http), "--mac", mac]
        .map(String::from)
        .to_vec();
    let data = dir.join(format!("phone-{}", mac.replace(':', "")));
    args.extend(["--data".into(), data.to_str().unwrap().into(), "--sip".into(), "127.0.0.1:0".into()]);
    args.extend(["--resolver".into(), r.dns.to_string(), "--audio".into(), "device".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn an_incoming_call_rings_on_the_speaker() {
    let dir = tempfile::tempdir().unwrap();
    let (mic, speaker) = (dir.path().join("mic.pipe"), dir.path().join("speaker.pipe"));
    mkfifo(&mic);
    mkfifo(&speaker);
    let conf = alsa_conf(dir.path(), &mic, &speaker);
    let (stop, unplug) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let heard = Arc::new(Mutex::new(Vec::new()));
    let _feeder = feed(mic, vec![0; RATE], stop.clone());
    let _drainer = drain(speaker, heard.clone(), unplug.clone());
    let r = Region::start(dir.path(), &[]);
    let env = format!("ALSA_CONFIG_PATH={}", conf.display());
    let args = device_phone_args(&r, dir.path(), "02:00:00:00:16:05", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut callee = Softphone::spawn(&args, &["env", &env]);
    callee.expect_line("registered number=", 10);
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:16:06",
        r.dns,
        &callee.number,
        &["--ring-timeout", "3", "--no-mailbox"],
    );
    assert_eq!(caller.wait_exit(20), 5, "{:#?}", caller.lines());
    // The pipe holds up to 0.7 s: let what was played drain.
    std::thread::sleep(Duration::from_millis(1000));
    unplug.store(true, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    callee.stop();
    let heard = heard.lock().unwrap().clone();
    assert!(has_tone(&heard, &[660.0, 880.0]), "no ring in {} samples", heard.len());
    assert!(!has_tone(&heard, &[440.0, 480.0]), "the callee played the ring-back");
}

#[test]
fn a_tone_from_the_microphone_reaches_the_far_end_and_the_far_end_is_heard() {
    let dir = tempfile::tempdir().unwrap();
    let (mic, speaker) = (dir.path().join("mic.pipe"), dir.path().join("speaker.pipe"));
    mkfifo(&mic);
    mkfifo(&speaker);
    let conf = alsa_conf(dir.path(), &mic, &speaker);
    let stop = Arc::new(AtomicBool::new(false));
    let unplug = Arc::new(AtomicBool::new(false));
    let heard = Arc::new(Mutex::new(Vec::new()));
    let feeder = feed(mic.clone(), tone(1000.0, RATE as u32, RATE, 12_000.0), stop.clone());
    let drainer = drain(speaker.clone(), heard.clone(), unplug.clone());

    let r = Region::start(dir.path(), &[]);
    let far_tone = dir.path().join("far.wav");
    write_wav(&far_tone, &tone(1500.0, 48_000, 48_000 * 8, 12_000.0), 48_000).unwrap();
    let rec = dir.path().join("far-end.wav");
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:16:01",
        r.dns,
        &[
            "--auto-answer",
            "--answer-after",
            "1.5",
            "--record",
            rec.to_str().unwrap(),
            "--play",
            far_tone.to_str().unwrap(),
            "--codecs",
            "pcmu",
        ],
    );
    let env = format!("ALSA_CONFIG_PATH={}", conf.display());
    let mut args = vec![
        "phone".to_string(),
        "--region".into(),
        format!("http://{}", r.http),
        "--mac".into(),
        "02:00:00:00:16:02".into(),
        "--data".into(),
        dir.path().join("caller").to_str().unwrap().into(),
        "--sip".into(),
        "127.0.0.1:0".into(),
        "--resolver".into(),
        r.dns.to_string(),
        "--audio".into(),
        "device".into(),
        "--duration".into(),
        "4".into(),
    ];
    args.extend(["call".into(), callee.number.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut caller = Softphone::spawn(&args, &["env", &env]);
    caller.expect_line("answered codec=PCMU", 20);
    // Two seconds into the call the speaker is unplugged.
    std::thread::sleep(Duration::from_millis(2500));
    unplug.store(true, Ordering::SeqCst);
    assert_eq!(caller.wait_exit(20), 0, "{:#?}", caller.lines());
    stop.store(true, Ordering::SeqCst);
    callee.expect_line("ended: the other side hung up after 4.", 5);
    callee.stop();
    let lines = caller.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the output device") && l.contains("goes on without a speaker")),
        "{lines:#?}"
    );

    // What the microphone captured arrived at the far end.
    let s = read_wav(&rec, 8000).unwrap();
    let (skip, n) = (2400, s.len());
    assert!(n > 3 * skip, "recording too short: {n} samples");
    assert!(rms(&s[skip..n - skip]) > 1000.0, "the far end heard (nearly) silence");
    let f = frequency(&s[skip..n - skip], 8000);
    assert!((f - 1000.0).abs() <= 20.0, "the 1 kHz tone arrived at {f} Hz");

    // The speaker played the ring-back while the call rang, then the far end.
    let heard = heard.lock().unwrap().clone();
    assert!(has_tone(&heard, &[440.0, 480.0]), "no ring-back in {} samples", heard.len());
    assert!(has_tone(&heard, &[1500.0]), "the far end's 1.5 kHz tone was not heard");
    drop(feeder);
    drop(drainer);
}

#[test]
fn without_a_sound_device_the_call_goes_on_with_the_wav_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("asound.conf");
    std::fs::write(&conf, "# no devices at all\n").unwrap();
    let r = Region::start(dir.path(), &[]);
    let play = dir.path().join("tone.wav");
    write_wav(&play, &tone(1000.0, 48_000, 48_000 * 4, 12_000.0), 48_000).unwrap();
    let rec = dir.path().join("far-end.wav");
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:16:03",
        r.dns,
        &["--auto-answer", "--answer-after", "0.2", "--record", rec.to_str().unwrap()],
    );
    let env = format!("ALSA_CONFIG_PATH={}", conf.display());
    let args = [
        "phone",
        "--region",
        &format!("http://{}", r.http),
        "--mac",
        "02:00:00:00:16:04",
        "--data",
        dir.path().join("caller").to_str().unwrap(),
        "--sip",
        "127.0.0.1:0",
        "--resolver",
        &r.dns.to_string(),
        "--audio",
        "device",
        "--play",
        play.to_str().unwrap(),
        "--duration",
        "2",
        "call",
        &callee.number,
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut caller = Softphone::spawn(&args, &["env", &env]);
    assert_eq!(caller.wait_exit(20), 0, "{:#?}", caller.lines());
    callee.stop();
    let lines = caller.lines();
    assert!(lines.iter().any(|l| l.contains("sound: no device could be opened")), "{lines:#?}");
    let s = read_wav(&rec, 48_000).unwrap();
    let f = frequency(&s[s.len() / 4..s.len() * 3 / 4], 48_000);
    assert!((f - 1000.0).abs() <= 20.0, "the WAV's 1 kHz tone arrived at {f} Hz");
}
