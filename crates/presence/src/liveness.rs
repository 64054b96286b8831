//! Which numbers are reachable now (design §9: "online means reachable
//! now").
//!
//! Over TCP the open connection is the proof: the edge says when it
//! closes. Over UDP the region sends a keep-alive, an OPTIONS request, to
//! each registered phone every `interval`; any response (even an error) or
//! any request from the phone's address counts as an answer. A keep-alive
//! is retransmitted like any UDP request (500 ms, 1 s, 2 s, …) and counts
//! as missed after `answer_timeout`. After a miss the next keep-alive goes
//! out at once, so `max_missed` misses in a row take about
//! `max_missed × answer_timeout` after the first one, and a phone killed
//! without unregistering shows offline within `interval + 3 × 4 s` by
//! default, long before its registration expires. An unreachable phone is
//! still probed every `interval`; its first answer makes it reachable.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

use peerdial_number::Number;
use peerdial_sip::call::{T1, T2};
use peerdial_sip::{Message, Transport};

use crate::sip_util::{branch, request, status, token, NumberMap};
use crate::Transmit;

#[derive(Debug, Clone)]
pub struct LivenessConfig {
    /// Our SIP address: the Via of keep-alives.
    pub local: SocketAddr,
    /// The region's SIP domain: the host of From and To.
    pub domain: String,
    /// Time between keep-alives to a phone that answers (`--keepalive`).
    pub interval_ms: u64,
    /// How long a keep-alive waits for an answer before it counts as missed.
    pub answer_timeout_ms: u64,
    /// Missed keep-alives in a row that make a number unreachable.
    pub max_missed: u32,
    pub user_agent: String,
}

impl LivenessConfig {
    pub fn new(local: SocketAddr, domain: impl Into<String>) -> LivenessConfig {
        LivenessConfig {
            local,
            domain: domain.into(),
            interval_ms: 30_000,
            answer_timeout_ms: 4_000,
            max_missed: 3,
            user_agent: "peerdial".into(),
        }
    }
}

/// A number became reachable or unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessEvent {
    pub number: Number,
    pub reachable: bool,
}

struct Probe {
    call_id: String,
    data: Vec<u8>,
    next_retransmit: u64,
    interval: u64,
    deadline: u64,
}

struct Bind {
    addr: SocketAddr,
    transport: Transport,
    reachable: bool,
    missed: u32,
    probe: Option<Probe>,
    next_probe: u64,
    /// Bumped at every rescheduling: older heap entries are stale.
    generation: u64,
}

pub struct Liveness {
    cfg: LivenessConfig,
    binds: NumberMap<Number, Bind>,
    by_addr: HashMap<SocketAddr, Number>,
    probes: HashMap<String, Number>,
    timers: BinaryHeap<Reverse<(u64, Number, u64)>>,
    out: VecDeque<Transmit>,
    events: VecDeque<LivenessEvent>,
}

