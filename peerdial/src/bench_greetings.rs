//! `peerdial bench greetings`: greeting downloads (full GETs and 304
//! revalidations with `If-None-Match`) from a region's HTTP API, side by
//! side with nginx serving the very same PNG bytes as static files with
//! its own ETags. The load generator is wrk (fixed duration, keep-alive
//! connections), run on its own core; each server runs on the other.
//!
//! Not a test: nothing here asserts a time. It prints Markdown rows for
//! docs/benchmarks.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use peerdial_greetings::{render_card, Card, Layout};
use tokio::process::Command;

use crate::bench_presence::RegionProcess;
use crate::bench_tools::{cpu_of_tree, free_port, pin_self, pinned, provision_many, tool, DRIVER_CORE, SERVER_CORE};

/// One raw HTTP/1.1 exchange on a fresh connection (`Connection: close`):
/// status, head, body.
pub(crate) fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let at = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("HTTP answer without end of head")?;
    let head = String::from_utf8_lossy(&resp[..at]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("HTTP answer without status")?;
    Ok((status, head, resp[at + 4..].to_vec()))
}

/// A header's value from a response head (the name in any case).
pub(crate) fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case(name)))
        .map(|(_, v)| v.trim().to_string())
}

/// nginx with its own config in `dir`: one worker, `root` as its document
/// root, loopback only, in the foreground; stopped by its PID.
struct Nginx {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
}

