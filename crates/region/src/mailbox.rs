//! The region's mailbox on SIP (issue 12): it answers INVITEs addressed to
//! its numbers' order-20 NAPTR (`sip:<number>@<region SIP address>`), logs
//! the attempt (the patent's `user_call`, verified when the caller's
//! `Identity` checks out), plays the owner's prompt (or a default one),
//! records up to `--voice-max` seconds of the caller's audio (PCMU, PCMA or
//! Opus; `#` as an RFC 4733 event or a BYE ends it; no RTP ends it after
//! `NO_RTP_MS`, keeping nothing) and stores it as a WAV message.
//!
//! Each deposit is one tokio task owning its dialog ([`peerdial_sip::call`])
//! and media ([`peerdial_media::MediaSession`]); SIP for it arrives by
//! Call-ID. The index of stored messages is a [`peerdial_mailbox::Book`];
//! rows are in the store, and a message counts only after its commit.
//! Not here: the HTTP routes ([`crate::mailbox_api`]); SIP over TCP for
//! deposits (answers go out over UDP).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use peerdial_mailbox::{Book, Kind, Limits};
use peerdial_media::sdp::{self, CodecKind, Sdp};
use peerdial_media::{Channel, MediaEvent, MediaSession};
use peerdial_number::Number;
use peerdial_sip::call::{stateless_response, Call, CallEvent, Local, Transmit};
use peerdial_sip::message::{NameAddr, SipUri, StartLine};
use peerdial_sip::{Message, Outbound, Transport};
use peerdial_store::{MessageRow, Store};
use tokio::sync::mpsc;

use crate::{now_ms, RegionError, Shared};

