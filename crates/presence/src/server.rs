//! The region's presence agent (RFC 3856 over RFC 6665, with RFC 3903
//! PUBLISH), as a sans-I/O state machine.
//!
//! The edge feeds it SIP requests ([`PresenceServer::handle_request`]),
//! responses to its NOTIFYs ([`PresenceServer::handle_response`]), what it
//! knows about each number ([`PresenceServer::set_reachable`],
//! [`PresenceServer::set_in_call`]) and the clock. It answers each request
//! at once and queues NOTIFYs in [`PresenceServer::poll_transmit`]: send the
//! answer first, then drain the queue. Every change of a number's shown
//! state notifies all of its watchers and yields a [`PresenceEvent`] for
//! the HTTP edge.
//!
//! Work is proportional to what changed: per-number maps of watchers, a
//! heap of deadlines with lazy deletion, and PIDF bodies encoded once per
//! change, not once per watcher.
//!
//! Authentication is the edge's job: it checks digest credentials (and
//! challenges a PUBLISH that has none) and passes the outcome as
//! [`WatcherAuth`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::{IpAddr, SocketAddr};

use peerdial_number::Number;
use peerdial_sip::message::{response, top_via, SipUri, StartLine};
use peerdial_sip::validate::validate_request;
use peerdial_sip::{Message, Transport};

use crate::sip_util::{NumberHasher, NumberMap};
use crate::state::{shown_state, Inputs, Presence, State};
use crate::subscription::Sub;
use crate::Transmit;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Host part of presentity URIs (`sip:<digits>@<domain>`), the PIDF entity.
    pub domain: String,
    /// Our SIP address: the Via and Contact of NOTIFYs.
    pub local: SocketAddr,
    /// Subscription lifetimes (seconds): requested values are clamped.
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Publication lifetimes (seconds): requested values are clamped.
    pub publish_min_expires: u32,
    pub publish_max_expires: u32,
    pub publish_default_expires: u32,
    /// Live subscriptions allowed from one source IP address.
    pub max_subscriptions_per_ip: usize,
    /// Live subscriptions allowed to one number.
    pub max_subscriptions_per_presentity: usize,
    /// Live subscriptions in all (UDP sources can be forged, so the per-IP
    /// limit alone bounds nothing).
    pub max_subscriptions: usize,
    /// New SUBSCRIBEs per second from one IP address, sustained, and the
    /// burst allowed above that (a token bucket).
    pub subscribe_rate_per_ip: u32,
    pub subscribe_burst_per_ip: u32,
    /// The Retry-After (seconds) of a 503 for a refused subscription.
    pub retry_after: u32,
    pub server_name: String,
}

impl ServerConfig {
    pub fn new(domain: impl Into<String>, local: SocketAddr) -> ServerConfig {
        ServerConfig {
            domain: domain.into(),
            local,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            publish_min_expires: 60,
            publish_max_expires: 3600,
            publish_default_expires: 3600,
            max_subscriptions_per_ip: 1000,
            max_subscriptions_per_presentity: 200,
            max_subscriptions: 200_000,
            subscribe_rate_per_ip: 20,
            subscribe_burst_per_ip: 200,
            retry_after: 30,
            server_name: "peerdial".into(),
        }
    }
}

/// Who sent a request, as the edge established it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatcherAuth {
    /// No (valid) credentials.
    Anonymous,
    /// Digest-authenticated as this number.
    Authenticated(Number),
}

/// Who may see a number's real presence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    Everyone,
    /// Only the number itself and these authenticated numbers; everyone
    /// else sees "offline".
    FriendsOnly(HashSet<Number>),
}

impl Policy {
    pub fn allows(&self, owner: Number, watcher: WatcherAuth) -> bool {
        match (self, watcher) {
            (Policy::Everyone, _) => true,
            (Policy::FriendsOnly(_), WatcherAuth::Anonymous) => false,
            (Policy::FriendsOnly(friends), WatcherAuth::Authenticated(n)) => n == owner || friends.contains(&n),
        }
    }
}

/// A number's shown presence changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    pub number: Number,
    /// The real presence; the edge shows it only to those the number's
    /// policy allows ([`PresenceServer::allows`]).
    pub presence: Presence,
}

/// A PUBLISHed state (RFC 3903): one per number.
#[derive(Debug, Clone)]
pub(crate) struct Publication {
    pub etag: String,
    pub state: State,
    pub note: Option<String>,
    pub expires_at: u64,
}

pub(crate) type IdSet = HashSet<u64, BuildHasherDefault<NumberHasher>>;

