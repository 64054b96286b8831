//! `peerdial bench dial`: third-party call setup (RFC 3725 flow I), from
//! the controller starting a call to both talkers connected, over
//! loopback UDP with two SIPp UASes (`-sn uas`, auto-answering) as the
//! talkers. The controller is `peerdial_sip::pairing::Pairing` driven the
//! way the top's controller task drives it (one UDP socket, Call-ID
//! matching, its timers); each call is then hung up by the "dialer" and
//! waited out before the next. What it leaves out: the HTTP request and
//! the directory's match in front of it (the top's per-user limits allow
//! 10 calls a minute, so 500 calls through the API would measure the
//! limiter), and any DNS lookup of a talker's contact.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use peerdial_sip::call::Local;
use peerdial_sip::pairing::{Leg, Pairing, Progress, Timeouts};
use peerdial_sip::Message;
use tokio::net::UdpSocket;

use crate::bench::{free_port, percentile, tool};

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
    Ok(())
}
