//! The region's presence edge: the I/O around the sans-I/O presence agent
//! ([`peerdial_presence::PresenceServer`]) and the reachability tracker
//! ([`peerdial_presence::Liveness`]).
//!
//! It holds both behind one mutex, feeds them the SIP messages the SIP
//! transports hand over (SUBSCRIBE, PUBLISH, responses, and "heard from"
//! for other requests), the registrar's binding changes, provisioning and
//! the stored presence policies; it authenticates PUBLISH (and a SUBSCRIBE
//! that carries credentials) with the registrar's digest check, and a
//! SUBSCRIBE from another region by its signed identity ([`crate::watchers`]); it sends
//! what they queue over the SIP UDP socket or the TCP connection the peer
//! uses; a timer task drives their deadlines; and each change of a
//! number's presence goes out on a broadcast channel for the HTTP edge
//! (Server-Sent Events). It does not parse PIDF or keep subscriptions:
//! that is the core's job.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use peerdial_channels::{Delivery, DeliveryEvent, Fanout, FanoutConfig, Target};
use peerdial_number::Number;
use peerdial_presence::{Liveness, LivenessConfig, Policy, PresenceEvent, PresenceServer, ServerConfig, Transmit, WatcherAuth};
use peerdial_sip::message::StartLine;
use peerdial_sip::{Message, Transport};
use tokio::sync::{broadcast, mpsc, watch};

use crate::channels::Signal;

use crate::{now_ms, Shared};

/// The presence agent, the liveness tracker and the MESSAGE fan-out
/// (broadcasts and private items, whose answers are liveness too),
/// updated together.
pub struct Core {
    pub server: PresenceServer,
    pub liveness: Liveness,
    pub delivery: Fanout,
}

/// What kind of SIP message a datagram or frame is, from its first bytes
/// only, so REGISTER (the hot path) is never parsed twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Register,
    /// SUBSCRIBE or PUBLISH: for the presence agent.
    Presence,
    Response,
    /// Any other request: for the registrar, and proof the sender is alive.
    Other,
}

pub fn kind(data: &[u8]) -> Kind {
    if data.starts_with(b"REGISTER ") {
        Kind::Register
    } else if data.starts_with(b"SUBSCRIBE ") || data.starts_with(b"PUBLISH ") {
        Kind::Presence
    } else if data.starts_with(b"SIP/") {
        Kind::Response
    } else {
        Kind::Other
    }
}

pub struct Edge {
    core: Mutex<Core>,
    udp: OnceLock<Arc<std::net::UdpSocket>>,
    /// Open SIP TCP connections by peer address: where TCP NOTIFYs go.
    tcp: Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
    events: broadcast::Sender<PresenceEvent>,
    /// Where delivery outcomes and phones coming back go (the channels edge).
    signals: OnceLock<mpsc::UnboundedSender<Signal>>,
}

impl Edge {
    pub fn new(domain: &str, sip: SocketAddr, keepalive_secs: u32) -> Edge {
        let scfg = ServerConfig::new(domain, sip);
        let mut lcfg = LivenessConfig::new(sip, domain);
        lcfg.interval_ms = keepalive_secs.max(1) as u64 * 1000;
        lcfg.answer_timeout_ms = lcfg.answer_timeout_ms.min(lcfg.interval_ms);
        Edge {
            core: Mutex::new(Core {
                server: PresenceServer::new(scfg),
                liveness: Liveness::new(lcfg),
                delivery: Fanout::new(FanoutConfig::new(sip, domain)),
            }),
            udp: OnceLock::new(),
            tcp: Mutex::new(HashMap::new()),
            events: broadcast::channel(1024).0,
            signals: OnceLock::new(),
        }
    }

    /// Runs `f` on the core, then moves what it produced along: liveness
    /// changes into the agent, presence changes to the HTTP edge, and onto
    /// the wire what `f` returned (the answer to a request) followed by
    /// what was queued (the NOTIFYs that answer may have caused).
    fn with(&self, f: impl FnOnce(&mut Core, u64) -> Option<Transmit>) {
        let now = now_ms();
        let mut out: Vec<Transmit> = Vec::new();
        {
            let mut c = self.core.lock().expect("presence lock");
            out.extend(f(&mut c, now));
            while let Some(ev) = c.delivery.poll_event() {
                match ev {
                    DeliveryEvent::Answered { number, .. } => c.liveness.answered_by(number, now),
                    DeliveryEvent::Missed { number, .. } => c.liveness.missed(number),
                    DeliveryEvent::Done { .. } => {}
                }
                self.signal(Signal::Delivery(ev));
            }
            out.extend(std::iter::from_fn(|| c.delivery.poll_transmit()));
            while let Some(ev) = c.liveness.poll_event() {
                c.server.set_reachable(ev.number, ev.reachable, now);
                self.signal(if ev.reachable {
                    Signal::Reachable(ev.number)
                } else {
                    Signal::Unreachable(ev.number)
                });
            }
            while let Some(t) = c.liveness.poll_transmit() {
                out.push(t);
            }
            while let Some(t) = c.server.poll_transmit() {
                out.push(t);
            }
            while let Some(ev) = c.server.poll_event() {
                let _ = self.events.send(ev);
            }
        }
        for t in out {
            self.send(t);
        }
    }

