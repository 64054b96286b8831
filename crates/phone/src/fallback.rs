//! A call that the callee does not take goes on to its mailbox (design §9:
//! a number's NAPTR RRset has its phone at order 10 while it is online and
//! its region's mailbox at order 20 always). Our phone calls the targets in
//! order: a callee that is unreachable, does not answer within
//! `--ring-timeout`, is busy or declines sends the caller on to the next
//! one, with a fresh PASSporT. `voicemail NUMBER` goes straight to the
//! last target, the mailbox. `--no-mailbox` turns the fall-through off.
//!
//! What this is not: the lookup (`resolve`) or the call (`calls`).

use peerdial_number::Number;
use peerdial_sip::call::End;

use crate::display::UiEvent;
use crate::{caller_id, Command, Phone};

/// Whether an unanswered call that ended so goes on to the next target.
pub fn falls_through(end: &End) -> bool {
    match end {
        End::NoResponse | End::NoAnswer => true,
        // Busy, declined, not available now, gone, or a failing server;
        // not a codec (488) or an authentication problem.
        End::Rejected { code, .. } => matches!(code, 404 | 408 | 410 | 480 | 486 | 600 | 603) || (500..600).contains(code),
        End::Local | End::Remote | End::CancelledByCaller | End::NoAck => false,
    }
}

impl Phone {
    /// `voicemail NUMBER`: call the number's mailbox, not its phone.
    pub(crate) fn voicemail(&mut self, dialed: &str) {
        match Number::dial(dialed, self.area) {
            Ok(n) => {
                self.to_mailbox = Some(n);
                self.dial_number(n);
            }
            Err(e) => {
                self.emit(UiEvent::Error(format!("cannot dial {dialed:?}: {e}")));
                self.finish_dial(crate::exit::FAILED);
            }
        }
    }

    /// An unanswered call to `number` ended (`why`): call the next target.
    pub(crate) fn fall_through(&mut self, number: Number, mut then: Vec<String>, why: &str) {
        if then.is_empty() {
            return;
        }
        let uri = then.remove(0);
        self.emit(UiEvent::Info(format!("{number}: {why}; calling its mailbox")));
        let (id, tx) = (self.id.clone(), self.cmd_tx.clone());
        self.fallbacks_pending += 1;
        tokio::spawn(async move {
            // A fresh token: the first call's may be near its end of life.
            let identity = caller_id::passport(&id, number)
                .await
                .map_err(|e| tracing::warn!("calling the mailbox without caller identity: {e}"))
                .ok();
            let _ = tx
                .send(Command::Fallback {
                    number,
                    uri,
                    then,
                    identity,
                })
                .await;
        });
    }

    pub(crate) fn on_fallback(&mut self, number: Number, uri: String, then: Vec<String>, identity: Option<String>) {
        self.fallbacks_pending = self.fallbacks_pending.saturating_sub(1);
        if self.quitting || self.busy() {
            self.finish_dial(crate::exit::FAILED);
            return;
        }
        match self.place_call(number, uri, identity, None) {
            Ok(cid) => {
                if let Some(s) = self.calls.get_mut(&cid) {
                    s.then = then;
                }
            }
            Err(e) => {
                self.emit(UiEvent::Error(format!("cannot call {number}'s mailbox: {e}")));
                self.finish_dial(crate::exit::FAILED);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_goes_on_to_the_mailbox() {
        let rejected = |code| End::Rejected {
            code,
            reason: String::new(),
        };
        for end in [
            End::NoResponse,
            End::NoAnswer,
            rejected(486),
            rejected(603),
            rejected(480),
            rejected(503),
        ] {
            assert!(falls_through(&end), "{end:?}");
        }
        for end in [End::Local, End::Remote, rejected(488), rejected(401), rejected(438), End::NoAck] {
            assert!(!falls_through(&end), "{end:?}");
        }
    }
}
