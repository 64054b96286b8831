//! Blind transfer (RFC 3515, RFC 5589 section 6) from both ends.
//!
//! As transferor (`transfer NUMBER`): the number is looked up like any
//! dialed one and the other side is sent a REFER to the contact found, so a
//! standard phone (baresip) can follow it; its NOTIFYs show the new call's
//! progress, and when that call is answered we leave ours with BYE.
//!
//! As transferee: a REFER is asked about, accepted or refused as
//! `--on-refer` says. Only a peerdial number is called (the number in the
//! Refer-To user part, found through DNS like any dialed number, never the
//! host the REFER names): a transfer cannot send us to an arbitrary
//! address. The new call's progress goes back in NOTIFYs; once it is
//! answered the old call ends if the transferor has not ended it.

use peerdial_number::Number;
use peerdial_sip::call::{CallEvent, End, State};
use peerdial_sip::message::SipUri;

use crate::display::UiEvent;
use crate::{resolve, Command, Phone, PhoneError};

/// What the phone does with a REFER (`--on-refer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReferPolicy {
    /// Asks the user (yes/no).
    #[default]
    Ask,
    Accept,
    Refuse,
}

impl std::str::FromStr for ReferPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ask" => Ok(ReferPolicy::Ask),
            "accept" => Ok(ReferPolicy::Accept),
            "refuse" => Ok(ReferPolicy::Refuse),
            _ => Err(format!("{s:?}: expected ask, accept or refuse")),
        }
    }
}

/// Transfers in progress, beside the calls.
#[derive(Debug, Default)]
pub(crate) struct Transfers {
    /// A REFER waiting for the user's yes/no: the call and the number.
    pub(crate) asking: Option<(String, Number)>,
    /// The number we are dialing for a REFER received in this call.
    pub(crate) dialing: Option<(Number, String)>,
}

/// The peerdial number a Refer-To URI names, if it names one.
fn target_number(uri: &str) -> Option<Number> {
    let u = SipUri::parse(uri).ok()?;
    Number::parse(u.user?).ok()
}

/// The status a transferor is told when the new call ended unanswered.
fn failure_status(end: &End) -> (u16, String) {
    match end {
        End::Rejected { code, reason } => (*code, reason.clone()),
        End::NoAnswer | End::Local | End::CancelledByCaller => (487, "Request Terminated".into()),
        End::NoResponse => (408, "Request Timeout".into()),
        End::Remote | End::NoAck => (500, "Server Internal Error".into()),
    }
}

impl Phone {
    /// `transfer NUMBER`: the focused call's other side is to call NUMBER.
    pub(crate) fn transfer(&mut self, dialed: &str) {
        let number = match Number::dial(dialed, self.area) {
            Ok(n) => n,
            Err(e) => return self.emit(UiEvent::Error(format!("cannot transfer to {dialed:?}: {e}"))),
        };
        let Some(cid) = self.focused().filter(|c| self.calls[c].call.state() == State::Confirmed) else {
            return self.emit(UiEvent::Error("no call in progress to transfer".into()));
        };
        let (lookup, tx) = (self.lookup(number), self.cmd_tx.clone());
        tokio::spawn(async move {
            let result = lookup.await;
            let _ = tx.send(Command::TransferTarget { cid, number, result }).await;
        });
    }

    /// The transfer target was looked up: REFER the other side to it.
    pub(crate) fn on_transfer_target(&mut self, cid: &str, number: Number, result: Result<resolve::Lookup, PhoneError>) {
        let now = self.now();
        let uri = match result {
            Ok(resolve::Lookup::Found { uri, .. }) => uri,
            Ok(resolve::Lookup::NoSuchNumber) => return self.emit(UiEvent::Error(format!("cannot transfer: no such number {number}"))),
            Err(e) => return self.emit(UiEvent::Error(format!("cannot transfer: {number} not looked up: {e}"))),
        };
        let Some(s) = self.calls.get_mut(cid) else { return };
        if !s.call.refer(&uri, now) {
            return self.emit(UiEvent::Error(
                "cannot transfer now: the call ended or a transfer is under way".into(),
            ));
        }
        s.transfer_to = Some(number);
        let line = format!("transferring {} to {number}", s.peer);
        self.emit(UiEvent::Info(line));
    }

    /// Our REFER's answer, or a NOTIFY of the transfer's progress.
    pub(crate) fn on_transfer_news(&mut self, cid: &str, news: CallEvent) {
        let now = self.now();
        let Some(s) = self.calls.get_mut(cid) else { return };
        let to = s.transfer_to.map(|n| n.to_string()).unwrap_or_else(|| "the target".into());
        let line = match news {
            CallEvent::ReferAccepted => UiEvent::Info(format!("transfer to {to} accepted")),
            CallEvent::ReferFailed { code, reason } => {
                s.transfer_to = None;
                UiEvent::Error(format!("transfer to {to} refused: {code} {reason}"))
            }
            CallEvent::TransferProgress { code, done: true, .. } if (200..300).contains(&code) => {
                // The other side talks to the target now: leave (RFC 5589 6.1).
                s.transferred = true;
                s.call.hangup(now);
                UiEvent::Info(format!("transferred to {to}"))
            }
            CallEvent::TransferProgress { code, reason, done: true } => {
                s.transfer_to = None;
                UiEvent::Error(format!("transfer to {to} failed: {code} {reason}; the call goes on"))
            }
            CallEvent::TransferProgress { code, reason, .. } => UiEvent::Info(format!("transfer to {to}: {code} {reason}")),
            _ => return,
        };
        self.emit(line);
    }

