//! The switch's SIP core, without I/O: fed datagrams and the time, it
//! queues datagrams to send and events to tell.
//!
//! - REGISTER from its devices goes to `peerdial_sip`'s `Registrar` (one
//!   per area, digest against the HA1s of `devices.json`).
//! - An INVITE to a device must carry a key the cloud handed out
//!   ([`Exchange::accept`] made it; `peerdial_rendezvous::KeyRing`, one ring
//!   per device: single use, expiring, bound to the caller; a key for another
//!   device is unknown to this one). No key, a used, expired or misbound one:
//!   403 before anything rings.
//! - An admitted call is bridged as a back-to-back user agent: one
//!   `peerdial_sip::call::Call` towards the caller, one towards the device.
//!   The SDP passes through unchanged, so the media flows between the phones
//!   and never through the switch; the switch sees the signalling, and so
//!   knows when a device is free.
//! - A busy device's callers wait in its queue in arrival order, each told
//!   its place with `182 Queued (place N)`, and are connected in order when
//!   the device's call ends.
//!
//! - A device's call out (digest first) goes where the cloud designates:
//!   to another switch with its key, or, for a number with no switch, to
//!   the contact the number's NAPTR records name.
//!
//! This module is registration and admission (keys, designation); the
//! bridges themselves (legs, lines, queues) are in `bridge`.
//!
//! It is not a proxy for calls between its own devices, nor a media relay;
//! re-INVITEs (hold) are not passed between the legs (refused with 488).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use peerdial_directory::designation::{Accepted, SWITCH_KEY_HEADER};
use peerdial_identity::PublicKey;
use peerdial_number::{Area, Number};
use peerdial_push::token::HEADER as WAKE_TOKEN_HEADER;
use peerdial_rendezvous::KeyRing;
use peerdial_sip::call::{stateless_response, Call, State, Transmit};

use bridge::{Bridge, Line, Side};
use peerdial_sip::message::{Message, NameAddr, SipUri, StartLine};
use peerdial_sip::registrar::{Output, Registrar, RegistrarConfig, Transport};

use crate::devices::{Device, REALM};

/// How long a device leg may ring unanswered.
const RING_MS: u64 = 60_000;
/// A device that answers nothing within this long is unreachable.
const RESPONSE_MS: u64 = 8_000;

#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// The switch's SIP address (Contact, Via, and what callers are told).
    pub addr: SocketAddr,
    pub nonce_key: [u8; 32],
    pub key_lifetime_ms: u64,
}

/// What happened, for the switch's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Registered {
        number: Number,
        addr: SocketAddr,
    },
    /// An INVITE turned away before anything rang.
    Refused {
        callee: String,
        code: u16,
        why: String,
    },
    Queued {
        caller: String,
        callee: Number,
        place: usize,
    },
    Connecting {
        caller: String,
        callee: Number,
    },
    Connected {
        caller: String,
        callee: Number,
    },
    Ended {
        caller: String,
        callee: Number,
    },
    /// A woken callee answered without its valid wake token: hung up on,
    /// and the caller refused (403).
    WakeTokenRefused {
        caller: String,
        callee: Number,
        why: String,
    },
    /// One of our devices calls a number that is not ours: the edge asks
    /// the cloud for the route (as the switch, for `caller`) and hands the
    /// answer to [`Exchange::designated`].
    Designate {
        id: u64,
        caller: Number,
        callee: Number,
    },
}

