//! Message waiting indication (RFC 3842) for the mailbox: a phone
//! SUBSCRIBEs to `message-summary` for its own number (digest credentials
//! as for REGISTER), gets a NOTIFY at once and another whenever the
//! mailbox changes (a message stored, read or deleted); `Expires: 0` ends
//! the subscription with a final NOTIFY.
//!
//! Over UDP each NOTIFY is a client transaction
//! ([`peerdial_sip::transaction::ClientTx`]): retransmitted on Timer E
//! until its answer, given up on Timer F; a 481 ends the subscription.
//! Over TCP (the SUBSCRIBE came on a connection) it goes once, on that
//! connection.
//!
//! Not here: the body's format ([`peerdial_mailbox::summary`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerdial_number::Number;
use peerdial_sip::ids::{branch, token};
use peerdial_sip::message::{response, top_via, NameAddr, SipUri, StartLine};
use peerdial_sip::transaction::ClientTx;
use peerdial_sip::{Message, Outbound, Transport};

use crate::{now_ms, Shared};

/// Longest subscription granted (and the default).
const MAX_EXPIRES: u64 = 3600;

#[derive(Debug, Clone)]
struct Subscription {
    number: Number,
    call_id: String,
    local_tag: String,
    remote_tag: String,
    remote_uri: String,
    target: String,
    to: SocketAddr,
    transport: Transport,
    expires_at: u64,
    cseq: u32,
}

#[derive(Default)]
pub struct Mwi {
    subs: Mutex<Vec<Subscription>>,
    /// NOTIFYs sent over UDP awaiting their answer, by Call-ID and CSeq.
    pending: Mutex<HashMap<(String, u32), ClientTx>>,
    /// Tells the retransmission loop a NOTIFY is pending.
    wake: tokio::sync::Notify,
}

impl Mwi {
    /// A response: whether it answers one of our NOTIFYs (then it ends
    /// that transaction; a 481 also ends the subscription).
    pub(crate) fn answered(&self, msg: &Message) -> bool {
        let StartLine::Response { code, .. } = msg.start else {
            return false;
        };
        let call_id = msg.header("Call-ID").unwrap_or_default().to_string();
        let cseq = msg.header("CSeq").unwrap_or_default();
        let (Some(n), true) = (
            cseq.split_whitespace().next().and_then(|n| n.parse::<u32>().ok()),
            cseq.ends_with("NOTIFY"),
        ) else {
            return false;
        };
        if code < 200 {
            return self.pending.lock().expect("mwi lock").contains_key(&(call_id, n));
        }
        if self.pending.lock().expect("mwi lock").remove(&(call_id.clone(), n)).is_none() {
            return false;
        }
        if code == 481 {
            self.subs.lock().expect("mwi lock").retain(|s| s.call_id != call_id);
        }
        true
    }
}

/// Retransmits unanswered NOTIFYs (Timer E) until their answer or Timer F.
pub async fn retransmit_loop(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mwi = &shared.mailbox.mwi;
    loop {
        let next = mwi.pending.lock().expect("mwi lock").values().map(ClientTx::due).min();
        let wait = next.map_or(60_000, |t| t.saturating_sub(now_ms()));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = mwi.wake.notified() => {}
            _ = stop.changed() => return,
        }
        let now = now_ms();
        let mut out = Vec::new();
        mwi.pending
            .lock()
            .expect("mwi lock")
            .retain(|(call_id, _), tx| match tx.on_timeout(now) {
                Ok(t) => {
                    out.extend(t);
                    true
                }
                Err(()) => {
                    tracing::debug!(%call_id, "message-summary NOTIFY not answered (Timer F)");
                    false
                }
            });
        for t in out {
            shared.presence.send(t);
        }
    }
}

/// Whether a datagram is a SUBSCRIBE for `message-summary`.
pub fn is_mwi(data: &[u8]) -> bool {
    data.starts_with(b"SUBSCRIBE ")
        && data
            .windows(b"message-summary".len())
            .any(|w| w.eq_ignore_ascii_case(b"message-summary"))
}

