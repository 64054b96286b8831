//! The region's mailbox on SIP (issue 12): it answers INVITEs addressed to
//! its numbers' order-20 NAPTR (`sip:<number>@<region SIP address>`), logs
//! the attempt (the patent's `user_call`, verified when the caller's
//! `Identity` checks out), plays the owner's prompt (or a default one),
//! records up to `--voice-max` seconds of the caller's audio (PCMU, PCMA or
//! Opus; `#` as an RFC 4733 event or a BYE ends it; no RTP ends it after
//! `NO_RTP_MS`, keeping nothing) and stores it as a WAV message.
//!
//! This module is the intake: it claims the SIP meant for the mailbox
//! (over UDP and TCP), starts one deposit task per call
//! ([`crate::deposit`]) and hands it that call's SIP by Call-ID; it also
//! keeps the numbers' states and the retention sweep. The index of stored
//! messages is a [`peerdial_mailbox::Book`]; rows are in the store, and a
//! message counts only after its commit. Not here: the deposit itself
//! ([`crate::deposit`]), the HTTP routes ([`crate::mailbox_api`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use peerdial_mailbox::{Book, Kind, Limits};
use peerdial_media::MediaSession;
use peerdial_number::Number;
use peerdial_sip::call::{stateless_response, Transmit};
use peerdial_sip::message::{NameAddr, SipUri, StartLine};
use peerdial_sip::{Message, Outbound, Transport};
use peerdial_store::Store;
use tokio::sync::mpsc;

use crate::{now_ms, RegionError, Shared};

type Inbox = mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>;
/// A MESSAGE transaction's answer (once there is one) and when it came.
pub(crate) type Seen = (Option<Vec<u8>>, u64);

/// MESSAGE transactions by key, forgotten `keep_ms` after they came; the
/// old ones are swept at most once a second, not on every request.
#[derive(Default)]
pub(crate) struct SeenMap {
    map: HashMap<String, Seen>,
    swept_ms: u64,
}

