//! NOTIFY (RFC 1996): after the zone changes, tell each secondary, so it
//! asks for an IXFR at once instead of at its next refresh. Changes that
//! come in a burst are announced once; each NOTIFY is retried until the
//! secondary acknowledges it (five tries, a second apart).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::{now_ms, Shared};

pub async fn notify_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut serials = shared.serial.subscribe();
    loop {
        tokio::select! {
            r = serials.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        // Let a burst of registrations settle into one NOTIFY.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let serial = *serials.borrow_and_update();
        for s in shared.cfg.secondaries.clone() {
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = notify_one(&shared, s).await {
                    tracing::warn!(secondary = %s, serial, "NOTIFY: {e}");
                }
            });
        }
    }
}

async fn notify_one(shared: &Shared, secondary: SocketAddr) -> Result<(), String> {
    let origin = shared.zone.read().expect("zone lock").origin().to_string();
    let name = Name::from_ascii(&origin).map_err(|e| e.to_string())?;
    let id: u16 = rand::random();
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Notify)
        .set_authoritative(true);
    m.add_query(Query::query(name, RecordType::SOA));
    let mut wire = m.to_vec().map_err(|e| e.to_string())?;
    let key = shared.cfg.tsig_keys.first();
    let mut mac = Vec::new();
    if let Some(k) = key {
        (wire, mac) = peerdial_dns::tsig::sign_request(wire, k, now_ms() / 1000);
    }
    // From the DNS server's own address: secondaries accept NOTIFY from
    // their primary's IP.
    let sock = UdpSocket::bind(SocketAddr::new(shared.endpoints.dns.ip(), 0))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..5 {
        sock.send_to(&wire, secondary).await.map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            let resp = &buf[..n];
            if from.ip() != secondary.ip() || n < 12 || u16::from_be_bytes([resp[0], resp[1]]) != id || resp[2] & 0x80 == 0 {
                continue;
            }
            if let Some(k) = key {
                if !peerdial_dns::tsig::verify_response(resp, k, &mac) {
                    return Err("the acknowledgement's TSIG does not verify".into());
                }
            }
            return match resp[3] & 0x0f {
                0 => Ok(()),
                rc => Err(format!("the secondary answered rcode {rc}")),
            };
        }
    }
    Err("no acknowledgement after 5 tries".into())
}
