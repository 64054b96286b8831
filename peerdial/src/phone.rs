//! `peerdial phone`: flags and config for the softphone in `peerdial-phone`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use peerdial_media::CodecKind;
use peerdial_phone::display::{spawn_keys, spawn_stdin_commands, LogDisplay, TerminalDisplay};
use peerdial_phone::mobile::MobileConfig;
use peerdial_phone::{Display, Phone, PhoneConfig};
use serde::Deserialize;

/// Every flag is also a key of the TOML file given with --config; flags win.
/// Flags are global, so they may follow `call NUMBER` as users type them.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PhoneArgs {
    /// TOML file with any of these options as keys (e.g. `auto-answer = true`).
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// The region's HTTP API, for provisioning on first start.
    #[arg(long, global = true, value_name = "URL")]
    region: Option<String>,
    /// Folder for the phone's number, secret and credentials.
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    /// MAC address to provision with (default: this machine's).
    #[arg(long, global = true, value_name = "MAC")]
    mac: Option<String>,
    /// SIP address (UDP) to listen on; with 0.0.0.0 the address towards the
    /// registrar is used and watched for changes.
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    sip: Option<SocketAddr>,
    /// DNS resolver to look numbers up with (default: /etc/resolv.conf's).
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    resolver: Option<SocketAddr>,
    /// Find numbers through the tree's directory at this URL (the top)
    /// instead of a DNS resolver.
    #[arg(long, global = true, value_name = "URL")]
    top: Option<String>,
    /// Answer incoming calls by itself.
    #[arg(long, global = true, global = true)]
    #[serde(default)]
    auto_answer: bool,
    /// With --auto-answer, ring this many seconds first.
    #[arg(long, global = true, value_name = "SECONDS")]
    answer_after: Option<f64>,
    /// WAV file to send as the microphone (any rate; mixed to mono).
    #[arg(long, global = true, value_name = "FILE.wav")]
    play: Option<PathBuf>,
    /// WAV file to write what the speaker played.
    #[arg(long, global = true, value_name = "FILE.wav")]
    record: Option<PathBuf>,
    /// Where calls' audio comes from and goes: `files` (--play, --record)
    /// or `device`, the sound card (needs a build with --features sound;
    /// --play is then sent only when no device opens, --record still
    /// records what the speaker played).
    #[arg(long, global = true, value_name = "files|device")]
    audio: Option<String>,
    /// With --audio device: the capture device (default: the system's;
    /// --list-devices shows the names).
    #[arg(long, global = true, value_name = "NAME")]
    input: Option<String>,
    /// With --audio device: the playback device (default: the system's).
    #[arg(long, global = true, value_name = "NAME")]
    output: Option<String>,
    /// List the sound devices (names for --input and --output) and exit.
    #[arg(long, global = true)]
    #[serde(skip)]
    list_devices: bool,
    /// Codecs in preference order: opus, pcmu, pcma.
    #[arg(long, global = true, value_name = "LIST", value_delimiter = ',')]
    codecs: Option<Vec<String>>,
    /// End each answered call after this many seconds.
    #[arg(long, global = true, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Give up on an unanswered outgoing call after this many seconds.
    #[arg(long, global = true, value_name = "SECONDS")]
    ring_timeout: Option<f64>,
    /// Call a callee unreachable when its address answers nothing in this
    /// many seconds.
    #[arg(long, global = true, value_name = "SECONDS")]
    unreachable_after: Option<f64>,
    /// Do not register (call out only).
    #[arg(long, global = true, global = true)]
    #[serde(default)]
    no_register: bool,
    /// Refuse callers whose identity does not verify (438 Invalid Identity
    /// Header) instead of ringing with "unverified".
    #[arg(long, global = true, global = true)]
    #[serde(default)]
    reject_unverified: bool,
    /// What to do when the other side of a call asks us to call someone
    /// else in its place (REFER, blind transfer): ask, accept or refuse.
    #[arg(long, global = true, value_name = "ask|accept|refuse")]
    on_refer: Option<String>,
    /// Answer a second call during a call with 486 Busy Here instead of
    /// ringing it beside the first (call waiting).
    #[arg(long, global = true)]
    #[serde(default)]
    no_call_waiting: bool,
    /// How the phone stays registered: tcp (default) keeps a connection to
    /// the region open (online while connected, RFC 5626 keep-alives;
    /// UDP meanwhile when it cannot connect), udp registers over UDP only.
    /// Calls are over UDP either way.
    #[arg(long, global = true, value_name = "tcp|udp")]
    sip_transport: Option<String>,
    /// Do not go on to the callee's mailbox when a call is not answered,
    /// is busy, declined or unreachable (the call just ends).
    #[arg(long, global = true)]
    #[serde(default)]
    no_mailbox: bool,
    /// Watch these numbers' presence (one a line: NUMBER [name]).
    #[arg(long, global = true, value_name = "FILE")]
    contacts: Option<PathBuf>,
    /// Call someone offline, in a meeting or on do-not-disturb without asking.
    #[arg(long, global = true)]
    #[serde(default)]
    yes: bool,
    /// Ask the region this often whether our greeting pictures changed.
    #[arg(long, global = true, value_name = "SECONDS")]
    greeting_poll: Option<f64>,
    /// As a mobile: this device's phone number, E.164 (+886912345678).
    #[arg(long, global = true, value_name = "MSISDN")]
    msisdn: Option<String>,
    /// As a mobile: its SIM's IMSI (15 digits); sent to the rendezvous only.
    #[arg(long, global = true, value_name = "IMSI")]
    imsi: Option<String>,
    /// As a mobile: the identity rendezvous (the top's HTTP URL).
    #[arg(long, global = true, value_name = "URL")]
    rendezvous: Option<String>,
    /// As a mobile: the mobile network (`peerdial cellular-sim`'s HTTP URL).
    #[arg(long, global = true, value_name = "URL")]
    cellular: Option<String>,
    /// Subscribe to this Web Push / UnifiedPush endpoint for wake-up: the
    /// REGISTER carries RFC 8599 parameters; keys in DIR/push-keys.json.
    #[arg(long, global = true, value_name = "URL")]
    push: Option<String>,
    /// With --push: a PEM file of extra CA certificates to trust for the
    /// push service (besides the webpki roots).
    #[arg(long, global = true, value_name = "FILE")]
    push_ca: Option<PathBuf>,
    /// With --push or --wake-by-cloud: after registering, sleep (no SIP)
    /// and wake only by push or cloud command.
    #[arg(long, global = true)]
    #[serde(default)]
    asleep: bool,
    /// With --top: hold the cloud's command connection, down which the
    /// cloud wakes this phone for a call (instead of a push).
    #[arg(long, global = true)]
    #[serde(default)]
    wake_by_cloud: bool,
    /// Be a device of a `peerdial switch` (issue 15): register to it as
    /// sip:NUMBER@IP:PORT and place every call through it; no region.
    #[arg(long, global = true, value_name = "sip:NUMBER@ADDR:PORT")]
    switch: Option<String>,
    /// With --switch: the file whose first line is the device's password
    /// (the one `peerdial switch device add` was given).
    #[arg(long, global = true, value_name = "FILE")]
    switch_password_file: Option<PathBuf>,
    /// Ask the region for the next marquee item this often (0: never;
    /// default 10).
    #[arg(long, global = true, value_name = "SECONDS")]
    marquee_interval: Option<f64>,
    #[command(subcommand)]
    #[serde(skip)]
    action: Option<PhoneAction>,
}

