//! Offers and answers inside an established call (RFC 3261 section 14,
//! RFC 3264 section 8): hold, resume, a new address or codec.
//!
//! Either side may send a re-INVITE ([`Call::reinvite`]); its 2xx is
//! acknowledged here and reported as [`CallEvent::Reanswered`]. A re-INVITE
//! that arrives with an offer is reported as [`CallEvent::Reoffer`] and the
//! phone answers it ([`Call::answer_reoffer`] or [`Call::reject_reoffer`]).
//! Glare (both sides at once) gets 491 and a retry after a random wait
//! (2.1–4 s for the side that chose the Call-ID, 0–2 s for the other); a
//! second offer while one is unanswered gets 500 with Retry-After. A 481 or
//! 408 to our re-INVITE, or no answer at all, ends the call (section 14.1).
//!
//! What this is not: SDP. Bodies are opaque; the phone negotiates them.

use std::net::SocketAddr;

use super::{Call, CallEvent, End, Incoming, RetransmitKind, Role, State, Transmit};
use crate::ids::branch;
use crate::message::{response, top_via, Via};
use crate::Message;

/// Our re-INVITE, until its final response.
#[derive(Debug)]
struct Outgoing {
    cseq: u32,
    branch: String,
    sdp: Vec<u8>,
    /// The request as sent (for the ACK of a failure).
    request: Message,
}

#[derive(Debug, Default)]
pub(super) struct Reinvites {
    outgoing: Option<Outgoing>,
    /// The ACK of our last answered re-INVITE (CSeq, bytes): sent again
    /// when its 2xx is retransmitted.
    last_ack: Option<(u32, Vec<u8>)>,
    /// After a 491: when to try again, with which body.
    retry: Option<(u64, Vec<u8>)>,
    incoming: Option<Incoming>,
    /// Our final answer to the last incoming re-INVITE (CSeq, its Via
    /// branch, bytes), repeated for its retransmissions until the ACK.
    answered: Option<(u32, String, Vec<u8>)>,
}

impl Reinvites {
    pub(super) fn retry_at(&self) -> Option<u64> {
        self.retry.as_ref().map(|(t, _)| *t)
    }

    pub(super) fn is_ours(&self, cseq: u32) -> bool {
        self.outgoing.as_ref().is_some_and(|o| o.cseq == cseq) || self.last_ack.as_ref().is_some_and(|(c, _)| *c == cseq)
    }
}

/// How long to wait before trying again after a 491 (RFC 3261 14.1), in ms.
fn glare_wait(owns_call_id: bool) -> u64 {
    if owns_call_id {
        2_100 + rand::random::<u64>() % 1_900
    } else {
        rand::random::<u64>() % 2_000
    }
}

impl Call {
    /// Sends a new offer in this call (hold, resume). `false` when it cannot
    /// go now: the call is not established, or an offer is under way in
    /// either direction; the caller may try again later.
    pub fn reinvite(&mut self, sdp: Vec<u8>, now: u64) -> bool {
        if self.state != State::Confirmed || self.re.outgoing.is_some() || self.re.incoming.is_some() {
            return false;
        }
        self.re.retry = None;
        self.cseq = self.cseq.max(self.invite_cseq) + 1;
        let (cseq, b) = (self.cseq, branch());
        let mut m = self.request("INVITE", &b, cseq);
        // In-dialog requests go to the peer's Contact, not its AOR.
        m.start = crate::message::StartLine::Request {
            method: "INVITE".into(),
            uri: self.remote_target.clone(),
        };
        m.push("Content-Type", "application/sdp");
        m.body = sdp.clone();
        let to = self.remote_addr;
        self.send_reliably(RetransmitKind::Reinvite, m.to_bytes(), to, false, now);
        self.re.outgoing = Some(Outgoing {
            cseq,
            branch: b,
            sdp,
            request: m,
        });
        true
    }

    /// Whether one of our re-INVITEs is under way (or waiting to retry).
    pub fn reinvite_pending(&self) -> bool {
        self.re.outgoing.is_some() || self.re.retry.is_some()
    }

    /// Answers the re-INVITE reported as [`CallEvent::Reoffer`]: 200 with
    /// `sdp`, which becomes our session description.
    pub fn answer_reoffer(&mut self, sdp: Vec<u8>, now: u64) {
        let Some(inc) = self.re.incoming.take() else { return };
        self.local_sdp = sdp;
        let Some(via) = top_via(&inc.msg) else { return };
        let mut r = response(&inc.msg, &via, inc.source, 200, "OK", &self.local_tag);
        r.push("User-Agent", self.local.user_agent.clone());
        self.contact_and_body(&mut r);
        self.send_final(&inc, r.to_bytes(), RetransmitKind::ReFinal, now);
    }

    /// Refuses the re-INVITE reported as [`CallEvent::Reoffer`] (488 for an
    /// offer we cannot take); the call goes on as it was.
    pub fn reject_reoffer(&mut self, code: u16, reason: &str, now: u64) {
        let Some(inc) = self.re.incoming.take() else { return };
        let Some(via) = top_via(&inc.msg) else { return };
        let mut r = response(&inc.msg, &via, inc.source, code, reason, &self.local_tag);
        r.push("User-Agent", self.local.user_agent.clone());
        self.send_final(&inc, r.to_bytes(), RetransmitKind::ReReject, now);
    }

