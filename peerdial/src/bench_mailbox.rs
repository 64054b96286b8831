//! `peerdial bench msilo` and `peerdial bench deposits` (issue 12).
//!
//! msilo: offline text messages, the region's mailbox next to Kamailio's
//! msilo module on the same SIPp workload. Phase one: SIPp sends
//! `per_user` MESSAGEs to each of `users` numbers nobody has registered
//! (each server keeps them and answers 202). Phase two: the users come
//! back. K SIPp endpoints (`sipp/message-inbox.xml`, run as UAS with
//! `-rsa` at the server) each REGISTER their share of the users when the
//! harness kicks them and answer every MESSAGE delivered to them with
//! 200; the phase ends when every endpoint has had all its messages.
//! Stored/s and delivered/s are counted from SIPp's own statistics, and
//! anything not stored or not delivered is reported as lost.
//!
//! deposits: SIPp calls that stream G.711 (PCMU) RTP into the mailbox of
//! a different number each, C at a time, for each C given; the region's
//! own totals say how many packets reached the recordings and how many
//! frames the playout found missing or late; its CPU per recorded second.
//!
//! Not here: what the region does (crates/region/src/mailbox*.rs).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peerdial_sip::digest::{challenge_nonce, Algorithm, Credentials};

use crate::bench_channels::{shares, Endpoints};
use crate::bench_tools::{
    cpu_of, cpu_of_tree, free_port, kamailio_mpath, pin_self, provision_many, run_sipp, start_region, tool, Kamailio, Load, SERVER_CORE,
};

const STORE: &str = include_str!("../sipp/message-store.xml");
const INBOX: &str = include_str!("../sipp/message-inbox.xml");
const DEPOSIT: &str = include_str!("../sipp/deposit-rtp.xml");

/// Kamailio with msilo as in ../shared/peer-configs/kamailio-msilo.cfg,
/// with two changes: one worker (SQLite takes one writer: with two,
/// msilo logged "database is locked" and lost messages), and msilo's
/// deliveries sent through Kamailio itself (`outbound_proxy`), where
/// `lookup("location")` finds the contact just registered (without it
/// m_dump sends them to the stored request URI's port 5060).
fn msilo_cfg(dir: &Path, port: u16, mpath: &str) -> String {
    let d = dir.display();
    format!(
        r#"#!KAMAILIO
#!define DBURL "sqlite://{d}/msilo.sqlite"
debug=0
log_stderror=yes
children=1
maxbuffer=4194304
dns=no
rev_dns=no
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="{mpath}"
loadmodule "db_sqlite.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "msilo.so"
modparam("db_sqlite", "db_set_journal_mode", "{d}/msilo.sqlite=WAL;")
modparam("usrloc", "db_mode", 0)
modparam("msilo", "db_url", DBURL)
modparam("msilo", "from_address", "sip:registrar@127.0.0.1:{port}")
modparam("msilo", "contact_hdr", "Contact: <sip:registrar@127.0.0.1:{port};msilo=yes>\r\n")
modparam("msilo", "outbound_proxy", "sip:127.0.0.1:{port}")
modparam("msilo", "check_time", 2)
request_route {{
  if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483","Too Many Hops"); exit; }}
  if (is_method("REGISTER")) {{ save("location"); if ($hdr(Expires) != "0") {{ m_dump(); }} exit; }}
  if (is_method("MESSAGE")) {{
    if (!lookup("location")) {{
      if (!t_newtran()) {{ sl_reply_error(); exit; }}
      if (m_store("$ru")) t_reply("202", "Accepted"); else t_reply("503", "Service Unavailable");
      exit;
    }}
    t_on_failure("MSG_FAIL"); t_relay(); exit;
  }}
  if (is_method("ACK")) exit;
  sl_send_reply("405", "Method Not Allowed");
}}
failure_route[MSG_FAIL] {{ if (m_store("$ou")) t_reply("202", "Accepted"); }}
"#
    )
}