    /// The other side of call `cid` asks us to call `target`.
    pub(crate) fn on_referred(&mut self, cid: &str, target: &str) {
        let Some(s) = self.calls.get_mut(cid) else { return };
        let peer = s.peer.clone();
        let Some(number) = target_number(target) else {
            s.call.reject_refer(403, "Forbidden (not a peerdial number)");
            let shown = peerdial_channels::text::clean(target);
            return self.emit(UiEvent::Error(format!(
                "{peer} asked to transfer this call to {shown}, which is not a number: refused"
            )));
        };
        if self.transfers.dialing.is_some() || self.transfers.asking.is_some() {
            s.call.reject_refer(491, "Request Pending");
            return;
        }
        match self.cfg.on_refer {
            ReferPolicy::Refuse => {
                s.call.reject_refer(603, "Decline");
                self.emit(UiEvent::Info(format!("{peer} asked to transfer this call to {number}: refused")));
            }
            ReferPolicy::Accept => self.follow_refer(cid, number),
            ReferPolicy::Ask => {
                self.transfers.asking = Some((cid.to_string(), number));
                self.emit(UiEvent::Info(format!(
                    "{peer} asks to transfer this call to {number}: accept? (yes/no)"
                )));
            }
        }
    }

    /// The user's yes/no, when a transfer is asked about. `false`: no
    /// transfer was waiting for it.
    pub(crate) fn answer_refer(&mut self, yes: bool) -> bool {
        let Some((cid, number)) = self.transfers.asking.take() else {
            return false;
        };
        let Some(s) = self.calls.get_mut(&cid).filter(|s| s.call.refer_waiting()) else {
            return true;
        };
        if yes {
            self.follow_refer(&cid, number);
        } else {
            s.call.reject_refer(603, "Decline");
            self.emit(UiEvent::Info(format!("transfer to {number} refused")));
        }
        true
    }

    /// Accepts the REFER in call `cid` and calls `number`.
    fn follow_refer(&mut self, cid: &str, number: Number) {
        let now = self.now();
        let Some(s) = self.calls.get_mut(cid) else { return };
        s.call.accept_refer(now);
        let line = format!("{} transfers this call to {number}", s.peer);
        self.emit(UiEvent::Info(line));
        self.transfers.dialing = Some((number, cid.to_string()));
        self.dial_number(number);
    }

    /// The number dialed for a transfer was resolved: `Some(cid)` of the
    /// call whose REFER asked for it. Failure to find it is told at once.
    pub(crate) fn transfer_dial_for(&mut self, dialed: Number, found: bool) -> Option<String> {
        let (number, cid) = self.transfers.dialing.take_if(|(n, _)| *n == dialed)?;
        if !found {
            let now = self.now();
            if let Some(s) = self.calls.get_mut(&cid) {
                s.call.notify_transfer(404, "Not Found", now);
            }
            self.emit(UiEvent::Error(format!("transfer to {number} failed: not found")));
            return None;
        }
        Some(cid)
    }

    /// The new call of a transfer rang, was answered or ended: tell the
    /// transferor (`orig`) in a NOTIFY.
    pub(crate) fn transfer_progress(&mut self, orig: &str, news: Result<u16, &End>) {
        let now = self.now();
        let Some(s) = self.calls.get_mut(orig) else { return };
        match news {
            Ok(180) => s.call.notify_transfer(180, "Ringing", now),
            Ok(200) => {
                s.call.notify_transfer(200, "OK", now);
                // The transferor should leave now; if it does not, we do.
                s.hangup_at.get_or_insert(now + 2_000);
            }
            Ok(_) => {}
            Err(end) => {
                let (code, reason) = failure_status(end);
                s.call.notify_transfer(code, &reason, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbers_are_transfer_targets() {
        assert_eq!(
            target_number("sip:8860212345678@10.1.1.1:5070").map(|n| n.to_string()).as_deref(),
            Some("886-02-12345678")
        );
        assert_eq!(target_number("sip:alice@example.com"), None);
        assert_eq!(target_number("sip:example.com"), None);
        assert_eq!("accept".parse(), Ok(ReferPolicy::Accept));
        assert!("maybe".parse::<ReferPolicy>().is_err());
    }

    #[test]
    fn unanswered_transfers_report_a_final_failure() {
        let busy = End::Rejected {
            code: 486,
            reason: "Busy Here".into(),
        };
        assert_eq!(failure_status(&busy), (486, "Busy Here".into()));
        assert_eq!(failure_status(&End::NoAnswer).0, 487);
        assert_eq!(failure_status(&End::NoResponse).0, 408);
    }
}
