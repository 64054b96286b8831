//! The switch's bridges (a back-to-back user agent per call): one
//! `Call` towards the caller and one towards the device or the next hop,
//! the device's line and its queue of waiting callers, and the pump that
//! carries each leg's events to the other. Admission (keys, designation)
//! is the parent module's.

use std::collections::VecDeque;
use std::net::SocketAddr;

use peerdial_identity::PublicKey;
use peerdial_number::Number;
use peerdial_push::token::{self, Role};
use peerdial_sip::call::{Call, CallEvent, End, Local, State};

use super::{Event, Exchange, RESPONSE_MS, RING_MS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Caller,
    Device,
}

pub(super) struct Bridge {
    pub(super) caller: String,
    pub(super) callee: Number,
    pub(super) inbound: Call,
    pub(super) outbound: Option<Call>,
    /// `Identity` and `Call-Info` of the caller's INVITE, passed on.
    pub(super) headers: Vec<(String, String)>,
    /// The device's line was given back.
    pub(super) freed: bool,
    /// One of our devices calling out through another switch: no line
    /// or queue of ours is involved.
    pub(super) outgoing: bool,
    /// A callee the cloud woke: its answer must carry its wake token,
    /// signed with this key (the cloud's).
    pub(super) check_answer: Option<PublicKey>,
}

impl Bridge {
    pub(super) fn over(&self) -> bool {
        self.inbound.state() == State::Ended && self.outbound.as_ref().is_none_or(|c| c.state() == State::Ended)
    }

    pub(super) fn done(&self) -> bool {
        self.inbound.is_done() && self.outbound.as_ref().is_none_or(|c| c.is_done())
    }
}

#[derive(Default)]
pub(super) struct Line {
    pub(super) active: Option<u64>,
    pub(super) waiting: VecDeque<u64>,
}

