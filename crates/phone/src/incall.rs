//! What the user does during a call, besides hanging up: hold and resume
//! (a re-INVITE with `a=sendonly` / `a=sendrecv`, RFC 3264 8.4), mute, and
//! the playout volume; and the other side's new offers (its hold, resume,
//! a new address), answered with our session kept.
//!
//! The signalling is `peerdial_sip::call` (re-INVITE, 491 glare and
//! retry); the descriptions are `peerdial_media::reoffer`. What this is not:
//! the first offer/answer of a call (`calls.rs`).

use peerdial_media::reoffer::{self, Hold};
use peerdial_media::Sdp;

use crate::display::UiEvent;
use crate::Phone;

/// What the user asked of the call in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InCallCommand {
    Hold,
    Resume,
    Mute(bool),
    /// Playout volume in percent (0–200).
    Volume(u16),
}

/// The call's hold and mute, beside its signalling and media.
#[derive(Debug, Default)]
pub(crate) struct InCall {
    /// Our current session description (what the other side last agreed).
    pub(crate) local_sdp: Option<Sdp>,
    pub(crate) hold: Hold,
    pub(crate) muted: bool,
    /// Our re-INVITE under way: its offer and the hold it states.
    pending: Option<(Sdp, Hold)>,
}

impl InCall {
    /// Whether the microphone stays off: muted, or either side holds.
    fn silenced(&self) -> bool {
        self.muted || !self.hold.sends_audio()
    }
}

/// The line for a hold change.
fn hold_line(h: Hold) -> &'static str {
    match (h.local, h.remote) {
        (true, true) => "on hold (both sides)",
        (true, false) => "on hold",
        (false, true) => "held by the other side",
        (false, false) => "resumed",
    }
}

/// The display's state for a call being talked on.
fn state_word(h: Hold) -> &'static str {
    match (h.local, h.remote) {
        (false, false) => "talking",
        (true, _) => "on hold",
        (false, true) => "held",
    }
}

impl Phone {
    /// The user's hold, resume, mute or volume, for the focused call.
    pub(crate) fn on_in_call(&mut self, c: InCallCommand) {
        match self.focused() {
            Some(cid) => self.in_call(&cid, c),
            None => self.emit(UiEvent::Error("no call in progress".into())),
        }
    }

    /// Hold, resume, mute or volume for call `cid`.
    pub(crate) fn in_call(&mut self, cid: &str, c: InCallCommand) {
        let now = self.now();
        let ip = self.local_ip;
        let Some(s) = self
            .calls
            .get_mut(cid)
            .filter(|s| s.call.state() == peerdial_sip::call::State::Confirmed && s.media.is_some())
        else {
            self.emit(UiEvent::Error("no call in progress".into()));
            return;
        };
        let media = s.media.as_mut().expect("checked above");
        let line = match c {
            InCallCommand::Mute(m) => {
                s.talk.muted = m;
                media.set_muted(s.talk.silenced());
                if m { "muted" } else { "unmuted" }.to_string()
            }
            InCallCommand::Volume(v) => {
                media.set_volume(v);
                format!("volume {}%", v.min(200))
            }
            InCallCommand::Hold | InCallCommand::Resume => {
                let want = Hold {
                    local: c == InCallCommand::Hold,
                    remote: s.talk.hold.remote,
                };
                if want == s.talk.hold && s.talk.pending.is_none() {
                    return self.emit(UiEvent::Info(hold_line(want).into()));
                }
                let Some(current) = &s.talk.local_sdp else {
                    return self.emit(UiEvent::Error("this call has no session to change".into()));
                };
                let offer = reoffer::hold_offer(current, media.negotiated(), want);
                if !s.call.reinvite(offer.to_text(ip).into_bytes(), now) {
                    return self.emit(UiEvent::Error("an offer is under way in this call; try again".into()));
                }
                s.talk.pending = Some((offer, want));
                return;
            }
        };
        self.emit(UiEvent::Info(line));
    }

