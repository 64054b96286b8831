//! The spine's benchmarks: registrations per second against Kamailio
//! (`bench register`), NAPTR answers per second against NSD (`bench dns`),
//! REGISTER → visible-in-DNS latency (`bench latency`) and memory per
//! number (`bench memory`). The helpers they share with the other benches
//! are in [`crate::bench`].

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use peerdial_number::Number;
use rand::Rng;
use tokio::process::Command;

use crate::bench_tools::*;

/// One server's result under one load.
struct Measured {
    sipp: SippResult,
    server_cpu: f64,
    sipp_cpu: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.sipp.successful as f64 / self.sipp.seconds
    }

    fn row(&self, name: &str, load: Load, first_leg: bool) -> String {
        let us = |cpu: f64| cpu * 1e6 / self.sipp.successful.max(1) as f64;
        let r = &self.sipp;
        let leg1 = if first_leg {
            format!("{:.0}", r.response_ms[0])
        } else {
            "–".into()
        };
        let last = if first_leg { r.response_ms[1] } else { r.response_ms[0] };
        format!(
            "| {name} | {}×{} | {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {leg1} | {last:.0} |",
            load.instances,
            load.limit,
            r.successful,
            r.failed,
            r.retransmissions,
            r.seconds,
            self.rate(),
            us(self.server_cpu),
            us(self.sipp_cpu),
        )
    }

    /// Counts towards a server's peak only when nothing was lost or resent.
    fn clean(&self) -> bool {
        self.sipp.failed == 0 && self.sipp.retransmissions == 0
    }
}

/// One SIPp run (`run`, not yet started: futures are lazy) against one
/// server, with the CPU the server (read by `server_cpu`) and the drivers
/// (this process's waited-for children) spent on it.
async fn measure(server_cpu: impl Fn() -> f64, run: impl std::future::Future<Output = Result<SippResult>>) -> Result<Measured> {
    let (server0, drivers0) = (server_cpu(), cpu_of("self").1);
    let sipp = run.await?;
    Ok(Measured {
        sipp,
        server_cpu: server_cpu() - server0,
        sipp_cpu: cpu_of("self").1 - drivers0,
    })
}

/// Runs SIPp against both servers under each load in turn (peerdial, then
/// Kamailio, load by load, so both see the same machine), and compares
/// each server's peak rate: a throughput is what a server sustains when
/// the drivers are not the limit, and the load that gets there differs
/// (a digest registration is four messages to Kamailio's two).
pub(crate) async fn register(registrations: u32, rate: u32, loads: Vec<Load>, rounds: u32, pin: bool) -> Result<()> {
    let pin = pin && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if pin {
        // This process is the region (and an idle harness): core 0, every
        // thread; threads started later inherit it.
        pin_self(SERVER_CORE)?;
    }
    let dir = tempfile::tempdir()?;
    // peerdial: digest auth, durable write, DNS update.
    let region = start_region(&dir.path().join("region"), |_| {}).await?;
    eprintln!("provisioning {registrations} users…");
    let users = provision_many(region.endpoints.http, registrations).await?;
    let ours_rows: Vec<String> = users
        .iter()
        .map(|(u, p)| format!("{u};[authentication username={u} password={p}]"))
        .collect();
    let theirs_rows: Vec<String> = users.iter().map(|(u, _)| u.clone()).collect();
    let kam = Kamailio::start(&dir.path().join("kamailio"), pin).await?;

    // results[k]: (peerdial, Kamailio) for loads[k], one pair per round.
    let mut results: Vec<Vec<(Measured, Measured)>> = loads.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds.max(1) {
        for (k, load) in loads.iter().enumerate() {
            // After the first load every registration comes from a new SIPp
            // port: a new binding for each number, for both servers.
            let run = |who: &str| dir.path().join(format!("{who}-{round}-{k}"));
            eprintln!("{}×{} SIPp → peerdial…", load.instances, load.limit);
            let ours = measure(
                || cpu_of("self").0,
                run_sipp(&run("ours"), SIPP_AUTH, &ours_rows, region.endpoints.sip, rate, *load, pin),
            )
            .await?;
            eprintln!("{}×{} SIPp → Kamailio…", load.instances, load.limit);
            let theirs = measure(
                || cpu_of_tree(kam.pid),
                run_sipp(&run("theirs"), SIPP_NOAUTH, &theirs_rows, kam.addr, rate, *load, pin),
            )
            .await?;
            results[k].push((ours, theirs));
        }
    }
    let published = region.shared.zone.read().expect("zone lock").len();
    region.shutdown().await;
    kam.stop().await;

    println!("| server | SIPp drivers × in flight | registrations ok | failed | retransmissions | seconds | registrations/s | server CPU µs per registration | SIPp CPU µs per registration | mean ms to 401 | mean ms to 200 |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for round in 0..rounds.max(1) as usize {
        for (load, runs) in loads.iter().zip(&results) {
            let (ours, theirs) = &runs[round];
            println!("{}", ours.row("peerdial (digest + SQLite commit + DNS)", *load, true));
            println!("{}", theirs.row("Kamailio (usrloc in memory, no auth)", *load, false));
        }
    }
    // Per load, each server's median over the rounds (a shared VM and
    // Kamailio's own run-to-run swings make single runs unreliable); a
    // load counts only if every run of it was clean.
    println!("\n| SIPp drivers × in flight | peerdial median registrations/s | Kamailio median registrations/s | ratio |");
    println!("|---|---|---|---|");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut peaks: [Option<(Load, f64)>; 2] = [None, None];
    for (load, same) in loads.iter().zip(&results) {
        let ours = median(same.iter().map(|r| r.0.rate()).collect());
        let theirs = median(same.iter().map(|r| r.1.rate()).collect());
        println!(
            "| {}×{} | {ours:.0} | {theirs:.0} | {:.2} |",
            load.instances,
            load.limit,
            ours / theirs
        );
        for (k, (rate, clean)) in [(ours, same.iter().all(|r| r.0.clean())), (theirs, same.iter().all(|r| r.1.clean()))]
            .into_iter()
            .enumerate()
        {
            if clean && peaks[k].is_none_or(|(_, best)| rate > best) {
                peaks[k] = Some((*load, rate));
            }
        }
    }
    match peaks {
        [Some((lo, ro)), Some((lt, rt))] => println!(
            "\npeak of the medians, no retransmissions: peerdial {ro:.0}/s ({}×{}), Kamailio {rt:.0}/s ({}×{}); ratio {:.2}  (numbers published in DNS: {published})",
            lo.instances,
            lo.limit,
            lt.instances,
            lt.limit,
            ro / rt
        ),
        _ => println!("\nno load ran without retransmissions for both servers"),
    }
    Ok(())
}