/// msilo's database: Kamailio's own schema files, in WAL mode.
fn msilo_db(dir: &Path) -> Result<()> {
    let schema = ["standard", "msilo"]
        .iter()
        .map(|t| std::fs::read_to_string(format!("/usr/share/kamailio/db_sqlite/{t}-create.sql")))
        .collect::<std::io::Result<Vec<_>>>()
        .context("Kamailio's SQLite schema (kamailio-sqlite-modules)")?
        .join("\n");
    let mut child = std::process::Command::new(tool("sqlite3")?)
        .arg(dir.join("msilo.sqlite"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("sqlite3's stdin")?;
        stdin.write_all(format!("PRAGMA journal_mode=WAL;\n{schema}\n").as_bytes())?;
    }
    if !child.wait()?.success() {
        bail!("sqlite3 could not create msilo's database");
    }
    Ok(())
}

/// What one server did with the same texts.
struct Texts {
    stored: u64,
    store_failed: u64,
    store_retrans: u64,
    store_s: f64,
    store_cpu: f64,
    delivered: u64,
    /// Until every endpoint had all its texts, or until the deadline.
    deliver_s: f64,
    /// Whether all arrived before the deadline.
    all: bool,
    deliver_cpu: f64,
}

impl Texts {
    fn stored_rate(&self) -> f64 {
        self.stored as f64 / self.store_s
    }

    fn delivered_rate(&self) -> f64 {
        self.delivered as f64 / self.deliver_s
    }
}

/// The two phases against one server at `target`; `auth` gives each
/// user's `Authorization` value (digest), or None (no authentication).
#[allow(clippy::too_many_arguments)]
async fn texts(
    dir: &Path,
    target: SocketAddr,
    users: &[String],
    auth: Option<&[String]>,
    per_user: u32,
    inflight: u32,
    endpoints: usize,
    pin: bool,
    cpu: impl Fn() -> f64,
) -> Result<Texts> {
    let rows: Vec<String> = (0..per_user).flat_map(|_| users.iter().cloned()).collect();
    let cpu0 = cpu();
    let s = run_sipp(
        &dir.join("store"),
        STORE,
        &rows,
        target,
        1_000_000,
        Load {
            instances: 1,
            limit: inflight,
        },
        pin,
    )
    .await?;
    let store_cpu = cpu() - cpu0;

    // Phase two: endpoints on free ports, each with its share of users.
    let counts = shares(users.len(), endpoints);
    let ports: Vec<u16> = counts.iter().map(|_| free_port()).collect::<Result<_>>()?;
    let (ereg, line) = match auth {
        Some(_) => (
            r#"      <ereg regexp="Digest .*" search_in="hdr" header="X-Auth:" check_it="true" assign_to="auth"/>"#,
            "      Authorization: [$auth]\n",
        ),
        None => ("", ""),
    };
    let scenario = INBOX
        .replace("@REGISTRAR@", &target.to_string())
        .replace("@AUTH_EREG@\n", &format!("{ereg}\n"))
        .replace("@AUTH@\n", line);
    // Each endpoint: its users' registrations and all their texts.
    let calls: Vec<usize> = counts.iter().map(|c| c * (1 + per_user as usize)).collect();
    let rsa = target.to_string();
    let eps = Endpoints::start_with(dir, &ports, &calls, pin, &scenario, &["-rsa", &rsa]).await?;
    let kick = UdpSocket::bind("127.0.0.1:0")?;
    let local = kick.local_addr()?;
    let cpu0 = cpu();
    let t0 = Instant::now();
    let mut i = 0;
    for (&port, &count) in ports.iter().zip(&counts) {
        for _ in 0..count {
            let x_auth = auth.map(|a| format!("X-Auth: {}\r\n", a[i])).unwrap_or_default();
            let msg = format!(
                "KICK sip:endpoint@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKkick{i}\r\n\
From: <sip:bench@{local}>;tag=k{i}\r\nTo: <sip:endpoint@127.0.0.1:{port}>\r\nCall-ID: kick-{i}@bench\r\nCSeq: 1 KICK\r\n\
X-User: {}\r\n{x_auth}Content-Length: 0\r\n\r\n",
                users[i]
            );
            kick.send_to(msg.as_bytes(), ("127.0.0.1", port))?;
            i += 1;
        }
    }
    // Bounded: at most a minute plus a millisecond per text.
    let deadline = t0 + Duration::from_secs(60) + Duration::from_millis(rows.len() as u64);
    let (done, answered) = eps.finish(deadline).await;
    let deliver_cpu = cpu() - cpu0;
    Ok(Texts {
        stored: s.successful,
        store_failed: s.failed,
        store_retrans: s.retransmissions,
        store_s: s.seconds,
        store_cpu,
        // Each endpoint's calls are its registrations, then the texts.
        delivered: answered.saturating_sub(users.len() as u64),
        deliver_s: done.unwrap_or(deadline).duration_since(t0).as_secs_f64(),
        all: done.is_some(),
        deliver_cpu,
    })
}

/// A fresh nonce from the region (its nonces are stateless, so one
/// serves every registration of the run).
fn nonce(registrar: SocketAddr, user: &str) -> Result<String> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let local = sock.local_addr()?;
    let probe = format!(
        "REGISTER sip:{registrar} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe;rport\r\nFrom: <sip:{user}@{registrar}>;tag=p\r\n\
To: <sip:{user}@{registrar}>\r\nCall-ID: probe@bench\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(probe.as_bytes(), registrar)?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf)?;
    let m = peerdial_sip::Message::parse(&buf[..n])?;
    m.header("WWW-Authenticate")
        .and_then(challenge_nonce)
        .with_context(|| format!("the region did not challenge a REGISTER: {}", String::from_utf8_lossy(&buf[..n])))
}

pub async fn msilo(users: u32, per_user: u32, inflight: u32, endpoints: u32, pin: bool) -> Result<()> {
    let pin = pin && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if pin {
        pin_self(SERVER_CORE)?;
    }
    let dir = tempfile::tempdir()?;
    let region = start_region(&dir.path().join("region"), |c| c.keepalive = 3600).await?;
    eprintln!("provisioning {users} numbers…");
    let creds = provision_many(region.endpoints.http, users).await?;
    let sip = region.endpoints.sip;
    let nonce = nonce(sip, &creds.first().context("no numbers")?.0)?;
    let realm = region.shared.realm.clone();
    let names: Vec<String> = creds.iter().map(|(u, _)| u.clone()).collect();
    let auth: Vec<String> = creds
        .iter()
        .map(|(u, p)| Credentials::respond(u, &realm, p, Algorithm::Md5, "REGISTER", &format!("sip:{sip}"), &nonce).to_header())
        .collect();
    eprintln!("peerdial: storing and delivering {} texts…", users * per_user);
    let ours = texts(
        &dir.path().join("ours"),
        sip,
        &names,
        Some(&auth),
        per_user,
        inflight,
        endpoints as usize,
        pin,
        || cpu_of("self").0,
    )
    .await;
    region.shutdown().await;
    let ours = ours.context("peerdial's mailbox")?;

    let kdir = dir.path().join("kamailio");
    std::fs::create_dir_all(&kdir)?;
    msilo_db(&kdir)?;
    let port = free_port()?;
    let kam = Kamailio::start_cfg(&kdir, pin, port, &msilo_cfg(&kdir, port, kamailio_mpath()?)).await?;
    eprintln!("Kamailio msilo: storing and delivering {} texts…", users * per_user);
    let pid = kam.pid;
    let theirs = texts(
        &dir.path().join("theirs"),
        kam.addr,
        &names,
        None,
        per_user,
        inflight,
        endpoints as usize,
        pin,
        || cpu_of_tree(pid),
    )
    .await;
    kam.stop().await;
    let theirs = theirs.context("Kamailio's msilo")?;

    let sent = (users * per_user) as u64;
    println!("| server | texts sent | stored (202) | failed | retransmissions | stored/s | CPU µs per store | delivered | lost | seconds to deliver all | delivered/s | CPU µs per delivery |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, t) in [("peerdial region (SQLite)", &ours), ("Kamailio msilo (SQLite)", &theirs)] {
        println!(
            "| {name} | {sent} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {:.0} | {:.0} |",
            t.stored,
            t.store_failed,
            t.store_retrans,
            t.stored_rate(),
            t.store_cpu * 1e6 / t.stored.max(1) as f64,
            t.delivered,
            sent.saturating_sub(t.delivered),
            if t.all {
                format!("{:.2}", t.deliver_s)
            } else {
                format!("{:.2} (deadline; not all arrived)", t.deliver_s)
            },
            t.delivered_rate(),
            t.deliver_cpu * 1e6 / t.delivered.max(1) as f64,
        );
    }
    println!(
        "\n{users} users × {per_user} texts, {inflight} MESSAGEs in flight, {endpoints} endpoints: stored/s ratio {:.2}, delivered/s ratio {:.2} (peerdial / msilo)",
        ours.stored_rate() / theirs.stored_rate(),
        ours.delivered_rate() / theirs.delivered_rate()
    );
    let clean = |t: &Texts| t.stored == sent && t.delivered == sent;
    println!(
        "target (at least msilo's rates, zero lost): {}",
        if clean(&ours) && ours.stored_rate() >= theirs.stored_rate() && ours.delivered_rate() >= theirs.delivered_rate() {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// A mu-law WAV of `seconds` of an 800 Hz tone.
fn ulaw_tone(path: &Path, seconds: u32) -> Result<()> {
    let ok = std::process::Command::new(tool("sox")?)
        .args(["-n", "-r", "8000", "-c", "1", "-e", "u-law"])
        .arg(path)
        .args(["synth", &seconds.to_string(), "sine", "800"])
        .status()?
        .success();
    if !ok {
        bail!("sox could not make {}", path.display());
    }
    Ok(())
}

pub async fn deposits(steps: Vec<u32>, seconds: u32, rate: u32, pin: bool) -> Result<()> {
    let pin = pin && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if pin {
        pin_self(SERVER_CORE)?;
    }
    let dir = tempfile::tempdir()?;
    let most = steps.iter().copied().max().unwrap_or(0);
    let region = start_region(&dir.path().join("region"), |c| {
        c.keepalive = 3600;
        c.voice_max_secs = seconds + 60;
    })
    .await?;
    let run = async {
        eprintln!("provisioning {most} numbers…");
        let numbers: Vec<String> = provision_many(region.endpoints.http, most)
            .await?
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        let scenario = DEPOSIT.replace("@PAUSE_MS@", &(seconds as u64 * 1000 + 500).to_string());
        let mut rows = Vec::new();
        for (k, &c) in steps.iter().enumerate() {
            let sub = dir.path().join(format!("step-{k}"));
            let sipp_dir = sub.join("sipp-0");
            std::fs::create_dir_all(&sipp_dir)?;
            ulaw_tone(&sipp_dir.join("deposit-ulaw.wav"), seconds)?;
            let totals = &region.shared.mailbox.totals;
            let before = totals.snapshot();
            let (cpu0, sipp0) = (cpu_of("self").0, cpu_of("self").1);
            let t0 = Instant::now();
            eprintln!("{c} concurrent deposits of {seconds} s…");
            let s = run_sipp(
                &sub,
                &scenario,
                &numbers[..c as usize],
                region.endpoints.sip,
                rate,
                Load { instances: 1, limit: c },
                pin,
            )
            .await?;
            // The last recordings are stored after their BYE's answer.
            let wait_until = Instant::now() + Duration::from_secs(30);
            while totals.snapshot()[0] < before[0] + c as u64 && Instant::now() < wait_until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let wall = t0.elapsed().as_secs_f64();
            let (cpu, sipp_cpu) = (cpu_of("self").0 - cpu0, cpu_of("self").1 - sipp0);
            let after = totals.snapshot();
            let d: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
            let expected = c as u64 * seconds as u64 * 50;
            let recorded_s = d[5] as f64 / 8000.0;
            rows.push(format!(
                "| {c} | {} | {} | {} | {expected} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.0} | {:.0} |",
                s.successful,
                s.failed,
                d[0],
                d[1],
                expected.saturating_sub(d[1]),
                d[2],
                d[3],
                d[4],
                recorded_s,
                cpu,
                cpu * 1e3 / recorded_s.max(1e-9),
                cpu * 100.0 / wall,
                sipp_cpu * 100.0 / wall,
            ));
        }
        anyhow::Ok(rows)
    };
    let rows = run.await;
    region.shutdown().await;
    let rows = rows?;
    println!("| concurrent deposits | calls ok | failed | recordings | RTP packets sent | received | not received | frames lost at playout | late | dropped (bursts) | recorded s (with 0.5 s tail each) | region CPU s | CPU ms per recorded s | region CPU % of one core (whole step) | SIPp CPU % |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!(
        "\nG.711 (PCMU, 20 ms), {seconds} s per deposit, calls started at {rate}/s (all concurrent once the first has streamed {:.1} s at the largest step)",
        most as f64 / rate as f64
    );
    Ok(())
}
