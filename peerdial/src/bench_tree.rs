//! `peerdial bench propagation`: registration → answer at standard
//! secondaries (NSD, BIND and Knot, fed by NOTIFY + IXFR with TSIG), and the
//! IXFR bytes per change. `peerdial bench transfer`: a zone of many numbers
//! transferred to a BIND secondary (AXFR, then IXFR after a batch of
//! changes), with the region as primary and with Knot as primary.

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use peerdial_dns::TsigKey;
use peerdial_number::Number;

use crate::bench_tools::{area, free_port, naptr, percentile, provision_many, register_once, start_region, tool};

const SECRET: &str = "cGVlcmRpYWwtYmVuY2gtdHNpZy1zZWNyZXQtMzJieXQ=";

fn key() -> TsigKey {
    TsigKey::parse(&format!("xfr:{SECRET}")).expect("literal key")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A secondary (NSD, BIND or Knot) of the area zone, fed from `primary`.
fn secondary(which: &str, dir: &Path, port: u16, primary: SocketAddr, zone: &str) -> Result<tokio::process::Child> {
    let d = dir.join(which);
    std::fs::create_dir_all(&d)?;
    let (prog, args, conf) = crate::peer_conf::secondary(which, &d, port, primary, zone, SECRET);
    let path = d.join("server.conf");
    std::fs::write(&path, conf)?;
    Ok(tokio::process::Command::new(tool(prog)?)
        .args(args)
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

fn serial_at(server: SocketAddr, zone: &str) -> Option<u32> {
    let mut q = Message::new();
    q.set_id(3).add_query(Query::query(Name::from_ascii(zone).ok()?, RecordType::SOA));
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    s.send_to(&q.to_vec().ok()?, server).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()?.answers().iter().find_map(|r| match r.data() {
        RData::SOA(s) => Some(s.serial()),
        _ => None,
    })
}

async fn wait_serial(server: SocketAddr, zone: &str, serial: u32, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if serial_at(server, zone) == Some(serial) {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    bail!(
        "{server} did not reach serial {serial} in {limit:?} (has {:?})",
        serial_at(server, zone)
    )
}

/// Bytes of the IXFR from `from` to `current`, signed, over TCP.
fn ixfr_bytes(server: SocketAddr, zone: &str, from: u32, current: u32) -> Result<usize> {
    let mut m = Message::new();
    m.set_id(11).add_query(Query::query(Name::from_ascii(zone)?, RecordType::IXFR));
    m.add_name_server(Record::from_rdata(
        Name::from_ascii(zone)?,
        0,
        RData::SOA(SOA::new(Name::root(), Name::root(), from, 0, 0, 0, 0)),
    ));
    let (wire, _) = peerdial_dns::tsig::sign_request(m.to_vec()?, &key(), now_secs());
    let mut s = std::net::TcpStream::connect(server)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(&(wire.len() as u16).to_be_bytes())?;
    s.write_all(&wire)?;
    let (mut total, mut current_soas) = (0usize, 0usize);
    // An incremental answer names the current SOA three times: first, as
    // the last difference's new version, and last.
    while current_soas < 3 {
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut b = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut b)?;
        total += b.len() + 2;
        current_soas += Message::from_vec(&b)?
            .answers()
            .iter()
            .filter(|r| matches!(r.data(), RData::SOA(x) if x.serial() == current))
            .count();
    }
    Ok(total)
}

pub async fn propagation(samples: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (nsd_port, bind_port, knot_port, dns_port) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let secondaries: Vec<SocketAddr> = vec![
        format!("127.0.0.1:{nsd_port}").parse()?,
        format!("127.0.0.1:{bind_port}").parse()?,
        format!("127.0.0.1:{knot_port}").parse()?,
    ];
    let region = start_region(dir.path(), |c| {
        c.dns = format!("127.0.0.1:{dns_port}").parse().expect("addr");
        c.tsig_keys = vec![key()];
        c.secondaries = secondaries.clone();
    })
    .await?;
    let zone = region.shared.zone.read().expect("zone lock").origin().to_string();
    let realm = region.shared.realm.clone();
    let users = provision_many(region.endpoints.http, samples).await?;
    let _nsd = secondary("nsd", dir.path(), nsd_port, region.endpoints.dns, &zone)?;
    let _bind = secondary("bind", dir.path(), bind_port, region.endpoints.dns, &zone)?;
    let _knot = secondary("knot", dir.path(), knot_port, region.endpoints.dns, &zone)?;
    let start_serial = region.shared.zone.read().expect("zone lock").serial();
    for s in &secondaries {
        wait_serial(*s, &zone, start_serial, Duration::from_secs(45)).await?;
    }
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); secondaries.len()];
    let sip = region.endpoints.sip;
    for (i, (user, password)) in users.iter().enumerate() {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        let (ok, _) = register_once(&sock, sip, user, password, &realm, i as u32)?;
        let n = Number::parse(user)?;
        let want = format!("sip:{user}@{}", sock.local_addr()?);
        // Poll every secondary in turn until each has answered; each is
        // timed from the 200 OK to its own first right answer.
        let mut seen: Vec<Option<f64>> = vec![None; secondaries.len()];
        while seen.iter().any(Option::is_none) {
            for (j, s) in secondaries.iter().enumerate() {
                if seen[j].is_none() && naptr(*s, n).as_deref() == Some(want.as_str()) {
                    seen[j] = Some(ok.elapsed().as_secs_f64() * 1000.0);
                }
            }
            if ok.elapsed() > Duration::from_secs(10) {
                bail!("a secondary never answered {user}: {seen:?}");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        for (j, t) in seen.into_iter().enumerate() {
            lat[j].push(t.unwrap_or_default());
        }
    }
    let end_serial = region.shared.zone.read().expect("zone lock").serial();
    let one = ixfr_bytes(region.endpoints.dns, &zone, end_serial.wrapping_sub(1), end_serial)?;
    let all = ixfr_bytes(region.endpoints.dns, &zone, start_serial, end_serial)?;
    let changes = end_serial.wrapping_sub(start_serial) as usize;
    region.shutdown().await;
    println!("| registration → NAPTR answered by the secondary ({samples} registrations, one at a time) | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    for (name, mut v) in ["NSD 4.6", "BIND 9.18", "Knot 3.2"].into_iter().zip(lat) {
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} (NOTIFY → IXFR with TSIG) | {:.1} | {:.1} | {:.1} |",
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v[v.len() - 1]
        );
    }
    println!();
    println!("| IXFR | changes | bytes on the wire (TCP, TSIG) | bytes per change |");
    println!("|---|---|---|---|");
    println!("| one registration | 1 | {one} | {one} |");
    println!("| the whole run | {changes} | {all} | {:.0} |", all as f64 / changes.max(1) as f64);
    Ok(())
}

/// A zone file of `numbers` NAPTRs, the same records the region serves.
fn knot_zone_file(path: &Path, zone: &str, numbers: u32, uri: impl Fn(u32) -> String) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "$ORIGIN {zone}\n$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 604800 30\n@ IN NS ns\nns IN A 127.0.0.1"
    )?;
    for i in 0..numbers {
        let n = Number::new(area(), i * (100_000_000 / numbers.max(1)));
        writeln!(
            f,
            "{} IN NAPTR 10 100 \"u\" \"E2U+sip\" \"!^.*$!{}!\" .",
            n.enum_name("peerdial.internal."),
            uri(i)
        )?;
    }
    f.flush()?;
    Ok(())
}

