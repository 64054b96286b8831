//! Two calls at once, as on a desk phone's two lines: call waiting (a
//! second incoming call rings beside the call in progress), answering it
//! (the first goes on hold), swapping between the two, rejecting the
//! waiting one; and which call the user's keys act on (the focus).
//!
//! The focused call is shown in the display's call pane, the other one
//! (waiting, or on hold) in its second line. What this is not: hold itself
//! (`incall.rs`) or the signalling (`peerdial_sip::call`).

use std::time::Instant;

use peerdial_sip::call::{Role, State};

use crate::calls::Slot;
use crate::display::{CallView, UiEvent};
use crate::incall::InCallCommand;
use crate::Phone;

/// Calls a phone holds at once: the one talked on and one waiting or held.
pub(crate) const MAX_CALLS: usize = 2;

/// Which call is on which line (Call-IDs).
#[derive(Debug, Default)]
pub(crate) struct Lines {
    /// The call the keys act on, shown in the call pane.
    pub(crate) focus: Option<String>,
    /// The other call: ringing beside the focus, or on hold.
    pub(crate) second: Option<String>,
}

fn live(s: &Slot) -> bool {
    s.call.state() != State::Ended
}

fn ringing_in(s: &Slot) -> bool {
    s.call.role == Role::Callee && matches!(s.call.state(), State::Calling | State::Ringing)
}

impl Phone {
    /// Calls not yet ended.
    pub(crate) fn live_calls(&self) -> usize {
        self.calls.values().filter(|s| live(s)).count()
    }

    /// The Call-ID of the call the keys act on.
    pub(crate) fn focused(&self) -> Option<String> {
        let f = self.lines.focus.as_ref()?;
        self.calls.get(f).filter(|s| live(s)).map(|_| f.clone())
    }

    /// The display's view of call `cid`, on whichever line it is.
    pub(crate) fn view_mut(&mut self, cid: &str) -> Option<&mut CallView> {
        if self.lines.focus.as_deref() == Some(cid) {
            self.snapshot.call.as_mut()
        } else if self.lines.second.as_deref() == Some(cid) {
            self.snapshot.other.as_mut()
        } else {
            None
        }
    }

    /// A new call takes the first free line: the focus if there is none.
    pub(crate) fn take_line(&mut self, cid: &str, view: CallView) {
        if self.focused().is_none() {
            // A line left by an ended call is free again.
            self.lines.focus = Some(cid.to_string());
            self.snapshot.call = Some(view);
        } else {
            self.lines.second = Some(cid.to_string());
            self.snapshot.other = Some(view);
        }
    }

    /// Call `cid` ended: its line is free and the other call, if any, is
    /// the focus now (still on hold until the user resumes it).
    pub(crate) fn free_line(&mut self, cid: &str) {
        if self.lines.focus.as_deref() == Some(cid) {
            self.lines.focus = self.lines.second.take();
            self.snapshot.call = self.snapshot.other.take();
        } else if self.lines.second.as_deref() == Some(cid) {
            self.lines.second = None;
            self.snapshot.other = None;
        }
    }

    pub(crate) fn swap_lines(&mut self) {
        std::mem::swap(&mut self.lines.focus, &mut self.lines.second);
        std::mem::swap(&mut self.snapshot.call, &mut self.snapshot.other);
    }

    /// A second incoming call while one is in progress: it rings on the
    /// second line (never auto-answered).
    pub(crate) fn call_waiting(&mut self, cid: &str, peer: &str) {
        self.take_line(
            cid,
            CallView {
                peer: peer.to_string(),
                state: "waiting".into(),
                since: Instant::now(),
                incoming: true,
                ..CallView::default()
            },
        );
        self.emit(UiEvent::Waiting { from: peer.to_string() });
    }

    /// `answer`: takes the ringing call; a call in progress on the other
    /// line goes on hold first.
    pub(crate) fn answer(&mut self) {
        let now = self.now();
        let Some(cid) = self
            .calls
            .iter()
            .filter(|(_, s)| ringing_in(s))
            .map(|(c, _)| c.clone())
            .min_by_key(|c| (self.lines.focus.as_ref() != Some(c)) as u8)
        else {
            return self.emit(UiEvent::Error("no call is ringing".into()));
        };
        if self.lines.second.as_ref() == Some(&cid) {
            if let Some(first) = self.focused() {
                self.hold_for_other(&first);
            }
            self.swap_lines();
        }
        let s = self.calls.get_mut(&cid).expect("found above");
        if let Err(e) = Self::answer_slot(&cid, s, &self.cfg, self.play.as_deref(), self.sound.live(), now) {
            self.emit(UiEvent::Error(e.to_string()));
        }
    }

    /// Puts call `cid` on hold because the user turns to the other call.
    fn hold_for_other(&mut self, cid: &str) {
        let talking = self
            .calls
            .get(cid)
            .is_some_and(|s| s.call.state() == State::Confirmed && !s.talk.hold.local);
        if talking {
            self.in_call(cid, InCallCommand::Hold);
        }
    }

    /// `swap`: the call on hold comes back, the one talked on goes on hold.
    pub(crate) fn swap(&mut self) {
        let (Some(first), Some(second)) = (self.focused(), self.lines.second.clone()) else {
            return self.emit(UiEvent::Error("no second call to swap to".into()));
        };
        let ready = self.calls.get(&second).is_some_and(|s| s.call.state() == State::Confirmed);
        if !ready {
            return self.emit(UiEvent::Error("the other call is not answered yet: answer or reject it".into()));
        }
        self.hold_for_other(&first);
        self.in_call(&second, InCallCommand::Resume);
        self.swap_lines();
    }

    /// `reject`: refuses the ringing call (486 while another call is in
    /// progress, 603 otherwise).
    pub(crate) fn reject(&mut self) {
        let now = self.now();
        let others = self.live_calls();
        let Some(s) = self.calls.values_mut().find(|s| ringing_in(s)) else {
            return self.emit(UiEvent::Error("no call is ringing".into()));
        };
        s.answer_at = None;
        if others > 1 {
            s.call.reject(486, "Busy Here", now);
        } else {
            s.call.reject(603, "Decline", now);
        }
    }

    /// `hangup`: ends the focused call (the other one stays as it is).
    pub(crate) fn hangup(&mut self) {
        let now = self.now();
        match self.focused() {
            Some(cid) => {
                if let Some(s) = self.calls.get_mut(&cid) {
                    s.call.hangup(now);
                }
            }
            None => {
                for s in self.calls.values_mut() {
                    s.call.hangup(now);
                }
            }
        }
    }
}
