//! `peerdial bench dial`: third-party call setup (RFC 3725 flow I), from
//! the controller starting a call to both talkers connected, over
//! loopback UDP with two SIPp UASes (`-sn uas`, auto-answering) as the
//! talkers. The controller is `peerdial_sip::pairing::Pairing` driven the
//! way the top's controller task drives it (one UDP socket, Call-ID
//! matching, its timers); each call is then hung up by the "dialer" and
//! waited out before the next. Then the same from the dialer's side,
//! through a real top's HTTP API ([`dial_via_api`]): the request, the
//! directory's match, the DNS lookups of both talkers' contacts, the
//! hand-off to the region's controller (both talkers are its numbers) and
//! the progress API (relayed from the region), with 50 signed-in users
//! taking turns (the top allows each 10 calls a minute).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use peerdial_sip::call::Local;
use peerdial_sip::pairing::{Leg, Pairing, Progress, Timeouts};
use peerdial_sip::Message;
use tokio::net::UdpSocket;

use crate::bench_tools::{free_port, percentile, tool};

/// Starts a SIPp UAS answering `calls` calls on `port`.
fn uas(dir: &std::path::Path, port: u16, calls: usize) -> Result<tokio::process::Child> {
    Ok(tokio::process::Command::new(tool("sipp")?)
        .current_dir(dir)
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_port()?.to_string(), "-cp", &free_port()?.to_string()])
        .args(["-nostdin", "-m", &calls.to_string(), "-timeout", "300s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// Runs one pairing until `until` says stop (or 10 s pass); the time of
/// the first `Progress` that `until` accepts.
async fn drive(sock: &UdpSocket, p: &mut Pairing, epoch: Instant, until: impl Fn(&Progress, &Pairing) -> bool) -> Result<Option<Instant>> {
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(t) = p.poll_transmit() {
            sock.send_to(&t.data, t.to).await?;
        }
        while let Some(ev) = p.poll_progress() {
            if let Progress::Failed { reason, .. } = &ev {
                bail!("a call failed: {reason}");
            }
            if until(&ev, p) {
                return Ok(Some(Instant::now()));
            }
        }
        if p.is_done() {
            return Ok(None);
        }
        let now = epoch.elapsed().as_millis() as u64;
        let wake = p
            .poll_timeout()
            .map_or(Duration::from_millis(50), |at| Duration::from_millis(at.saturating_sub(now)));
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("a call did not settle in 10 s");
        }
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (n, from) = r?;
                if let Ok(m) = Message::parse(&buf[..n]) {
                    p.handle(&m, from, epoch.elapsed().as_millis() as u64);
                }
            }
            _ = tokio::time::sleep(wake.min(left)) => p.handle_timeout(epoch.elapsed().as_millis() as u64),
        }
    }
}

pub(crate) async fn dial(calls: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (pa, pb) = (free_port()?, free_port()?);
    let mut a = uas(dir.path(), pa, calls)?;
    let mut b = uas(dir.path(), pb, calls)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let local = Local {
        uri: format!("sip:peerdial@{}", sock.local_addr()?),
        addr: sock.local_addr()?,
        user_agent: "peerdial-bench".into(),
    };
    let leg = |port: u16| Leg {
        uri: format!("sip:talker@127.0.0.1:{port}"),
        next_hop: format!("127.0.0.1:{port}").parse().expect("literal"),
    };
    let epoch = Instant::now();
    let mut setup = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        let mut p = Pairing::start(
            local.clone(),
            leg(pa),
            leg(pb),
            Timeouts::default(),
            epoch.elapsed().as_millis() as u64,
        );
        let Some(connected) = drive(&sock, &mut p, epoch, |ev, _| *ev == Progress::Connected).await? else {
            bail!("a call ended before it connected");
        };
        setup.push((connected - start).as_secs_f64() * 1000.0);
        p.cancel(epoch.elapsed().as_millis() as u64);
        drive(&sock, &mut p, epoch, |_, _| false).await?;
    }
    let _ = a.kill().await;
    let _ = b.kill().await;
    setup.sort_by(f64::total_cmp);
    println!("third-party call setup, {calls} calls one at a time, two SIPp UAS talkers on loopback UDP:");
    println!(
        "  controller start → both talkers connected: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&setup, 0.5),
        percentile(&setup, 0.99),
        setup.last().copied().unwrap_or_default()
    );
    for (via_country, how) in [(false, "the region joined the top"), (true, "the region below a country server")] {
        let api = dial_via_api(calls.min(API_USERS * 10), via_country).await?;
        println!(
            "  dialer's POST /api/v1/calls → progress says connected, {how} ({} calls, {API_USERS} users, the top's HTTP API, directory and DNS lookups included): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            api.len(),
            percentile(&api, 0.5),
            percentile(&api, 0.99),
            api.last().copied().unwrap_or_default()
        );
    }
    Ok(())
}

