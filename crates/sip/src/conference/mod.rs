//! The signalling side of a conference a server hosts (issue 13): one
//! outgoing call per talker, each with the offer the edge made for that
//! talker's port on the mixer, and the rule for when the conference is
//! over. Talkers join when they answer, leave when they hang up (or fail
//! to answer), and may be added while it runs. A running two-party call
//! grows into a conference by handing its two established legs over
//! ([`Conference::adopt`]): each is re-INVITEd with its mixer offer and
//! joins with the answer. Once fewer than two
//! remain — or the first talker (the dialer's own) fails before joining —
//! every other leg is ended.
//!
//! Fed datagrams (matched to a leg by Call-ID, see
//! [`Conference::call_ids`]) and milliseconds; yields datagrams,
//! [`ConfEvent`]s for the edge (add or remove a participant in the mixer)
//! and [`ConfProgress`] for the dialer. It is not the mixer
//! (`peerdial_media::mixer`) and owns no socket; media is audio only.

use std::collections::VecDeque;
use std::net::SocketAddr;

use serde::Serialize;

use crate::call::{Call, CallEvent, End, Local, State, Transmit};
use crate::pairing::Leg;
use crate::Message;

/// A leg's index, in the order talkers were added.
pub type LegId = usize;

/// What the edge does with the mixer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfEvent {
    /// The talker answered with `sdp`: add it to the mixer.
    Joined { leg: LegId, sdp: Vec<u8> },
    /// The talker is gone: remove it from the mixer (if it had joined).
    Left { leg: LegId },
}

/// What the dialer is told, per talker (`who` is the talker's label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ConfProgress {
    Calling {
        who: String,
    },
    Ringing {
        who: String,
    },
    Joined {
        who: String,
    },
    /// This talker never joined: busy, rejected, no answer…
    Failed {
        who: String,
        reason: String,
    },
    /// This talker hung up (or was dropped) after joining.
    Left {
        who: String,
    },
    /// The conference is over; every leg is ended.
    Ended {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Calling,
    /// An established call adopted from a two-party call, re-INVITEd with
    /// its mixer offer and waiting for the answer.
    Moving,
    Joined,
    Gone,
}

struct Member {
    who: String,
    call: Call,
    phase: Phase,
}

pub struct Conference {
    local: Local,
    ring_ms: u64,
    members: Vec<Member>,
    over: bool,
    events: VecDeque<ConfEvent>,
    progress: VecDeque<ConfProgress>,
}

/// Why a talker did not join, as a dialer reads it.
pub fn reason(end: &End) -> String {
    match end {
        End::Rejected { code: 488 | 606, reason } => format!("could not accept the mixer's media ({reason})"),
        e => crate::pairing::reason(e),
    }
}

impl Conference {
    /// An empty conference; add talkers with [`Conference::add`] (the
    /// first one added is the dialer's own).
    pub fn new(local: Local, ring_ms: u64) -> Conference {
        Conference {
            local,
            ring_ms,
            members: Vec::new(),
            over: false,
            events: VecDeque::new(),
            progress: VecDeque::new(),
        }
    }

    /// Calls one more talker with `offer` (SDP naming its port on the
    /// mixer). None once the conference is over.
    pub fn add(&mut self, who: &str, leg: &Leg, offer: Vec<u8>, now: u64) -> Option<LegId> {
        if self.over {
            return None;
        }
        let call = Call::outgoing(self.local.clone(), &leg.uri, leg.next_hop, offer, self.ring_ms, now);
        self.members.push(Member {
            who: who.to_string(),
            call,
            phase: Phase::Calling,
        });
        self.progress.push_back(ConfProgress::Calling { who: who.to_string() });
        Some(self.members.len() - 1)
    }

    /// Takes over `call`, an established call of this controller's (see
    /// `Pairing::into_legs`), and re-INVITEs it with `offer`; it joins when
    /// the answer comes. A talker that refuses the move is hung up on.
    /// None once the conference is over.
    pub fn adopt(&mut self, who: &str, mut call: Call, offer: Vec<u8>, now: u64) -> Option<LegId> {
        if self.over {
            return None;
        }
        let moving = call.reinvite(offer, now);
        self.members.push(Member {
            who: who.to_string(),
            call,
            phase: Phase::Moving,
        });
        let leg = self.members.len() - 1;
        if !moving {
            self.drop_leg(leg, "its call could not take a new offer now".into(), now);
        }
        Some(leg)
    }

