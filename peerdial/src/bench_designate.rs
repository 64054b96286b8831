//! `peerdial bench designate`: a top and a switch in this process, the
//! switch's device registered over UDP with digest; `--clients` tasks ask
//! the top `POST /api/v1/calls/designate` as the switch (Bearer token) for
//! `--seconds`. Each request is timed from sending to the caller holding
//! the switch's address and key: the top checks the token, finds the
//! callee's switch, asks it to accept over HTTP (a new key, the queue
//! place) and answers. One connection per request on both hops, as the
//! phone and the top do today.
//!
//! Not a test: nothing here asserts a time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peerdial_sip::digest::{challenge_nonce, Algorithm, Credentials};
use peerdial_switch::{devices, Switch, SwitchConfig};
use peerdial_top::{Top, TopConfig};

use crate::bench_tools::percentile;

const CALLER: &str = "886-02-99990001";
const CALLEE: &str = "886-02-99990002";

/// Registers `number` at the switch with digest over UDP.
async fn register(sip: std::net::SocketAddr, number: &str, password: &str) -> Result<()> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let local = sock.local_addr()?;
    let user: String = number.chars().filter(char::is_ascii_digit).collect();
    let req = |cseq: u32, auth: Option<String>| {
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        format!(
            "REGISTER sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKb{cseq};rport\r\nMax-Forwards: 70\r\n\
From: <sip:{user}@{sip}>;tag=b1\r\nTo: <sip:{user}@{sip}>\r\nCall-ID: bench-{user}\r\nCSeq: {cseq} REGISTER\r\n\
Contact: <sip:{user}@{local}>\r\nExpires: 3600\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    let mut buf = vec![0u8; 4096];
    sock.send_to(req(1, None).as_bytes(), sip).await?;
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    let challenge = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .context("no challenge from the switch")?;
    let nonce = challenge_nonce(challenge).context("no nonce")?;
    let auth = Credentials::respond(
        &user,
        devices::REALM,
        password,
        Algorithm::Md5,
        "REGISTER",
        &format!("sip:{sip}"),
        &nonce,
    );
    sock.send_to(req(2, Some(auth.to_header())).as_bytes(), sip).await?;
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf[..n]);
    if !text.starts_with("SIP/2.0 200") {
        bail!(
            "the switch did not register the bench device: {}",
            text.lines().next().unwrap_or("")
        );
    }
    // Keep the binding's socket alive for the run.
    std::mem::forget(sock);
    Ok(())
}

pub async fn designate(seconds: u32, clients: u32) -> Result<()> {
    if seconds == 0 || clients == 0 {
        bail!("--seconds and --clients must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let (top_dir, sw_dir) = (dir.path().join("top"), dir.path().join("switch"));
    let token = peerdial_top::designate::add_switch(&top_dir, "bench")?;
    let mut tc = TopConfig::new(top_dir, "bench-join".into());
    tc.dns = "127.0.0.1:0".parse()?;
    tc.http = "127.0.0.1:0".parse()?;
    tc.rendezvous = None;
    let top = Top::start(tc).await.context("starting the top")?;
    let cloud = format!("http://{}", top.endpoints.http);
    for n in [CALLER, CALLEE] {
        devices::add(&sw_dir, peerdial_number::Number::parse(n)?, "bench-pw")?;
    }
    let mut sc = SwitchConfig::new(cloud.clone(), token.clone(), sw_dir);
    sc.sip = "127.0.0.1:0".parse()?;
    sc.http = "127.0.0.1:0".parse()?;
    let sw = Switch::start(sc).await.context("starting the switch")?;
    register(sw.sip, CALLEE, "bench-pw").await?;
    let auth = format!("Bearer {token}");
    let body = format!(r#"{{"callee":"{CALLEE}","caller":"{CALLER}"}}"#);
    // Wait for the switch's join.
    let ask = |cloud: String, auth: String, body: String| async move {
        let h = [("Authorization", auth.as_str())];
        peerdial_net::http_client::request_with("POST", &cloud, "/api/v1/calls/designate", &h, Some(&body)).await
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, _)) = ask(cloud.clone(), auth.clone(), body.clone()).await {
            break;
        }
        if Instant::now() > deadline {
            bail!("the switch never joined the top");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lat = Arc::new(Mutex::new(Vec::<f64>::new()));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds as u64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (lat, failed, cloud, auth, body) = (lat.clone(), failed.clone(), cloud.clone(), auth.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                match ask(cloud.clone(), auth.clone(), body.clone()).await {
                    Ok((200, text)) if text.contains("\"key\"") => mine.push(t.elapsed().as_secs_f64() * 1000.0),
                    _ => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            lat.lock().expect("lat").extend(mine);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let took = started.elapsed().as_secs_f64();
    let mut l = lat.lock().expect("lat").clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let n = l.len();
    if n == 0 {
        bail!("no designation succeeded");
    }
    println!(
        "designate: {n} designations in {took:.1} s with {clients} clients = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms; {} failed",
        n as f64 / took,
        percentile(&l, 0.50),
        percentile(&l, 0.99),
        failed.load(std::sync::atomic::Ordering::Relaxed)
    );
    sw.shutdown();
    top.shutdown().await;
    Ok(())
}