pub fn subscribe(shared: &Arc<Shared>, msg: Message, source: SocketAddr, transport: Transport) {
    let send = |to: SocketAddr, data: Vec<u8>| shared.presence.send(Outbound { to, transport, data });
    let now = now_ms();
    let auth = shared
        .registrar
        .lock()
        .expect("registrar lock")
        .authenticate(&msg, source, transport, now);
    let number = match auth {
        Ok(n) => n,
        Err(answer) => {
            if !answer.is_empty() {
                send(source, answer);
            }
            return;
        }
    };
    let Some(via) = top_via(&msg) else { return };
    let target_user = match &msg.start {
        StartLine::Request { uri, .. } => SipUri::parse(uri).ok().and_then(|u| u.user).map(str::to_string),
        _ => None,
    };
    let from = msg.header("From").and_then(|f| NameAddr::parse(f).ok());
    let to_tag = msg
        .header("To")
        .and_then(|t| NameAddr::parse(t).ok())
        .and_then(|t| t.param("tag").flatten().map(str::to_string))
        .unwrap_or_else(|| token(10));
    let own = target_user.and_then(|u| Number::parse(&u).ok()) == Some(number);
    let (Some(from), true) = (from, own) else {
        let r = response(&msg, &via, source, 403, "Only Your Own Mailbox", &to_tag);
        return send(source, r.to_bytes());
    };
    let expires = msg
        .header("Expires")
        .and_then(|e| e.trim().parse::<u64>().ok())
        .unwrap_or(MAX_EXPIRES)
        .min(MAX_EXPIRES);
    let mut ok = response(&msg, &via, source, 200, "OK", &to_tag);
    ok.push("Expires", expires.to_string());
    ok.push("Contact", format!("<sip:{}@{}>", number.digits(), shared.endpoints.sip));
    send(source, ok.to_bytes());
    let call_id = msg.header("Call-ID").unwrap_or_default().to_string();
    let target = msg
        .header("Contact")
        .and_then(|c| NameAddr::parse(c).ok())
        .map(|c| c.uri.to_string())
        .unwrap_or_else(|| from.uri.to_string());
    let sub = {
        let mut subs = shared.mailbox.mwi.subs.lock().expect("mwi lock");
        // A refresh goes on with the dialog's CSeq.
        let cseq = subs.iter().find(|s| s.call_id == call_id).map_or(1, |s| s.cseq + 1);
        subs.retain(|s| s.call_id != call_id && s.expires_at > now);
        let sub = Subscription {
            number,
            call_id,
            local_tag: to_tag,
            remote_tag: from.param("tag").flatten().unwrap_or_default().to_string(),
            remote_uri: from.uri.to_string(),
            target,
            to: source,
            transport,
            expires_at: now + expires * 1000,
            cseq,
        };
        if expires > 0 {
            subs.push(sub.clone());
        }
        sub
    };
    notify(shared, &sub, now);
}

/// `number`'s mailbox changed: every live subscription hears it.
pub fn changed(shared: &Shared, number: Number) {
    let now = now_ms();
    let due: Vec<Subscription> = {
        let mut subs = shared.mailbox.mwi.subs.lock().expect("mwi lock");
        subs.retain(|s| s.expires_at > now);
        subs.iter_mut()
            .filter(|s| s.number == number)
            .map(|s| {
                s.cseq += 1;
                s.clone()
            })
            .collect()
    };
    for s in due {
        notify(shared, &s, now);
    }
}

fn notify(shared: &Shared, s: &Subscription, now: u64) {
    let region = shared.endpoints.sip;
    let state = if s.expires_at > now {
        format!("active;expires={}", (s.expires_at - now) / 1000)
    } else {
        "terminated;reason=timeout".to_string()
    };
    let account = format!("sip:{}@{}", s.number.digits(), region);
    let body = shared
        .mailbox
        .book
        .lock()
        .expect("book lock")
        .summary(s.number, Some(account.clone()))
        .encode();
    let via = match s.transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    };
    let data = format!(
        "NOTIFY {} SIP/2.0\r\nVia: SIP/2.0/{via} {region};branch={};rport\r\nMax-Forwards: 70\r\n\
From: <{account}>;tag={}\r\nTo: <{}>;tag={}\r\nCall-ID: {}\r\nCSeq: {} NOTIFY\r\nContact: <{account}>\r\n\
Event: message-summary\r\nSubscription-State: {state}\r\nContent-Type: application/simple-message-summary\r\n\
Content-Length: {}\r\n\r\n{body}",
        s.target,
        branch(),
        s.local_tag,
        s.remote_uri,
        s.remote_tag,
        s.call_id,
        s.cseq,
        body.len()
    )
    .into_bytes();
    let first = match s.transport {
        Transport::Tcp => Outbound {
            to: s.to,
            transport: Transport::Tcp,
            data,
        },
        Transport::Udp => {
            let (tx, first) = ClientTx::start(s.cseq, s.to, data, now);
            let mwi = &shared.mailbox.mwi;
            mwi.pending.lock().expect("mwi lock").insert((s.call_id.clone(), s.cseq), tx);
            mwi.wake.notify_one();
            first
        }
    };
    shared.presence.send(first);
}