    /// Sends over UDP, or over the open TCP connection to `t.to`.
    pub(crate) fn send(&self, t: Transmit) {
        match t.transport {
            Transport::Udp => {
                if let Some(sock) = self.udp.get() {
                    let _ = sock.send_to(&t.data, t.to);
                }
            }
            Transport::Tcp => {
                let tx = self.tcp.lock().expect("tcp lock").get(&t.to).cloned();
                match tx {
                    // The writer drains promptly; a full queue means the
                    // peer is not reading, and the NOTIFY's timer ends it.
                    Some(tx) => {
                        let _ = tx.try_send(t.data);
                    }
                    None => tracing::debug!(to = %t.to, "no open TCP connection for a presence message"),
                }
            }
        }
    }

    fn signal(&self, s: Signal) {
        if let Some(tx) = self.signals.get() {
            let _ = tx.send(s);
        }
    }

    pub fn set_signals(&self, tx: mpsc::UnboundedSender<Signal>) {
        let _ = self.signals.set(tx);
    }

    /// Starts delivering a text as MESSAGE to `targets`.
    pub fn deliver(&self, d: Delivery, targets: Vec<Target>) {
        self.with(|c, now| {
            c.delivery.start(d, targets, now);
            None
        });
    }

    /// Whether `number`'s phone is reachable now (its order-10 record).
    pub fn is_reachable(&self, number: Number) -> bool {
        self.core.lock().expect("presence lock").liveness.is_reachable(number)
    }

    /// Where `number`'s phone is reachable now (over TCP, its connection).
    pub fn reachable_at(&self, number: Number) -> Option<(SocketAddr, Transport)> {
        self.core.lock().expect("presence lock").liveness.reachable_at(number)
    }

    /// The numbers reachable now and where (for deliveries).
    pub fn reachable(&self) -> Vec<(Number, SocketAddr, Transport)> {
        self.core.lock().expect("presence lock").liveness.reachable()
    }

    pub fn set_udp(&self, sock: Arc<std::net::UdpSocket>) {
        let _ = self.udp.set(sock);
    }

    pub fn subscribe_events(&self) -> broadcast::Receiver<PresenceEvent> {
        self.events.subscribe()
    }

    /// Reads the core (for the HTTP API).
    pub fn read<T>(&self, f: impl FnOnce(&PresenceServer) -> T) -> T {
        f(&self.core.lock().expect("presence lock").server)
    }

    pub fn add_number(&self, number: Number) {
        self.with(|c, now| {
            c.server.add_number(number, now);
            None
        });
    }

    /// Forgets a number (moved to a vanity number, or disabled): its
    /// watchers are told the subscription ended.
    pub fn remove_number(&self, number: Number) {
        self.with(|c, now| {
            c.liveness.unregistered(number);
            c.server.remove_number(number, now);
            None
        });
    }

    /// Sets who may see the number; watchers are told by the agent, and
    /// the HTTP edge by an event (its anonymous view may have changed).
    pub fn set_policy(&self, number: Number, policy: Policy) {
        self.with(|c, now| {
            c.server.set_policy(number, policy, now);
            if let Some(presence) = c.server.presence(number) {
                let _ = self.events.send(PresenceEvent { number, presence });
            }
            None
        });
    }

    /// A binding was committed (`addr`: over UDP the phone's address, over
    /// TCP its connection's) or removed.
    pub fn binding(&self, number: Number, bound: Option<(SocketAddr, Transport)>) {
        self.with(|c, now| {
            match bound {
                Some((addr, transport)) => c.liveness.registered(number, addr, transport, now),
                None => c.liveness.unregistered(number),
            }
            None
        });
    }

