//! Calls: each call's slot and media, taking incoming INVITEs, and
//! reporting the calls' events (dialing, up to the INVITE, is
//! [`crate::dialing`]). The state
//! machines are `peerdial_sip::call::Call` and `peerdial_media`; this module
//! is their I/O edge inside the phone. Caller identity and greeting pictures
//! hook in through `caller_id` and `greetings`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use peerdial_media::sdp::{self, Sdp};
use peerdial_media::{audio, Channel, MediaEvent, MediaSession, Negotiated};
use peerdial_number::Number;
use peerdial_sip::call::{Call, CallEvent, End, Role, State};
use tokio::net::UdpSocket;

use crate::display::UiEvent;
use crate::{caller_id, exit, history, Phone, PhoneConfig, PhoneError};

pub(crate) struct Slot {
    pub(crate) call: Call,
    pub(crate) peer: String,
    pub(crate) media: Option<MediaSession>,
    pub(crate) rtp: Arc<UdpSocket>,
    pub(crate) rtcp: Arc<UdpSocket>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) offer: Option<Sdp>,
    pub(crate) prepared: Option<Prepared>,
    pub(crate) answer_at: Option<u64>,
    pub(crate) hangup_at: Option<u64>,
    pub(crate) answered_at: Option<u64>,
    /// The other side's number, when it is one.
    pub(crate) peer_number: Option<Number>,
    /// Callee: the caller's identity verdict, once known.
    pub(crate) verified: Option<bool>,
    /// Caller: the callee's picture was asked for.
    pub(crate) greeting_asked: bool,
    /// Unix seconds when the call began (for the history).
    pub(crate) started_unix: u64,
    /// Hold, mute and our session description.
    pub(crate) talk: crate::incall::InCall,
    /// We asked the other side to call this number instead (REFER).
    pub(crate) transfer_to: Option<Number>,
    /// The transfer succeeded: we left the call for it.
    pub(crate) transferred: bool,
    /// This call was placed for a REFER received in that call (Call-ID).
    pub(crate) transfer_for: Option<String>,
    /// Caller: the targets left if this one does not take the call (the
    /// callee's mailbox; see `fallback`).
    pub(crate) then: Vec<String>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What a ringing incoming call will send in its 200.
pub(crate) enum Prepared {
    /// Our answer to the caller's offer, and what it agreed.
    Answer(Vec<u8>, Negotiated),
    /// The INVITE had no offer: ours goes in the 200 and the media starts
    /// with the ACK's answer (`incoming::take_ack_answer`).
    Offer(Vec<u8>),
}

pub(crate) struct MediaIn {
    pub(crate) call_id: String,
    pub(crate) channel: Channel,
    pub(crate) data: Vec<u8>,
    pub(crate) from: SocketAddr,
}

/// Binds an RTP/RTCP pair on consecutive ports, RTP even (RFC 3550 11).
pub(crate) fn media_pair(ip: IpAddr) -> Result<(UdpSocket, UdpSocket), PhoneError> {
    let bind = |port: u16| -> std::io::Result<UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(ip, port))?;
        s.set_nonblocking(true)?;
        UdpSocket::from_std(s)
    };
    for _ in 0..100 {
        let port = rand::random::<u16>() % 16_000 * 2 + 16_384;
        let Ok(rtp) = bind(port) else { continue };
        if let Ok(rtcp) = bind(port + 1) {
            return Ok((rtp, rtcp));
        }
    }
    Err(PhoneError::Config(format!("no free RTP port pair on {ip}")))
}

/// A call's audio once its codec is agreed, for either side: `--play`'s
/// samples at the codec's rate (or the sound device when `live`), recorded
/// when `--record` asks.
pub(crate) fn call_media(
    neg: peerdial_media::Negotiated,
    cfg: &PhoneConfig,
    play: Option<&[i16]>,
    live: bool,
    cid: &str,
    now: u64,
) -> Result<MediaSession, PhoneError> {
    let rate = neg.codec.clock_rate();
    let source = play.map(|p| audio::resample(p, 48_000, rate)).unwrap_or_default();
    let mut media = MediaSession::new(neg, source, cfg.record.is_some(), cid, now)?;
    if live {
        media.set_live();
    }
    Ok(media)
}

