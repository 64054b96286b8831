//! `peerdial bench calls` and `peerdial bench media`: call setup time from
//! "dial" to 180 and 200 with the lookup through unbound, with and without
//! signed caller identity, next to SIPp calling SIPp with no lookup; and the
//! media engine's CPU per call.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peerdial_media::audio::tone;
use peerdial_media::sdp::{CodecKind, Direction, Negotiated};
use peerdial_media::{Channel, MediaSession};
use peerdial_number::Number;
use peerdial_phone::provision::Identity;
use peerdial_phone::resolve::{lookup, Lookup};
use peerdial_sip::call::{Call, CallEvent, Local};
use peerdial_sip::Message;
use tokio::net::UdpSocket;

use crate::bench_tools::{free_port, percentile, start_region, tool};

/// unbound with a stub zone for the area and a local control socket (to
/// flush its cache for the cold-cache runs).
struct Unbound {
    child: tokio::process::Child,
    conf: std::path::PathBuf,
    addr: SocketAddr,
}

impl Unbound {
    async fn start(dir: &Path, zone: &str, dns: SocketAddr) -> Result<Unbound> {
        let port = free_port()?;
        let conf = dir.join("unbound.conf");
        std::fs::write(&conf, crate::peer_conf::unbound(dir, port, &[(zone, dns)], true))?;
        let child = tokio::process::Command::new(tool("unbound")?)
            .args(["-d", "-c", conf.to_str().context("path")?])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Unbound { child, conf, addr })
    }

    /// `flush NAME`, or with `zone` set `flush_zone NAME` (everything
    /// cached under it, delegations included).
    async fn flush(&self, name: &str, zone: bool) -> Result<()> {
        let st = tokio::process::Command::new(tool("unbound-control")?)
            .args([
                "-c",
                self.conf.to_str().context("path")?,
                if zone { "flush_zone" } else { "flush" },
                name,
            ])
            .stdout(Stdio::null())
            .status()
            .await?;
        if !st.success() {
            bail!("unbound-control flush failed");
        }
        Ok(())
    }
}

/// Our softphone as a callee process that answers at once.
fn start_callee(dir: &Path, http: SocketAddr, resolver: SocketAddr) -> Result<(std::process::Child, Number, SocketAddr)> {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "phone",
            "--region",
            &format!("http://{http}"),
            "--data",
            dir.join("callee").to_str().context("path")?,
        ])
        .args([
            "--mac",
            "02:00:00:00:be:01",
            "--sip",
            "127.0.0.1:0",
            "--resolver",
            &resolver.to_string(),
            "--auto-answer",
            "--answer-after",
            "0",
        ])
        .env("PEERDIAL_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            bail!("the callee phone exited");
        }
        if line.starts_with("registered ") {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    let number = Number::parse(&field("number").context("number")?)?;
    let sip: SocketAddr = field("contact").context("contact")?.parse()?;
    Ok((child, number, sip))
}

/// One call from "dial": lookup (unless `target` is given), INVITE, 180,
/// 200, ACK, BYE. Returns ms to 180 (if any) and to 200. With `caller`, the
/// call is signed as the phone does it: the PASSporT is asked of the
/// caller's region while the lookup runs, and the callee checks it (through
/// the caller region's key in DNS) before it rings.
async fn one_call(
    sock: &UdpSocket,
    media_port: u16,
    resolver: SocketAddr,
    number: Number,
    target: Option<SocketAddr>,
    caller: Option<&Identity>,
) -> Result<(Option<f64>, f64)> {
    let t0 = Instant::now();
    let found = async {
        Ok::<_, anyhow::Error>(match target {
            Some(a) => (format!("sip:{}@{a}", number.digits()), a),
            None => match lookup(resolver, number, "peerdial.internal").await? {
                Lookup::Found { uri, .. } => {
                    let a = peerdial_sip::call::uri_addr(&uri).context("callee URI without an address")?;
                    (uri, a)
                }
                Lookup::NoSuchNumber => bail!("{number} is not in DNS"),
            },
        })
    };
    let signed = async {
        match caller {
            Some(id) => Some(peerdial_phone::caller_id::passport(id, number).await),
            None => None,
        }
    };
    let (found, signed) = tokio::join!(found, signed);
    let (uri, addr) = found?;
    let mut headers = Vec::new();
    if let Some(token) = signed {
        headers.push(("Identity".to_string(), token.context("PASSporT from the caller's region")?));
    }
    let user = match caller {
        Some(id) => Number::parse(&id.number)?.digits(),
        None => "bench".to_string(),
    };
    let local = Local {
        uri: format!("sip:{user}@{}", sock.local_addr()?),
        addr: sock.local_addr()?,
        user_agent: "peerdial-bench".into(),
    };
    let offer = peerdial_media::sdp::offer(1, "127.0.0.1".parse()?, media_port, &[CodecKind::Pcmu]).to_text("127.0.0.1".parse()?);
    let clock = Instant::now();
    let now = || clock.elapsed().as_millis() as u64;
    let mut call = Call::outgoing_with(local, &uri, addr, offer.into_bytes(), headers, 10_000, now());
    let (mut ringing, mut answered) = (None, None);
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(t) = call.poll_transmit() {
            sock.send_to(&t.data, t.to).await?;
        }
        while let Some(e) = call.poll_event() {
            match e {
                CallEvent::Ringing => ringing = Some(t0.elapsed().as_secs_f64() * 1000.0),
                CallEvent::Answered { .. } => {
                    answered = Some(t0.elapsed().as_secs_f64() * 1000.0);
                    call.hangup(now());
                }
                CallEvent::Ended(_) => {
                    while let Some(t) = call.poll_transmit() {
                        sock.send_to(&t.data, t.to).await?;
                    }
                    return answered.map(|a| (ringing, a)).context("the call ended unanswered");
                }
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!("call did not finish in 10 s");
        }
        let wait = call.poll_timeout().map(|t| t.saturating_sub(now())).unwrap_or(100).min(100);
        if let Ok(Ok((n, from))) = tokio::time::timeout(Duration::from_millis(wait), sock.recv_from(&mut buf)).await {
            if let Ok(m) = Message::parse(&buf[..n]) {
                call.handle(&m, from, now());
            }
        }
        call.handle_timeout(now());
    }
}

