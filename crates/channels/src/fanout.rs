//! Delivering a text to many phones as SIP MESSAGE (RFC 3428).
//!
//! A delivery is one text for a list of targets. The fan-out keeps at most
//! `window` MESSAGEs outstanding across all deliveries, so a broadcast to
//! 100,000 phones neither floods the socket nor waits for any one phone:
//! a phone that does not answer holds one slot until `answer_timeout`, and
//! the others go on meanwhile. Over UDP a MESSAGE is retransmitted
//! (500 ms, 1 s, 2 s, … capped at T2, RFC 3261 §17.1.2); over TCP it is
//! sent once. Any final response is an answer (a phone that refuses the
//! text is still alive); a provisional one is not.
//!
//! Each answer and each miss is reported per number: the region feeds
//! them to liveness, where three misses in a row make a number offline
//! (design §9: broadcasts are the liveness signal too).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

use peerdial_number::Number;
use peerdial_sip::call::{T1, T2};
use peerdial_sip::ids::{branch, request, token};
use peerdial_sip::message::StartLine;
use peerdial_sip::{Message, Transport};

use crate::Transmit;

#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// Our SIP address: the Via.
    pub local: SocketAddr,
    /// The region's SIP domain: the host of From and To.
    pub domain: String,
    /// MESSAGEs outstanding at most.
    pub window: usize,
    /// How long a MESSAGE waits for an answer.
    pub answer_timeout_ms: u64,
    pub user_agent: String,
}

impl FanoutConfig {
    pub fn new(local: SocketAddr, domain: impl Into<String>) -> FanoutConfig {
        FanoutConfig {
            local,
            domain: domain.into(),
            window: 2_000,
            answer_timeout_ms: 4_000,
            user_agent: "peerdial".into(),
        }
    }
}

/// A phone to deliver to: its number, the contact URI it registered and
/// where that binding is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub number: Number,
    pub uri: String,
    pub addr: SocketAddr,
    pub transport: Transport,
}

/// One text for many phones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The caller's id for it (a broadcast's or a private item's).
    pub id: u64,
    /// The user part of From: `broadcast`, or the poster's digits.
    pub from_user: String,
    /// A display name for From (already clean), if any.
    pub from_name: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryEvent {
    /// The phone answered with a final response.
    Answered { delivery: u64, number: Number, code: u16 },
    /// No final answer in time.
    Missed { delivery: u64, number: Number },
    /// Every target answered or missed.
    Done { delivery: u64, answered: usize, missed: usize },
}

struct Job {
    delivery: Delivery,
    left: usize,
    answered: usize,
    missed: usize,
}

struct Pending {
    job: u64,
    number: Number,
    to: SocketAddr,
    transport: Transport,
    data: Vec<u8>,
    interval: u64,
    next_retransmit: u64,
    deadline: u64,
}

impl Pending {
    fn wake(&self) -> u64 {
        match self.transport {
            Transport::Udp => self.next_retransmit.min(self.deadline),
            Transport::Tcp => self.deadline,
        }
    }
}

pub struct Fanout {
    cfg: FanoutConfig,
    jobs: HashMap<u64, Job>,
    queue: VecDeque<(u64, Target)>,
    pending: HashMap<String, Pending>,
    timers: BinaryHeap<Reverse<(u64, String)>>,
    out: VecDeque<Transmit>,
    events: VecDeque<DeliveryEvent>,
}