/// The history's record of a call that ended with `reason`.
fn history_entry(s: &Slot, reason: &str, seconds: Option<f64>) -> history::Entry {
    let incoming = s.call.role == Role::Callee;
    history::Entry {
        direction: if incoming {
            history::Direction::In
        } else {
            history::Direction::Out
        },
        peer: s.peer.clone(),
        at: s.started_unix,
        seconds,
        outcome: if incoming && seconds.is_none() {
            format!("missed ({reason})")
        } else if let (true, Some(n)) = (s.transferred, s.transfer_to) {
            format!("transferred to {n}")
        } else {
            reason.to_string()
        },
        verified: if incoming { s.verified } else { None },
    }
}

pub(crate) fn describe(end: &End) -> (String, i32) {
    match end {
        End::Local => ("hung up".into(), exit::ANSWERED),
        End::Remote => ("the other side hung up".into(), exit::ANSWERED),
        End::CancelledByCaller => ("the caller gave up".into(), exit::ANSWERED),
        End::Rejected { code: 486 | 600, .. } => ("busy".into(), exit::BUSY),
        End::Rejected { code: 603, .. } => ("declined".into(), exit::FAILED),
        End::Rejected { code: 488, .. } => ("no codec in common (488)".into(), exit::FAILED),
        End::Rejected {
            code: 404 | 410 | 480,
            reason,
        } => (format!("not available: {reason}"), exit::NO_ANSWER),
        End::Rejected { code, reason } => (format!("refused: {code} {reason}"), exit::FAILED),
        End::NoResponse => ("callee unreachable: no answer from its address".into(), exit::UNREACHABLE),
        End::NoAnswer => ("no answer".into(), exit::NO_ANSWER),
        End::NoAck => ("call lost: our answer was never acknowledged".into(), exit::FAILED),
    }
}
impl Phone {
    /// In a call (or calling, or ringing). A call the user is in: one they hung up is over for them even
    /// while its BYE or CANCEL waits for an answer (up to 32 s from a
    /// callee that died), so it does not hold the line for the next call.
    pub(crate) fn busy(&self) -> bool {
        self.calls.values().any(|s| !matches!(s.call.state(), State::Ended | State::Ending))
    }