fn row(name: &str, v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "| {name} | {:.2} | {:.2} | {:.2} |",
        percentile(v, 0.5),
        percentile(v, 0.99),
        v[v.len() - 1]
    )
}

pub async fn calls(n: u32, cross_region: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Across regions: a top and the callee's region, each on port 53 of its
    // own address (resolvers ask NS on port 53), and unbound walking down
    // from the top. Otherwise unbound asks the area's region directly.
    let mut top = None;
    let region = if cross_region {
        let mut tcfg = peerdial_top::TopConfig::new(dir.path().join("top"), "bench".into());
        tcfg.dns = "127.55.0.1:53".parse()?;
        tcfg.http = "127.55.0.1:0".parse()?;
        let t = peerdial_top::Top::start(tcfg)
            .await
            .context("the top on 127.55.0.1:53 (needs root)")?;
        let url = format!("http://{}", t.endpoints.http);
        let r = start_region(&dir.path().join("region"), |c| {
            c.ttl = 300;
            c.dns = "127.55.0.3:53".parse().expect("addr");
            c.top = Some(url);
            c.join_token = Some("bench".into());
        })
        .await?;
        for _ in 0..100 {
            if !t.children().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        top = Some(t);
        r
    } else {
        start_region(dir.path(), |c| c.ttl = 300).await?
    };
    let zone = region.shared.zone.read().expect("zone lock").origin().to_string();
    let unbound = match &top {
        Some(t) => Unbound::start(dir.path(), "peerdial.internal.", t.endpoints.dns).await?,
        None => Unbound::start(dir.path(), &zone, region.endpoints.dns).await?,
    };
    let (mut callee, number, callee_sip) = start_callee(dir.path(), region.endpoints.http, unbound.addr)?;
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let media = UdpSocket::bind("127.0.0.1:0").await?;
    let media_port = media.local_addr()?.port();
    tokio::spawn(async move {
        let mut b = [0u8; 2048];
        while media.recv_from(&mut b).await.is_ok() {}
    });
    let name = number.enum_name("peerdial.internal");
    // A provisioned caller, for the signed runs: its region signs, the
    // callee finds that region's key in DNS (cached for the TXT's TTL).
    let region_url = format!("http://{}", region.endpoints.http);
    let caller = peerdial_phone::provision::provision(&region_url, "02:00:00:00:be:02", "127.0.0.1", None).await?;
    let mut results = Vec::new();
    for (cold, signed) in [(false, false), (false, true), (true, false), (true, true)] {
        let (mut r180, mut r200) = (Vec::new(), Vec::new());
        let id = signed.then_some(&caller);
        one_call(&sock, media_port, unbound.addr, number, None, id).await?; // warms the caches
        for _ in 0..n {
            if cold {
                match top {
                    Some(_) => unbound.flush("peerdial.internal.", true).await?,
                    None => unbound.flush(&name, false).await?,
                }
            }
            let (a, b) = one_call(&sock, media_port, unbound.addr, number, None, id).await?;
            r180.extend(a);
            r200.push(b);
        }
        results.push((cold, signed, r180, r200));
    }
    // Our caller straight at the callee's address, no lookup.
    let mut direct = Vec::new();
    for _ in 0..n {
        direct.push(one_call(&sock, media_port, unbound.addr, number, Some(callee_sip), None).await?.1);
    }
    let _ = callee.kill();
    let _ = callee.wait();

    // The floor: SIPp's UAC calling SIPp's UAS, no lookup, one call at a time.
    let uas_port = free_port()?;
    let mut uas = tokio::process::Command::new(tool("sipp")?)
        .current_dir(dir.path())
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-mp",
            &free_port()?.to_string(),
        ])
        .args([
            "-cp",
            &free_port()?.to_string(),
            "-nostdin",
            "-m",
            &n.to_string(),
            "-timeout",
            "120s",
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = tokio::process::Command::new(tool("sipp")?)
        .current_dir(dir.path())
        .args([
            "-sn",
            "uac",
            &format!("127.0.0.1:{uas_port}"),
            "-i",
            "127.0.0.1",
            "-p",
            &free_port()?.to_string(),
        ])
        .args([
            "-mp",
            &free_port()?.to_string(),
            "-cp",
            &free_port()?.to_string(),
            "-nostdin",
            "-m",
            &n.to_string(),
        ])
        .args(["-l", "1", "-r", "200", "-trace_rtt", "-rtt_freq", "1", "-timeout", "120s"])
        .stdout(Stdio::null())
        .status()
        .await?;
    let _ = uas.kill().await;
    if !st.success() {
        bail!("SIPp UAC → UAS failed");
    }
    let csv = std::fs::read_dir(dir.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("_rtt.csv"))
        .context("no SIPp rtt file")?;
    let mut sipp: Vec<f64> = std::fs::read_to_string(csv)?
        .lines()
        .skip(1)
        .filter_map(|l| l.split(';').nth(1)?.trim().parse().ok())
        .collect();
    region.shutdown().await;
    if let Some(t) = top {
        t.shutdown().await;
    }
    drop(unbound.child);

    println!("| dial → (ms, {n} calls, loopback, 2 cores) | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (cold, signed, mut r180, mut r200) in results {
        let cache = match (cold, cross_region) {
            (false, false) => "warm cache",
            (true, false) => "cold cache",
            (false, true) => "across regions, warm cache",
            (true, true) => "across regions from the top, cold cache",
        };
        let how = if signed {
            "signed (PASSporT asked during the lookup, checked before ringing)"
        } else {
            "unsigned"
        };
        for (what, v) in [("180 Ringing", &mut r180), ("200 OK", &mut r200)] {
            println!(
                "{}",
                row(&format!("peerdial → peerdial, {how}, lookup via unbound ({cache}): {what}"), v)
            );
        }
    }
    println!("{}", row("peerdial → peerdial, no lookup: 200 OK", &mut direct));
    println!(
        "{} (SIPp reports whole ms)",
        row("SIPp UAC → SIPp UAS, no lookup (the floor): 200 OK", &mut sipp)
    );
    Ok(())
}

/// CPU time of the media engine per call: `calls` two-way calls of
/// `seconds` simulated seconds each (encode, packetise, parse, jitter
/// buffer, decode, both directions), on one thread.
pub fn media(calls: u32, seconds: u32) -> Result<()> {
    println!("| codec | calls × seconds | CPU ms per call-second | % of one core per call | calls per core |");
    println!("|---|---|---|---|---|");
    for codec in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Opus] {
        let rate = codec.clock_rate();
        let neg = |port: u16| Negotiated {
            codec,
            pt: if codec == CodecKind::Opus {
                111
            } else if codec == CodecKind::Pcmu {
                0
            } else {
                8
            },
            dtmf_pt: Some(101),
            remote_rtp: SocketAddr::from(([127, 0, 0, 1], port)),
            remote_rtcp: SocketAddr::from(([127, 0, 0, 1], port + 1)),
            ptime: 20,
            direction: Direction::SendRecv,
        };
        let src = tone(440.0, rate, (rate * seconds) as usize, 8000.0);
        let mut pairs: Vec<(MediaSession, MediaSession)> = (0..calls)
            .map(|_| {
                Ok((
                    MediaSession::new(neg(6000), src.clone(), false, "a", 0)?,
                    MediaSession::new(neg(4000), src.clone(), false, "b", 0)?,
                ))
            })
            .collect::<Result<_>>()?;
        let (a_addr, b_addr) = (SocketAddr::from(([127, 0, 0, 1], 4000)), SocketAddr::from(([127, 0, 0, 1], 6000)));
        let start = Instant::now();
        for now in (0..seconds as u64 * 1000).step_by(20) {
            for (a, b) in &mut pairs {
                a.handle_timeout(now)?;
                b.handle_timeout(now)?;
                while let Some(t) = a.poll_transmit() {
                    if t.channel == Channel::Rtp {
                        b.handle_rtp(&t.data, a_addr);
                    }
                }
                while let Some(t) = b.poll_transmit() {
                    if t.channel == Channel::Rtp {
                        a.handle_rtp(&t.data, b_addr);
                    }
                }
            }
        }
        let cpu_ms = start.elapsed().as_secs_f64() * 1000.0;
        // Each pair is two phones' engines: one call at each end.
        let per_call_second = cpu_ms / (2.0 * calls as f64 * seconds as f64);
        println!(
            "| {} | {calls} × {seconds} s | {per_call_second:.3} | {:.2} % | {:.0} |",
            codec.name(),
            per_call_second / 10.0,
            1000.0 / per_call_second
        );
    }
    Ok(())
}