    /// The other side's new offer in call `cid`: answered at once.
    pub(crate) fn on_reoffer(&mut self, cid: &str, body: &[u8], now: u64) -> Option<UiEvent> {
        let (ip, codecs) = (self.local_ip, self.cfg.codecs.clone());
        let s = self.calls.get_mut(cid)?;
        let answered = Sdp::parse(&String::from_utf8_lossy(body)).and_then(|offer| {
            let current = s
                .talk
                .local_sdp
                .as_ref()
                .ok_or_else(|| peerdial_media::MediaError::Sdp("no session yet".into()))?;
            reoffer::answer_reoffer(&offer, current, ip, &codecs, s.talk.hold.local)
        });
        let (answer, neg, remote) = match answered {
            Ok(a) => a,
            Err(e) => {
                s.call.reject_reoffer(488, "Not Acceptable Here", now);
                return Some(UiEvent::Error(format!("refused the other side's new offer: {e}")));
            }
        };
        if let Some(m) = s.media.as_mut() {
            if let Err(e) = m.renegotiate(neg) {
                s.call.reject_reoffer(488, "Not Acceptable Here", now);
                return Some(UiEvent::Error(format!("refused the other side's new offer: {e}")));
            }
        }
        s.call.answer_reoffer(answer.to_text(ip).into_bytes(), now);
        s.talk.local_sdp = Some(answer);
        let before = s.talk.hold;
        s.talk.hold.remote = remote;
        self.hold_changed(cid, before)
    }

    /// Our re-INVITE in call `cid` was answered.
    pub(crate) fn on_reanswered(&mut self, cid: &str, body: &[u8]) -> Option<UiEvent> {
        let s = self.calls.get_mut(cid)?;
        let (offer, want) = s.talk.pending.take()?;
        let neg = match Sdp::parse(&String::from_utf8_lossy(body)).and_then(|a| peerdial_media::sdp::accept_answer(&offer, &a)) {
            Ok(n) => n,
            Err(e) => return Some(UiEvent::Error(format!("unusable answer to our offer: {e}"))),
        };
        if let Some(m) = s.media.as_mut() {
            if let Err(e) = m.renegotiate(neg) {
                return Some(UiEvent::Error(e.to_string()));
            }
        }
        s.talk.local_sdp = Some(offer);
        let before = s.talk.hold;
        s.talk.hold.local = want.local;
        self.hold_changed(cid, before)
    }

    /// Our re-INVITE in call `cid` was refused.
    pub(crate) fn on_reoffer_failed(&mut self, cid: &str, code: u16, reason: &str) -> Option<UiEvent> {
        let s = self.calls.get_mut(cid)?;
        let (_, want) = s.talk.pending.take()?;
        let what = if want.local { "hold" } else { "resume" };
        Some(UiEvent::Error(format!("could not {what}: the other side answered {code} {reason}")))
    }

    fn hold_changed(&mut self, cid: &str, before: Hold) -> Option<UiEvent> {
        let s = self.calls.get_mut(cid)?;
        let hold = s.talk.hold;
        if let Some(m) = s.media.as_mut() {
            m.set_muted(s.talk.silenced());
        }
        if hold == before {
            return None;
        }
        if let Some(c) = self.view_mut(cid) {
            c.state = state_word(hold).into();
        }
        Some(UiEvent::Info(hold_line(hold).into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hold_has_its_line_and_state() {
        let h = |local, remote| Hold { local, remote };
        assert_eq!(hold_line(h(true, false)), "on hold");
        assert_eq!(hold_line(h(false, true)), "held by the other side");
        assert_eq!(hold_line(h(false, false)), "resumed");
        assert_eq!(state_word(h(true, true)), "on hold");
        assert_eq!(state_word(h(false, true)), "held");
        assert_eq!(state_word(h(false, false)), "talking");
    }
}
