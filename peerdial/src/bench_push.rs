//! `peerdial bench push`: push dispatches per second to the local push
//! service (`peerdial push-service`, in-process on loopback), over plain
//! HTTP and over HTTPS (a certificate from a CA made for the run with
//! rcgen; HTTP/2 by ALPN). Each dispatch is what a wake-up costs the top —
//! a wake payload encrypted to the subscription (RFC 8291), a VAPID JWT
//! signed (RFC 8292), the request sent through the retry schedule on the
//! top's pooled client — and what the service does to accept it (VAPID
//! verified, payload decrypted with the subscription's keys). The building
//! alone is measured too, so the three can be compared.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use peerdial_net::https_client::HttpsClient;
use peerdial_push::adapter::{PushAdapter, WebPush};
use peerdial_push::webpush::{UaKeys, VapidKey};
use peerdial_push::{Provider, PushParams, WakePayload};

use crate::push_service::{self, PushServiceArgs};

/// A CA and a certificate for 127.0.0.1 it signed, as PEM files in `dir`.
fn bench_pki(dir: &Path) -> Result<[std::path::PathBuf; 3]> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&key, &ca, &ca_key)?;
    let mut out = Vec::new();
    for (name, pem) in [("ca", ca.pem()), ("cert", cert.pem()), ("key", key.serialize_pem())] {
        let p = dir.join(format!("{name}.pem"));
        std::fs::write(&p, pem)?;
        out.push(p);
    }
    Ok([out[0].clone(), out[1].clone(), out[2].clone()])
}

/// `dispatches` whole dispatches to `params`, `concurrency` at a time:
/// dispatches per second.
async fn dispatch(
    adapter: &Arc<WebPush>,
    params: &PushParams,
    payload: &[u8],
    client: &HttpsClient,
    dispatches: u32,
    concurrency: u32,
) -> Result<f64> {
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (adapter, params, payload, next, client) = (adapter.clone(), params.clone(), payload.to_vec(), next.clone(), client.clone());
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
    if failed > 0 {
        bail!("{failed} of {dispatches} dispatches to {} failed", params.prid);
    }
    Ok(dispatches as f64 / t.elapsed().as_secs_f64())
}

pub async fn push(dispatches: u32, concurrency: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let keys_path = dir.path().join("push-keys.json");
    let keys = UaKeys::load_or_generate(&keys_path)?;
    let [ca, cert, key] = bench_pki(dir.path())?;
    let mut args = PushServiceArgs {
        http: "127.0.0.1:0".parse()?,
        subscriber: vec![format!("bench={}", keys_path.display())],
        fail: Vec::new(),
        tls_cert: None,
        tls_key: None,
    };
    let plain = push_service::serve(push_service::Service::new(&args)?, args.http).await?;
    (args.tls_cert, args.tls_key) = (Some(cert), Some(key));
    let tls = push_service::serve(push_service::Service::new(&args)?, args.http).await?;
    let params = |url: String| PushParams {
        provider: Provider::Webpush,
        prid: url,
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
    let p = params(format!("http://{plain}/up/bench"));
    let n_build = dispatches.min(2_000);
    let t = Instant::now();
    for _ in 0..n_build {
        adapter.request(&p, &payload)?;
    }
    let build_rate = n_build as f64 / t.elapsed().as_secs_f64();

    // Whole dispatches, `concurrency` at a time, each on the top's client
    // (connections pooled, as the top's are).
    let client = HttpsClient::new(Some(&ca))?;
    let http_rate = dispatch(&adapter, &p, &payload, &client, dispatches, concurrency).await?;
    let p = params(format!("https://{tls}/up/bench"));
    let https_rate = dispatch(&adapter, &p, &payload, &client, dispatches, concurrency).await?;
    println!(
        "push dispatches, {dispatches} each with {concurrency} in flight (each decrypted and VAPID-checked by the local push service):"
    );
    println!("  plain HTTP/1.1 (loopback): {http_rate:.0}/s");
    println!(
        "  HTTPS, HTTP/2 by ALPN:     {https_rate:.0}/s; HTTPS / plain = {:.2}",
        https_rate / http_rate
    );
    println!(
        "building alone (RFC 8291 encryption + VAPID JWT): {build_rate:.0}/s on one core; HTTPS dispatch / build = {:.2}",
        https_rate / build_rate
    );
    Ok(())
}