/// A deposit with no RTP at all for this long ends, and keeps nothing.
pub const NO_RTP_MS: u64 = 4_000;
/// Codecs the mailbox records, preferred first.
const CODECS: [CodecKind; 3] = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Opus];

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

    fn add(&self, media: &MediaSession, samples: usize) {
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
                let leg = Leg { transport, peer: source };
                shared.rt.clone().spawn(async move {
                    deposit(&shared, number, msg, data, leg, rx).await;
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

/// Where a deposit's SIP goes: over UDP to the address the call machine
/// names; over TCP back on the connection the INVITE came on (connection
/// reuse, RFC 5923), whatever address the caller's Contact says.
#[derive(Debug, Clone, Copy)]
struct Leg {
    transport: Transport,
    peer: SocketAddr,
}

impl Leg {
    fn send(self, shared: &Shared, t: Transmit) {
        match self.transport {
            Transport::Udp => shared.mailbox.send(t),
            Transport::Tcp => shared.presence.send(Outbound {
                to: self.peer,
                transport: Transport::Tcp,
                data: t.data,
            }),
        }
    }
}

async fn deposit(
    shared: &Arc<Shared>,
    number: Number,
    msg: Message,
    data: Vec<u8>,
    leg: Leg,
    mut rx: mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>,
) {
    let source = leg.peer;
    let ip = shared.endpoints.sip.ip();
    let local = Local {
        uri: format!("sip:{}@{}", number.digits(), shared.endpoints.sip),
        addr: shared.endpoints.sip,
        user_agent: "peerdial-mailbox".into(),
    };
    let mut call = match Call::incoming(local, &data, source, now_ms()) {
        Ok(c) => c,
        Err(t) => {
            if let Some(t) = t {
                leg.send(shared, t);
            }
            return;
        }
    };
    let (caller, verified) = caller_of(shared, &msg, number).await;
    if let Err(e) = shared
        .store
        .add_call(number.as_u64() as i64, &caller, verified, now_ms() as i64)
        .await
    {
        tracing::error!(%number, error = %e, "could not log a call to the mailbox");
    }
    let max_ms = shared.cfg.voice_max_secs as u64 * 1000;
    let prepared = async {
        let offer = Sdp::parse(&String::from_utf8_lossy(&msg.body)).map_err(|e| (488, e.to_string()))?;
        let sock = tokio::net::UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|e| (503, e.to_string()))?;
        let port = sock.local_addr().map_err(|e| (503, e.to_string()))?.port();
        let (answer, neg) = sdp::answer(&offer, rand::random::<u32>() as u64, ip, port, &CODECS).map_err(|e| (488, e.to_string()))?;
        // Room for the longest recording (16-bit samples) is taken now; a
        // recording also stops where it would outgrow one message.
        let per_ms = neg.codec.clock_rate() as u64 * 2 / 1000;
        let fits_ms = shared.cfg.mailbox_limits.max_message.saturating_sub(44) / per_ms;
        let max_ms = max_ms.min(fits_ms);
        let room = shared.mailbox.book.lock().expect("book lock").reserve(number, max_ms * per_ms + 44);
        let room = room.map_err(|e| (486, e.to_string()))?;
        Ok::<_, (u16, String)>((sock, answer, neg, room, max_ms))
    };
    let (sock, answer, neg, room, max_ms) = match prepared.await {
        Ok(x) => x,
        Err((code, why)) => {
            tracing::info!(%number, code, %why, "mailbox call refused");
            call.reject(code, if code == 486 { "Mailbox Full" } else { "Not Acceptable Here" }, now_ms());
            finish_call(shared, leg, &mut call, &mut rx).await;
            return;
        }
    };
    let rate = neg.codec.clock_rate();
    let prompt = prompt_for(shared, number, rate).await;
    let now = now_ms();
    call.answer(answer.to_text(ip).into_bytes(), now);
    let mut media = match MediaSession::new(neg, prompt, true, "mailbox", now) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "mailbox media");
            shared.mailbox.book.lock().expect("book lock").cancel(room);
            call.hangup(now);
            finish_call(shared, leg, &mut call, &mut rx).await;
            return;
        }
    };
    let started = now;
    let mut buf = vec![0u8; 2048];
    let ended_by = loop {
        while let Some(t) = call.poll_transmit() {
            leg.send(shared, t);
        }
        // Once the prompt has played, the caller gets no more RTP (only
        // silence would go): half the packets of a deposit.
        let prompt_done = media.source_done();
        while let Some(t) = media.poll_transmit() {
            if t.channel == Channel::Rtp && !prompt_done {
                let _ = sock.send_to(&t.data, t.to).await;
            }
        }
        let mut end = None;
        while let Some(e) = call.poll_event() {
            if let CallEvent::Ended(why) = e {
                end = Some(format!("{why:?}"));
            }
        }
        while let Some(e) = media.poll_event() {
            match e {
                MediaEvent::Dtmf('#') => end = Some("#".into()),
                MediaEvent::RemoteBye => end = Some("RTCP BYE".into()),
                _ => {}
            }
        }
        let now = now_ms();
        if now >= started + max_ms {
            end = Some("longest recording".into());
        }
        if media.stats.received_packets == 0 && now >= started + NO_RTP_MS {
            end = Some("no RTP".into());
        }
        if let Some(why) = end {
            break why;
        }
        let next = [call.poll_timeout(), Some(media.poll_timeout()), Some(started + max_ms)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + 20);
        let wait = Duration::from_millis(next.saturating_sub(now).clamp(1, 100));
        tokio::select! {
            m = rx.recv() => if let Some((d, src)) = m {
                if let Ok(m) = Message::parse(&d) {
                    call.handle(&m, src, now_ms());
                }
            },
            r = sock.recv_from(&mut buf) => if let Ok((n, from)) = r {
                media.handle_rtp(&buf[..n], from);
                // Whatever else is waiting goes in before the playout
                // clock runs (a late wake-up must not count them lost).
                for _ in 0..64 {
                    let Ok((n, from)) = sock.try_recv_from(&mut buf) else { break };
                    media.handle_rtp(&buf[..n], from);
                }
            },
            _ = tokio::time::sleep(wait) => {}
        }
        let now = now_ms();
        call.handle_timeout(now);
        if let Err(e) = media.handle_timeout(now) {
            tracing::debug!(error = %e, "mailbox media");
        }
    };
    let heard = media.stats.received_packets > 0;
    let samples = media.played().to_vec();
    shared.mailbox.totals.add(&media, samples.len());
    media.close();
    if !call.is_done() {
        call.hangup(now_ms());
    }
    tracing::info!(%number, ended_by = %ended_by, packets = media.stats.received_packets, samples = samples.len(), "mailbox recording ended");
    if heard && samples.len() >= rate as usize / 10 {
        store_voice(shared, number, &caller, verified, &samples, rate, room).await;
    } else {
        shared.mailbox.book.lock().expect("book lock").cancel(room);
    }
    finish_call(shared, leg, &mut call, &mut rx).await;
}