    /// A SUBSCRIBE or PUBLISH: authenticated here, answered by the agent.
    pub fn request(&self, shared: &Arc<Shared>, data: &[u8], source: SocketAddr, transport: Transport) {
        let Ok(msg) = Message::parse(data) else {
            // The registrar answers what cannot be parsed, as before.
            let out = shared
                .registrar
                .lock()
                .expect("registrar lock")
                .handle(data, transport, source, now_ms());
            if let peerdial_sip::Output::Reply(bytes) = out {
                self.send(Transmit {
                    to: source,
                    transport,
                    data: bytes,
                });
            }
            return;
        };
        let is_publish = matches!(&msg.start, StartLine::Request { method, .. } if method == "PUBLISH");
        let with_credentials = msg.headers.iter().any(|(n, _)| n == "Authorization");
        // PUBLISH must prove its number; a SUBSCRIBE may be anonymous, and
        // one that brings credentials is checked like any other request.
        let watcher = if is_publish || with_credentials {
            match shared
                .registrar
                .lock()
                .expect("registrar lock")
                .authenticate(&msg, source, transport, now_ms())
            {
                Ok(n) => WatcherAuth::Authenticated(n),
                Err(reply) => {
                    self.heard_from(source);
                    if !reply.is_empty() {
                        self.send(Transmit {
                            to: source,
                            transport,
                            data: reply,
                        });
                    }
                    return;
                }
            }
        } else {
            match shared.watchers.claim(&msg, source, now_ms()) {
                crate::watchers::Claim::Known(n) => WatcherAuth::Authenticated(n),
                crate::watchers::Claim::None => WatcherAuth::Anonymous,
                crate::watchers::Claim::Token(token) => {
                    // The signer's key may need a DNS query: answer later,
                    // off this (SIP) thread.
                    let shared = shared.clone();
                    shared.rt.clone().spawn(async move {
                        let verified = shared.watchers.verify(&msg, source, &token, now_ms(), now_ms()).await;
                        let auth = verified.map_or(WatcherAuth::Anonymous, WatcherAuth::Authenticated);
                        shared.presence.answer(&msg, source, transport, auth);
                    });
                    return;
                }
            }
        };
        self.answer(&msg, source, transport, watcher);
    }

    /// Hands an (authenticated or anonymous) request to the agent.
    fn answer(&self, msg: &Message, source: SocketAddr, transport: Transport, watcher: WatcherAuth) {
        self.with(|c, now| {
            c.liveness.heard_from(source, now);
            let answer = c.server.handle_request(msg, source, transport, watcher, now);
            if tracing::enabled!(tracing::Level::DEBUG) {
                let line = |d: &[u8]| String::from_utf8_lossy(d.split(|b| *b == b'\r').next().unwrap_or_default()).into_owned();
                let status = answer.as_ref().map(|a| line(&a.data));
                tracing::debug!(%source, request = ?msg.start, ?status, "presence request");
            }
            answer
        });
    }

    /// A response: to one of our keep-alives, MESSAGEs or NOTIFYs, or to
    /// nothing.
    pub fn response(&self, data: &[u8]) {
        let Ok(msg) = Message::parse(data) else { return };
        self.with(|c, now| {
            if !c.liveness.handle_response(&msg, now) && !c.delivery.handle_response(&msg, now) {
                c.server.handle_response(&msg, now);
            }
            None
        });
    }

    /// Any other request from `source`: the phone there is alive.
    pub fn heard_from(&self, source: SocketAddr) {
        self.with(|c, now| {
            c.liveness.heard_from(source, now);
            None
        });
    }

    pub fn tcp_opened(&self, peer: SocketAddr, tx: mpsc::Sender<Vec<u8>>) {
        self.tcp.lock().expect("tcp lock").insert(peer, tx);
    }

    /// A TCP connection closed: a phone registered over it is offline now.
    pub fn tcp_closed(&self, peer: SocketAddr) {
        self.tcp.lock().expect("tcp lock").remove(&peer);
        self.with(|c, _| {
            c.liveness.connection_closed(peer);
            None
        });
    }

    fn tick(&self) -> Option<u64> {
        self.with(|c, now| {
            c.server.handle_timeout(now);
            c.liveness.handle_timeout(now);
            c.delivery.handle_timeout(now);
            None
        });
        let c = self.core.lock().expect("presence lock");
        [c.server.poll_timeout(), c.liveness.poll_timeout(), c.delivery.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Loads the presence state at start: every provisioned number, its stored
/// policy, and the UDP bindings (TCP ones have no connection after a
/// restart, so those phones are offline until they register again).
pub fn load(edge: &Edge, numbers: &[Number], policies: Vec<(i64, bool, Vec<i64>)>, udp_bindings: &[(Number, SocketAddr)]) {
    for &n in numbers {
        edge.add_number(n);
    }
    for (number, friends_only, friends) in policies {
        let Ok(n) = Number::from_u64(number as u64) else {
            tracing::warn!(number, "ignoring the presence policy of an invalid number");
            continue;
        };
        edge.set_policy(
            n,
            policy(friends_only, friends.into_iter().filter_map(|f| Number::from_u64(f as u64).ok())),
        );
    }
    for &(n, addr) in udp_bindings {
        edge.binding(n, Some((addr, Transport::Udp)));
    }
}

pub fn policy(friends_only: bool, friends: impl IntoIterator<Item = Number>) -> Policy {
    if friends_only {
        Policy::FriendsOnly(friends.into_iter().collect::<HashSet<_>>())
    } else {
        Policy::Everyone
    }
}

/// Drives the agent's and the tracker's deadlines (NOTIFY retransmissions,
/// subscription and publication expiry, keep-alives).
pub async fn timer_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let next = shared.presence.tick();
        // New deadlines may come before the one we know: look again soon.
        let wait = next.map_or(200, |t| t.saturating_sub(now_ms()).clamp(5, 200));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = stop.changed() => return,
        }
    }
}