impl SeenMap {
    pub(crate) fn sweep(&mut self, now: u64, keep_ms: u64) {
        if now >= self.swept_ms + 1000 {
            self.swept_ms = now;
            self.map.retain(|_, (_, at)| *at + keep_ms > now);
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Seen> {
        self.map.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Seen> {
        self.map.get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: String, at: u64) {
        self.map.insert(key, (None, at));
    }
}

pub struct Mailbox {
    /// Quotas, retention and delivery state of every stored message.
    pub book: Mutex<Book>,
    /// Deposits and deliveries in progress, by Call-ID.
    pub(crate) calls: Mutex<HashMap<String, Inbox>>,
    udp: OnceLock<Arc<std::net::UdpSocket>>,
    /// MESSAGE transactions seen lately (Call-ID and CSeq): the answer
    /// once there is one, and when it was seen (retransmissions are
    /// answered again, never stored twice).
    pub(crate) seen: Mutex<SeenMap>,
    /// Numbers with a delivery running (one at a time per number).
    pub(crate) delivering: Mutex<std::collections::HashSet<Number>>,
    /// Subscriptions to `message-summary`.
    pub(crate) mwi: crate::mailbox_mwi::Mwi,
    /// What finished deposits received (read by `peerdial bench deposits`).
    pub totals: DepositTotals,
}

/// Totals over every finished deposit since start: packets received,
/// frames the playout found missing or too late, samples recorded.
#[derive(Debug, Default)]
pub struct DepositTotals {
    pub deposits: AtomicU64,
    pub packets: AtomicU64,
    pub lost: AtomicU64,
    pub late: AtomicU64,
    /// Frames the playout dropped because too many were queued (a sender,
    /// or our own reading, running in bursts).
    pub dropped: AtomicU64,
    pub samples: AtomicU64,
}

impl DepositTotals {
    /// (deposits, packets, lost, late, dropped, samples) as of now.
    pub fn snapshot(&self) -> [u64; 6] {
        [&self.deposits, &self.packets, &self.lost, &self.late, &self.dropped, &self.samples].map(|a| a.load(Ordering::Relaxed))
    }

    pub(crate) fn add(&self, media: &MediaSession, samples: usize) {
        let j = media.jitter_stats();
        self.deposits.fetch_add(1, Ordering::Relaxed);
        self.packets.fetch_add(media.stats.received_packets, Ordering::Relaxed);
        self.lost.fetch_add(j.lost, Ordering::Relaxed);
        self.late.fetch_add(j.late, Ordering::Relaxed);
        self.dropped.fetch_add(j.dropped_for_drift, Ordering::Relaxed);
        self.samples.fetch_add(samples as u64, Ordering::Relaxed);
    }
}

impl Mailbox {
    /// The index of what the store holds.
    pub async fn load(store: &Store, limits: Limits) -> Result<Mailbox, RegionError> {
        let mut book = Book::new(limits);
        let mut confirmed: HashMap<i64, Vec<String>> = HashMap::new();
        for (id, device) in store.deliveries().await? {
            confirmed.entry(id).or_default().push(device);
        }
        for m in store.message_index().await? {
            let bad = |w: &str| RegionError::BadRow(format!("message {}: bad {w}", m.id));
            let n = Number::from_u64(m.number as u64).map_err(|_| bad("number"))?;
            let kind = Kind::parse(&m.kind).map_err(|_| bad("kind"))?;
            let devices = confirmed.remove(&m.id).unwrap_or_default();
            let stored = peerdial_mailbox::Stored {
                id: m.id,
                kind,
                size: m.size as u64,
                at_ms: m.at_ms as u64,
                read: m.read_ms != 0,
            };
            book.load(n, stored, devices);
        }
        Ok(Mailbox {
            book: Mutex::new(book),
            calls: Mutex::new(HashMap::new()),
            udp: OnceLock::new(),
            seen: Mutex::new(SeenMap::default()),
            delivering: Mutex::new(Default::default()),
            mwi: Default::default(),
            totals: DepositTotals::default(),
        })
    }

    pub fn set_udp(&self, sock: Arc<std::net::UdpSocket>) {
        let _ = self.udp.set(sock);
    }

    pub(crate) fn send(&self, t: Transmit) {
        if let Some(sock) = self.udp.get() {
            let _ = sock.send_to(&t.data, t.to);
        }
    }

    /// Whether a request is the mailbox's, over UDP and TCP alike: the
    /// methods of a call (a deposit), MESSAGE ([`crate::mailbox_text`])
    /// and SUBSCRIBE for `message-summary` ([`crate::mailbox_mwi`]).
    pub fn claims(data: &[u8]) -> bool {
        [&b"INVITE "[..], b"ACK ", b"BYE ", b"CANCEL ", b"INFO ", b"MESSAGE "]
            .iter()
            .any(|m| data.starts_with(m))
            || crate::mailbox_mwi::is_mwi(data)
    }

    /// A request: a text or a subscription, or a call's (to its deposit,
    /// or a new deposit); answers go back over `transport`.
    pub fn request(&self, shared: &Arc<Shared>, data: &[u8], source: SocketAddr, transport: Transport) {
        let reply = |code: u16, reason: &str| {
            if let Ok(Some(t)) = stateless_response(data, source, code, reason, &[]) {
                shared.presence.send(Outbound {
                    to: t.to,
                    transport,
                    data: t.data,
                });
            }
        };
        let Ok(msg) = Message::parse(data) else {
            return reply(400, "Bad Request");
        };
        match msg.method() {
            Some("MESSAGE") => return crate::mailbox_text::request(shared, msg, data, source, transport),
            Some("SUBSCRIBE") => return crate::mailbox_mwi::subscribe(shared, msg, source, transport),
            _ => {}
        }
        let cid = msg.header("Call-ID").unwrap_or_default().to_string();
        if let Some(tx) = self.calls.lock().expect("calls lock").get(&cid) {
            let _ = tx.send((data.to_vec(), source));
            return;
        }
        match &msg.start {
            StartLine::Request { method, .. } if method == "INVITE" && to_tagged(&msg) => {
                // A re-INVITE of a dialog we do not have (RFC 3261 12.2.2).
                reply(481, "Call/Transaction Does Not Exist")
            }
            StartLine::Request { method, uri } if method == "INVITE" => {
                let number = SipUri::parse(uri).ok().and_then(|u| u.user).and_then(|u| Number::parse(u).ok());
                let provisioned =
                    number.filter(|n| shared.cfg.area.contains(*n) && shared.registrar.lock().expect("registrar lock").has_credential(*n));
                let Some(number) = provisioned else {
                    return reply(404, "Not Found");
                };
                let (tx, rx) = mpsc::unbounded_channel();
                self.calls.lock().expect("calls lock").insert(cid.clone(), tx);
                let (shared, data) = (shared.clone(), data.to_vec());
                let leg = crate::deposit::Leg { transport, peer: source };
                shared.rt.clone().spawn(async move {
                    crate::deposit::deposit(&shared, number, msg, data, leg, rx).await;
                    shared.mailbox.calls.lock().expect("calls lock").remove(&cid);
                });
            }
            StartLine::Request { method, .. } if method == "ACK" => {}
            _ => reply(481, "Call/Transaction Does Not Exist"),
        }
    }

    /// A response to one of a deposit's or a delivery's requests, or to
    /// a NOTIFY; whether it was.
    pub fn response(&self, data: &[u8], source: SocketAddr) -> bool {
        let Ok(msg) = Message::parse(data) else { return false };
        if self.mwi.answered(&msg) {
            return true;
        }
        let cid = msg.header("Call-ID").unwrap_or_default();
        match self.calls.lock().expect("calls lock").get(cid) {
            Some(tx) => {
                let _ = tx.send((data.to_vec(), source));
                true
            }
            None => false,
        }
    }
}

fn to_tagged(msg: &Message) -> bool {
    msg.header("To")
        .and_then(|t| NameAddr::parse(t).ok())
        .is_some_and(|t| t.param("tag").is_some())
}

/// Removes messages past the retention period (`--mailbox-retention-days`)
/// at start, then when the next one is due (at least once a minute): from
/// the store first, then from the index.
pub async fn retention_loop(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let expired = shared.mailbox.book.lock().expect("book lock").expired(now_ms());
        for (n, id) in expired {
            match shared.store.delete_message(n.as_u64() as i64, id).await {
                Ok(_) => {
                    let _ = shared.mailbox.book.lock().expect("book lock").remove(n, id);
                    crate::mailbox_mwi::changed(&shared, n);
                    tracing::info!(number = %n, id, "message past retention removed");
                }
                Err(e) => tracing::warn!(number = %n, id, error = %e, "expired message not removed; retried later"),
            }
        }
        let next = shared.mailbox.book.lock().expect("book lock").next_expiry();
        let ms = next.map_or(60_000, |t| t.saturating_sub(now_ms())).clamp(1_000, 60_000);
        wait = Duration::from_millis(ms);
    }
}

/// Records each number's state, address and time as presence changes
/// (the patent's `user_property`), for the region's database.
pub async fn record_states(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut events = shared.presence.subscribe_events();
    loop {
        let e = tokio::select! {
            e = events.recv() => e,
            _ = stop.changed() => return,
        };
        let e = match e {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let online = e.presence.state != peerdial_presence::State::Offline;
        let addr = shared
            .registrar
            .lock()
            .expect("registrar lock")
            .binding(e.number)
            .map(|b| b.addr.to_string())
            .unwrap_or_default();
        let row = peerdial_store::NumberStateRow {
            number: e.number.as_u64() as i64,
            online,
            addr,
            changed_ms: e.presence.since as i64,
        };
        if let Err(err) = shared.store.put_number_state(&row).await {
            tracing::warn!(number = %e.number, error = %err, "number state not recorded");
        }
    }
}

/// The caller as shown (a number's digits, else the From URI), and whether
/// its `Identity` verified for this callee.
pub(crate) async fn caller_of(shared: &Shared, msg: &Message, callee: Number) -> (String, bool) {
    let from = msg.header("From").and_then(|f| NameAddr::parse(f).ok()).map(|f| f.uri.to_string());
    let from = from.unwrap_or_default();
    let number = SipUri::parse(&from).ok().and_then(|u| u.user).and_then(|u| Number::parse(u).ok());
    match (number, msg.header("Identity")) {
        (Some(n), Some(token)) => {
            let ok = shared.watchers.verify_token(n, callee, token, now_ms()).await.is_some();
            (n.digits(), ok)
        }
        (Some(n), None) => (n.digits(), false),
        (None, _) => (from, false),
    }
}