fn uri_for(n: Number, i: u32) -> String {
    format!("sip:{}@10.{}.{}.{}:5060", n.digits(), (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

async fn dnsperf(server: SocketAddr, queries: &Path, seconds: u32, clients: u32) -> Result<(f64, String)> {
    let out = Command::new(tool("dnsperf")?)
        .args(["-s", &server.ip().to_string(), "-p", &server.port().to_string(), "-d"])
        .arg(queries)
        .args(["-l", &seconds.to_string(), "-c", &clients.to_string(), "-q", "500", "-t", "2"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let qps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:").map(|v| v.trim().parse::<f64>()))
        .with_context(|| format!("dnsperf printed no rate: {text}{}", String::from_utf8_lossy(&out.stderr)))??;
    let lost = text
        .lines()
        .find(|l| l.contains("Queries lost"))
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok((qps, lost))
}

pub(crate) async fn dns(numbers: u32, seconds: u32, clients: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = area().zone_name("peerdial.internal.");
    let mut rng = rand::thread_rng();
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < numbers as usize {
        picked.insert(rng.gen_range(0..100_000_000u32));
    }
    let list: Vec<Number> = picked.iter().map(|&i| Number::new(area(), i)).collect();

    // The same zone for NSD, as a zone file.
    let mut zone = format!(
        "$ORIGIN {origin}\n$TTL 60\n@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 604800 30\n@ IN NS ns.{origin}\nns IN A 127.0.0.1\n"
    );
    for (i, n) in list.iter().enumerate() {
        zone.push_str(&format!(
            "{} IN NAPTR 10 100 \"u\" \"E2U+sip\" \"!^.*$!{}!\" .\n",
            n.enum_name("peerdial.internal."),
            uri_for(*n, i as u32)
        ));
    }
    std::fs::write(dir.path().join("zone.db"), zone)?;
    let mut queries = String::new();
    for _ in 0..numbers.max(100_000) {
        let n = list[rng.gen_range(0..list.len())];
        queries.push_str(&format!("{} NAPTR\n", n.enum_name("peerdial.internal.")));
    }
    let qfile = dir.path().join("queries.txt");
    std::fs::write(&qfile, queries)?;

    let port = free_port()?;
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("nsd.conf"),
        format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n\
  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  server-count: 2\n  rrl-ratelimit: 0\n  verbosity: 0\n\
remote-control:\n  control-enable: no\nzone:\n  name: {origin}\n  zonefile: zone.db\n"
        ),
    )?;
    let mut nsd = Command::new(tool("nsd")?)
        .args(["-d", "-c"])
        .arg(dir.path().join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let nsd_addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let probe = list[0];
    let ready = wait_for(Duration::from_secs(60), || naptr(nsd_addr, probe).is_some()).await;
    let theirs = if ready {
        Some(dnsperf(nsd_addr, &qfile, seconds, clients).await)
    } else {
        None
    };
    if let Some(pid) = nsd.id() {
        let _ = Command::new("kill").arg(pid.to_string()).status().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), nsd.wait()).await;
    let (nsd_qps, nsd_lost) = theirs.context("NSD did not start serving the zone")??;

    let region = start_region(&dir.path().join("region"), |_| {}).await?;
    {
        let mut z = region.shared.zone.write().expect("zone lock");
        for (i, n) in list.iter().enumerate() {
            z.set(*n, Some(&uri_for(*n, i as u32)))?;
        }
    }
    let ours_addr = region.endpoints.dns;
    if naptr(ours_addr, probe).is_none() {
        bail!("peerdial's zone does not answer for {probe}");
    }
    let (our_qps, our_lost) = dnsperf(ours_addr, &qfile, seconds, clients).await?;
    region.shutdown().await;

    println!("| server | numbers | QPS | lost |");
    println!("|---|---|---|---|");
    println!("| peerdial embedded DNS (2 UDP threads) | {numbers} | {our_qps:.0} | {our_lost} |");
    println!("| NSD 4.6 (server-count 2, rrl off) | {numbers} | {nsd_qps:.0} | {nsd_lost} |");
    println!("\nratio peerdial / NSD: {:.2}", our_qps / nsd_qps);
    Ok(())
}

pub(crate) async fn latency(samples: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let region = start_region(dir.path(), |_| {}).await?;
    let users = provision_many(region.endpoints.http, samples).await?;
    let (sip, dns, realm) = (region.endpoints.sip, region.endpoints.dns, region.shared.realm.clone());
    let (commit, visible) = tokio::task::spawn_blocking(move || -> Result<(Vec<f64>, Vec<f64>)> {
        let mut commit = Vec::new();
        let mut visible = Vec::new();
        for (i, (user, password)) in users.iter().enumerate() {
            // A new socket each time: a new address that DNS must pick up.
            let sock = UdpSocket::bind("127.0.0.1:0")?;
            sock.set_read_timeout(Some(Duration::from_secs(5)))?;
            let want = format!("sip:{user}@{}", sock.local_addr()?);
            let (ok_at, rtt) = register_once(&sock, sip, user, password, &realm, i as u32)?;
            commit.push(rtt);
            let n = Number::parse(user)?;
            loop {
                if naptr(dns, n).as_deref() == Some(want.as_str()) {
                    visible.push(ok_at.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                if ok_at.elapsed() > Duration::from_secs(5) {
                    bail!("{user} not visible in DNS 5 s after its 200 OK");
                }
            }
        }
        Ok((commit, visible))
    })
    .await??;
    region.shutdown().await;
    let mut c = commit;
    let mut v = visible;
    c.sort_by(f64::total_cmp);
    v.sort_by(f64::total_cmp);
    println!("| measure ({samples} registrations, SQLite) | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    println!(
        "| authenticated REGISTER → 200 OK (includes the durable commit) | {:.2} | {:.2} | {:.2} |",
        percentile(&c, 0.5),
        percentile(&c, 0.99),
        c[c.len() - 1]
    );
    println!(
        "| 200 OK → NAPTR with the new address answered by DNS | {:.2} | {:.2} | {:.2} |",
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v[v.len() - 1]
    );
    Ok(())
}

fn rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// Fills the same in-memory structures a region keeps for each number
/// (registrar credential and binding, zone entry, device index) and
/// measures how much resident memory they take.
pub(crate) fn memory(numbers: u32) -> Result<()> {
    use peerdial_dns::{Zone, ZoneConfig};
    use peerdial_sip::digest::Ha1;
    use peerdial_sip::{Binding, Registrar, RegistrarConfig, Transport};
    let before = rss_bytes()?;
    let a: SocketAddr = "127.0.0.1:5060".parse()?;
    let mut zone = Zone::new(ZoneConfig {
        root: "peerdial.internal.".into(),
        area: area(),
        ttl: 60,
        negative_ttl: 30,
        dns: a,
        sip: a,
        http: a,
        serial: 1,
    })?;
    let mut registrar = Registrar::new(RegistrarConfig::new(area(), "2.0.6.8.8.peerdial.internal", [0; 32]));
    let mut devices = peerdial_region::state::Devices::default();
    let far = u64::MAX / 2;
    for i in 0..numbers {
        let n = Number::new(area(), i * (100_000_000 / numbers.max(1)));
        let addr: SocketAddr = SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 5060);
        let b = Binding {
            uri: format!("sip:{}@{addr}", n.digits()),
            contact: format!("sip:{}@{addr}", n.digits()),
            transport: Transport::Udp,
            addr,
            expires_at_ms: far,
            call_id: format!("{:016x}@{}", i as u64 * 2_654_435_761, addr.ip()),
            cseq: 2,
        };
        zone.set(n, Some(&b.uri))?;
        registrar.set_credential(n, Ha1::new(&n.digits(), "r", "p"));
        registrar.restore(n, b);
        let mac = (0x0200_0000_0000u64 + i as u64).to_be_bytes();
        devices.by_mac.insert(
            [mac[2], mac[3], mac[4], mac[5], mac[6], mac[7]],
            peerdial_region::state::Device {
                number: n,
                secret_hash: [0; 32],
            },
        );
        devices.numbers.insert(n.individual());
    }
    let after = rss_bytes()?;
    let per = (after.saturating_sub(before)) as f64 / numbers as f64;
    println!("| numbers | RSS before | RSS after | bytes per number |");
    println!("|---|---|---|---|");
    println!(
        "| {numbers} | {:.1} MiB | {:.1} MiB | {per:.0} |",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    // Keep them alive until measured.
    drop((zone, registrar, devices));
    Ok(())
}