impl Exchange {
    /// Our side of a call: `user` at the switch's address.
    pub(super) fn local(&self, user: &str) -> Local {
        Local {
            uri: format!("sip:{user}@{}", self.cfg.addr),
            addr: self.cfg.addr,
            user_agent: format!("peerdial-switch/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Answers the caller's INVITE as `callee` and opens its bridge (no
    /// other leg yet); `None` when the INVITE is not one (it is answered).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_bridge(
        &mut self,
        data: &[u8],
        from: SocketAddr,
        caller: Number,
        callee: Number,
        headers: Vec<(String, String)>,
        outgoing: bool,
        now: u64,
    ) -> Option<u64> {
        let inbound = match Call::incoming(self.local(&callee.digits()), data, from, now) {
            Ok(c) => c,
            Err(t) => {
                self.out.extend(t);
                return None;
            }
        };
        self.next += 1;
        let id = self.next;
        self.legs.insert(inbound.call_id().to_string(), (id, Side::Caller));
        self.bridges.insert(
            id,
            Bridge {
                caller: caller.digits(),
                callee,
                inbound,
                outbound: None,
                headers,
                freed: false,
                outgoing,
                check_answer: None,
            },
        );
        Some(id)
    }

    /// The bridge's second leg: `uri` at `to`, with the caller's offer.
    pub(super) fn call_out(&mut self, id: u64, uri: &str, to: SocketAddr, headers: Vec<(String, String)>, now: u64) {
        let Some(caller) = self.bridges.get(&id).map(|b| b.caller.clone()) else {
            return;
        };
        let local = self.local(&caller);
        let b = self.bridges.get_mut(&id).expect("checked");
        let offer = b.inbound.remote_offer().to_vec();
        let mut call = Call::outgoing_with(local, uri, to, offer, headers, RING_MS, now);
        call.set_response_timeout(RESPONSE_MS, now);
        self.legs.insert(call.call_id().to_string(), (id, Side::Device));
        b.outbound = Some(call);
        self.events.push_back(Event::Connecting { caller, callee: b.callee });
    }

    /// Tells each waiting caller of `callee` its place.
    pub(super) fn tell_places(&mut self, callee: Number, now: u64) {
        let Some(line) = self.lines.get(&callee) else { return };
        for (i, id) in line.waiting.iter().enumerate() {
            if let Some(b) = self.bridges.get_mut(id) {
                let place = i + 1;
                b.inbound.progress(182, &format!("Queued (place {place})"), now);
                self.events.push_back(Event::Queued {
                    caller: b.caller.clone(),
                    callee,
                    place,
                });
            }
        }
    }

    /// Calls the device for bridge `id` (its line is free).
    pub(super) fn connect(&mut self, id: u64, now: u64) {
        let Some(b) = self.bridges.get(&id) else { return };
        let (callee, headers) = (b.callee, b.headers.clone());
        let Some((uri, addr)) = self.binding(callee) else {
            if let Some(b) = self.bridges.get_mut(&id) {
                b.inbound.reject(480, "Temporarily Unavailable (not registered)", now);
            }
            return;
        };
        self.call_out(id, &uri, addr, headers, now);
        self.lines.entry(callee).or_default().active = Some(id);
    }

    /// Moves each bridge's events between its legs, frees lines, starts
    /// the next waiting caller, and collects what to send.
    pub(super) fn pump(&mut self, now: u64) {
        let mut freed = Vec::new();
        for (id, b) in self.bridges.iter_mut() {
            while let Some(ev) = b.inbound.poll_event() {
                match ev {
                    CallEvent::Ended(_) => {
                        if let Some(o) = &mut b.outbound {
                            o.hangup(now);
                        }
                    }
                    CallEvent::Reoffer { .. } => b.inbound.reject_reoffer(488, "Not Acceptable Here", now),
                    _ => {}
                }
            }
            if let Some(o) = &mut b.outbound {
                while let Some(ev) = o.poll_event() {
                    match ev {
                        CallEvent::Ringing => b.inbound.ring(now),
                        CallEvent::Answered { sdp } => {
                            if let Err(why) = callee_token(b.check_answer.as_ref(), &b.caller, b.callee, o, now) {
                                // Not the phone the cloud woke: neither side talks to it.
                                o.hangup(now);
                                b.inbound.reject(403, "Forbidden (the callee's wake token did not verify)", now);
                                self.events.push_back(Event::WakeTokenRefused {
                                    caller: b.caller.clone(),
                                    callee: b.callee,
                                    why,
                                });
                                continue;
                            }
                            b.inbound.answer(sdp, now);
                            self.events.push_back(Event::Connected {
                                caller: b.caller.clone(),
                                callee: b.callee,
                            });
                        }
                        CallEvent::Reoffer { .. } => o.reject_reoffer(488, "Not Acceptable Here", now),
                        CallEvent::Ended(end) => match (b.inbound.state(), end) {
                            (State::Confirmed, _) => b.inbound.hangup(now),
                            (_, End::Rejected { code, reason }) => b.inbound.reject(code, &reason, now),
                            (_, End::NoAnswer) => b.inbound.reject(480, "Temporarily Unavailable", now),
                            (_, End::NoResponse) => b.inbound.reject(408, "Request Timeout", now),
                            _ => b.inbound.reject(487, "Request Terminated", now),
                        },
                        _ => {}
                    }
                }
                while let Some(t) = o.poll_transmit() {
                    self.out.push_back(t);
                }
            }
            while let Some(t) = b.inbound.poll_transmit() {
                self.out.push_back(t);
            }
            if !b.freed && b.over() {
                b.freed = true;
                freed.push(*id);
            }
        }
        for id in freed {
            let Some(b) = self.bridges.get(&id) else { continue };
            let (callee, caller, had_device) = (b.callee, b.caller.clone(), b.outbound.is_some());
            if had_device {
                self.events.push_back(Event::Ended { caller, callee });
            }
            if b.outgoing {
                continue;
            }
            let line = self.lines.entry(callee).or_default();
            let was_waiting = line.waiting.iter().any(|w| *w == id);
            line.waiting.retain(|w| *w != id);
            if line.active == Some(id) {
                line.active = None;
                if let Some(next) = line.waiting.pop_front() {
                    self.connect(next, now);
                    self.tell_places(callee, now);
                    // The next one's INVITE goes out now.
                    self.pump(now);
                }
            } else if was_waiting {
                self.tell_places(callee, now);
                self.pump(now);
            }
        }
        let done: Vec<u64> = self
            .bridges
            .iter()
            .filter(|(_, b)| b.freed && b.done())
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(b) = self.bridges.remove(&id) {
                self.legs.remove(b.inbound.call_id());
                if let Some(o) = &b.outbound {
                    self.legs.remove(o.call_id());
                }
            }
        }
    }
}

/// A woken callee's answer carries its own wake token, for this caller
/// and callee, signed by the cloud (`now` is Unix ms); nothing to check
/// for other calls.
fn callee_token(key: Option<&PublicKey>, caller: &str, callee: Number, answer: &Call, now: u64) -> Result<(), String> {
    let Some(key) = key else { return Ok(()) };
    let caller = Number::parse(caller).map_err(|e| e.to_string())?;
    let t = answer.answer_header(token::HEADER).ok_or("no wake token in the answer")?;
    token::verify(key, t, Role::Callee, caller, callee, now / 1000)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
