//! The pairing table: callers' submissions (the callee's MSISDN) and
//! callees' submissions (their own MSISDN, found from their IMSI) wait up
//! to a window for each other, keyed by the callee's MSISDN; whichever
//! comes second completes the pair. Each side is then told the other's
//! SIP contact and one fresh session key. A submission nobody matches in
//! time ends with [`Outcome::NoMatch`] — the same for every callee, known
//! or not, so a caller learns nothing about a number it does not reach.
//!
//! Sans-I/O in the quinn-proto shape: `submit_*`, then `poll_event` for
//! outcomes; `poll_timeout` / `handle_timeout` for the window. The edge
//! owns the clock (milliseconds) and the sockets.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use rand::rngs::StdRng;

use crate::ids::Msisdn;
use crate::key::new_key;

/// Names one waiting submission; the edge maps it to its waiting request.
pub type Ticket = u64;

#[derive(Debug, Clone)]
pub struct PairingConfig {
    /// How long a submission waits for its other half.
    pub window_ms: u64,
    /// How long a session key is good for after pairing.
    pub key_ttl_ms: u64,
    /// Most submissions waiting at once (beyond: refused as overloaded).
    pub max_pending: usize,
}

impl Default for PairingConfig {
    fn default() -> Self {
        PairingConfig {
            window_ms: 30_000,
            key_ttl_ms: 30_000,
            max_pending: 1_000_000,
        }
    }
}

/// Both halves of a completed pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub caller_ticket: Ticket,
    pub callee_ticket: Ticket,
    pub caller: Msisdn,
    pub callee: Msisdn,
    pub caller_contact: String,
    pub callee_contact: String,
    /// The one-time key, bound to this caller and callee.
    pub key: String,
    /// When the key stops being good (the edge's clock).
    pub expires: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Paired(Pair),
    /// The window passed without the other half.
    NoMatch {
        ticket: Ticket,
    },
}

#[derive(Debug)]
struct Waiting {
    ticket: Ticket,
    /// Caller side: the caller's MSISDN; callee side: unused (the key of the map).
    who: Msisdn,
    contact: String,
    deadline: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Call,
    Ring,
}

pub struct Pairing {
    cfg: PairingConfig,
    next: Ticket,
    /// Callers waiting, by the callee's MSISDN, oldest first.
    calls: HashMap<Msisdn, VecDeque<Waiting>>,
    /// Callees waiting, by their own MSISDN, oldest first.
    rings: HashMap<Msisdn, VecDeque<Waiting>>,
    pending: usize,
    deadlines: BinaryHeap<Reverse<(u64, Side, Msisdn)>>,
    events: VecDeque<Outcome>,
    rng: StdRng,
}

impl Pairing {
    pub fn new(cfg: PairingConfig, rng: StdRng) -> Pairing {
        Pairing {
            cfg,
            next: 1,
            calls: HashMap::new(),
            rings: HashMap::new(),
            pending: 0,
            deadlines: BinaryHeap::new(),
            events: VecDeque::new(),
            rng,
        }
    }

    pub fn config(&self) -> &PairingConfig {
        &self.cfg
    }

    /// Submissions waiting now.
    pub fn pending(&self) -> usize {
        self.pending
    }

    fn ticket(&mut self) -> Ticket {
        self.next += 1;
        self.next
    }

    /// A caller (already authenticated by the caller of this) dials `callee`.
    /// `None` when the table is full.
    pub fn submit_call(&mut self, caller: &Msisdn, callee: &Msisdn, contact: &str, now: u64) -> Option<Ticket> {
        let t = self.ticket();
        if let Some(ring) = pop_live(&mut self.rings, callee, now) {
            self.pending -= 1;
            self.pair(t, caller, contact, ring.ticket, callee, &ring.contact, now);
            return Some(t);
        }
        self.wait(Side::Call, callee, caller, contact, t, now)
    }

    /// A callee whose SIM maps to `own` is told of an incoming mobile call.
    pub fn submit_ring(&mut self, own: &Msisdn, contact: &str, now: u64) -> Option<Ticket> {
        let t = self.ticket();
        if let Some(call) = pop_live(&mut self.calls, own, now) {
            self.pending -= 1;
            self.pair(call.ticket, &call.who, &call.contact, t, own, contact, now);
            return Some(t);
        }
        self.wait(Side::Ring, own, own, contact, t, now)
    }

    fn wait(&mut self, side: Side, key: &Msisdn, who: &Msisdn, contact: &str, t: Ticket, now: u64) -> Option<Ticket> {
        if self.pending >= self.cfg.max_pending {
            return None;
        }
        let deadline = now + self.cfg.window_ms;
        let map = match side {
            Side::Call => &mut self.calls,
            Side::Ring => &mut self.rings,
        };
        map.entry(key.clone()).or_default().push_back(Waiting {
            ticket: t,
            who: who.clone(),
            contact: contact.to_string(),
            deadline,
        });
        self.pending += 1;
        self.deadlines.push(Reverse((deadline, side, key.clone())));
        Some(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn pair(&mut self, ct: Ticket, caller: &Msisdn, cc: &str, et: Ticket, callee: &Msisdn, ec: &str, now: u64) {
        self.events.push_back(Outcome::Paired(Pair {
            caller_ticket: ct,
            callee_ticket: et,
            caller: caller.clone(),
            callee: callee.clone(),
            caller_contact: cc.to_string(),
            callee_contact: ec.to_string(),
            key: new_key(&mut self.rng),
            expires: now + self.cfg.key_ttl_ms,
        }));
    }

    pub fn poll_event(&mut self) -> Option<Outcome> {
        self.events.pop_front()
    }

    /// The next window end, if anything waits.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadlines.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Ends every submission whose window has passed.
    pub fn handle_timeout(&mut self, now: u64) {
        while let Some(Reverse((d, side, key))) = self.deadlines.peek().cloned() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            let map = match side {
                Side::Call => &mut self.calls,
                Side::Ring => &mut self.rings,
            };
            let Some(q) = map.get_mut(&key) else { continue };
            // A queue is in submission order, so its deadlines only grow.
            while q.front().is_some_and(|w| w.deadline <= now) {
                let w = q.pop_front().expect("front exists");
                self.pending -= 1;
                self.events.push_back(Outcome::NoMatch { ticket: w.ticket });
            }
            if q.is_empty() {
                map.remove(&key);
            }
        }
    }
}

/// The oldest submission under `key` still inside its window.
fn pop_live(map: &mut HashMap<Msisdn, VecDeque<Waiting>>, key: &Msisdn, now: u64) -> Option<Waiting> {
    let q = map.get_mut(key)?;
    // Expired ones are left for handle_timeout to report.
    let i = q.iter().position(|w| w.deadline > now)?;
    let w = q.remove(i);
    if q.is_empty() {
        map.remove(key);
    }
    w
}
