//! Text messages in the mailbox (RFC 3428): a MESSAGE to a number of ours
//! is stored and acknowledged with 202 only after its commit (415 for a
//! body that is not text, 404 for an unassigned number, 413 naming the
//! limit for a text over `--mailbox-max-message`, 486 naming the quota
//! when the mailbox is full); each stored text goes to the
//! phone as a MESSAGE when it registers, retransmitted (RFC 3261 timers
//! E/F) until that device answers 200, which is stored as its
//! confirmation, so a device never gets a confirmed text again.
//!
//! Not here: calls and voice ([`crate::mailbox`]); the HTTP list.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peerdial_mailbox::Kind;
use peerdial_number::Number;
use peerdial_sip::call::stateless_response;
use peerdial_sip::ids::token as random_token;
use peerdial_sip::message::SipUri;
use peerdial_sip::transaction::ClientTx;
use peerdial_sip::{Message, Outbound, Transport};
use peerdial_store::MessageRow;
use tokio::sync::mpsc;

use crate::{now_ms, Shared};

/// How long a MESSAGE transaction is remembered (Timer F's 64×T1).
const TRANSACTION_MS: u64 = 32_000;

/// An incoming MESSAGE (on a SIP thread): checked at once, stored and
/// answered on the runtime.
pub fn request(shared: &Arc<Shared>, msg: Message, data: &[u8], source: SocketAddr, transport: Transport) {
    let reply = |code: u16, reason: &str, headers: &[(&str, &str)]| {
        let out = stateless_response(data, source, code, reason, headers).ok().flatten();
        out.map(|t| t.data)
    };
    let key = format!(
        "{} {}",
        msg.header("Call-ID").unwrap_or_default(),
        msg.header("CSeq").unwrap_or_default()
    );
    {
        let mut seen = shared.mailbox.seen.lock().expect("seen lock");
        let now = now_ms();
        seen.sweep(now, TRANSACTION_MS);
        if let Some((answer, _)) = seen.get(&key) {
            // A retransmission: the same answer, or none while storing.
            if let Some(a) = answer {
                send_to(shared, source, transport, a.clone());
            }
            return;
        }
        seen.insert(key.clone(), now);
    }
    let finish = move |shared: &Shared, answer: Option<Vec<u8>>| {
        if let Some(a) = answer {
            if let Some(e) = shared.mailbox.seen.lock().expect("seen lock").get_mut(&key) {
                e.0 = Some(a.clone());
            }
            send_to(shared, source, transport, a);
        }
    };
    let uri = match &msg.start {
        peerdial_sip::message::StartLine::Request { uri, .. } => uri.clone(),
        _ => return,
    };
    let number = SipUri::parse(&uri).ok().and_then(|u| u.user).and_then(|u| Number::parse(u).ok());
    let Some(number) =
        number.filter(|n| shared.cfg.area.contains(*n) && shared.registrar.lock().expect("registrar lock").has_credential(*n))
    else {
        return finish(shared, reply(404, "Not Found", &[]));
    };
    let ctype = msg.header("Content-Type").unwrap_or_default().to_string();
    let mime = ctype.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if mime != "text/plain" || std::str::from_utf8(&msg.body).is_err() {
        return finish(shared, reply(415, "Unsupported Media Type", &[("Accept", "text/plain")]));
    }
    let room = shared
        .mailbox
        .book
        .lock()
        .expect("book lock")
        .reserve(number, msg.body.len() as u64);
    let room = match room {
        Ok(r) => r,
        Err(e) => {
            let why = e.to_string();
            let (code, reason) = match e {
                peerdial_mailbox::MailboxError::Empty => (400, "Empty Message"),
                peerdial_mailbox::MailboxError::TooLarge { .. } => (413, "Message Too Large"),
                _ => (486, "Mailbox Full"),
            };
            tracing::info!(%number, %why, "MESSAGE refused");
            return finish(shared, reply(code, reason, &[("Warning", &format!("399 peerdial \"{why}\""))]));
        }
    };
    let accepted = reply(202, "Accepted", &[]);
    let failed = reply(500, "Server Internal Error", &[("Retry-After", "5")]);
    let shared2 = shared.clone();
    shared.rt.spawn(async move {
        let shared = shared2;
        let (sender, verified) = crate::mailbox::caller_of(&shared, &msg, number).await;
        let at = now_ms();
        let row = MessageRow {
            id: 0,
            number: number.as_u64() as i64,
            kind: Kind::Text.as_str().into(),
            content_type: ctype,
            sender,
            verified,
            at_ms: at as i64,
            size: msg.body.len() as i64,
            read_ms: 0,
            body: msg.body.clone(),
            path: String::new(),
        };
        match crate::deposit::keep(&shared, room, &row).await {
            Ok(_) => {
                finish(&shared, accepted);
                deliver(&shared, number);
            }
            Err(e) => {
                tracing::error!(%number, error = %e, "text message not stored");
                finish(&shared, failed);
            }
        }
    });
}