#[derive(Subcommand, Debug)]
enum PhoneAction {
    /// Dial NUMBER (8 digits: own area; 10: own country; 13 or +: as is),
    /// and exit when the call ends: 0 answered, 3 no such number, 4 busy,
    /// 5 no answer, 6 unreachable, 1 other failures.
    Call { number: String },
    /// Leave a message: call NUMBER's mailbox (not its phone), play --play's
    /// WAV and hang up when it ends (or after --duration); exit as `call`.
    Voicemail { number: String },
}

fn secs(s: f64, flag: &str) -> Result<u64> {
    if !(0.0..=86_400.0).contains(&s) {
        bail!("{flag} must be between 0 and 86400 seconds");
    }
    Ok((s * 1000.0) as u64)
}

impl PhoneArgs {
    fn resolve(self) -> Result<PhoneConfig> {
        let file: PhoneArgs = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("in config {}", p.display()))?
            }
            None => PhoneArgs::default(),
        };
        let mut cfg = PhoneConfig::new(self.data.or(file.data).unwrap_or_else(|| PathBuf::from("data/phone")));
        cfg.region = self.region.or(file.region);
        cfg.mac = self.mac.or(file.mac);
        if let Some(s) = self.sip.or(file.sip) {
            cfg.sip = s;
        }
        cfg.resolver = self.resolver.or(file.resolver);
        cfg.top = self.top.or(file.top);
        cfg.auto_answer = self.auto_answer || file.auto_answer;
        if let Some(a) = self.answer_after.or(file.answer_after) {
            cfg.answer_after_ms = secs(a, "--answer-after")?;
        }
        cfg.play = self.play.or(file.play);
        cfg.record = self.record.or(file.record);
        let (input, output) = (self.input.or(file.input), self.output.or(file.output));
        match self.audio.or(file.audio).as_deref() {
            None | Some("files") if input.is_some() || output.is_some() => bail!("--input and --output go with --audio device"),
            None | Some("files") => {}
            Some("device") if !peerdial_sound::AVAILABLE => bail!("--audio device: {}", peerdial_sound::SoundError::NotBuilt),
            Some("device") => cfg.sound = Some(peerdial_sound::SoundConfig { input, output }),
            Some(other) => bail!("--audio takes files or device, not {other:?}"),
        }
        if let Some(list) = self.codecs.or(file.codecs) {
            cfg.codecs = list
                .iter()
                .map(|c| CodecKind::from_name(c.trim()).with_context(|| format!("unknown codec {c:?} (use opus, pcmu, pcma)")))
                .collect::<Result<_>>()?;
            if cfg.codecs.is_empty() {
                bail!("--codecs needs at least one codec");
            }
        }
        if let Some(d) = self.duration.or(file.duration) {
            cfg.duration_ms = Some(secs(d, "--duration")?);
        }
        if let Some(r) = self.ring_timeout.or(file.ring_timeout) {
            cfg.ring_timeout_ms = secs(r, "--ring-timeout")?;
        }
        if let Some(u) = self.unreachable_after.or(file.unreachable_after) {
            cfg.unreachable_ms = secs(u, "--unreachable-after")?.max(500);
        }
        cfg.register = !(self.no_register || file.no_register);
        cfg.reject_unverified = self.reject_unverified || file.reject_unverified;
        if let Some(p) = self.on_refer.or(file.on_refer) {
            cfg.on_refer = p.parse().map_err(|e| anyhow::anyhow!("--on-refer {e}"))?;
        }
        cfg.call_waiting = !(self.no_call_waiting || file.no_call_waiting);
        cfg.contacts = self.contacts.or(file.contacts);
        cfg.yes = self.yes || file.yes;
        if let Some(g) = self.greeting_poll.or(file.greeting_poll) {
            cfg.greeting_poll_ms = secs(g, "--greeting-poll")?.max(1_000);
        }
        let cellular = self.cellular.or(file.cellular);
        cfg.mobile = match (
            self.msisdn.or(file.msisdn),
            self.imsi.or(file.imsi),
            self.rendezvous.or(file.rendezvous),
        ) {
            (Some(m), Some(i), Some(r)) => Some(MobileConfig::new(&m, &i, r, cellular)?),
            (None, None, None) if cellular.is_none() => None,
            _ => bail!("--msisdn, --imsi and --rendezvous go together (and --cellular needs them)"),
        };
        if let Some(m) = self.marquee_interval.or(file.marquee_interval) {
            cfg.marquee_interval_ms = match secs(m, "--marquee-interval")? {
                0 => 0,
                ms => ms.max(500),
            };
        }
        cfg.mailbox_fallback = !(self.no_mailbox || file.no_mailbox);
        cfg.tcp_flow = match self.sip_transport.or(file.sip_transport).as_deref() {
            None | Some("tcp") => true,
            Some("udp") => false,
            Some(other) => bail!("--sip-transport {other:?}: tcp or udp"),
        };
        let asleep = self.asleep || file.asleep;
        let cloud = self.wake_by_cloud || file.wake_by_cloud;
        if cloud && cfg.top.is_none() {
            bail!("--wake-by-cloud needs --top URL: the cloud it holds a connection to");
        }
        let endpoint = self.push.or(file.push);
        let push_ca = self.push_ca.or(file.push_ca);
        if let Some(ca) = &push_ca {
            peerdial_net::tls::client_config(Some(ca)).context("--push-ca")?;
        }
        cfg.push = match (endpoint.is_some() || cloud, asleep) {
            (true, asleep) => Some(peerdial_phone::wake::PushConfig {
                endpoint,
                ca: push_ca,
                cloud,
                asleep,
            }),
            (false, true) => bail!("--asleep needs --push URL or --wake-by-cloud: it wakes only by push or cloud command"),
            (false, false) => None,
        };
        if asleep {
            // Asleep is silent: no TCP flow keeps it online.
            cfg.tcp_flow = false;
        }
        match (self.switch.or(file.switch), self.switch_password_file.or(file.switch_password_file)) {
            (Some(uri), Some(pw)) => {
                if cfg.push.is_some() || cfg.mobile.is_some() || cfg.region.is_some() {
                    bail!("--switch makes the phone a switch's device: no --region, --push or mobile flags with it");
                }
                let text = std::fs::read_to_string(&pw).with_context(|| format!("reading --switch-password-file {}", pw.display()))?;
                let password = text.lines().next().unwrap_or_default();
                cfg.switch = Some(peerdial_phone::switch::SwitchAccount::new(&uri, password)?);
                // The switch speaks UDP; a device has no mailbox or marquee.
                cfg.tcp_flow = false;
                cfg.mailbox_fallback = false;
                cfg.marquee_interval_ms = 0;
            }
            (None, None) => {}
            _ => bail!("--switch sip:NUMBER@ADDR:PORT and --switch-password-file FILE go together"),
        }
        match self.action {
            Some(PhoneAction::Call { number }) => cfg.dial = Some(number),
            Some(PhoneAction::Voicemail { number }) => {
                cfg.dial = Some(number);
                cfg.voicemail = true;
                // The message is the WAV: hang up when it has played.
                if let (None, Some(p)) = (cfg.duration_ms, &cfg.play) {
                    let pcm = peerdial_media::audio::read_wav(p, 8_000)?;
                    cfg.duration_ms = Some(pcm.len() as u64 / 8 + 500);
                }
            }
            None => {}
        }
        Ok(cfg)
    }
}