/// Sends NAPTR replacements `range` to `primary` as one signed UPDATE.
fn update(primary: SocketAddr, zone: &str, numbers: u32, range: std::ops::Range<u32>) -> Result<()> {
    let mut m = Message::new();
    m.set_id(21).set_message_type(MessageType::Query).set_op_code(OpCode::Update);
    m.add_zone(Query::query(Name::from_ascii(zone)?, RecordType::SOA));
    for i in range {
        let n = Number::new(area(), i * (100_000_000 / numbers.max(1)));
        let name = Name::from_ascii(n.enum_name("peerdial.internal."))?;
        let mut del = Record::update0(name.clone(), 0, RecordType::NAPTR);
        del.set_dns_class(DNSClass::ANY);
        m.add_update(del);
        m.add_update(Record::from_rdata(
            name,
            60,
            RData::NAPTR(peerdial_dns::naptr(&format!("sip:{}@10.9.0.1:5060", n.digits()))),
        ));
    }
    let (wire, _) = peerdial_dns::tsig::sign_request(m.to_vec()?, &key(), now_secs());
    let mut s = std::net::TcpStream::connect(primary)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(&(wire.len() as u16).to_be_bytes())?;
    s.write_all(&wire)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut b = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut b)?;
    if b[3] & 0x0f != 0 {
        bail!("the primary refused the UPDATE: rcode {}", b[3] & 0x0f);
    }
    Ok(())
}