/// The cloud's answer to [`Event::Designate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Designated {
    /// The callee is behind that switch; its INVITE carries the key.
    Switch { addr: SocketAddr, key: String },
    /// The callee is a number with no switch: called at the contact its
    /// NAPTR records name (the edge looked it up), as a phone would.
    /// `identity`: the cloud's PASSporT for our device (an `Identity`
    /// value), when it gave one.
    Direct {
        uri: String,
        addr: SocketAddr,
        identity: Option<String>,
    },
    /// The callee sleeps until pushed: the cloud woke it, and it is back
    /// at this contact; the INVITE presents the cloud's token for the
    /// caller (`X-Peerdial-Wake-Token`), without which the woken phone
    /// refuses the call. Its answer must carry the callee's token, signed
    /// with `key` (the cloud's), or the call is ended on both sides.
    Woken {
        uri: String,
        addr: SocketAddr,
        token: String,
        key: PublicKey,
        identity: Option<String>,
    },
    /// No route through a switch: the call is refused with this answer.
    Refused { code: u16, why: String },
}

pub struct Exchange {
    cfg: ExchangeConfig,
    devices: BTreeMap<Number, Device>,
    registrars: HashMap<Area, Registrar>,
    keys: HashMap<Number, KeyRing>,
    legs: HashMap<String, (u64, Side)>,
    bridges: BTreeMap<u64, Bridge>,
    lines: HashMap<Number, Line>,
    next: u64,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

fn user_of(uri: &str) -> Option<&str> {
    SipUri::parse(uri).ok()?.user
}

fn header_user(msg: &Message, name: &str) -> Option<String> {
    let v = msg.header(name)?;
    let na = NameAddr::parse(v).ok()?;
    user_of(na.uri).map(str::to_string)
}

impl Exchange {
    pub fn new(cfg: ExchangeConfig, devices: Vec<Device>) -> Exchange {
        let mut x = Exchange {
            cfg,
            devices: BTreeMap::new(),
            registrars: HashMap::new(),
            keys: HashMap::new(),
            legs: HashMap::new(),
            bridges: BTreeMap::new(),
            lines: HashMap::new(),
            next: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        x.set_devices(devices);
        x
    }

    /// The devices (from `devices.json`): credentials installed, removed
    /// ones dropped.
    pub fn set_devices(&mut self, devices: Vec<Device>) {
        let new: BTreeMap<Number, Device> = devices.into_iter().map(|d| (d.number, d)).collect();
        for (area, r) in &mut self.registrars {
            for n in self.devices.keys().filter(|n| n.area() == *area && !new.contains_key(n)) {
                r.remove_credential(*n);
            }
            for d in new.values().filter(|d| d.number.area() == *area) {
                r.set_credential(d.number, d.ha1.clone());
            }
        }
        self.devices = new;
    }

    /// The devices, for the cloud.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    fn registrar(&mut self, area: Area) -> &mut Registrar {
        let (devices, key) = (&self.devices, self.cfg.nonce_key);
        self.registrars.entry(area).or_insert_with(|| {
            let mut r = Registrar::new(RegistrarConfig::new(area, REALM, key));
            for d in devices.values().filter(|d| d.number.area() == area) {
                r.set_credential(d.number, d.ha1.clone());
            }
            r
        })
    }

    fn binding(&self, n: Number) -> Option<(String, SocketAddr)> {
        let b = self.registrars.get(&n.area())?.binding(n)?;
        Some((b.uri.clone(), b.addr))
    }

    /// The cloud asks whether `callee` takes a call from `caller`: a fresh
    /// key bound to both, and the place the caller would have in the queue
    /// (0: the device is free).
    pub fn accept(&mut self, caller: Number, callee: Number, now: u64) -> Result<Accepted, String> {
        match self.devices.get(&callee) {
            None => return Err("not a device of this switch".into()),
            Some(d) if d.disabled => return Err("disabled".into()),
            Some(_) => {}
        }
        if self.binding(callee).is_none() {
            return Err("not registered".into());
        }
        let line = self.lines.entry(callee).or_default();
        let queue = if line.active.is_some() { line.waiting.len() as u32 + 1 } else { 0 };
        let key = peerdial_rendezvous::key::new_key(&mut rand::thread_rng());
        self.keys
            .entry(callee)
            .or_default()
            .expect(&key, &caller.digits(), now + self.cfg.key_lifetime_ms);
        Ok(Accepted {
            address: self.cfg.addr,
            key,
            queue,
        })
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        let calls = self
            .bridges
            .values()
            .flat_map(|b| [Some(&b.inbound), b.outbound.as_ref()])
            .flatten()
            .filter_map(Call::poll_timeout);
        self.registrars.values().filter_map(Registrar::poll_timeout).chain(calls).min()
    }