impl Nginx {
    async fn start(dir: &Path, root: &Path, pin: bool) -> Result<Nginx> {
        let port = free_port()?;
        std::fs::create_dir_all(dir)?;
        let d = dir.display();
        // keepalive_requests: nginx closes a connection after 1000 requests
        // by default; the region's server never does, so neither does this.
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
events {{ worker_connections 1024; }}\n\
http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000000;\n  keepalive_timeout 65;\n\
  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
  default_type image/png;\n  add_header Cache-Control \"public, max-age=60\";\n\
  server {{\n    listen 127.0.0.1:{port};\n    root {};\n    location / {{ }}\n  }}\n}}\n",
            root.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf)?;
        let child = pinned(&tool("nginx")?, pin.then_some(SERVER_CORE))
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("nginx's pid")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut n = Nginx { child, pid, addr };
        for _ in 0..50 {
            if TcpStream::connect(addr).is_ok() {
                return Ok(n);
            }
            if let Ok(Some(st)) = n.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                bail!("nginx exited ({st}): {log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        n.stop().await;
        bail!("nginx did not listen on {addr}")
    }

    async fn stop(mut self) {
        // SIGQUIT: graceful shutdown of the master and its worker.
        let _ = Command::new("kill").args(["-QUIT", &self.pid.to_string()]).status().await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// A wrk script that walks the URL list, one request after the other, with
/// or without each URL's ETag in `If-None-Match`.
/// The Host header is explicit: at load time wrk has not set `wrk.host`
/// yet, and nginx answers 400 to HTTP/1.1 without one.
fn wrk_script(host: SocketAddr, paths: &[(String, String)], revalidate: bool) -> String {
    let reqs: Vec<(String, Vec<(&str, String)>)> = paths
        .iter()
        .map(|(path, etag)| {
            let headers = if revalidate {
                vec![("If-None-Match", etag.clone())]
            } else {
                Vec::new()
            };
            (path.clone(), headers)
        })
        .collect();
    wrk_requests(host, &reqs)
}

/// A wrk script that sends these GETs (with their extra headers) in turn.
pub(crate) fn wrk_requests(host: SocketAddr, reqs: &[(String, Vec<(&str, String)>)]) -> String {
    let mut s = String::from("local reqs = {}\n");
    let host = lua_string(&host.to_string());
    for (path, headers) in reqs {
        let mut hdr = format!("{{[\"Host\"] = {host}");
        for (n, v) in headers {
            hdr.push_str(&format!(", [{}] = {}", lua_string(n), lua_string(v)));
        }
        hdr.push('}');
        s.push_str(&format!("reqs[#reqs + 1] = wrk.format(\"GET\", {}, {hdr})\n", lua_string(path)));
    }
    s.push_str("local i = 0\nrequest = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n");
    s
}

fn lua_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What one wrk run reports.
pub(crate) struct Wrk {
    pub requests: u64,
    pub rate: f64,
    pub bad: u64,
    pub mb_per_s: f64,
    pub cpu: f64,
    /// Latency percentiles in ms (wrk --latency): p50, p99.
    pub p50: f64,
    pub p99: f64,
}

/// A wrk latency figure ("812.00us", "1.25ms", "2.01s") in ms.
fn wrk_ms(v: &str) -> Option<f64> {
    let v = v.trim();
    if let Some(x) = v.strip_suffix("us") {
        x.parse::<f64>().ok().map(|x| x / 1000.0)
    } else if let Some(x) = v.strip_suffix("ms") {
        x.parse().ok()
    } else if let Some(x) = v.strip_suffix('s') {
        x.parse::<f64>().ok().map(|x| x * 1000.0)
    } else {
        None
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn wrk(
    dir: &Path,
    name: &str,
    addr: SocketAddr,
    script: &str,
    connections: u32,
    seconds: u32,
    pin: bool,
    server_cpu: impl Fn() -> f64,
) -> Result<Wrk> {
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, script)?;
    let before = server_cpu();
    let out = pinned(&tool("wrk")?, pin.then_some(DRIVER_CORE))
        .args([
            "-t",
            "1",
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "5s",
            "--latency",
            "-s",
        ])
        .arg(&file)
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let cpu = server_cpu() - before;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
    };
    let rate: f64 = find("Requests/sec:")
        .with_context(|| format!("wrk printed no rate: {text}{}", String::from_utf8_lossy(&out.stderr)))?
        .parse()?;
    let requests: u64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("wrk printed no request count")?;
    let bad = find("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0)
        + text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Socket errors:"))
            .map(|v| {
                v.split(',')
                    .filter_map(|p| p.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
                    .sum()
            })
            .unwrap_or(0);
    let transfer = find("Transfer/sec:").unwrap_or_default();
    let mb_per_s = if let Some(v) = transfer.strip_suffix("MB") {
        v.parse().unwrap_or(0.0)
    } else if let Some(v) = transfer.strip_suffix("KB") {
        v.parse::<f64>().unwrap_or(0.0) / 1024.0
    } else if let Some(v) = transfer.strip_suffix("GB") {
        v.parse::<f64>().unwrap_or(0.0) * 1024.0
    } else {
        0.0
    };
    let pct = |p: &str| find(p).and_then(|v| wrk_ms(&v)).unwrap_or(f64::NAN);
    Ok(Wrk {
        requests,
        rate,
        bad,
        mb_per_s,
        cpu,
        p50: pct("50%"),
        p99: pct("99%"),
    })
}

/// A greeting card picture for number `i`, as a phone's user might make.
fn picture(i: u32) -> Result<Vec<u8>> {
    let card = Card {
        text: format!("Hello from {i}!\nPlease leave a message."),
        foreground: "#ffffff".into(),
        background: format!("#{:02x}{:02x}80", (i * 37) % 256, (i * 91) % 256),
        layout: Layout::Centered,
    };
    Ok(render_card(&card)?.png)
}

pub async fn greetings(numbers: u32, seconds: u32, connections: u32, rounds: u32, pin: bool) -> Result<()> {
    let pin = pin && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if pin {
        // This process only drives and reads; the servers have core 0.
        pin_self(DRIVER_CORE)?;
    }
    let dir = tempfile::tempdir()?;
    // The region runs as its own process pinned to the server core, as
    // nginx does, so it sizes its runtime to the one core it has (one
    // worker, like nginx's one worker process) rather than to the machine.
    let region = tokio::task::spawn_blocking({
        let dir = dir.path().join("region");
        move || RegionProcess::start(&dir, pin)
    })
    .await??;
    let http_addr = region.http;
    let region_pid = region.pid;
    eprintln!("provisioning {numbers} numbers and uploading their greetings…");
    let users = provision_many(http_addr, numbers).await?;
    let www = dir.path().join("www");
    let (paths, bytes) = tokio::task::spawn_blocking({
        let www = www.clone();
        move || -> Result<(Vec<(String, String)>, usize)> {
            let mut paths = Vec::new();
            let mut bytes = 0;
            for (i, (user, password)) in users.iter().enumerate() {
                let path = format!("/api/v1/greetings/{user}/caller");
                let auth = crate::bench_tools::basic(user, password);
                let (st, _, body) = http(
                    http_addr,
                    "PUT",
                    &path,
                    &[("Authorization", auth), ("Content-Type", "image/png".into())],
                    &picture(i as u32)?,
                )?;
                if st != 200 {
                    bail!("upload for {user}: {st} {}", String::from_utf8_lossy(&body));
                }
                // nginx serves the bytes the region stored (normalised),
                // at the same path.
                let (st, head, png) = http(http_addr, "GET", &path, &[], b"")?;
                let etag = header(&head, "etag").context("region's GET without ETag")?;
                if st != 200 {
                    bail!("GET {path}: {st}");
                }
                bytes += png.len();
                let file = www.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(file.parent().context("path")?)?;
                std::fs::write(&file, &png)?;
                paths.push((path, etag));
            }
            Ok((paths, bytes))
        }
    })
    .await??;
    let nginx = Nginx::start(&dir.path().join("nginx"), &www, pin).await?;
    let result = measure_both(
        dir.path(),
        (http_addr, region_pid),
        &nginx,
        &paths,
        seconds,
        connections,
        rounds,
        pin,
    )
    .await;
    nginx.stop().await;
    region.stop();
    let runs = result?;

    let mean = bytes as f64 / paths.len().max(1) as f64;
    println!(
        "| round | server | request | requests | bad answers | requests/s | MB/s | server CPU µs per request |\n|---|---|---|---|---|---|---|---|"
    );
    const WHO: [(&str, &str); 4] = [
        ("peerdial region (axum)", "full GET (200, PNG)"),
        ("nginx (1 worker, sendfile)", "full GET (200, PNG)"),
        ("peerdial region (axum)", "If-None-Match (304)"),
        ("nginx (1 worker, sendfile)", "If-None-Match (304)"),
    ];
    for (round, four) in runs.iter().enumerate() {
        for ((who, what), w) in WHO.iter().zip(four) {
            println!(
                "| {} | {who} | {what} | {} | {} | {:.0} | {:.1} | {:.1} |",
                round + 1,
                w.requests,
                w.bad,
                w.rate,
                w.mb_per_s,
                w.cpu * 1e6 / w.requests.max(1) as f64
            );
        }
    }
    let median = |k: usize| {
        let mut v: Vec<f64> = runs.iter().map(|r| r[k].rate).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let bad: u64 = runs.iter().flatten().map(|w| w.bad).sum();
    println!(
        "\n{} pictures, mean {mean:.0} bytes; wrk 1 thread, {connections} keep-alive connections, {seconds} s per run, {} rounds{}; bad answers in all: {bad}",
        paths.len(),
        runs.len(),
        if pin { "; servers on core 0, wrk on core 1" } else { ", unpinned" }
    );
    println!(
        "medians: full GET peerdial {:.0}/s, nginx {:.0}/s, ratio {:.2}; 304 peerdial {:.0}/s, nginx {:.0}/s, ratio {:.2}",
        median(0),
        median(1),
        median(0) / median(1),
        median(2),
        median(3),
        median(2) / median(3)
    );
    Ok(())
}

/// Checks both servers answer each kind of request as expected, then loads
/// them one after the other, round after round (so both see the same
/// machine): full GETs, then revalidations.
#[allow(clippy::too_many_arguments)]
async fn measure_both(
    dir: &Path,
    (ours, ours_pid): (SocketAddr, u32),
    nginx: &Nginx,
    paths: &[(String, String)],
    seconds: u32,
    connections: u32,
    rounds: u32,
    pin: bool,
) -> Result<Vec<[Wrk; 4]>> {
    let theirs_paths = tokio::task::spawn_blocking({
        let (paths, addr) = (paths.to_vec(), nginx.addr);
        move || -> Result<Vec<(String, String)>> {
            let mut out = Vec::new();
            for (path, ours_etag) in &paths {
                let (st, head, body) = http(addr, "GET", path, &[], b"")?;
                let etag = header(&head, "etag").context("nginx sent no ETag")?;
                if st != 200 || body.is_empty() {
                    bail!("nginx GET {path}: {st}");
                }
                for (server, tag) in [(ours, ours_etag), (addr, &etag)] {
                    let (st, _, _) = http(server, "GET", path, &[("If-None-Match", tag.clone())], b"")?;
                    if st != 304 {
                        bail!("{server} answered {st}, not 304, to If-None-Match on {path}");
                    }
                }
                out.push((path.clone(), etag));
            }
            Ok(out)
        }
    })
    .await??;
    let pid = nginx.pid;
    let ours_cpu = move || cpu_of_tree(ours_pid);
    let theirs_cpu = move || cpu_of_tree(pid);
    let mut runs = Vec::new();
    for round in 1..=rounds.max(1) {
        eprintln!("round {round}: full GETs: peerdial…");
        let a = wrk(
            dir,
            "ours-full",
            ours,
            &wrk_script(ours, paths, false),
            connections,
            seconds,
            pin,
            ours_cpu,
        )
        .await?;
        eprintln!("round {round}: full GETs: nginx…");
        let b = wrk(
            dir,
            "theirs-full",
            nginx.addr,
            &wrk_script(nginx.addr, &theirs_paths, false),
            connections,
            seconds,
            pin,
            theirs_cpu,
        )
        .await?;
        eprintln!("round {round}: 304s: peerdial…");
        let c = wrk(
            dir,
            "ours-304",
            ours,
            &wrk_script(ours, paths, true),
            connections,
            seconds,
            pin,
            ours_cpu,
        )
        .await?;
        eprintln!("round {round}: 304s: nginx…");
        let d = wrk(
            dir,
            "theirs-304",
            nginx.addr,
            &wrk_script(nginx.addr, &theirs_paths, true),
            connections,
            seconds,
            pin,
            theirs_cpu,
        )
        .await?;
        runs.push([a, b, c, d]);
    }
    Ok(runs)
}
