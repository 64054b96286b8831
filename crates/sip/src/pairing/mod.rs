//! Third-party call control (RFC 3725, flow I) as a state machine: a
//! controller connects two talkers without touching their media. It calls
//! the caller's talker with no offer, takes that talker's offer from its
//! 200, calls the callee's talker with it, and puts the callee's answer
//! into the first talker's ACK. From then on RTP flows between the two
//! talkers; the controller stays in the signalling only to end both legs
//! together.
//!
//! Fed datagrams (matched to a leg by Call-ID, see [`Pairing::call_ids`])
//! and milliseconds; yields datagrams, and [`Progress`] for the dialer.
//! Every failure — a leg busy, rejected, unanswered, silent, an offer or
//! answer that is not SDP, the dialer's cancel — ends every leg that
//! exists. It is not a conference (no media here) and owns no socket.

use std::collections::VecDeque;
use std::net::SocketAddr;

use serde::Serialize;

use crate::call::{Call, CallEvent, End, Local, State, Transmit};
use crate::Message;

/// One talker to call: the Request-URI (an address of record, or a
/// registered contact) and where to send the INVITE (its SIP server, or
/// the contact itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub uri: String,
    pub next_hop: SocketAddr,
}

/// Which leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The dialer's own talker (called first).
    Talker,
    /// The callee's talker.
    Callee,
}

/// What the dialer is told, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Progress {
    CallingTalker,
    TalkerAnswered,
    CallingCallee,
    Ringing,
    Connected,
    /// A talker (or, `None`, the dialer) hung up after the call was
    /// connected; both legs end.
    Ended {
        by: Option<Side>,
    },
    /// The call did not connect (or was cancelled); every leg is ended.
    Failed {
        side: Option<Side>,
        reason: String,
    },
}

/// How long each leg may ring, in ms. The first talker's 200 waits for
/// its ACK while the callee rings, and a talker gives up on an ACK after
/// 32 s (Timer H), so the callee's limit stays below that.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub talker_ring_ms: u64,
    pub callee_ring_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            talker_ring_ms: 45_000,
            callee_ring_ms: 25_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Calling the first talker.
    Talker,
    /// Its offer in hand, calling the callee.
    Callee,
    Connected,
    /// Over (failed, cancelled or hung up): legs finish their goodbyes.
    Over,
}

pub struct Pairing {
    local: Local,
    a: Call,
    b: Option<Call>,
    b_leg: Leg,
    timeouts: Timeouts,
    phase: Phase,
    progress: VecDeque<Progress>,
}

/// Why a leg ended, as a dialer reads it.
pub(crate) fn reason(end: &End) -> String {
    match end {
        End::Rejected { code: 486 | 600, .. } => "busy".into(),
        End::Rejected { code: 488 | 606, reason } => format!("could not accept the other talker's media ({reason})"),
        End::Rejected { code, reason } => format!("rejected: {code} {reason}"),
        End::NoAnswer => "no answer".into(),
        End::NoResponse => "no response (unreachable)".into(),
        End::Remote | End::CancelledByCaller => "hung up".into(),
        End::Local => "ended".into(),
        End::NoAck => "no acknowledgement".into(),
    }
}

/// An offer or answer this controller passes on must at least look like
/// SDP (RFC 4566: it starts with the version line).
fn looks_like_sdp(body: &[u8]) -> bool {
    body.starts_with(b"v=0")
}

impl Pairing {
    /// Starts by calling `talker` with no offer.
    pub fn start(local: Local, talker: Leg, callee: Leg, timeouts: Timeouts, now: u64) -> Pairing {
        let a = Call::outgoing_without_offer(local.clone(), &talker.uri, talker.next_hop, timeouts.talker_ring_ms, now);
        Pairing {
            local,
            a,
            b: None,
            b_leg: callee,
            timeouts,
            phase: Phase::Talker,
            progress: VecDeque::from([Progress::CallingTalker]),
        }
    }

    /// The Call-IDs of the legs so far (the talker's, then the callee's).
    pub fn call_ids(&self) -> Vec<String> {
        std::iter::once(self.a.call_id().to_string())
            .chain(self.b.as_ref().map(|b| b.call_id().to_string()))
            .collect()
    }

    /// A message whose Call-ID is one of [`Pairing::call_ids`].
    pub fn handle(&mut self, msg: &Message, source: SocketAddr, now: u64) {
        let id = msg.header("Call-ID").unwrap_or_default();
        if id == self.a.call_id() {
            self.a.handle(msg, source, now);
        } else if let Some(b) = self.b.as_mut().filter(|b| b.call_id() == id) {
            b.handle(msg, source, now);
        }
        self.drive(now);
    }