/// An answer, over the transport its request came on.
fn send_to(shared: &Shared, to: SocketAddr, transport: Transport, data: Vec<u8>) {
    shared.presence.send(Outbound { to, transport, data });
}

/// Sends `number`'s undelivered texts to its registered phone, if any; a
/// delivery already running for it picks up new ones itself.
pub fn deliver(shared: &Arc<Shared>, number: Number) {
    let binding = shared.registrar.lock().expect("registrar lock").binding(number).cloned();
    let Some(b) = binding else { return };
    // A phone that stopped answering (killed, its flow closed) gets nothing
    // now: its next registration delivers. Trying meanwhile would hold the
    // number's delivery for a whole transaction when it comes back.
    let Some(conn) = shared.presence.reachable_at(number) else { return };
    // A phone that takes requests over TCP gets them on its connection; one
    // that registers on a TCP flow but says UDP in its Contact (ours) over
    // UDP to that contact.
    let (to, transport) = if b.transport == Transport::Tcp && b.uri.contains(";transport=tcp") {
        conn
    } else {
        (b.addr, Transport::Udp)
    };
    if !shared.mailbox.delivering.lock().expect("delivering lock").insert(number) {
        return;
    }
    let shared = shared.clone();
    shared.rt.clone().spawn(async move {
        // A device is its registered Contact: stable for one phone.
        let device = b.contact.clone();
        loop {
            let pending = shared
                .mailbox
                .book
                .lock()
                .expect("book lock")
                .pending_of(number, &device, Kind::Text);
            let Some(id) = pending.into_iter().next() else { break };
            let confirmed = match shared.store.message(number.as_u64() as i64, id).await {
                Ok(Some(m)) => send_one(&shared, number, &b.uri, to, transport, &m).await,
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(%number, error = %e, "cannot read a text to deliver");
                    false
                }
            };
            if !confirmed {
                break; // tried again at its next registration
            }
            match shared.store.confirm_delivery(id, &device, now_ms() as i64).await {
                Ok(_) => {
                    let _ = shared.mailbox.book.lock().expect("book lock").confirm(number, id, &device);
                }
                Err(e) => {
                    tracing::warn!(%number, error = %e, "delivery confirmed but not stored");
                    break;
                }
            }
        }
        shared.mailbox.delivering.lock().expect("delivering lock").remove(&number);
    });
}

/// One MESSAGE to the phone, retransmitted until a final answer; whether
/// it was a 2xx.
async fn send_one(shared: &Shared, number: Number, uri: &str, to: SocketAddr, transport: Transport, m: &MessageRow) -> bool {
    let region = shared.endpoints.sip;
    let call_id = format!("{}@{}", random_token(16), region.ip());
    let from = if m.sender.contains(':') {
        m.sender.clone()
    } else {
        format!("sip:{}@{}", m.sender, region)
    };
    let via = match transport {
        Transport::Tcp => "TCP",
        Transport::Udp => "UDP",
    };
    let mut data = format!(
        "MESSAGE {uri} SIP/2.0\r\nVia: SIP/2.0/{via} {region};branch=z9hG4bK{};rport\r\nMax-Forwards: 70\r\n\
From: <{from}>;tag={}\r\nTo: <sip:{}@{region}>\r\nCall-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\n\
Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
        random_token(12),
        random_token(8),
        number.digits(),
        m.content_type,
        m.body.len()
    )
    .into_bytes();
    data.extend_from_slice(&m.body);
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.mailbox.calls.lock().expect("calls lock").insert(call_id.clone(), tx);
    // Retransmitted on Timer E over UDP, given up on Timer F.
    let (mut txn, first) = ClientTx::start_over(transport, 1, to, data, now_ms());
    shared.presence.send(first);
    let ok = loop {
        let wait = Duration::from_millis(txn.due().saturating_sub(now_ms()));
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some((resp, _))) => {
                if let Ok(peerdial_sip::message::StartLine::Response { code, .. }) = Message::parse(&resp).map(|r| r.start) {
                    if code >= 200 {
                        break (200..300).contains(&code);
                    }
                }
            }
            Ok(None) => break false,
            Err(_) => match txn.on_timeout(now_ms()) {
                Ok(Some(again)) => shared.presence.send(again),
                Ok(None) => {}
                Err(()) => break false,
            },
        }
    };
    shared.mailbox.calls.lock().expect("calls lock").remove(&call_id);
    tracing::debug!(%number, id = m.id, ok, "text delivery");
    ok
}