pub(crate) struct Entry {
    pub reachable: bool,
    pub in_call: bool,
    pub publication: Option<Publication>,
    pub policy: Policy,
    pub shown: Presence,
    /// Unix seconds when the number was added: the `since` that watchers
    /// who may not see the real state are shown, so changes do not leak.
    pub added: u64,
    pub watchers: IdSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    SubExpiry(u64),
    Notify(u64, u32),
    PublishExpiry(Number),
}

/// New-SUBSCRIBE allowance of one IP address, in thousandths of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    pub milli: u64,
    pub at: u64,
}

pub struct PresenceServer {
    pub(crate) cfg: ServerConfig,
    pub(crate) entries: NumberMap<Number, Entry>,
    pub(crate) subs: NumberMap<u64, Sub>,
    /// (Call-ID, the subscriber's From tag) → subscription.
    pub(crate) dialogs: HashMap<(String, String), u64>,
    pub(crate) per_ip: HashMap<IpAddr, usize>,
    pub(crate) buckets: HashMap<IpAddr, Bucket>,
    pub(crate) timers: BinaryHeap<Reverse<(u64, Timer)>>,
    pub(crate) next_id: u64,
    pub(crate) out: VecDeque<Transmit>,
    pub(crate) events: VecDeque<PresenceEvent>,
}

