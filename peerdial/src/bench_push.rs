//! `peerdial bench push`: push dispatches per second to the local push
//! service (`peerdial push-service`, in-process on loopback). Each dispatch
//! is what a wake-up costs the top — a wake payload encrypted to the
//! subscription (RFC 8291), a VAPID JWT signed (RFC 8292), the request
//! sent through the retry schedule — and what the service does to accept
//! it (VAPID verified, payload decrypted with the subscription's keys). The
//! building alone is measured too, so the two can be compared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use peerdial_push::adapter::{PushAdapter, WebPush};
use peerdial_push::webpush::{UaKeys, VapidKey};
use peerdial_push::{Provider, PushParams, WakePayload};

use crate::push_service::{self, PushServiceArgs};

pub async fn push(dispatches: u32, concurrency: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let keys_path = dir.path().join("push-keys.json");
    let keys = UaKeys::load_or_generate(&keys_path)?;
    let args = PushServiceArgs {
        http: "127.0.0.1:0".parse()?,
        subscriber: vec![format!("bench={}", keys_path.display())],
        fail: Vec::new(),
        tls_cert: None,
        tls_key: None,
    };
    let addr = push_service::serve(push_service::Service::new(&args)?, args.http).await?;
    let params = PushParams {
        provider: Provider::Webpush,
        prid: format!("http://{addr}/up/bench"),
        param: Some(keys.pn_param()),
    };
    let adapter = Arc::new(WebPush {
        vapid: VapidKey::generate("mailto:bench@peerdial.internal"),
        ttl: Duration::from_secs(30),
    });
    let payload = WakePayload {
        kind: "wake".into(),
        caller: "886-02-11111111".into(),
        callee: "886-02-22222222".into(),
        caller_addr: Some("127.0.0.1".into()),
        caller_token: "x".repeat(300),
        callee_token: "y".repeat(300),
    }
    .to_bytes();

    // Building alone (encrypt + VAPID), one core.
    let n_build = dispatches.min(2_000);
    let t = Instant::now();
    for _ in 0..n_build {
        adapter.request(&params, &payload)?;
    }
    let build_rate = n_build as f64 / t.elapsed().as_secs_f64();

    // Whole dispatches, `concurrency` at a time.
    let client = peerdial_net::https_client::HttpsClient::new(None)?;
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (adapter, params, payload, next, client) = (adapter.clone(), params.clone(), payload.clone(), next.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = 0u32;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < dispatches {
                let req = adapter.request(&params, &payload).expect("builds");
                if peerdial_top::push::deliver(client.clone(), req, Default::default()).await.is_err() {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await?;
    }
    let secs = t.elapsed().as_secs_f64();
    if failed > 0 {
        bail!("{failed} of {dispatches} dispatches failed");
    }
    let rate = dispatches as f64 / secs;
    println!("push dispatches: {dispatches} in {secs:.2} s with {concurrency} in flight: {rate:.0}/s (each decrypted and VAPID-checked by the local push service)");
    println!(
        "building alone (RFC 8291 encryption + VAPID JWT): {build_rate:.0}/s on one core; whole dispatch / build = {:.2}",
        rate / build_rate
    );
    Ok(())
}