pub async fn transfer(numbers: u32, changes: u32) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let uri = |i: u32| {
        let n = Number::new(area(), i * (100_000_000 / numbers.max(1)));
        format!("sip:{}@10.{}.{}.{}:5060", n.digits(), (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
    };
    // peerdial's region as the primary.
    let (bind_port, dns_port) = (free_port()?, free_port()?);
    let bind_addr: SocketAddr = format!("127.0.0.1:{bind_port}").parse()?;
    let region = start_region(&dir.path().join("region"), |c| {
        c.dns = format!("127.0.0.1:{dns_port}").parse().expect("addr");
        c.tsig_keys = vec![key()];
        c.secondaries = vec![bind_addr];
    })
    .await?;
    let zone = region.shared.zone.read().expect("zone lock").origin().to_string();
    {
        let mut z = region.shared.zone.write().expect("zone lock");
        for i in 0..numbers {
            let n = Number::new(area(), i * (100_000_000 / numbers.max(1)));
            z.set(n, Some(&uri(i)))?;
        }
    }
    let serial = region.shared.zone.read().expect("zone lock").serial();
    let started = Instant::now();
    let _bind = secondary("bind", &dir.path().join("r"), bind_port, region.endpoints.dns, &zone)?;
    wait_serial(bind_addr, &zone, serial, Duration::from_secs(600)).await?;
    let ours_axfr = started.elapsed();
    let new_serial = {
        let mut z = region.shared.zone.write().expect("zone lock");
        for i in 0..changes {
            let n = Number::new(area(), i * (100_000_000 / numbers.max(1)));
            z.set(n, Some(&format!("sip:{}@10.9.0.1:5060", n.digits())))?;
        }
        z.serial()
    };
    let changed = Instant::now();
    region.shared.serial.send_replace(new_serial);
    wait_serial(bind_addr, &zone, new_serial, Duration::from_secs(120)).await?;
    let ours_ixfr = changed.elapsed();
    drop(_bind);
    region.shutdown().await;

    // Knot as the primary of the same zone.
    let kdir = dir.path().join("knot");
    std::fs::create_dir_all(&kdir)?;
    knot_zone_file(&kdir.join("primary.zone"), &zone, numbers, uri)?;
    let (knot_port, bind2_port) = (free_port()?, free_port()?);
    let (knot_addr, bind2_addr): (SocketAddr, SocketAddr) = (
        format!("127.0.0.1:{knot_port}").parse()?,
        format!("127.0.0.1:{bind2_port}").parse()?,
    );
    std::fs::write(
        kdir.join("knot.conf"),
        format!(
            "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{knot_port}\ncontrol:\n  listen: \"{d}/knot.sock\"\ndatabase:\n  storage: \"{d}\"\n\
             key:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             remote:\n  - id: secondary\n    address: 127.0.0.1@{bind2_port}\n    key: xfr\n\
             acl:\n  - id: allowed\n    address: 127.0.0.1\n    key: xfr\n    action: [transfer, update]\n\
             zone:\n  - domain: {zone}\n    storage: \"{d}\"\n    file: \"primary.zone\"\n    acl: allowed\n    notify: secondary\n    zonefile-sync: -1\n",
            d = kdir.display()
        ),
    )?;
    let _knot = tokio::process::Command::new(tool("knotd")?)
        .args(["-c", kdir.join("knot.conf").to_str().context("path")?])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    wait_serial(knot_addr, &zone, 1, Duration::from_secs(600))
        .await
        .context("Knot loading the zone")?;
    let started = Instant::now();
    let _bind2 = secondary("bind", &dir.path().join("k"), bind2_port, knot_addr, &zone)?;
    wait_serial(bind2_addr, &zone, 1, Duration::from_secs(600)).await?;
    let knot_axfr = started.elapsed();
    let changed = Instant::now();
    // One UPDATE must fit a 64 KiB message: 200 changes each.
    for start in (0..changes).step_by(200) {
        update(knot_addr, &zone, numbers, start..(start + 200).min(changes))?;
    }
    let knot_serial = serial_at(knot_addr, &zone).context("Knot's serial")?;
    wait_serial(bind2_addr, &zone, knot_serial, Duration::from_secs(120)).await?;
    let knot_ixfr = changed.elapsed();

    println!("| {numbers} numbers, BIND 9.18 as the secondary, TSIG | peerdial region as primary | Knot 3.2 as primary | ratio (Knot / peerdial) |");
    println!("|---|---|---|---|");
    println!(
        "| AXFR: secondary started → serial loaded | {:.2} s | {:.2} s | {:.2} |",
        ours_axfr.as_secs_f64(),
        knot_axfr.as_secs_f64(),
        knot_axfr.as_secs_f64() / ours_axfr.as_secs_f64()
    );
    println!(
        "| IXFR after {changes} changes: change → new serial at the secondary | {:.0} ms | {:.0} ms | {:.2} |",
        ours_ixfr.as_secs_f64() * 1000.0,
        knot_ixfr.as_secs_f64() * 1000.0,
        knot_ixfr.as_secs_f64() / ours_ixfr.as_secs_f64()
    );
    Ok(())
}