impl PresenceServer {
    pub fn new(cfg: ServerConfig) -> PresenceServer {
        PresenceServer {
            cfg,
            entries: NumberMap::default(),
            subs: NumberMap::default(),
            dialogs: HashMap::new(),
            per_ip: HashMap::new(),
            buckets: HashMap::new(),
            timers: BinaryHeap::new(),
            next_id: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// A number of this region: it can be watched and can publish. It
    /// starts offline (unreachable). Adding a known number changes nothing.
    pub fn add_number(&mut self, number: Number, now_ms: u64) {
        self.entries.entry(number).or_insert_with(|| Entry {
            reachable: false,
            in_call: false,
            publication: None,
            policy: Policy::Everyone,
            shown: Presence::offline(now_ms / 1000),
            added: now_ms / 1000,
            watchers: IdSet::default(),
        });
    }

    /// The number is gone: its watchers get a final NOTIFY (terminated,
    /// reason noresource) and its state is forgotten.
    pub fn remove_number(&mut self, number: Number, now_ms: u64) {
        let Some(entry) = self.entries.get(&number) else { return };
        let ids: Vec<u64> = entry.watchers.iter().copied().collect();
        for id in ids {
            self.terminate(id, "noresource", now_ms);
        }
        self.entries.remove(&number);
    }

    pub fn has_number(&self, number: Number) -> bool {
        self.entries.contains_key(&number)
    }

    /// The number's real presence (for `GET /api/v1/presence/{number}` the
    /// edge checks [`PresenceServer::allows`] first, or uses
    /// [`PresenceServer::presence_for`]).
    pub fn presence(&self, number: Number) -> Option<Presence> {
        self.entries.get(&number).map(|e| e.shown.clone())
    }

    /// The presence as `watcher` may see it: the real one, or offline.
    pub fn presence_for(&self, number: Number, watcher: WatcherAuth) -> Option<Presence> {
        self.entries.get(&number).map(|e| view(number, e, watcher))
    }

    pub fn allows(&self, number: Number, watcher: WatcherAuth) -> bool {
        self.entries.get(&number).is_some_and(|e| e.policy.allows(number, watcher))
    }

    pub fn policy(&self, number: Number) -> Option<&Policy> {
        self.entries.get(&number).map(|e| &e.policy)
    }

    /// Sets who may see the number's presence; existing watchers whose
    /// view changes are notified.
    pub fn set_policy(&mut self, number: Number, policy: Policy, now_ms: u64) {
        let Some(e) = self.entries.get_mut(&number) else { return };
        e.policy = policy;
        self.notify_watchers(number, now_ms);
    }

    /// Liveness: the phone of `number` is reachable now, or not.
    pub fn set_reachable(&mut self, number: Number, reachable: bool, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(&number) {
            if e.reachable != reachable {
                e.reachable = reachable;
                self.recompute(number, now_ms);
            }
        }
    }

    /// The region saw the number enter or leave a call.
    pub fn set_in_call(&mut self, number: Number, in_call: bool, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(&number) {
            if e.in_call != in_call {
                e.in_call = in_call;
                self.recompute(number, now_ms);
            }
        }
    }

    /// Live subscriptions (including ones whose final NOTIFY is in flight).
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    pub fn watcher_count(&self, number: Number) -> usize {
        self.entries.get(&number).map_or(0, |e| e.watchers.len())
    }

    /// Parses and handles one datagram or frame: requests are answered
    /// (the return value), responses go to [`PresenceServer::handle_response`].
    pub fn handle(&mut self, data: &[u8], source: SocketAddr, transport: Transport, watcher: WatcherAuth, now_ms: u64) -> Option<Transmit> {
        let msg = Message::parse(data).ok()?;
        if msg.is_request() {
            self.handle_request(&msg, source, transport, watcher, now_ms)
        } else {
            self.handle_response(&msg, now_ms);
            None
        }
    }

    /// Handles a SUBSCRIBE or PUBLISH (others get 405) and returns the
    /// answer to send back to `source`. ACKs and responses yield nothing.
    pub fn handle_request(
        &mut self,
        msg: &Message,
        source: SocketAddr,
        transport: Transport,
        watcher: WatcherAuth,
        now_ms: u64,
    ) -> Option<Transmit> {
        let StartLine::Request { method, .. } = &msg.start else {
            return None;
        };
        if method == "ACK" {
            return None;
        }
        let via = top_via(msg)?;
        let reply = |code: u16, reason: &str, extra: &[(&str, String)]| {
            let mut r = response(msg, &via, source, code, reason, &crate::sip_util::token(10));
            for (n, v) in extra {
                r.push(n, v.clone());
            }
            Some(Transmit {
                to: source,
                transport,
                data: r.to_bytes(),
            })
        };
        if let Err(refusal) = validate_request(msg, &[]) {
            let extra: Vec<(&str, String)> = refusal.headers.iter().map(|(n, v)| (*n, v.clone())).collect();
            return reply(refusal.code, &refusal.reason, &extra);
        }
        match method.as_str() {
            "SUBSCRIBE" | "PUBLISH" => {}
            _ => return reply(405, "Method Not Allowed", &[("Allow", "SUBSCRIBE, PUBLISH".into())]),
        }
        if crate::sip_util::event_package(msg).is_none_or(|p| !p.eq_ignore_ascii_case("presence")) {
            return reply(489, "Bad Event", &[("Allow-Events", "presence".into())]);
        }
        let r = if method == "SUBSCRIBE" {
            self.subscribe(msg, &via, source, transport, watcher, now_ms)
        } else {
            self.publish(msg, &via, source, watcher, now_ms)
        };
        Some(Transmit {
            to: source,
            transport,
            data: r.to_bytes(),
        })
    }

    /// The number a request is for: the user part of its Request-URI.
    pub(crate) fn presentity(msg: &Message) -> Option<Number> {
        let StartLine::Request { uri, .. } = &msg.start else { return None };
        let u = SipUri::parse(uri).ok()?;
        Number::parse(u.user?).ok()
    }

    pub(crate) fn entity(&self, number: Number) -> String {
        format!("sip:{}@{}", number.digits(), self.cfg.domain)
    }

    /// Re-derives a number's shown presence; on a change, records it,
    /// yields an event and notifies the watchers.
    pub(crate) fn recompute(&mut self, number: Number, now_ms: u64) {
        let Some(e) = self.entries.get_mut(&number) else { return };
        let published = e.publication.as_ref();
        let state = shown_state(Inputs {
            reachable: e.reachable,
            in_call: e.in_call,
            published: published.map(|p| p.state),
        });
        let note = if e.reachable {
            published.and_then(|p| p.note.clone())
        } else {
            None
        };
        if state == e.shown.state && note == e.shown.note {
            return;
        }
        if state != e.shown.state {
            e.shown.since = now_ms / 1000;
        }
        e.shown.state = state;
        e.shown.note = note;
        tracing::debug!(number = %number, state = %state, "presence changed");
        self.events.push_back(PresenceEvent {
            number,
            presence: e.shown.clone(),
        });
        self.notify_watchers(number, now_ms);
    }

    pub(crate) fn schedule(&mut self, at: u64, t: Timer) {
        self.timers.push(Reverse((at, t)));
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Runs what is due: subscription and publication expiry, NOTIFY
    /// retransmissions (Timer E) and their give-up (Timer F).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(Reverse((at, t))) = self.timers.peek().copied() {
            if at > now_ms {
                break;
            }
            self.timers.pop();
            match t {
                Timer::SubExpiry(id) => self.sub_expiry(id, now_ms),
                Timer::Notify(id, cseq) => self.notify_timer(id, cseq, now_ms),
                Timer::PublishExpiry(number) => self.publish_expiry(number, now_ms),
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<PresenceEvent> {
        self.events.pop_front()
    }
}

/// What `watcher` may see of `number`'s presence.
pub(crate) fn view(number: Number, e: &Entry, watcher: WatcherAuth) -> Presence {
    if e.policy.allows(number, watcher) {
        e.shown.clone()
    } else {
        Presence::offline(e.added)
    }
}
