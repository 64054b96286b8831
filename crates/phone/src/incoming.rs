//! Incoming INVITEs: refusals before a call exists (busy, not SDP, no
//! codec in common), the answer prepared while the call rings, and the
//! INVITE with no offer (RFC 3264 §5 late offer; RFC 3725 flow I), which
//! lets a third-party call controller use this phone as a talker: our
//! offer goes in the 200 and the media starts with the ACK's answer.
//!
//! What this is not: the call state machine (`peerdial_sip::call`), the
//! caller's identity check (`caller_id`) or the call's media loop
//! (`calls`).

use std::net::SocketAddr;
use std::time::Instant;

use peerdial_media::sdp::{self, Sdp};
use peerdial_number::Number;
use peerdial_sip::call::Call;
use peerdial_sip::message::SipUri;
use peerdial_sip::Message;

use crate::calls::{call_media, media_pair, Prepared, Slot};
use crate::display::{self, UiEvent};
use crate::{Phone, PhoneConfig};

/// The ACK of an offerless INVITE carried `body`, the answer to the offer
/// in our 200: the call's media starts. An ACK with no usable answer is an
/// error (the caller then hangs up: RFC 3261 13.2.2.4 leaves no media).
pub(crate) fn take_ack_answer(
    s: &mut Slot,
    body: &[u8],
    cfg: &PhoneConfig,
    play: Option<&[i16]>,
    live: bool,
    cid: &str,
    now: u64,
) -> Result<(), String> {
    let offer = s.offer.as_ref().ok_or("an answer in an ACK for a call we made no offer in")?;
    if body.is_empty() {
        return Err("the ACK carried no answer to our offer".into());
    }
    let neg = Sdp::parse(&String::from_utf8_lossy(body))
        .and_then(|a| sdp::accept_answer(offer, &a))
        .map_err(|e| format!("unusable answer in the ACK: {e}"))?;
    s.media = Some(call_media(neg, cfg, play, live, cid, now).map_err(|e| e.to_string())?);
    Ok(())
}

impl Phone {
    pub(crate) fn on_invite(&mut self, data: &[u8], msg: &Message, from: SocketAddr, now: u64) {
        if self.mobile_refuses(data, msg, from) {
            return;
        }
        let Ok(wake_header) = self.wake_refuses(data, msg, from) else {
            return;
        };
        let lines = if self.cfg.call_waiting { crate::lines::MAX_CALLS } else { 1 };
        if self.live_calls() >= lines || self.quitting {
            self.reply_stateless(data, from, 486, "Busy Here", &[]);
            return;
        }
        let mut call = match Call::incoming(self.local(), data, from, now) {
            Ok(c) => c,
            Err(Some(t)) => {
                let sip = self.sip.clone();
                tokio::spawn(async move {
                    let _ = sip.send_to(&t.data, t.to).await;
                });
                return;
            }
            Err(None) => return,
        };
        if let Some((name, value)) = wake_header {
            call.push_response_header(name, value);
        }
        let peer = SipUri::parse(call.remote_uri())
            .ok()
            .and_then(|u| u.user)
            .map(|u| Number::parse(u).map(|n| n.to_string()).unwrap_or_else(|_| u.to_string()))
            .unwrap_or_else(|| call.remote_uri().to_string());
        let pair = match media_pair(self.local_ip) {
            Ok(p) => p,
            Err(e) => {
                self.emit(UiEvent::Error(e.to_string()));
                call.reject(503, "Service Unavailable", now);
                self.park(call, peer);
                return;
            }
        };
        let port = pair.0.local_addr().map(|a| a.port()).unwrap_or(0);
        let session = rand::random::<u32>() as u64;
        if msg.body.is_empty() {
            // No offer: we make one (a controller will pass it on).
            let offer = sdp::offer(session, self.local_ip, port, &self.cfg.codecs);
            let mut slot = self.slot(call, peer.clone(), pair.0, pair.1, Some(offer.clone()));
            slot.prepared = Some(Prepared::Offer(offer.to_text(self.local_ip).into_bytes()));
            slot.talk.local_sdp = Some(offer);
            return self.ring_in(slot, peer);
        }
        let answered = Sdp::parse(&String::from_utf8_lossy(&msg.body))
            .and_then(|offer| sdp::answer(&offer, session, self.local_ip, port, &self.cfg.codecs));
        match answered {
            Ok((ans, neg)) => {
                let mut slot = self.slot(call, peer.clone(), pair.0, pair.1, None);
                slot.prepared = Some(Prepared::Answer(ans.to_text(self.local_ip).into_bytes(), neg));
                slot.talk.local_sdp = Some(ans);
                self.ring_in(slot, peer);
            }
            Err(e) => {
                self.emit(UiEvent::Error(format!("incoming call from {peer} refused: {e}")));
                call.reject(488, "Not Acceptable Here", now);
                let cid = call.call_id().to_string();
                let slot = self.slot(call, peer, pair.0, pair.1, None);
                self.calls.insert(cid, slot);
            }
        }
    }

    /// Shows the new call (on the free line, or as a waiting call) and
    /// rings once the caller's identity is checked.
    fn ring_in(&mut self, slot: Slot, peer: String) {
        let cid = slot.call.call_id().to_string();
        let waiting = self.busy();
        self.calls.insert(cid.clone(), slot);
        if waiting {
            self.call_waiting(&cid, &peer);
        } else {
            self.take_line(
                &cid,
                display::CallView {
                    peer,
                    state: "ringing".into(),
                    since: Instant::now(),
                    incoming: true,
                    ..display::CallView::default()
                },
            );
        }
        self.check_caller(&cid);
    }

    /// Keeps a refused call around so its final response is retransmitted.
    pub(crate) fn park(&mut self, call: Call, peer: String) {
        if let Ok((rtp, rtcp)) = media_pair(self.local_ip) {
            let cid = call.call_id().to_string();
            let slot = self.slot(call, peer, rtp, rtcp, None);
            self.calls.insert(cid, slot);
        }
    }
}