/// `--list-devices`: one device a line, its name first.
fn list_devices() -> Result<i32> {
    let devices = peerdial_sound::list_devices().context("listing sound devices")?;
    for d in &devices {
        let dirs = match (d.input, d.output) {
            (true, true) => "input+output",
            (true, false) => "input",
            (false, true) => "output",
            (false, false) => "-",
        };
        println!("{}\t{dirs}\t{}", d.id, d.description);
    }
    if devices.is_empty() {
        println!("no sound devices");
    }
    Ok(0)
}

pub async fn run(args: PhoneArgs) -> Result<i32> {
    if args.list_devices {
        return list_devices();
    }
    let cfg = args.resolve()?;
    let mut interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal() && cfg.dial.is_none();
    let terminal = if interactive {
        TerminalDisplay::new()
            .map_err(|e| tracing::warn!("no full-screen display ({e}); showing plain lines"))
            .ok()
    } else {
        None
    };
    interactive = terminal.is_some();
    let display: Box<dyn Display> = match terminal {
        Some(t) => Box::new(t),
        None => Box::new(LogDisplay),
    };
    // A failed start drops the display, which gives the terminal back.
    let phone = Phone::start(cfg, display).await.context("starting the phone")?;
    if interactive {
        spawn_keys(phone.commands());
    } else {
        spawn_stdin_commands(phone.commands());
    }
    let cmds = phone.commands();
    tokio::spawn(async move {
        crate::wait_for_signal().await;
        let _ = cmds.send(peerdial_phone::Command::Quit).await;
    });
    Ok(phone.run().await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_may_come_before_or_after_call_number() {
        for args in [
            &["peerdial", "phone", "--data", "d", "call", "12345678", "--duration", "3", "--yes"][..],
            &["peerdial", "phone", "--data", "d", "--duration", "3", "--yes", "call", "12345678"][..],
        ] {
            let cli = crate::Cli::try_parse_from(args).expect("parses");
            let crate::Command::Phone(p) = cli.command else {
                panic!("not the phone")
            };
            assert_eq!(p.duration, Some(3.0), "{args:?}");
            assert!(p.yes && p.data == Some(PathBuf::from("d")), "{args:?}");
            assert!(matches!(p.action, Some(PhoneAction::Call { ref number }) if number == "12345678"));
        }
        assert!(crate::Cli::try_parse_from(["peerdial", "phone", "call", "1", "--no-such-flag"]).is_err());
    }

    fn resolved(args: &[&str]) -> Result<PhoneConfig> {
        let cli = crate::Cli::try_parse_from(args).expect("parses");
        let crate::Command::Phone(p) = cli.command else {
            panic!("not the phone")
        };
        p.resolve()
    }

    #[test]
    fn audio_device_names_the_feature_when_it_is_not_built() {
        let r = resolved(&["peerdial", "phone", "--audio", "device", "--input", "mic"]);
        if peerdial_sound::AVAILABLE {
            let sound = r.unwrap().sound.expect("device mode");
            assert_eq!((sound.input.as_deref(), sound.output), (Some("mic"), None));
        } else {
            let e = format!("{:#}", r.unwrap_err());
            assert!(e.contains("build with --features sound"), "{e}");
        }
        let e = format!("{:#}", resolved(&["peerdial", "phone", "--output", "spk"]).unwrap_err());
        assert!(e.contains("--audio device"), "{e}");
        let e = format!("{:#}", resolved(&["peerdial", "phone", "--audio", "speakers"]).unwrap_err());
        assert!(e.contains("files or device"), "{e}");
        assert!(resolved(&["peerdial", "phone", "--audio", "files"]).unwrap().sound.is_none());
    }
}