    /// The dialer gives up or hangs up (or the controller shuts down):
    /// every leg ends.
    pub fn cancel(&mut self, now: u64) {
        match self.phase {
            Phase::Over => {}
            Phase::Connected => {
                self.hang_up_all(now);
                self.progress.push_back(Progress::Ended { by: None });
            }
            _ => self.fail(None, "cancelled".into(), now),
        }
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.legs().filter_map(Call::poll_timeout).min()
    }

    pub fn handle_timeout(&mut self, now: u64) {
        self.a.handle_timeout(now);
        if let Some(b) = self.b.as_mut() {
            b.handle_timeout(now);
        }
        self.drive(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.a.poll_transmit().or_else(|| self.b.as_mut().and_then(Call::poll_transmit))
    }

    pub fn poll_progress(&mut self) -> Option<Progress> {
        self.progress.pop_front()
    }

    /// Over, and every leg has finished its goodbyes.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Over && self.legs().all(Call::is_done)
    }

    /// Connected and not over.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// A connected call handed over whole (the dialer's talker's leg, then
    /// the callee's), to become a conference
    /// ([`crate::conference::Conference::adopt`]); the pairing back when
    /// it is not connected.
    pub fn into_legs(self) -> Result<(Call, Call), Box<Pairing>> {
        match self {
            Pairing {
                phase: Phase::Connected,
                a,
                b: Some(b),
                ..
            } => Ok((a, b)),
            p => Err(Box::new(p)),
        }
    }

    fn legs(&self) -> impl Iterator<Item = &Call> {
        std::iter::once(&self.a).chain(self.b.as_ref())
    }

    fn drive(&mut self, now: u64) {
        while let Some(ev) = self.a.poll_event() {
            self.talker_event(ev, now);
        }
        while let Some(ev) = self.b.as_mut().and_then(Call::poll_event) {
            self.callee_event(ev, now);
        }
    }

    fn talker_event(&mut self, ev: CallEvent, now: u64) {
        match (self.phase, ev) {
            (Phase::Talker, CallEvent::Answered { sdp }) => {
                if !looks_like_sdp(&sdp) {
                    self.fail(Some(Side::Talker), "your talker answered without an SDP offer".into(), now);
                    return;
                }
                self.progress.push_back(Progress::TalkerAnswered);
                let b = Call::outgoing(
                    self.local.clone(),
                    &self.b_leg.uri,
                    self.b_leg.next_hop,
                    sdp,
                    self.timeouts.callee_ring_ms,
                    now,
                );
                self.b = Some(b);
                self.phase = Phase::Callee;
                self.progress.push_back(Progress::CallingCallee);
            }
            (Phase::Talker | Phase::Callee, CallEvent::Ended(end)) => {
                let why = match (self.phase, &end) {
                    (Phase::Callee, End::Remote) => "your talker hung up".into(),
                    (Phase::Callee, End::NoAck) | (Phase::Callee, End::NoResponse) => "your talker gave up waiting for the callee".into(),
                    _ => format!("your talker: {}", reason(&end)),
                };
                self.fail(Some(Side::Talker), why, now);
            }
            (Phase::Connected, CallEvent::Ended(_)) => self.ended(Side::Talker, now),
            _ => {}
        }
    }

    fn callee_event(&mut self, ev: CallEvent, now: u64) {
        match (self.phase, ev) {
            (Phase::Callee, CallEvent::Ringing) => self.progress.push_back(Progress::Ringing),
            (Phase::Callee, CallEvent::Answered { sdp }) => {
                if !looks_like_sdp(&sdp) {
                    self.fail(Some(Side::Callee), "the callee answered without an SDP answer".into(), now);
                    return;
                }
                self.a.ack_with(sdp, now);
                self.phase = Phase::Connected;
                self.progress.push_back(Progress::Connected);
            }
            (Phase::Callee, CallEvent::Ended(end)) => self.fail(Some(Side::Callee), format!("the callee: {}", reason(&end)), now),
            (Phase::Connected, CallEvent::Ended(_)) => self.ended(Side::Callee, now),
            _ => {}
        }
    }

    fn hang_up_all(&mut self, now: u64) {
        self.phase = Phase::Over;
        if self.a.state() != State::Ended {
            self.a.hangup(now);
        }
        if let Some(b) = self.b.as_mut().filter(|b| b.state() != State::Ended) {
            b.hangup(now);
        }
    }

    fn fail(&mut self, side: Option<Side>, reason: String, now: u64) {
        self.hang_up_all(now);
        self.progress.push_back(Progress::Failed { side, reason });
    }

    fn ended(&mut self, by: Side, now: u64) {
        self.hang_up_all(now);
        self.progress.push_back(Progress::Ended { by: Some(by) });
    }
}

#[cfg(test)]
mod tests;