    pub fn call_ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.call.call_id().to_string()).collect()
    }

    /// A message whose Call-ID is one of [`Conference::call_ids`].
    pub fn handle(&mut self, msg: &Message, source: SocketAddr, now: u64) {
        let id = msg.header("Call-ID").unwrap_or_default();
        if let Some(m) = self.members.iter_mut().find(|m| m.call.call_id() == id) {
            m.call.handle(msg, source, now);
        }
        self.drive(now);
    }

    /// The edge could not use a talker's answer (no codec in common with
    /// the mixer, a bad address): that talker is dropped.
    pub fn drop_leg(&mut self, leg: LegId, reason: String, now: u64) {
        let Some(m) = self.members.get_mut(leg) else { return };
        if m.phase == Phase::Gone {
            return;
        }
        if m.call.state() != State::Ended {
            m.call.hangup(now);
        }
        let joined = m.phase == Phase::Joined;
        m.phase = Phase::Gone;
        self.events.push_back(ConfEvent::Left { leg });
        let who = m.who.clone();
        self.progress.push_back(if joined {
            ConfProgress::Left { who }
        } else {
            ConfProgress::Failed { who, reason }
        });
        self.check(leg == 0 && !joined, now);
    }

    /// The dialer ends the conference: every leg ends.
    pub fn cancel(&mut self, now: u64) {
        if !self.over {
            self.end_all("ended by the dialer".into(), now);
        }
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.members.iter().filter_map(|m| m.call.poll_timeout()).min()
    }

    pub fn handle_timeout(&mut self, now: u64) {
        for m in &mut self.members {
            if m.call.poll_timeout().is_some_and(|t| t <= now) {
                m.call.handle_timeout(now);
            }
        }
        self.drive(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.members.iter_mut().find_map(|m| m.call.poll_transmit())
    }

    pub fn poll_event(&mut self) -> Option<ConfEvent> {
        self.events.pop_front()
    }

    pub fn poll_progress(&mut self) -> Option<ConfProgress> {
        self.progress.pop_front()
    }

    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Over, and every leg has finished its goodbyes.
    pub fn is_done(&self) -> bool {
        self.over && self.members.iter().all(|m| m.call.is_done())
    }

    /// Talkers calling or joined.
    pub fn live(&self) -> usize {
        self.members.iter().filter(|m| m.phase != Phase::Gone).count()
    }

    fn drive(&mut self, now: u64) {
        for i in 0..self.members.len() {
            while let Some(ev) = self.members[i].call.poll_event() {
                self.leg_event(i, ev, now);
            }
        }
    }

    fn leg_event(&mut self, leg: LegId, ev: CallEvent, now: u64) {
        let m = &mut self.members[leg];
        match (m.phase, ev) {
            (Phase::Calling, CallEvent::Ringing) => self.progress.push_back(ConfProgress::Ringing { who: m.who.clone() }),
            (Phase::Calling, CallEvent::Answered { sdp }) => {
                if self.over {
                    m.call.hangup(now);
                    return;
                }
                m.phase = Phase::Joined;
                self.progress.push_back(ConfProgress::Joined { who: m.who.clone() });
                self.events.push_back(ConfEvent::Joined { leg, sdp });
            }
            (Phase::Calling, CallEvent::Ended(end)) => {
                m.phase = Phase::Gone;
                if !self.over {
                    self.progress.push_back(ConfProgress::Failed {
                        who: m.who.clone(),
                        reason: reason(&end),
                    });
                    self.events.push_back(ConfEvent::Left { leg });
                    self.check(leg == 0, now);
                }
            }
            (Phase::Moving, CallEvent::Reanswered { sdp }) => {
                m.phase = Phase::Joined;
                self.progress.push_back(ConfProgress::Joined { who: m.who.clone() });
                self.events.push_back(ConfEvent::Joined { leg, sdp });
            }
            (Phase::Moving, CallEvent::ReofferFailed { code, reason }) => {
                self.drop_leg(leg, format!("refused to move into the conference: {code} {reason}"), now);
            }
            (Phase::Joined | Phase::Moving, CallEvent::Ended(_)) => {
                m.phase = Phase::Gone;
                if !self.over {
                    self.progress.push_back(ConfProgress::Left { who: m.who.clone() });
                    self.events.push_back(ConfEvent::Left { leg });
                    self.check(false, now);
                }
            }
            _ => {}
        }
    }

    /// Ends everything once fewer than two talkers remain, or when the
    /// dialer's own talker never joined.
    fn check(&mut self, first_failed: bool, now: u64) {
        if self.over {
            return;
        }
        if first_failed {
            let who = self.members[0].who.clone();
            self.end_all(format!("{who} did not join"), now);
        } else if self.live() < 2 {
            self.end_all("fewer than two talkers remain".into(), now);
        }
    }

    fn end_all(&mut self, reason: String, now: u64) {
        self.over = true;
        for (i, m) in self.members.iter_mut().enumerate() {
            if m.call.state() != State::Ended {
                m.call.hangup(now);
            }
            if m.phase != Phase::Gone {
                m.phase = Phase::Gone;
                self.events.push_back(ConfEvent::Left { leg: i });
            }
        }
        self.progress.push_back(ConfProgress::Ended { reason });
    }
}

#[cfg(test)]
mod tests;