/// Users in the API run: the top allows each 10 call requests a minute.
const API_USERS: usize = 50;

/// One HTTP request to `base`; its status and JSON body.
async fn api(method: &str, base: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Result<(u16, serde_json::Value)> {
    let (s, text) = peerdial_net::http_client::request_with(method, base, path, headers, body).await?;
    Ok((s, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)))
}

/// A fresh PASSporT for `user` vouching for itself (the region's
/// `POST /api/v1/identity/passport`, with the device's credentials).
async fn passport(region: &str, (user, password): &(String, String)) -> Result<String> {
    let basic = crate::bench_tools::basic(user, password);
    let body = format!(r#"{{"dest": "{user}"}}"#);
    let (s, j) = api(
        "POST",
        region,
        "/api/v1/identity/passport",
        &[("Authorization", &basic)],
        Some(&body),
    )
    .await?;
    match (s, j["identity"].as_str()) {
        (200, Some(t)) => Ok(t.to_string()),
        _ => bail!("no PASSporT for {user}: {s} {j}"),
    }
}

/// The same setup measured from the dialer's side: `POST /api/v1/calls`
/// on a real top (the directory's match, each talker's contact looked up
/// in the region's DNS, the controller) until the progress API says
/// `connected`, then `DELETE` and wait for the end. 50 signed-in users
/// take turns (the top's limit is 10 requests a minute each); each has
/// the same talker, a number whose registered contact is SIPp UAS A; the
/// callee's contact is SIPp UAS B. `via_country`: the region joins a
/// country server below the top, which passes the hand-off on.
pub(crate) async fn dial_via_api(calls: usize, via_country: bool) -> Result<Vec<f64>> {
    use peerdial_top::{Top, TopConfig};
    if calls > API_USERS * 10 {
        bail!("at most {} calls through the API (the top's per-user limit)", API_USERS * 10);
    }
    let dir = tempfile::tempdir()?;
    let mut tc = TopConfig::new(dir.path().join("top"), "bench-join".into());
    tc.dns = "127.0.0.1:0".parse()?;
    tc.http = "127.0.0.1:0".parse()?;
    tc.sip = "127.0.0.1:0".parse()?;
    tc.rendezvous = None;
    let top = Top::start(tc).await?;
    let top_url = format!("http://{}", top.endpoints.http);
    let country = match via_country {
        true => {
            let mut cc = TopConfig::new(dir.path().join("country"), "bench-join".into());
            cc.dns = "127.0.0.1:0".parse()?;
            cc.http = "127.0.0.1:0".parse()?;
            cc.sip = "127.0.0.1:0".parse()?;
            cc.rendezvous = None;
            cc.prefix = "886".into();
            cc.parent = Some(top_url.clone());
            cc.parent_token = Some("bench-join".into());
            Some(Top::start(cc).await?)
        }
        false => None,
    };
    let t = match &country {
        Some(c) => format!("http://{}", c.endpoints.http),
        None => top_url.clone(),
    };
    let joined_at = t.clone();
    let region = crate::bench_tools::start_region(&dir.path().join("region"), move |c| {
        c.top = Some(t);
        c.join_token = Some("bench-join".into());
        // SIPp answers no keep-alive: keep the contacts published.
        c.keepalive = 3600;
    })
    .await?;
    let region_url = format!("http://{}", region.endpoints.http);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !api("GET", &top_url, "/api/v1/regions", &[], None)
        .await?
        .1
        .to_string()
        .contains("886")
        || !api("GET", &joined_at, "/api/v1/regions", &[], None)
            .await?
            .1
            .to_string()
            .contains("886-02")
    {
        if Instant::now() > deadline {
            bail!("the region never joined the top");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let devices = crate::bench_tools::provision_many(region.endpoints.http, API_USERS as u32 + 2).await?;
    let (talker, callee) = (&devices[API_USERS], &devices[API_USERS + 1]);
    // Each talker's contact: registered from a port that SIPp then takes.
    let mut uases = Vec::new();
    for (i, dev) in [talker, callee].into_iter().enumerate() {
        let port = {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
            sock.set_read_timeout(Some(Duration::from_secs(5)))?;
            crate::bench_tools::register_once(&sock, region.endpoints.sip, &dev.0, &dev.1, &region.shared.realm, 9_000 + i as u32)?;
            sock.local_addr()?.port()
        };
        uases.push(uas(dir.path(), port, calls)?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tokens = Vec::new();
    for user in &devices[..API_USERS] {
        let id = passport(&region_url, user).await?;
        let h = [("Identity", id.as_str()), ("X-Peerdial-From", user.0.as_str())];
        let (s, j) = api("POST", &top_url, "/api/v1/session", &h, None).await?;
        let token = match (s, j["token"].as_str()) {
            (201, Some(t)) => format!("Bearer {t}"),
            _ => bail!("no session for {}: {s} {j}", user.0),
        };
        let id = passport(&region_url, talker).await?;
        let h = [
            ("Authorization", token.as_str()),
            ("Identity", id.as_str()),
            ("X-Peerdial-From", talker.0.as_str()),
        ];
        let body = format!(r#"{{"name": "desk", "number": "{}"}}"#, talker.0);
        let (s, j) = api("POST", &top_url, "/api/v1/talkers", &h, Some(&body)).await?;
        if s != 201 {
            bail!("the talker was not added: {s} {j}");
        }
        tokens.push(token);
    }
    let body = format!(r#"{{"talker": "desk", "callee": "{}"}}"#, callee.0);
    let mut setup = Vec::with_capacity(calls);
    for i in 0..calls {
        let h = [("Authorization", tokens[i % API_USERS].as_str())];
        let start = Instant::now();
        let (s, j) = api("POST", &top_url, "/api/v1/calls", &h, Some(&body)).await?;
        let Some(id) = j["id"].as_u64().filter(|_| s == 201) else {
            bail!("call {i} was refused: {s} {j}");
        };
        let path = format!("/api/v1/calls/{id}");
        // Follow the progress until `connected`, then until the end.
        let mut after = 0;
        let mut connected = false;
        loop {
            let (_, j) = api("GET", &top_url, &format!("{path}?after={after}&wait=5"), &h, None).await?;
            for ev in j["events"].as_array().into_iter().flatten() {
                match ev["event"].as_str() {
                    Some("connected") if !connected => {
                        setup.push(start.elapsed().as_secs_f64() * 1000.0);
                        connected = true;
                        api("DELETE", &top_url, &path, &h, None).await?;
                    }
                    Some("failed") if !connected => bail!("call {i} failed: {ev}"),
                    _ => {}
                }
            }
            after = j["next"].as_u64().unwrap_or(after as u64) as usize;
            if j["over"] == true {
                break;
            }
        }
    }
    for mut u in uases {
        let _ = u.kill().await;
    }
    region.shutdown().await;
    if let Some(c) = country {
        c.shutdown().await;
    }
    top.shutdown().await;
    setup.sort_by(f64::total_cmp);
    Ok(setup)
}