impl Fanout {
    pub fn new(cfg: FanoutConfig) -> Fanout {
        Fanout {
            cfg,
            jobs: HashMap::new(),
            queue: VecDeque::new(),
            pending: HashMap::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// MESSAGEs sent and not answered yet, and targets not sent to yet.
    pub fn backlog(&self) -> (usize, usize) {
        (self.pending.len(), self.queue.len())
    }

    /// Starts delivering `d` to `targets`. A delivery with no targets is
    /// done at once. A second delivery with the same id is refused (false).
    pub fn start(&mut self, d: Delivery, targets: Vec<Target>, now: u64) -> bool {
        if self.jobs.contains_key(&d.id) {
            return false;
        }
        let id = d.id;
        if targets.is_empty() {
            self.events.push_back(DeliveryEvent::Done {
                delivery: id,
                answered: 0,
                missed: 0,
            });
            return true;
        }
        self.jobs.insert(
            id,
            Job {
                delivery: d,
                left: targets.len(),
                answered: 0,
                missed: 0,
            },
        );
        self.queue.extend(targets.into_iter().map(|t| (id, t)));
        self.fill(now);
        true
    }

    /// Sends from the queue while the window has room.
    fn fill(&mut self, now: u64) {
        while self.pending.len() < self.cfg.window.max(1) {
            let Some((job, t)) = self.queue.pop_front() else { break };
            let Some(j) = self.jobs.get(&job) else { continue };
            let call_id = format!("{}@{}", token(20), self.cfg.local.ip());
            let data = self.message(&j.delivery, &t, &call_id);
            self.out.push_back(Transmit {
                to: t.addr,
                transport: t.transport,
                data: data.clone(),
            });
            let p = Pending {
                job,
                number: t.number,
                to: t.addr,
                transport: t.transport,
                data,
                interval: T1,
                next_retransmit: now + T1,
                deadline: now + self.cfg.answer_timeout_ms.max(1),
            };
            self.timers.push(Reverse((p.wake(), call_id.clone())));
            self.pending.insert(call_id, p);
        }
    }

    fn message(&self, d: &Delivery, t: &Target, call_id: &str) -> Vec<u8> {
        let mut m = request("MESSAGE", &t.uri);
        let via = match t.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        m.push("Via", format!("SIP/2.0/{via} {};branch={};rport", self.cfg.local, branch()));
        m.push("Max-Forwards", "70");
        let from = format!("<sip:{}@{}>;tag={}", d.from_user, self.cfg.domain, token(10));
        m.push(
            "From",
            match &d.from_name {
                // The name is clean text; quotes and backslashes are escaped.
                Some(n) => format!("\"{}\" {from}", n.replace('\\', "\\\\").replace('"', "\\\"")),
                None => from,
            },
        );
        m.push("To", format!("<sip:{}@{}>", t.number.digits(), self.cfg.domain));
        m.push("Call-ID", call_id.to_string());
        m.push("CSeq", "1 MESSAGE");
        m.push("User-Agent", self.cfg.user_agent.clone());
        m.push("Content-Type", "text/plain;charset=UTF-8");
        m.body = d.text.as_bytes().to_vec();
        m.to_bytes()
    }

    /// A response that may answer one of our MESSAGEs; returns whether it
    /// did (then the edge need not pass it elsewhere).
    pub fn handle_response(&mut self, msg: &Message, now: u64) -> bool {
        let StartLine::Response { code, .. } = msg.start else {
            return false;
        };
        let Some(call_id) = msg.header("Call-ID") else { return false };
        if !self.pending.contains_key(call_id) {
            return false;
        }
        if code < 200 {
            return true; // provisional: keep waiting (no more retransmits needed over UDP, but harmless)
        }
        if let Some(p) = self.pending.remove(call_id) {
            self.events.push_back(DeliveryEvent::Answered {
                delivery: p.job,
                number: p.number,
                code,
            });
            self.finish_one(p.job, true);
        }
        self.fill(now);
        true
    }

    fn finish_one(&mut self, job: u64, answered: bool) {
        let Some(j) = self.jobs.get_mut(&job) else { return };
        if answered {
            j.answered += 1;
        } else {
            j.missed += 1;
        }
        j.left -= 1;
        if j.left == 0 {
            let (answered, missed) = (j.answered, j.missed);
            self.jobs.remove(&job);
            self.events.push_back(DeliveryEvent::Done {
                delivery: job,
                answered,
                missed,
            });
        }
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    pub fn handle_timeout(&mut self, now: u64) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, call_id))) = self.timers.pop() else { break };
            let Some(p) = self.pending.get_mut(&call_id) else { continue };
            if p.wake() != at {
                continue; // stale entry
            }
            if p.deadline <= now {
                let p = self.pending.remove(&call_id).expect("present");
                self.events.push_back(DeliveryEvent::Missed {
                    delivery: p.job,
                    number: p.number,
                });
                self.finish_one(p.job, false);
                continue;
            }
            self.out.push_back(Transmit {
                to: p.to,
                transport: p.transport,
                data: p.data.clone(),
            });
            p.interval = (p.interval * 2).min(T2);
            p.next_retransmit = now + p.interval;
            self.timers.push(Reverse((p.wake(), call_id)));
        }
        self.fill(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<DeliveryEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerdial_sip::message::{response, top_via};

    fn target(i: u32, transport: Transport) -> Target {
        let number = Number::parse(&format!("886-02-1{i:07}")).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", 7000 + i).parse().unwrap();
        Target {
            number,
            uri: format!("sip:{}@{addr}", number.digits()),
            addr,
            transport,
        }
    }

    fn delivery(id: u64) -> Delivery {
        Delivery {
            id,
            from_user: "broadcast".into(),
            from_name: Some("Region \"02\"".into()),
            text: "typhoon warning: stay inside".into(),
        }
    }

    fn answer(t: &Transmit, code: u16) -> Message {
        let req = Message::parse(&t.data).unwrap();
        let via = top_via(&req).unwrap();
        Message::parse(&response(&req, &via, t.to, code, "OK", "x").to_bytes()).unwrap()
    }

    fn drain(f: &mut Fanout) -> Vec<Transmit> {
        std::iter::from_fn(|| f.poll_transmit()).collect()
    }

    #[test]
    fn a_message_per_target_with_the_text_and_answers_are_reported() {
        let mut f = Fanout::new(FanoutConfig::new("127.0.0.1:5060".parse().unwrap(), "02.886.peerdial.internal"));
        f.start(delivery(1), vec![target(1, Transport::Udp), target(2, Transport::Tcp)], 0);
        let sent = drain(&mut f);
        assert_eq!(sent.len(), 2);
        let m = Message::parse(&sent[0].data).unwrap();
        assert_eq!(m.method(), Some("MESSAGE"));
        assert_eq!(m.header("Content-Type"), Some("text/plain;charset=UTF-8"));
        assert_eq!(m.body, b"typhoon warning: stay inside");
        assert!(m.header("From").unwrap().starts_with("\"Region \\\"02\\\"\" <sip:broadcast@02.886"));
        assert!(Message::parse(&sent[1].data)
            .unwrap()
            .header("Via")
            .unwrap()
            .starts_with("SIP/2.0/TCP"));
        assert!(f.handle_response(&answer(&sent[0], 200), 10));
        assert!(f.handle_response(&answer(&sent[1], 488), 20), "a refusal is an answer");
        assert!(!f.handle_response(&answer(&sent[1], 200), 30), "answered already");
        let events: Vec<_> = std::iter::from_fn(|| f.poll_event()).collect();
        assert_eq!(
            events.last(),
            Some(&DeliveryEvent::Done {
                delivery: 1,
                answered: 2,
                missed: 0
            })
        );
        assert_eq!(f.poll_timeout().map(|_| f.backlog()), Some((0, 0)), "only stale timers left");
    }

    #[test]
    fn a_silent_phone_does_not_stall_the_others() {
        let mut cfg = FanoutConfig::new("127.0.0.1:5060".parse().unwrap(), "d");
        cfg.window = 2;
        let mut f = Fanout::new(cfg);
        let targets: Vec<Target> = (0..5).map(|i| target(i, Transport::Udp)).collect();
        f.start(delivery(7), targets, 0);
        let mut now = 0;
        let mut answered = 0;
        let mut retransmits = 0;
        let mut seen = std::collections::HashSet::new();
        // Target 0 never answers; every other one answers at once.
        while let Some(t) = f.poll_timeout().or(Some(now)) {
            now = t.max(now);
            f.handle_timeout(now);
            let sent = drain(&mut f);
            if sent.is_empty() && f.backlog() == (0, 0) {
                break;
            }
            for s in sent {
                let m = Message::parse(&s.data).unwrap();
                let cid = m.header("Call-ID").unwrap().to_string();
                if !seen.insert(cid) {
                    retransmits += 1;
                    continue;
                }
                if s.to.port() != 7000 {
                    assert!(f.handle_response(&answer(&s, 200), now));
                    answered += 1;
                }
            }
            for s in drain(&mut f) {
                assert!(f.handle_response(&answer(&s, 200), now));
                answered += 1;
            }
        }
        assert_eq!(answered, 4);
        assert!(retransmits >= 2, "the silent phone's MESSAGE was retransmitted");
        let events: Vec<_> = std::iter::from_fn(|| f.poll_event()).collect();
        assert!(events.contains(&DeliveryEvent::Missed {
            delivery: 7,
            number: target(0, Transport::Udp).number
        }));
        assert_eq!(
            events.last(),
            Some(&DeliveryEvent::Done {
                delivery: 7,
                answered: 4,
                missed: 1
            })
        );
        // The others were answered long before the silent one timed out.
        let done_at = events.iter().position(|e| matches!(e, DeliveryEvent::Missed { .. })).unwrap();
        assert_eq!(done_at, 4, "four answers came before the one miss");
    }

    #[test]
    fn empty_and_duplicate_deliveries() {
        let mut f = Fanout::new(FanoutConfig::new("127.0.0.1:5060".parse().unwrap(), "d"));
        assert!(f.start(delivery(1), vec![], 0));
        assert_eq!(
            f.poll_event(),
            Some(DeliveryEvent::Done {
                delivery: 1,
                answered: 0,
                missed: 0
            })
        );
        assert!(f.start(delivery(2), vec![target(1, Transport::Udp)], 0));
        assert!(!f.start(delivery(2), vec![target(1, Transport::Udp)], 0));
    }
}