/// Lets the dialog finish (ACK of a failure, the answer to our BYE), for
/// at most a few seconds.
async fn finish_call(shared: &Shared, leg: Leg, call: &mut Call, rx: &mut mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>) {
    let until = now_ms() + 5_000;
    loop {
        while let Some(t) = call.poll_transmit() {
            leg.send(shared, t);
        }
        while call.poll_event().is_some() {}
        let now = now_ms();
        if call.is_done() || now >= until {
            return;
        }
        let wait = call.poll_timeout().unwrap_or(until).min(until).saturating_sub(now).max(1);
        tokio::select! {
            m = rx.recv() => match m {
                Some((d, src)) => if let Ok(m) = Message::parse(&d) { call.handle(&m, src, now_ms()) },
                None => return,
            },
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        call.handle_timeout(now_ms());
    }
}

async fn store_voice(
    shared: &Shared,
    number: Number,
    caller: &str,
    verified: bool,
    samples: &[i16],
    rate: u32,
    room: peerdial_mailbox::Reservation,
) {
    let wav = wav_bytes(samples, rate);
    let at = now_ms();
    let row = MessageRow {
        id: 0,
        number: number.as_u64() as i64,
        kind: Kind::Voice.as_str().into(),
        content_type: "audio/wav".into(),
        sender: caller.into(),
        verified,
        at_ms: at as i64,
        size: wav.len() as i64,
        read_ms: 0,
        body: wav,
        path: String::new(),
    };
    if let Err(e) = keep(shared, room, &row).await {
        tracing::error!(%number, error = %e, "voice message not stored");
    }
}

/// Stores a message in the room reserved for it (in the store writer's
/// next group commit), then counts it in the book and tells MWI
/// subscribers; on failure the room is given back.
pub(crate) async fn keep(
    shared: &Shared,
    room: peerdial_mailbox::Reservation,
    row: &MessageRow,
) -> Result<i64, peerdial_store::StoreError> {
    let stored = shared.store.add_message(row).await.map(|id| vec![id]);
    Ok(settle(shared, vec![room], std::slice::from_ref(row), stored)?[0])
}

/// [`keep`] for messages of one number committed together (all or none),
/// each in its own room.
pub(crate) async fn keep_all(
    shared: &Shared,
    rooms: Vec<peerdial_mailbox::Reservation>,
    rows: &[MessageRow],
) -> Result<Vec<i64>, peerdial_store::StoreError> {
    let stored = shared.store.add_messages(rows).await;
    settle(shared, rooms, rows, stored)
}

/// After the store answered: the rooms become stored messages, or are
/// given back.
fn settle(
    shared: &Shared,
    rooms: Vec<peerdial_mailbox::Reservation>,
    rows: &[MessageRow],
    stored: Result<Vec<i64>, peerdial_store::StoreError>,
) -> Result<Vec<i64>, peerdial_store::StoreError> {
    match stored {
        Ok(ids) => {
            let mut numbers = Vec::new();
            for ((room, row), id) in rooms.into_iter().zip(rows).zip(&ids) {
                let number = room.number();
                let kind = Kind::parse(&row.kind).unwrap_or(Kind::Text);
                shared
                    .mailbox
                    .book
                    .lock()
                    .expect("book lock")
                    .commit(room, *id, kind, row.size as u64, row.at_ms as u64);
                tracing::info!(%number, id, kind = kind.as_str(), bytes = row.size, "message stored");
                numbers.push(number);
            }
            numbers.dedup();
            for n in numbers {
                crate::mailbox_mwi::changed(shared, n);
            }
            Ok(ids)
        }
        Err(e) => {
            let mut book = shared.mailbox.book.lock().expect("book lock");
            for room in rooms {
                book.cancel(room);
            }
            Err(e)
        }
    }
}

/// 16-bit mono PCM as a WAV file.
pub fn wav_bytes(samples: &[i16], rate: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    if let Ok(mut w) = hound::WavWriter::new(&mut out, spec) {
        for s in samples {
            let _ = w.write_sample(*s);
        }
        let _ = w.finalize();
    }
    out.into_inner()
}

/// The owner's prompt at `rate`, or the default: two chimes and a beep.
async fn prompt_for(shared: &Shared, number: Number, rate: u32) -> Vec<i16> {
    if let Ok(Some(wav)) = shared.store.prompt(number.as_u64() as i64).await {
        if let Some(pcm) = decode_wav(&wav, rate) {
            return pcm;
        }
    }
    let part = |f: f32, ms: u32| peerdial_media::audio::tone(f, rate, (rate * ms / 1000) as usize, 6000.0);
    let gap = vec![0i16; rate as usize / 10];
    [part(660.0, 250), gap.clone(), part(880.0, 250), gap.clone(), gap, part(1000.0, 400)].concat()
}

/// A WAV (any rate, mono or stereo, 8/16/24/32-bit) as mono at `rate`.
pub fn decode_wav(wav: &[u8], rate: u32) -> Option<Vec<i16>> {
    let r = hound::WavReader::new(std::io::Cursor::new(wav)).ok()?;
    let spec = r.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return None;
    }
    let shift = spec.bits_per_sample.saturating_sub(16) as u32;
    let raw: Vec<i32> = match spec.sample_format {
        hound::SampleFormat::Int => r.into_samples::<i32>().collect::<Result<_, _>>().ok()?,
        hound::SampleFormat::Float => r
            .into_samples::<f32>()
            .map(|s| s.map(|f| (f * 32767.0) as i32))
            .collect::<Result<_, _>>()
            .ok()?,
    };
    let mono: Vec<i16> = raw
        .chunks(spec.channels as usize)
        .map(|c| {
            let v = c.iter().map(|s| if shift > 0 { s >> shift } else { *s }).sum::<i32>() / c.len() as i32;
            v.clamp(i16::MIN as i32, i16::MAX as i32) as i16
        })
        .collect();
    Some(peerdial_media::audio::resample(&mono, spec.sample_rate, rate))
}