    pub fn handle_timeout(&mut self, now: u64) {
        for r in self.registrars.values_mut() {
            r.handle_timeout(now);
        }
        for b in self.bridges.values_mut() {
            b.inbound.handle_timeout(now);
            if let Some(o) = &mut b.outbound {
                o.handle_timeout(now);
            }
        }
        self.pump(now);
    }

    /// One datagram from `from`.
    pub fn handle_datagram(&mut self, data: &[u8], from: SocketAddr, now: u64) {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.stateless(data, from, 400, "Bad Request");
                return;
            }
        };
        if let Some(&(id, side)) = msg.header("Call-ID").and_then(|c| self.legs.get(c)) {
            if let Some(b) = self.bridges.get_mut(&id) {
                match side {
                    Side::Caller => b.inbound.handle(&msg, from, now),
                    Side::Device => {
                        if let Some(o) = &mut b.outbound {
                            o.handle(&msg, from, now);
                        }
                    }
                }
            }
            self.pump(now);
            return;
        }
        let method = match &msg.start {
            StartLine::Request { method, .. } => method.clone(),
            StartLine::Response { .. } => return,
        };
        match method.as_str() {
            "REGISTER" => self.register(data, &msg, from, now),
            "INVITE" => self.invite(data, &msg, from, now),
            "ACK" => {}
            "OPTIONS" => self.stateless(data, from, 200, "OK"),
            _ => self.stateless(data, from, 481, "Call/Transaction Does Not Exist"),
        }
    }

    fn stateless(&mut self, data: &[u8], from: SocketAddr, code: u16, reason: &str) {
        if let Ok(Some(t)) = stateless_response(data, from, code, reason, &[]) {
            self.out.push_back(t);
        }
    }

    fn register(&mut self, data: &[u8], msg: &Message, from: SocketAddr, now: u64) {
        let Some(n) = header_user(msg, "To").and_then(|u| Number::parse(&u).ok()) else {
            self.stateless(data, from, 404, "Not Found (not a number)");
            return;
        };
        let reply = match self.registrar(n.area()).handle(data, Transport::Udp, from, now) {
            Output::Reply(r) => r,
            Output::Commit { change, reply, .. } => {
                if let peerdial_sip::registrar::Change::Upsert(n, b) = change {
                    self.events.push_back(Event::Registered { number: n, addr: b.addr });
                }
                reply
            }
            Output::Drop => return,
        };
        self.out.push_back(Transmit { to: from, data: reply });
    }

    fn refuse(&mut self, data: &[u8], from: SocketAddr, callee: String, code: u16, why: &str) {
        let reason = match code {
            403 => format!("Forbidden ({why})"),
            404 => format!("Not Found ({why})"),
            _ => format!("Temporarily Unavailable ({why})"),
        };
        self.stateless(data, from, code, &reason);
        self.events.push_back(Event::Refused {
            callee,
            code,
            why: why.to_string(),
        });
    }

    fn invite(&mut self, data: &[u8], msg: &Message, from: SocketAddr, now: u64) {
        let StartLine::Request { uri, .. } = &msg.start else { return };
        let shown = user_of(uri).unwrap_or("?").chars().take(20).collect::<String>();
        let from_device = header_user(msg, "From")
            .and_then(|u| Number::parse(&u).ok())
            .filter(|n| self.devices.contains_key(n));
        let to_other = user_of(uri)
            .and_then(|u| Number::parse(u).ok())
            .filter(|n| !self.devices.contains_key(n));
        if let (Some(caller), Some(callee), None) = (from_device, to_other, msg.header(SWITCH_KEY_HEADER)) {
            return self.outgoing(data, msg, from, caller, callee, now);
        }
        let Some(callee) = user_of(uri)
            .and_then(|u| Number::parse(u).ok())
            .filter(|n| self.devices.contains_key(n))
        else {
            return self.refuse(data, from, shown, 404, "not a device of this switch");
        };
        let Some(key) = msg.header(SWITCH_KEY_HEADER) else {
            return self.refuse(data, from, shown, 403, "no switch key");
        };
        let Some(caller) = header_user(msg, "From").and_then(|u| Number::parse(&u).ok()) else {
            return self.refuse(data, from, shown, 403, "the caller is not a number");
        };
        if let Err(why) = self.keys.entry(callee).or_default().check(key, &caller.digits(), now) {
            return self.refuse(data, from, shown, 403, &format!("switch key {}", why.as_str()));
        }
        if self.binding(callee).is_none() {
            return self.refuse(data, from, shown, 480, "not registered");
        }
        let headers = ["Identity", "Call-Info"]
            .iter()
            .filter_map(|h| msg.header(h).map(|v| (h.to_string(), v.to_string())))
            .collect();
        let Some(id) = self.open_bridge(data, from, caller, callee, headers, false, now) else {
            return;
        };
        let line = self.lines.entry(callee).or_default();
        if line.active.is_none() {
            self.connect(id, now);
        } else {
            line.waiting.push_back(id);
            self.tell_places(callee, now);
        }
        self.pump(now);
    }

    /// One of our devices calls `callee`, not ours: its credentials first
    /// (digest, as for REGISTER), then the cloud is asked for the route
    /// ([`Event::Designate`]).
    fn outgoing(&mut self, data: &[u8], msg: &Message, from: SocketAddr, caller: Number, callee: Number, now: u64) {
        match self.registrar(caller.area()).authenticate(msg, from, Transport::Udp, now) {
            Ok(n) if n == caller => {}
            Ok(_) => return self.refuse(data, from, callee.to_string(), 403, "credentials of another device"),
            Err(answer) => {
                if !answer.is_empty() {
                    self.out.push_back(Transmit { to: from, data: answer });
                }
                return;
            }
        }
        let Some(id) = self.open_bridge(data, from, caller, callee, Vec::new(), true, now) else {
            return;
        };
        self.events.push_back(Event::Designate { id, caller, callee });
        self.pump(now);
    }

    /// The cloud's route for an outgoing call ([`Event::Designate`]): the
    /// INVITE goes on to the callee's switch with the key, or the caller
    /// is told why not.
    pub fn designated(&mut self, id: u64, answer: Designated, now: u64) {
        let Some(b) = self.bridges.get_mut(&id).filter(|b| b.outgoing && b.outbound.is_none()) else {
            return;
        };
        if b.inbound.state() == State::Ended {
            return;
        }
        match answer {
            Designated::Switch { addr: to, key } => {
                let uri = format!("sip:{}@{to}", b.callee.digits());
                self.call_out(id, &uri, to, vec![(SWITCH_KEY_HEADER.to_string(), key)], now);
            }
            Designated::Direct { uri, addr, identity } => {
                let headers = identity.map(|v| ("Identity".to_string(), v)).into_iter().collect();
                self.call_out(id, &uri, addr, headers, now)
            }
            Designated::Woken {
                uri,
                addr,
                token,
                key,
                identity,
            } => {
                b.check_answer = Some(key);
                let mut headers = vec![(WAKE_TOKEN_HEADER.to_string(), token)];
                headers.extend(identity.map(|v| ("Identity".to_string(), v)));
                self.call_out(id, &uri, addr, headers, now);
            }
            Designated::Refused { code, why } => {
                let why: String = why.chars().filter(|c| !c.is_control()).take(120).collect();
                b.inbound.reject(code, &why, now);
            }
        }
        self.pump(now);
    }
}

mod bridge;

#[cfg(test)]
mod tests;
