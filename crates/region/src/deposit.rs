//! One voice deposit (issue 12): a tokio task owning the call's dialog
//! ([`peerdial_sip::call`]) and media ([`peerdial_media::MediaSession`]),
//! fed that call's SIP by [`crate::mailbox`]'s intake. It answers, plays
//! the owner's prompt (or the default), records until `#`, a BYE, the
//! length limit or `NO_RTP_MS` without RTP, and stores the WAV; and the
//! storing every kind of message shares ([`keep`], [`keep_all`]): the
//! row's commit first, then the index and the owner's notification. Not
//! here: which SIP belongs to which deposit (the intake).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peerdial_mailbox::Kind;
use peerdial_media::sdp::{self, CodecKind, Sdp};
use peerdial_media::{Channel, MediaEvent, MediaSession};
use peerdial_number::Number;
use peerdial_sip::call::{Call, CallEvent, Local, Transmit};
use peerdial_sip::{Message, Outbound, Transport};
use peerdial_store::MessageRow;
use tokio::sync::mpsc;

use crate::mailbox::caller_of;
use crate::{now_ms, Shared};

/// A deposit with no RTP at all for this long ends, and keeps nothing.
pub const NO_RTP_MS: u64 = 4_000;
/// Codecs the mailbox records, preferred first.
const CODECS: [CodecKind; 3] = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Opus];

/// Where a deposit's SIP goes: over UDP to the address the call machine
/// names; over TCP back on the connection the INVITE came on (connection
/// reuse, RFC 5923), whatever address the caller's Contact says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leg {
    pub(crate) transport: Transport,
    pub(crate) peer: SocketAddr,
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

pub(crate) async fn deposit(
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
    } else {
        // A missed call is news even when no message follows it (a caller
        // who hangs up during the prompt): subscribers fetch the list now.
        crate::mailbox_mwi::changed(shared, number);
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
    media.record_arrivals();
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
    if let Err(e) = media.finish_recording() {
        tracing::debug!(error = %e, "mailbox media");
    }
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