    fn send_final(&mut self, inc: &Incoming, data: Vec<u8>, kind: RetransmitKind, now: u64) {
        let cseq = super::cseq_of(&inc.msg).map_or(0, |(c, _)| c);
        self.re.answered = Some((cseq, inc.via_branch.clone(), data.clone()));
        self.send_reliably(kind, data, inc.source, true, now);
    }

    /// A re-INVITE from the other side (the dialog is established).
    pub(super) fn incoming_reinvite(&mut self, msg: &Message, via: &Via, source: SocketAddr, now: u64) {
        let b = via.branch.unwrap_or_default().to_string();
        // A retransmission of the one we answered: the same answer again.
        let answered = self.re.answered.as_ref().map(|(_, ab, data)| (ab.as_str(), data.as_slice()));
        if super::repeat_answer(&mut self.out, answered, &b, source) {
            return;
        }
        if self.re.incoming.as_ref().is_some_and(|i| i.via_branch == b) {
            return; // still deciding; the retransmission needs nothing
        }
        if self.state != State::Confirmed || self.re.outgoing.is_some() {
            // Glare, or not established yet (RFC 3261 14.2).
            self.reply(msg, via, source, 491, "Request Pending", &[]);
            return;
        }
        if self.re.incoming.is_some() {
            let wait = rand::random::<u64>() % 10;
            self.reply(msg, via, source, 500, "Server Internal Error", &[("Retry-After", wait.to_string())]);
            return;
        }
        if msg.body.is_empty() {
            // No offer: ours goes in the 200 and the ACK's answer is the
            // same session as before.
            let mut r = response(msg, via, source, 200, "OK", &self.local_tag);
            r.push("User-Agent", self.local.user_agent.clone());
            self.contact_and_body(&mut r);
            let inc = Incoming {
                msg: msg.clone(),
                via_branch: b,
                source,
            };
            self.send_final(&inc, r.to_bytes(), RetransmitKind::ReFinal, now);
            return;
        }
        self.re.incoming = Some(Incoming {
            msg: msg.clone(),
            via_branch: b,
            source,
        });
        self.events.push_back(CallEvent::Reoffer { sdp: msg.body.clone() });
    }

    /// An ACK whose CSeq is that of our answer to a re-INVITE.
    pub(super) fn ack_for_reinvite(&mut self, cseq: u32) -> bool {
        if self.re.answered.as_ref().is_some_and(|(c, _, _)| *c == cseq) {
            self.stop(RetransmitKind::ReFinal);
            self.stop(RetransmitKind::ReReject);
            return true;
        }
        false
    }

    /// A response to our re-INVITE with CSeq `cseq`.
    pub(super) fn reinvite_response(&mut self, msg: &Message, code: u16, reason: &str, cseq: u32, now: u64) {
        if code < 200 {
            self.stop(RetransmitKind::Reinvite);
            return;
        }
        if code < 300 {
            if let Some((c, ack)) = &self.re.last_ack {
                if *c == cseq {
                    // A retransmitted 2xx: our ACK was lost.
                    self.out.push_back(Transmit {
                        to: self.remote_addr,
                        data: ack.clone(),
                    });
                    return;
                }
            }
            let Some(o) = self.re.outgoing.take() else { return };
            self.stop(RetransmitKind::Reinvite);
            let ack = self.request("ACK", &branch(), cseq).to_bytes();
            self.out.push_back(Transmit {
                to: self.remote_addr,
                data: ack.clone(),
            });
            self.re.last_ack = Some((cseq, ack));
            self.local_sdp = o.sdp;
            self.events.push_back(CallEvent::Reanswered { sdp: msg.body.clone() });
            return;
        }
        let Some(o) = self.re.outgoing.take() else { return };
        self.stop(RetransmitKind::Reinvite);
        // A failure is acknowledged within its transaction (17.1.1.3).
        let mut ack = o.request.clone();
        ack.start = crate::message::StartLine::Request {
            method: "ACK".into(),
            uri: self.remote_target.clone(),
        };
        ack.headers
            .retain(|(n, _)| matches!(n.as_str(), "Via" | "From" | "Call-ID" | "Max-Forwards"));
        ack.push("To", msg.header("To").unwrap_or_default());
        ack.push("CSeq", format!("{cseq} ACK"));
        ack.body.clear();
        debug_assert!(ack.header("Via").is_some_and(|v| v.contains(&o.branch)));
        self.out.push_back(Transmit {
            to: self.remote_addr,
            data: ack.to_bytes(),
        });
        match code {
            491 => {
                let at = now + glare_wait(self.role == Role::Caller);
                self.re.retry = Some((at, o.sdp));
            }
            481 | 408 => {
                self.send_bye(now);
                self.end(End::Rejected {
                    code,
                    reason: reason.to_string(),
                });
            }
            _ => self.events.push_back(CallEvent::ReofferFailed {
                code,
                reason: reason.to_string(),
            }),
        }
    }

    /// Timers of this module: the retry after a 491.
    pub(super) fn reinvite_timeout(&mut self, now: u64) {
        if self.re.retry.as_ref().is_some_and(|(t, _)| *t <= now) {
            let Some((_, sdp)) = self.re.retry.take() else { return };
            if !self.reinvite(sdp.clone(), now) && self.state == State::Confirmed {
                // The other side's offer is still open: wait for it.
                self.re.retry = Some((now + glare_wait(self.role == Role::Caller), sdp));
            }
        }
    }
}
