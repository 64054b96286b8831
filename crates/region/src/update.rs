//! Publishing to an external primary instead of (or besides) the embedded
//! DNS: each change becomes part of an RFC 2136 UPDATE, signed with TSIG,
//! sent over TCP to the primary (BIND, Knot, …). Changes are batched; a
//! batch that fails is retried until the primary takes it. At start every
//! number's NAPTR set is sent again, so a primary that missed updates while
//! the region was down catches up.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use peerdial_number::Number;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::{now_ms, Shared};

const BATCH: usize = 200;

pub async fn update_loop(
    shared: Arc<Shared>,
    primary: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Number>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pending: BTreeSet<Number> = shared.zone.read().expect("zone lock").numbers().collect();
    let mut backoff = Duration::from_millis(200);
    loop {
        if pending.is_empty() {
            tokio::select! {
                n = rx.recv() => match n { Some(n) => { pending.insert(n); } None => return },
                _ = stop.changed() => return,
            }
        }
        // Gather what else is waiting, briefly, into one UPDATE.
        tokio::time::sleep(Duration::from_millis(5)).await;
        while let Ok(n) = rx.try_recv() {
            pending.insert(n);
        }
        let batch: Vec<Number> = pending.iter().take(BATCH).copied().collect();
        match send(&shared, primary, &batch).await {
            Ok(()) => {
                for n in &batch {
                    pending.remove(n);
                }
                backoff = Duration::from_millis(200);
            }
            Err(e) => {
                tracing::warn!(%primary, "UPDATE failed, will retry: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// One UPDATE bringing the primary in line with the zone for `numbers`:
/// delete each name's NAPTR set, add the current one (contact, mailbox).
async fn send(shared: &Shared, primary: SocketAddr, numbers: &[Number]) -> Result<(), String> {
    let origin = shared.zone.read().expect("zone lock").origin().to_string();
    let zone = Name::from_ascii(&origin).map_err(|e| e.to_string())?;
    let id: u16 = rand::random();
    let mut m = Message::new();
    m.set_id(id).set_message_type(MessageType::Query).set_op_code(OpCode::Update);
    m.add_zone(Query::query(zone, RecordType::SOA));
    {
        let zone = shared.zone.read().expect("zone lock");
        for n in numbers {
            let name = Name::from_ascii(n.enum_name(&shared.cfg.root_domain)).map_err(|e| e.to_string())?;
            let mut delete = Record::update0(name.clone(), 0, RecordType::NAPTR);
            delete.set_dns_class(DNSClass::ANY);
            m.add_update(delete);
            // The zone's set: the contact and the mailbox, as we serve them.
            for (order, uri) in zone.records(*n) {
                m.add_update(Record::from_rdata(
                    name.clone(),
                    shared.cfg.ttl,
                    RData::NAPTR(peerdial_dns::naptr_ordered(order, &uri)),
                ));
            }
        }
    }
    let mut wire = m.to_vec().map_err(|e| e.to_string())?;
    let key = shared.cfg.tsig_keys.first().ok_or("no TSIG key")?;
    let mac;
    (wire, mac) = peerdial_dns::tsig::sign_request(wire, key, now_ms() / 1000);
    let io = |e: std::io::Error| e.to_string();
    let exchange = async {
        let mut s = TcpStream::connect(primary).await.map_err(io)?;
        s.write_all(&(wire.len() as u16).to_be_bytes()).await.map_err(io)?;
        s.write_all(&wire).await.map_err(io)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.map_err(io)?;
        let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut resp).await.map_err(io)?;
        Ok::<_, String>(resp)
    };
    let resp = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer in 5 s".to_string())??;
    if resp.len() < 12 || u16::from_be_bytes([resp[0], resp[1]]) != id {
        return Err("answer to another request".into());
    }
    if !peerdial_dns::tsig::verify_response(&resp, key, &mac) {
        return Err(format!(
            "the primary's answer is not signed with our key (rcode {})",
            resp[3] & 0x0f
        ));
    }
    match resp[3] & 0x0f {
        0 => Ok(()),
        rc => Err(format!("the primary refused the UPDATE (rcode {rc})")),
    }
}
