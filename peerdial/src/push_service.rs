//! `peerdial push-service` (hidden): a small Web Push service on
//! loopback for tests and `peerdial bench push`. It takes RFC 8030 pushes
//! at `POST /up/{topic}`, checks the VAPID JWT (RFC 8292) against the
//! endpoint's origin and, for a topic given with `--subscriber
//! TOPIC=KEYFILE`, decrypts the body with that subscription's keys (the
//! phone's `push-keys.json`): a push that does not decrypt is refused with
//! 400 and never handed on. Accepted pushes wait in the topic's queue for
//! `GET /up/{topic}?wait=S` (the sleeping phone's long poll). `--fail
//! TOPIC=N` answers the first N pushes to a topic 503 (a failing
//! endpoint). `GET /stats` counts per topic (and names the HTTP version
//! the last push came over). With `--tls-cert FILE --tls-key FILE` it
//! speaks HTTPS only, offering HTTP/2 and HTTP/1.1 by ALPN (RFC 8030 §8).
//!
//! It is a stand-in, not a push service to deploy: no storage, no TTL
//! expiry, no HTTP/2 server push.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use peerdial_push::webpush::{verify_vapid, UaKeys};
use serde_json::json;
use tokio::sync::Notify;

#[derive(Args, Debug)]
pub struct PushServiceArgs {
    /// Where to listen (HTTP, or HTTPS with --tls-cert).
    #[arg(long, default_value = "127.0.0.1:8085")]
    pub http: SocketAddr,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// TOPIC=KEYFILE: decrypt this topic's pushes with the subscription's keys.
    #[arg(long, value_name = "TOPIC=KEYFILE")]
    pub subscriber: Vec<String>,
    /// TOPIC=N: answer the first N pushes to TOPIC with 503.
    #[arg(long, value_name = "TOPIC=N")]
    pub fail: Vec<String>,
}

#[derive(Default)]
struct Topic {
    keys: Option<PathBuf>,
    fail_left: u32,
    queue: VecDeque<Vec<u8>>,
    attempts: u64,
    accepted: u64,
    refused: u64,
    failed: u64,
    fetched: u64,
    /// The HTTP version the last push came over.
    version: Option<String>,
}

#[derive(Default)]
pub struct Service {
    topics: Mutex<HashMap<String, Topic>>,
    notify: Notify,
    /// TLS: endpoints are https:// (the VAPID audience says so).
    tls: Option<Arc<rustls::ServerConfig>>,
}

fn split(s: &str, flag: &str) -> Result<(String, String)> {
    let (a, b) = s.split_once('=').with_context(|| format!("{flag} {s:?}: expected TOPIC=VALUE"))?;
    if a.is_empty() || !a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
        bail!("{flag} {s:?}: a topic is letters, digits, - and _");
    }
    Ok((a.to_string(), b.to_string()))
}

impl Service {
    pub fn new(args: &PushServiceArgs) -> Result<Arc<Service>> {
        let mut s = Service::default();
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            s.tls = Some(peerdial_net::tls::server_config(cert, key)?);
        }
        {
            let mut t = s.topics.lock().expect("topics");
            for sub in &args.subscriber {
                let (topic, file) = split(sub, "--subscriber")?;
                t.entry(topic).or_default().keys = Some(file.into());
            }
            for f in &args.fail {
                let (topic, n) = split(f, "--fail")?;
                t.entry(topic).or_default().fail_left = n.parse().context("--fail TOPIC=N: N is a count")?;
            }
        }
        Ok(Arc::new(s))
    }
}

