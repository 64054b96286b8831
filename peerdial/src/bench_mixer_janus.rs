//! Janus 1.1's AudioBridge as the mixer bench's comparison peer: its
//! configs (loopback only, every plugin but the AudioBridge off), its
//! start, and the rooms and plain-RTP participants made over its HTTP API.
//! The load and the measuring are `bench_mixer`'s.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peerdial_media::CodecKind;
use serde_json::{json, Value};

use crate::bench_greetings::{header, http};
use crate::bench_mixer::{MixerBench, Running};
use crate::bench_presence::wait_until;
use crate::bench_tools::free_port;

/// Janus's core config (../shared/peer-configs/janus/janus.jcfg, quieter
/// logging): loopback only, every plugin but the AudioBridge off.
const JANUS_CORE: &str = r#"general: {
	configs_folder = "@DIR@"
	plugins_folder = "/usr/lib/x86_64-linux-gnu/janus/plugins"
	transports_folder = "/usr/lib/x86_64-linux-gnu/janus/transports"
	events_folder = "/usr/lib/x86_64-linux-gnu/janus/events"
	loggers_folder = "/usr/lib/x86_64-linux-gnu/janus/loggers"
	debug_level = 2
	interface = "127.0.0.1"
	server_name = "bench-mixer"
	session_timeout = 120
	protected_folders = [ "/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/usr", "/var" ]
}
certificates: {
}
media: {
	rtp_port_range = "20000-20999"
}
nat: {
	nice_debug = false
	ice_enforce_list = "lo"
}
plugins: {
	disable = "libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_videoroom.so,libjanus_voicemail.so"
}
transports: {
	disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
	disable = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so,libjanus_sampleevh.so,libjanus_wsevh.so"
}
"#;

/// The AudioBridge: plain-RTP participants on loopback (a wider port
/// range than the shared config, for big steps).
const JANUS_AUDIOBRIDGE: &str = r#"general: {
	events = false
	rtp_port_range = "21000-29999"
	local_ip = "127.0.0.1"
}
"#;

const JANUS_HTTP: &str = r#"general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = @PORT@
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_base_path = "/admin"
	admin_http = false
	admin_https = false
}
cors: {
}
certificates: {
}
"#;

/// Janus with the shared configs (its HTTP API on a free port), one
/// AudioBridge room per group, one handle per plain-RTP participant.
pub(crate) fn start_janus(
    b: &MixerBench,
    (kind, pt, rate): (CodecKind, u8, u32),
    remotes: &[SocketAddr],
    janus: &Path,
    core: Option<&'static str>,
) -> Result<(Running, Vec<SocketAddr>)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("janus.jcfg"), JANUS_CORE.replace("@DIR@", &d))?;
    std::fs::write(dir.path().join("janus.plugin.audiobridge.jcfg"), JANUS_AUDIOBRIDGE)?;
    std::fs::write(
        dir.path().join("janus.transport.http.jcfg"),
        JANUS_HTTP.replace("@PORT@", &port.to_string()),
    )?;
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c, "setpriv"]);
            cmd
        }
        None => Command::new("setpriv"),
    };
    let d = dir.path();
    let child = cmd
        .args(["--bounding-set", "-net_raw", "--inh-caps", "-net_raw"])
        .arg(janus)
        .arg("-C")
        .arg(d.join("janus.jcfg"))
        .arg("-F")
        .arg(d)
        .args(["-o", "-N", "-L"])
        .arg(d.join("janus.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting janus")?;
    let api: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut running = Running::Janus { child, _dir: dir };
    let result = (|| -> Result<Vec<SocketAddr>> {
        if !wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(api).is_ok()) {
            bail!("janus did not open its HTTP API on {api}");
        }
        let call = |method: &str, path: &str, body: Option<Value>| -> Result<Value> {
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let (status, head, body) = http(api, method, path, &[("Content-Type", "application/json".into())], body.as_bytes())?;
            if status != 200 {
                bail!("janus {path}: HTTP {status}");
            }
            let body = if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
                dechunk(&body)
            } else {
                body
            };
            serde_json::from_slice(&body).with_context(|| format!("janus {path}: {}", String::from_utf8_lossy(&body)))
        };
        let post = |path: &str, body: Value| call("POST", path, Some(body));
        let session = post("/janus", json!({"janus": "create", "transaction": "s"}))?["data"]["id"]
            .as_u64()
            .context("janus session")?;
        let attach = || -> Result<u64> {
            post(
                &format!("/janus/{session}"),
                json!({"janus": "attach", "plugin": "janus.plugin.audiobridge", "transaction": "a"}),
            )?["data"]["id"]
                .as_u64()
                .context("janus handle")
        };
        let codec = match kind {
            CodecKind::Pcmu => "pcmu",
            CodecKind::Pcma => "pcma",
            CodecKind::Opus => "opus",
        };
        let mut pending = 0;
        for (r, group) in remotes.chunks(b.room).enumerate() {
            let room = 1000 + r as u64;
            let h = attach()?;
            let body = json!({"request": "create", "room": room, "sampling_rate": rate,
                "allow_rtp_participants": true, "audiolevel_event": false, "record": false});
            let created = post(
                &format!("/janus/{session}/{h}"),
                json!({"janus": "message", "transaction": "c", "body": body}),
            )?;
            if created["plugindata"]["data"]["audiobridge"] != "created" {
                bail!("janus did not create room {room}: {created}");
            }
            for (i, remote) in group.iter().enumerate() {
                let h = attach()?;
                let body = json!({"request": "join", "room": room, "display": format!("p{i}"), "codec": codec,
                    "rtp": {"ip": "127.0.0.1", "port": remote.port(), "payload_type": pt}});
                let tr = format!("j{}", r * b.room + i);
                post(
                    &format!("/janus/{session}/{h}"),
                    json!({"janus": "message", "transaction": tr, "body": body}),
                )?;
                pending += 1;
            }
        }
        // The joined events say where each participant sends.
        let mut targets = vec![None; remotes.len()];
        let deadline = Instant::now() + Duration::from_secs(60);
        while pending > 0 && Instant::now() < deadline {
            let events = call("GET", &format!("/janus/{session}?maxev=100"), None)?;
            for ev in events.as_array().into_iter().flatten() {
                let (Some(tr), Some(port)) = (
                    ev["transaction"]
                        .as_str()
                        .and_then(|t| t.strip_prefix('j'))
                        .and_then(|t| t.parse::<usize>().ok()),
                    ev["plugindata"]["data"]["rtp"]["port"].as_u64(),
                ) else {
                    continue;
                };
                if let Some(slot) = targets.get_mut(tr) {
                    if slot.is_none() {
                        pending -= 1;
                    }
                    *slot = Some(SocketAddr::from(([127, 0, 0, 1], port as u16)));
                }
            }
        }
        targets
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .context("janus did not say where every participant sends")
    })();
    match result {
        Ok(t) => Ok((running, t)),
        Err(e) => {
            if let Running::Janus { child, .. } = &mut running {
                let _ = child.kill();
            }
            running.stop();
            Err(e)
        }
    }
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}