    pub(crate) fn slot(&self, call: Call, peer: String, rtp: UdpSocket, rtcp: UdpSocket, offer: Option<Sdp>) -> Slot {
        let (rtp, rtcp) = (Arc::new(rtp), Arc::new(rtcp));
        let mut tasks = Vec::new();
        for (sock, channel) in [(rtp.clone(), Channel::Rtp), (rtcp.clone(), Channel::Rtcp)] {
            let (tx, cid) = (self.media_tx.clone(), call.call_id().to_string());
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                    let m = MediaIn {
                        call_id: cid.clone(),
                        channel,
                        data: buf[..n].to_vec(),
                        from,
                    };
                    if tx.send(m).await.is_err() {
                        break;
                    }
                }
            }));
        }
        let peer_number = Number::parse(&peer).ok();
        Slot {
            call,
            peer,
            media: None,
            rtp,
            rtcp,
            tasks,
            offer,
            prepared: None,
            answer_at: None,
            hangup_at: None,
            answered_at: None,
            peer_number,
            verified: None,
            greeting_asked: false,
            started_unix: caller_id::unix_ms() / 1000,
            talk: Default::default(),
            transfer_to: None,
            transferred: false,
            transfer_for: None,
            then: Vec::new(),
        }
    }

    pub(crate) fn on_media(&mut self, m: MediaIn) {
        let Some(s) = self.calls.get_mut(&m.call_id) else { return };
        let Some(media) = &mut s.media else { return };
        match m.channel {
            Channel::Rtp => media.handle_rtp(&m.data, m.from),
            Channel::Rtcp => media.handle_rtcp(&m.data, m.from),
        }
    }

    /// `live`: the call talks through the sound device.
    pub(crate) fn answer_slot(
        cid: &str,
        s: &mut Slot,
        cfg: &PhoneConfig,
        play: Option<&[i16]>,
        live: bool,
        now: u64,
    ) -> Result<(), PhoneError> {
        match s.prepared.take() {
            Some(Prepared::Answer(answer, neg)) => {
                s.media = Some(call_media(neg, cfg, play, live, cid, now)?);
                s.call.answer(answer, now);
            }
            Some(Prepared::Offer(offer)) => s.call.answer(offer, now),
            None => {}
        }
        Ok(())
    }

    /// Sends what the calls queued and reports their events.
    pub(crate) async fn flush_calls(&mut self, now: u64) {
        // Each line for the user, with the call it is about.
        let mut tagged: Vec<(String, UiEvent)> = Vec::new();
        let mut finished = Vec::new();
        let mut pictures = Vec::new();
        let mut offers = Vec::new();
        let mut ended = Vec::new();
        let mut refers = Vec::new();
        let mut news = Vec::new();
        let mut progress = Vec::new();
        let mut fallbacks = Vec::new();
        let mut wake_answers = Vec::new();
        for (cid, s) in self.calls.iter_mut() {
            let mut ui = Vec::new();
            while let Some(t) = s.call.poll_transmit() {
                let _ = self.sip.send_to(&t.data, t.to).await;
            }
            if let Some(m) = &mut s.media {
                while let Some(t) = m.poll_transmit() {
                    let sock = if t.channel == Channel::Rtp { &s.rtp } else { &s.rtcp };
                    let _ = sock.send_to(&t.data, t.to).await;
                }
                while let Some(e) = m.poll_event() {
                    match e {
                        MediaEvent::AudioStarted => ui.push(UiEvent::AudioStarted),
                        MediaEvent::Dtmf(k) => ui.push(UiEvent::Dtmf(k)),
                        MediaEvent::RemoteBye => {}
                    }
                }
            }
            while let Some(e) = s.call.poll_event() {
                if matches!(e, CallEvent::Ringing | CallEvent::Answered { .. }) && !s.greeting_asked {
                    if let (Some(info), Some(n)) = (s.call.remote_call_info(), s.peer_number) {
                        s.greeting_asked = true;
                        pictures.push((cid.clone(), n, info.to_string()));
                    }
                }
                if let Some(orig) = &s.transfer_for {
                    match &e {
                        CallEvent::Ringing => progress.push((orig.clone(), Ok(180))),
                        CallEvent::Answered { .. } => progress.push((orig.clone(), Ok(200))),
                        CallEvent::Ended(end) if s.answered_at.is_none() => progress.push((orig.clone(), Err(end.clone()))),
                        _ => {}
                    }
                }
                match e {
                    CallEvent::Ringing => ui.push(UiEvent::Ringing),
                    CallEvent::Answered { sdp: body } => {
                        let header = s.call.answer_header(peerdial_push::token::HEADER).map(str::to_string);
                        wake_answers.push((cid.clone(), header));
                        let neg = Sdp::parse(&String::from_utf8_lossy(&body))
                            .and_then(|a| sdp::accept_answer(s.offer.as_ref().expect("caller has an offer"), &a));
                        match neg {
                            Ok(neg) => {
                                let codec = neg.codec;
                                match call_media(neg, &self.cfg, self.play.as_deref(), self.sound.live(), cid, now) {
                                    Ok(m) => s.media = Some(m),
                                    Err(e) => ui.push(UiEvent::Error(e.to_string())),
                                }
                                s.answered_at = Some(now);
                                s.hangup_at = self.cfg.duration_ms.map(|d| now + d);
                                s.talk.local_sdp = s.offer.clone();
                                ui.push(UiEvent::Answered {
                                    codec: codec.name().to_string(),
                                });
                            }
                            Err(e) => {
                                ui.push(UiEvent::Error(format!("unusable answer: {e}")));
                                s.call.hangup(now);
                            }
                        }
                    }
                    CallEvent::AckAnswer { sdp: body } => {
                        if let Err(e) =
                            crate::incoming::take_ack_answer(s, &body, &self.cfg, self.play.as_deref(), self.sound.live(), cid, now)
                        {
                            ui.push(UiEvent::Error(e));
                            s.call.hangup(now);
                        }
                    }
                    CallEvent::Confirmed => {
                        s.answered_at = Some(now);
                        s.hangup_at = self.cfg.duration_ms.map(|d| now + d);
                        let codec = s
                            .media
                            .as_ref()
                            .map(|m| m.negotiated().codec.name().to_string())
                            .unwrap_or_default();
                        ui.push(UiEvent::Answered { codec });
                    }
                    CallEvent::InfoDtmf(k) => ui.push(UiEvent::Dtmf(k)),
                    e @ (CallEvent::Reoffer { .. } | CallEvent::Reanswered { .. } | CallEvent::ReofferFailed { .. }) => {
                        offers.push((cid.clone(), e))
                    }
                    CallEvent::Referred { target, .. } => refers.push((cid.clone(), target)),
                    e @ (CallEvent::ReferAccepted | CallEvent::ReferFailed { .. } | CallEvent::TransferProgress { .. }) => {
                        news.push((cid.clone(), e))
                    }
                    CallEvent::Ended(end) => {
                        if let Some(m) = &mut s.media {
                            m.close();
                            while let Some(t) = m.poll_transmit() {
                                let _ = s.rtcp.send_to(&t.data, t.to).await;
                            }
                        }
                        let (reason, code) = describe(&end);
                        let answered = s.answered_at.is_some();
                        let code = if answered || s.call.role == Role::Callee {
                            exit::ANSWERED
                        } else if code == exit::ANSWERED {
                            exit::FAILED
                        } else {
                            code
                        };
                        let secs = s.answered_at.map(|a| (now - a) as f64 / 1000.0);
                        ended.push(history_entry(s, &reason, secs));
                        if let (Some(path), Some(m)) = (&self.cfg.record, &s.media) {
                            if let Err(e) = audio::write_wav(path, m.played(), m.sample_rate()) {
                                ui.push(UiEvent::Error(e.to_string()));
                            }
                        }
                        if let Some(m) = &s.media {
                            let st = m.jitter_stats();
                            tracing::info!(
                                received = m.stats.received_packets,
                                sent = m.stats.sent_packets,
                                lost = st.lost,
                                late = st.late,
                                foreign = m.stats.foreign,
                                "media"
                            );
                        }
                        let next = !answered && s.call.role == Role::Caller && crate::fallback::falls_through(&end);
                        match (s.peer_number, next && !s.then.is_empty()) {
                            (Some(n), true) => fallbacks.push((n, std::mem::take(&mut s.then), reason.clone())),
                            _ => finished.push(code),
                        }
                        ui.push(UiEvent::Ended {
                            peer: s.peer.clone(),
                            reason,
                            seconds: secs,
                        });
                    }
                }
            }
            tagged.extend(ui.into_iter().map(|e| (cid.clone(), e)));
        }
        for e in ended {
            if let Err(err) = self.history.add(e) {
                tagged.push((
                    String::new(),
                    UiEvent::Error(format!("the call history could not be written: {err}")),
                ));
            }
            self.snapshot.history = self.history.short_lines(crate::HISTORY_PANE);
        }
        // Offers inside calls: answered now, their messages sent now.
        for (cid, e) in offers {
            let line = match e {
                CallEvent::Reoffer { sdp } => self.on_reoffer(&cid, &sdp, now),
                CallEvent::Reanswered { sdp } => self.on_reanswered(&cid, &sdp),
                CallEvent::ReofferFailed { code, reason } => self.on_reoffer_failed(&cid, code, &reason),
                _ => None,
            };
            tagged.extend(line.map(|e| (cid.clone(), e)));
        }
        for (cid, target) in refers {
            self.on_referred(&cid, &target);
        }
        for (cid, n) in news {
            self.on_transfer_news(&cid, n);
        }
        for (orig, p) in progress {
            self.transfer_progress(&orig, p.as_ref().map(|c| *c));
        }
        for (cid, e) in tagged {
            match &e {
                UiEvent::Answered { .. } => {
                    if let Some(c) = self.view_mut(&cid) {
                        c.state = "talking".into();
                        c.since = Instant::now();
                    }
                }
                UiEvent::Ringing => {
                    if let Some(c) = self.view_mut(&cid) {
                        c.state = "ringing".into();
                    }
                }
                UiEvent::Ended { .. } => {
                    self.free_line(&cid);
                    if self.lines.focus.is_none() {
                        self.snapshot.dialing = None;
                    }
                }
                _ => {}
            }
            self.emit(e);
        }
        for (n, then, why) in fallbacks {
            self.fall_through(n, then, &why);
        }
        // What the transfers queued (NOTIFYs, REFER answers, BYEs).
        for s in self.calls.values_mut() {
            while let Some(t) = s.call.poll_transmit() {
                let _ = self.sip.send_to(&t.data, t.to).await;
            }
        }
        // `call N` ends with its last call (a transfer's new call goes on).
        if self.live_calls() == 0 {
            if let Some(code) = finished.into_iter().last() {
                self.finish_dial(code);
            }
        }
        for (cid, header) in wake_answers {
            self.wake_check_answer(&cid, header);
        }
        for (cid, n, info) in pictures {
            self.fetch_greeting(&cid, n, peerdial_greetings::Kind::Callee, &info);
        }
        self.calls.retain(|_, s| !s.call.is_done());
        if self.calls.is_empty() && self.snapshot.call.is_some() && self.snapshot.dialing.is_none() {
            self.snapshot.call = None;
            self.snapshot.other = None;
            self.lines = Default::default();
        }
    }
}