impl Liveness {
    pub fn new(cfg: LivenessConfig) -> Liveness {
        Liveness {
            cfg,
            binds: NumberMap::default(),
            by_addr: HashMap::new(),
            probes: HashMap::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &LivenessConfig {
        &self.cfg
    }

    pub fn is_reachable(&self, number: Number) -> bool {
        self.binds.get(&number).is_some_and(|b| b.reachable)
    }

    /// A (re-)registration of `number` from `addr`: the phone is reachable
    /// now. UDP bindings get keep-alives from here on.
    pub fn registered(&mut self, number: Number, addr: SocketAddr, transport: Transport, now_ms: u64) {
        let was = self.binds.remove(&number);
        if let Some(old) = &was {
            self.forget(old, number);
        }
        let b = Bind {
            addr,
            transport,
            reachable: true,
            missed: 0,
            probe: None,
            next_probe: now_ms + self.cfg.interval_ms,
            generation: was.as_ref().map_or(0, |w| w.generation + 1),
        };
        if was.is_none_or(|w| !w.reachable) {
            self.events.push_back(LivenessEvent { number, reachable: true });
        }
        self.by_addr.insert(addr, number);
        self.binds.insert(number, b);
        self.reschedule(number);
    }

    /// The registration ended (unregistered or expired).
    pub fn unregistered(&mut self, number: Number) {
        if let Some(b) = self.binds.remove(&number) {
            self.forget(&b, number);
            if b.reachable {
                self.events.push_back(LivenessEvent { number, reachable: false });
            }
        }
    }

    /// The TCP connection `number` registered over has closed: it is
    /// unreachable until it registers again.
    pub fn tcp_closed(&mut self, number: Number) {
        if self.binds.get(&number).is_some_and(|b| b.transport == Transport::Tcp) {
            self.unregistered(number);
        }
    }

    /// The TCP connection from `addr` has closed.
    pub fn connection_closed(&mut self, addr: SocketAddr) {
        if let Some(&n) = self.by_addr.get(&addr) {
            self.tcp_closed(n);
        }
    }

    /// Any request came from `addr`: the phone there is alive.
    pub fn heard_from(&mut self, addr: SocketAddr, now_ms: u64) {
        if let Some(&n) = self.by_addr.get(&addr) {
            self.answered(n, now_ms);
        }
    }

    /// A response that may answer one of our keep-alives; returns whether
    /// it did (then the edge need not pass it elsewhere).
    pub fn handle_response(&mut self, msg: &Message, now_ms: u64) -> bool {
        if status(msg).is_none() {
            return false;
        }
        let Some(call_id) = msg.header("Call-ID") else { return false };
        let Some(n) = self.probes.get(call_id).copied() else { return false };
        self.answered(n, now_ms);
        true
    }

    /// `number` answered something else we sent it (a broadcast MESSAGE):
    /// the same proof as an answered keep-alive.
    pub fn answered_by(&mut self, number: Number, now_ms: u64) {
        self.answered(number, now_ms);
    }

    /// Something else we sent `number` over UDP went unanswered (a
    /// broadcast MESSAGE): it counts with missed keep-alives, and
    /// `max_missed` in a row make the number unreachable at once.
    pub fn missed(&mut self, number: Number) {
        let max_missed = self.cfg.max_missed.max(1);
        let Some(b) = self.binds.get_mut(&number) else { return };
        if b.transport != Transport::Udp {
            return; // over TCP the open connection is the proof
        }
        b.missed = b.missed.saturating_add(1);
        if b.missed >= max_missed && b.reachable {
            b.reachable = false;
            tracing::debug!(%number, missed = b.missed, "deliveries and keep-alives unanswered: unreachable");
            self.events.push_back(LivenessEvent { number, reachable: false });
        }
    }

    /// The numbers reachable now, with where their bindings are.
    pub fn reachable(&self) -> Vec<(Number, SocketAddr, Transport)> {
        self.binds
            .iter()
            .filter(|(_, b)| b.reachable)
            .map(|(n, b)| (*n, b.addr, b.transport))
            .collect()
    }

    /// Where `number`'s phone is reachable now (over TCP, its connection).
    pub fn reachable_at(&self, number: Number) -> Option<(SocketAddr, Transport)> {
        self.binds.get(&number).filter(|b| b.reachable).map(|b| (b.addr, b.transport))
    }

    fn answered(&mut self, number: Number, _now: u64) {
        let Some(b) = self.binds.get_mut(&number) else { return };
        if b.probe.is_none() && b.missed == 0 && b.reachable {
            // Nothing to change (the common case for chatty phones): no
            // heap entry either.
            return;
        }
        if let Some(p) = b.probe.take() {
            self.probes.remove(&p.call_id);
        }
        b.missed = 0;
        if !b.reachable {
            b.reachable = true;
            self.events.push_back(LivenessEvent { number, reachable: true });
        }
        self.reschedule(number);
    }

    fn forget(&mut self, b: &Bind, number: Number) {
        if self.by_addr.get(&b.addr) == Some(&number) {
            self.by_addr.remove(&b.addr);
        }
        if let Some(p) = &b.probe {
            self.probes.remove(&p.call_id);
        }
    }

    /// Pushes the binding's next deadline onto the heap.
    fn reschedule(&mut self, number: Number) {
        let Some(b) = self.binds.get_mut(&number) else { return };
        if b.transport != Transport::Udp {
            return;
        }
        b.generation += 1;
        let at = match &b.probe {
            Some(p) => p.next_retransmit.min(p.deadline),
            None => b.next_probe,
        };
        self.timers.push(Reverse((at, number, b.generation)));
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(Reverse((at, number, generation))) = self.timers.peek().copied() {
            if at > now_ms {
                break;
            }
            self.timers.pop();
            if self.binds.get(&number).is_some_and(|b| b.generation == generation) {
                self.tick(number, now_ms);
            }
        }
    }

    fn tick(&mut self, number: Number, now: u64) {
        let interval = self.cfg.interval_ms;
        let max_missed = self.cfg.max_missed.max(1);
        let Some(b) = self.binds.get_mut(&number) else { return };
        if let Some(p) = &mut b.probe {
            if p.deadline <= now {
                self.probes.remove(&p.call_id);
                b.probe = None;
                b.missed = b.missed.saturating_add(1);
                if b.missed >= max_missed {
                    if b.reachable {
                        b.reachable = false;
                        tracing::debug!(%number, missed = b.missed, "keep-alives unanswered: unreachable");
                        self.events.push_back(LivenessEvent { number, reachable: false });
                    }
                    b.next_probe = now + interval;
                } else {
                    // Confirm quickly rather than wait a whole interval.
                    b.next_probe = now;
                }
            } else if p.next_retransmit <= now {
                self.out.push_back(Transmit {
                    to: b.addr,
                    transport: Transport::Udp,
                    data: p.data.clone(),
                });
                p.interval = (p.interval * 2).min(T2);
                p.next_retransmit = now + p.interval;
            }
        }
        if b.probe.is_none() && b.next_probe <= now {
            self.send_probe(number, now);
        }
        self.reschedule(number);
    }

    fn send_probe(&mut self, number: Number, now: u64) {
        let Some(b) = self.binds.get_mut(&number) else { return };
        let call_id = format!("{}@{}", token(20), self.cfg.local.ip());
        let mut m = request("OPTIONS", &format!("sip:{}@{}", number.digits(), b.addr));
        m.push("Via", format!("SIP/2.0/UDP {};branch={};rport", self.cfg.local, branch()));
        m.push("Max-Forwards", "70");
        m.push("From", format!("<sip:presence@{}>;tag={}", self.cfg.domain, token(10)));
        m.push("To", format!("<sip:{}@{}>", number.digits(), self.cfg.domain));
        m.push("Call-ID", call_id.clone());
        m.push("CSeq", "1 OPTIONS");
        m.push("User-Agent", self.cfg.user_agent.clone());
        let data = m.to_bytes();
        self.out.push_back(Transmit {
            to: b.addr,
            transport: Transport::Udp,
            data: data.clone(),
        });
        let timeout = self.cfg.answer_timeout_ms.clamp(1, self.cfg.interval_ms.max(1));
        b.probe = Some(Probe {
            call_id: call_id.clone(),
            data,
            next_retransmit: now + T1,
            interval: T1,
            deadline: now + timeout,
        });
        b.next_probe = now + self.cfg.interval_ms;
        self.probes.insert(call_id, number);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LivenessEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerdial_sip::message::{response, top_via};

    const T0: u64 = 1_700_000_000_000;

    fn setup() -> (Liveness, Number, SocketAddr) {
        let l = Liveness::new(LivenessConfig::new("127.0.0.1:5060".parse().unwrap(), "example"));
        (l, Number::parse("886-02-10000001").unwrap(), "127.0.0.1:7000".parse().unwrap())
    }

    fn reply_to(t: &Transmit, code: u16) -> Message {
        let req = Message::parse(&t.data).unwrap();
        let via = top_via(&req).unwrap();
        let r = response(&req, &via, t.to, code, "OK", "x");
        Message::parse(&r.to_bytes()).unwrap()
    }

    /// Runs timers up to `until`, returning the OPTIONS sent (time, transmit).
    fn run(l: &mut Liveness, until: u64) -> Vec<(u64, Transmit)> {
        let mut sent = Vec::new();
        while let Some(t) = l.poll_timeout().filter(|t| *t <= until) {
            l.handle_timeout(t);
            while let Some(x) = l.poll_transmit() {
                sent.push((t, x));
            }
        }
        sent
    }

    #[test]
    fn keepalives_go_every_interval_and_answers_keep_the_number_reachable() {
        let (mut l, n, addr) = setup();
        l.registered(n, addr, Transport::Udp, T0);
        assert_eq!(
            l.poll_event(),
            Some(LivenessEvent {
                number: n,
                reachable: true
            })
        );
        for k in 1..=4 {
            let sent = run(&mut l, T0 + k * 30_000);
            assert_eq!(sent.len(), 1, "one keep-alive per interval");
            let (at, t) = &sent[0];
            assert_eq!((*at, t.to), (T0 + k * 30_000, addr));
            let m = Message::parse(&t.data).unwrap();
            assert_eq!(m.method(), Some("OPTIONS"));
            // Even an error response is an answer.
            assert!(l.handle_response(&reply_to(t, if k == 2 { 405 } else { 200 }), *at + 100));
        }
        assert!(l.is_reachable(n));
        assert_eq!(l.poll_event(), None);
    }

    #[test]
    fn three_misses_make_the_number_unreachable_and_an_answer_brings_it_back() {
        let (mut l, n, addr) = setup();
        l.registered(n, addr, Transport::Udp, T0);
        let _ = l.poll_event();
        let sent = run(&mut l, T0 + 30_000 + 3 * 4_000);
        let calls: std::collections::HashSet<_> = sent
            .iter()
            .map(|(_, t)| Message::parse(&t.data).unwrap().header("Call-ID").unwrap().to_string())
            .collect();
        assert_eq!(calls.len(), 3, "three keep-alives, each with its own Call-ID");
        assert!(sent.len() > 3, "each one retransmitted");
        assert_eq!(
            l.poll_event(),
            Some(LivenessEvent {
                number: n,
                reachable: false
            })
        );
        assert!(!l.is_reachable(n));
        // Still probed, at the normal interval; an answer makes it reachable.
        let sent = run(&mut l, T0 + 42_000 + 30_000);
        let (at, t) = sent.last().unwrap();
        assert!(l.handle_response(&reply_to(t, 200), *at));
        assert_eq!(
            l.poll_event(),
            Some(LivenessEvent {
                number: n,
                reachable: true
            })
        );
    }

    #[test]
    fn an_answer_resets_the_count_of_misses() {
        let (mut l, n, addr) = setup();
        l.registered(n, addr, Transport::Udp, T0);
        let _ = l.poll_event();
        // Two misses…
        run(&mut l, T0 + 30_000 + 2 * 4_000);
        assert!(l.is_reachable(n));
        // …then any request from the phone counts as an answer.
        l.heard_from(addr, T0 + 38_500);
        let sent = run(&mut l, T0 + 38_500 + 30_000 + 2 * 4_000);
        assert!(!sent.is_empty());
        assert!(l.is_reachable(n), "two misses after the reset are not three");
        assert_eq!(l.poll_event(), None);
        // A response to nothing of ours is not taken.
        let stray = Message::parse(b"SIP/2.0 200 OK\r\nCall-ID: other\r\nCSeq: 1 OPTIONS\r\n\r\n").unwrap();
        assert!(!l.handle_response(&stray, T0));
    }

    #[test]
    fn unanswered_deliveries_count_with_keepalives() {
        let (mut l, n, addr) = setup();
        l.registered(n, addr, Transport::Udp, T0);
        let _ = l.poll_event();
        l.missed(n);
        l.missed(n);
        l.answered_by(n, T0 + 10);
        l.missed(n);
        l.missed(n);
        assert!(l.is_reachable(n), "an answer in between resets the count");
        assert_eq!(l.reachable(), vec![(n, addr, Transport::Udp)]);
        l.missed(n);
        assert_eq!(
            l.poll_event(),
            Some(LivenessEvent {
                number: n,
                reachable: false
            })
        );
        assert!(l.reachable().is_empty());
        l.answered_by(n, T0 + 20);
        assert!(l.is_reachable(n), "an answer brings it back");
        // Over TCP the connection is the proof: misses do not count.
        let m = Number::parse("886-02-10000002").unwrap();
        l.registered(m, "127.0.0.1:7002".parse().unwrap(), Transport::Tcp, T0);
        for _ in 0..5 {
            l.missed(m);
        }
        assert!(l.is_reachable(m));
    }

    #[test]
    fn tcp_is_reachable_while_connected_and_is_never_probed() {
        let (mut l, n, addr) = setup();
        l.registered(n, addr, Transport::Tcp, T0);
        assert!(run(&mut l, T0 + 600_000).is_empty());
        assert!(l.is_reachable(n));
        let _ = l.poll_event();
        l.connection_closed(addr);
        assert_eq!(
            l.poll_event(),
            Some(LivenessEvent {
                number: n,
                reachable: false
            })
        );
        l.registered(n, addr, Transport::Tcp, T0 + 1);
        l.tcp_closed(n);
        assert!(!l.is_reachable(n));
    }

    #[test]
    fn unregister_and_moves() {
        let (mut l, n, addr) = setup();
        l.registered(n, addr, Transport::Udp, T0);
        l.registered(n, "127.0.0.1:7001".parse().unwrap(), Transport::Udp, T0 + 10);
        assert_eq!(
            l.poll_event(),
            Some(LivenessEvent {
                number: n,
                reachable: true
            })
        );
        assert_eq!(l.poll_event(), None, "a move while reachable is no change");
        let sent = run(&mut l, T0 + 30_010);
        assert_eq!(sent[0].1.to.port(), 7001);
        l.heard_from(addr, T0 + 30_100);
        l.unregistered(n);
        assert_eq!(
            l.poll_event(),
            Some(LivenessEvent {
                number: n,
                reachable: false
            })
        );
        assert!(run(&mut l, T0 + 600_000).is_empty());
    }
}