/// Starts serving; returns the address really bound.
pub async fn serve(service: Arc<Service>, addr: SocketAddr) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let tls = service.tls.clone();
    let app = Router::new()
        .route("/up/{topic}", get(fetch).post(push))
        .route("/stats", get(stats))
        .with_state(service);
    match tls {
        Some(cfg) => {
            let listener = peerdial_net::tls::TlsListener::new(listener, cfg)?;
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        None => {
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
    }
    Ok(bound)
}

pub async fn run(args: PushServiceArgs) -> Result<()> {
    let service = Service::new(&args)?;
    let scheme = if service.tls.is_some() { "https" } else { "http" };
    let bound = serve(service, args.http).await?;
    println!("push service on {scheme}://{bound}/up/TOPIC");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn refuse(status: StatusCode, why: String) -> Response {
    println!("push-service: refused a push: {why}");
    (status, Json(json!({"error": why}))).into_response()
}

async fn push(
    State(s): State<Arc<Service>>,
    Path(topic): Path<String>,
    version: Version,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let keys = {
        let mut topics = s.topics.lock().expect("topics");
        let t = topics.entry(topic.clone()).or_default();
        t.attempts += 1;
        t.version = Some(format!("{version:?}"));
        if t.fail_left > 0 {
            t.fail_left -= 1;
            t.failed += 1;
            println!("push-service: {topic}: failing on purpose (503), attempt {}", t.attempts);
            return (StatusCode::SERVICE_UNAVAILABLE, "failing on purpose").into_response();
        }
        t.keys.clone()
    };
    let count_refused = || s.topics.lock().expect("topics").entry(topic.clone()).or_default().refused += 1;
    if header("content-encoding") != Some("aes128gcm") {
        count_refused();
        return refuse(StatusCode::BAD_REQUEST, "Content-Encoding must be aes128gcm (RFC 8291)".into());
    }
    if header("ttl").and_then(|t| t.parse::<u64>().ok()).is_none() {
        count_refused();
        return refuse(StatusCode::BAD_REQUEST, "a push needs a TTL (RFC 8030 §5.2)".into());
    }
    // HTTP/2 names the host in :authority, HTTP/1.1 in Host.
    let host = uri.authority().map(|a| a.as_str()).or(header("host")).unwrap_or("");
    let scheme = if s.tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{host}/up/{topic}");
    let unix = peerdial_push::unix_ms() / 1000;
    if let Err(e) = verify_vapid(header("authorization").unwrap_or(""), &endpoint, unix) {
        count_refused();
        return refuse(StatusCode::UNAUTHORIZED, e.to_string());
    }
    if let Some(path) = keys {
        let decrypted = UaKeys::load(&path)
            .map_err(|e| e.to_string())
            .and_then(|k| k.decrypt(&body).map_err(|e| e.to_string()));
        if let Err(why) = decrypted {
            count_refused();
            return refuse(StatusCode::BAD_REQUEST, format!("{topic}: {why}"));
        }
        println!("push-service: {topic}: a push decrypted with the subscription's keys, VAPID checked");
    }
    {
        let mut topics = s.topics.lock().expect("topics");
        let t = topics.entry(topic.clone()).or_default();
        t.accepted += 1;
        t.queue.push_back(body.to_vec());
    }
    s.notify.notify_waiters();
    (StatusCode::CREATED, [("location", format!("/up/{topic}/m"))]).into_response()
}

#[derive(serde::Deserialize)]
struct Wait {
    wait: Option<u64>,
}

async fn fetch(State(s): State<Arc<Service>>, Path(topic): Path<String>, Query(w): Query<Wait>) -> Response {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(w.wait.unwrap_or(0).min(30));
    loop {
        let notified = s.notify.notified();
        if let Some(m) = {
            let mut topics = s.topics.lock().expect("topics");
            let t = topics.entry(topic.clone()).or_default();
            let m = t.queue.pop_front();
            t.fetched += m.is_some() as u64;
            m
        } {
            return (
                StatusCode::OK,
                [("content-type", "application/octet-stream"), ("content-encoding", "aes128gcm")],
                m,
            )
                .into_response();
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return StatusCode::NO_CONTENT.into_response();
        }
    }
}

async fn stats(State(s): State<Arc<Service>>) -> Response {
    let topics = s.topics.lock().expect("topics");
    let v: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                json!({"attempts": t.attempts, "accepted": t.accepted, "refused": t.refused, "failed": t.failed, "fetched": t.fetched, "version": t.version}),
            )
        })
        .collect();
    Json(v).into_response()
}
