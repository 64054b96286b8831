//! The third-party call controller (issue 13): one task owning a UDP SIP
//! socket, running each call's `peerdial_sip::pairing::Pairing` (and the
//! one-off verification MESSAGEs, `request::ClientRequest`) against the
//! clock, the conferences it hosts ([`Hosted`]: legs and a mixer room),
//! and writing each call's progress into the [`CallBook`] an HTTP API
//! reads. The top runs one (foreign servers: both INVITEs go through that
//! server to the accounts' addresses of record; calls across regions;
//! mixed conferences); each region runs one for calls and conferences of
//! its own numbers. The talkers' media of a two-party call flows between
//! them, never through here.
//!
//! It is not a matcher or an HTTP API: its owner decides what to start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerdial_sip::call::{stateless_response, Local};
use peerdial_sip::pairing::{Leg, Pairing, Timeouts};
use peerdial_sip::request::{ClientRequest, Outcome};
use peerdial_sip::Message;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::book::CallBook;
use crate::hosted::Hosted;
use crate::ControlError;
use peerdial_sip::conference::ConfProgress;

/// What the controller's owner asks of it; call ids are the book's.
pub enum Command {
    Start {
        id: u64,
        talker: Leg,
        callee: Leg,
    },
    /// A conference of these talkers (the dialer's first), mixed here.
    Conference {
        id: u64,
        legs: Vec<(String, Leg)>,
    },
    /// One more talker in conference `id`.
    Join {
        id: u64,
        who: String,
        leg: Leg,
    },
    /// Connected two-party call `id` becomes a conference (its talkers
    /// labelled), and `who` is called into it.
    Grow {
        id: u64,
        labels: [String; 2],
        who: String,
        leg: Leg,
    },
    Cancel {
        id: u64,
    },
    Notice {
        uri: String,
        next_hop: SocketAddr,
        text: String,
    },
}

/// The handle the HTTP side holds.
pub struct Controller {
    pub local: Local,
    tx: mpsc::UnboundedSender<Command>,
}

impl Controller {
    /// Binds `addr` (UDP) and starts the task; `user_agent` names the
    /// server in its requests. Stops (cancelling every call) on `stop`.
    pub fn start(addr: SocketAddr, user_agent: &str, book: Arc<CallBook>, stop: watch::Receiver<bool>) -> Result<Controller, ControlError> {
        let std = std::net::UdpSocket::bind(addr).map_err(|source| ControlError::Bind { addr, source })?;
        Controller::start_on(std, user_agent, book, stop)
    }

    /// [`Controller::start`] on a socket already bound (its owner needed
    /// the address first).
    pub fn start_on(
        std: std::net::UdpSocket,
        user_agent: &str,
        book: Arc<CallBook>,
        stop: watch::Receiver<bool>,
    ) -> Result<Controller, ControlError> {
        let addr = std.local_addr().map_err(|source| ControlError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let bind = |source| ControlError::Bind { addr, source };
        std.set_nonblocking(true).map_err(bind)?;
        let socket = UdpSocket::from_std(std).map_err(bind)?;
        let bound = socket.local_addr().map_err(bind)?;
        let local = Local {
            uri: format!("sip:peerdial@{bound}"),
            addr: bound,
            user_agent: user_agent.into(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(socket, local.clone(), rx, book, stop));
        Ok(Controller { local, tx })
    }

    /// Where its SIP socket is.
    pub fn addr(&self) -> SocketAddr {
        self.local.addr
    }

    pub fn send(&self, c: Command) {
        let _ = self.tx.send(c);
    }
}

struct Task {
    socket: UdpSocket,
    local: Local,
    book: Arc<CallBook>,
    epoch: Instant,
    pairings: HashMap<u64, Pairing>,
    conferences: HashMap<u64, Hosted>,
    /// Call-ID → call id, for every leg of every pairing and conference.
    legs: HashMap<String, u64>,
    /// Verification MESSAGEs in flight, and how each ended.
    notices: HashMap<String, (ClientRequest, Option<Outcome>)>,
}

async fn run(
    socket: UdpSocket,
    local: Local,
    mut rx: mpsc::UnboundedReceiver<Command>,
    book: Arc<CallBook>,
    mut stop: watch::Receiver<bool>,
) {
    let mut t = Task {
        socket,
        local,
        book,
        epoch: Instant::now(),
        pairings: HashMap::new(),
        conferences: HashMap::new(),
        legs: HashMap::new(),
        notices: HashMap::new(),
    };
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = t.now();
        let wake = t
            .pairings
            .values()
            .filter_map(Pairing::poll_timeout)
            .chain(t.conferences.values_mut().filter_map(|c| c.core().poll_timeout()))
            .chain(t.notices.values().filter_map(|(n, _)| n.poll_timeout()))
            .min()
            .map_or(Duration::from_secs(3600), |at| Duration::from_millis(at.saturating_sub(now)));
        tokio::select! {
            r = t.socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => t.datagram(&buf[..n], from),
                Err(e) => tracing::debug!(error = %e, "controller socket"),
            },
            c = rx.recv() => match c {
                Some(c) => t.command(c),
                None => return,
            },
            _ = tokio::time::sleep(wake) => {
                let now = t.now();
                for p in t.pairings.values_mut() {
                    if p.poll_timeout().is_some_and(|at| at <= now) {
                        p.handle_timeout(now);
                    }
                }
                for c in t.conferences.values_mut() {
                    if c.core().poll_timeout().is_some_and(|at| at <= now) {
                        c.handle_timeout(now);
                    }
                }
                for (n, outcome) in t.notices.values_mut() {
                    if n.poll_timeout().is_some_and(|at| at <= now) {
                        *outcome = outcome.take().or(n.handle_timeout(now));
                    }
                }
            }
            _ = stop.changed() => {
                let now = t.now();
                for p in t.pairings.values_mut() {
                    p.cancel(now);
                }
                for c in t.conferences.values_mut() {
                    c.cancel(now);
                }
                t.flush().await;
                return;
            }
        }
        t.flush().await;
    }
}

impl Task {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn command(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::Start { id, talker, callee } => {
                tracing::info!(call = id, talker = %talker.uri, callee = %callee.uri, "third-party call");
                let p = Pairing::start(self.local.clone(), talker, callee, Timeouts::default(), now);
                self.pairings.insert(id, p);
            }
            Command::Conference { id, legs } => {
                tracing::info!(call = id, talkers = legs.len(), "conference");
                match Hosted::start(&self.local, legs, now) {
                    Ok(c) => {
                        self.conferences.insert(id, c);
                    }
                    Err(e) => self.book.push_conf(id, &ConfProgress::Ended { reason: e }),
                }
            }
            Command::Join { id, who, leg } => {
                if let Some(c) = self.conferences.get_mut(&id) {
                    if let Err(reason) = c.add(&who, &leg, now) {
                        self.book.push_conf(id, &ConfProgress::Failed { who, reason });
                    }
                }
            }
            Command::Grow { id, labels, who, leg } => self.grow(id, labels, who, leg, now),
            Command::Cancel { id } => {
                if let Some(p) = self.pairings.get_mut(&id) {
                    p.cancel(now);
                }
                if let Some(c) = self.conferences.get_mut(&id) {
                    c.cancel(now);
                }
            }
            Command::Notice { uri, next_hop, text } => {
                let body = Some(("text/plain;charset=UTF-8", text.as_bytes()));
                let n = ClientRequest::new("MESSAGE", &uri, next_hop, &self.local, &[], body, now);
                self.notices.insert(n.call_id().to_string(), (n, None));
            }
        }
    }

    fn grow(&mut self, id: u64, labels: [String; 2], who: String, leg: Leg, now: u64) {
        if !self.pairings.get(&id).is_some_and(Pairing::is_connected) {
            return self.refuse_join(id, who, "the call is not connected".into());
        }
        // The room first: if it cannot be made, the call goes on as it was.
        let (mut c, [sa, sb]) = match Hosted::for_growth(&self.local, now) {
            Ok(r) => r,
            Err(e) => return self.refuse_join(id, who, format!("no conference room: {e}")),
        };
        let Some(Ok((a, b))) = self.pairings.remove(&id).map(Pairing::into_legs) else {
            unreachable!("checked connected above");
        };
        tracing::info!(call = id, "a two-party call becomes a conference");
        let [la, lb] = labels;
        c.adopt(&la, a, sa, now);
        c.adopt(&lb, b, sb, now);
        if let Err(reason) = c.add(&who, &leg, now) {
            self.refuse_join(id, who, reason);
        }
        self.conferences.insert(id, c);
    }

    fn refuse_join(&self, id: u64, who: String, reason: String) {
        self.book.push_conf(id, &ConfProgress::Failed { who, reason });
    }

    fn datagram(&mut self, data: &[u8], from: SocketAddr) {
        let Ok(msg) = Message::parse(data) else { return };
        let call_id = msg.header("Call-ID").unwrap_or_default().to_string();
        let now = self.now();
        let id = self.legs.get(&call_id).copied();
        if let Some(p) = id.and_then(|id| self.pairings.get_mut(&id)) {
            p.handle(&msg, from, now);
        } else if let Some(c) = id.and_then(|id| self.conferences.get_mut(&id)) {
            c.handle(&msg, from, now);
        } else if let Some((n, outcome)) = self.notices.get_mut(&call_id) {
            if let Some(o) = n.handle_response(&msg) {
                *outcome = Some(o);
            }
        } else if msg.is_request() {
            // Not a leg of ours (any more): 481, nothing else.
            if let Ok(Some(t)) = stateless_response(data, from, 481, "Call/Transaction Does Not Exist", &[]) {
                let _ = self.socket.try_send_to(&t.data, t.to);
            }
        }
    }

    /// Sends what the machines queued, records progress, drops what is done.
    async fn flush(&mut self) {
        let mut done = Vec::new();
        for (id, p) in self.pairings.iter_mut() {
            while let Some(tx) = p.poll_transmit() {
                let _ = self.socket.send_to(&tx.data, tx.to).await;
            }
            while let Some(progress) = p.poll_progress() {
                self.book.push(*id, progress);
            }
            for c in p.call_ids() {
                self.legs.insert(c, *id);
            }
            if p.is_done() {
                done.push(*id);
            }
        }
        for (id, c) in self.conferences.iter_mut() {
            while let Some(tx) = c.poll_transmit() {
                let _ = self.socket.send_to(&tx.data, tx.to).await;
            }
            let core = c.core();
            while let Some(progress) = core.poll_progress() {
                self.book.push_conf(*id, &progress);
            }
            for cid in core.call_ids() {
                self.legs.insert(cid, *id);
            }
            if core.is_done() {
                done.push(*id);
            }
        }
        for id in done {
            let ids = match (self.pairings.remove(&id), self.conferences.remove(&id)) {
                (Some(p), _) => p.call_ids(),
                (_, Some(mut c)) => c.core().call_ids(),
                _ => Vec::new(),
            };
            for c in ids {
                self.legs.remove(&c);
            }
        }
        let mut finished = Vec::new();
        for (cid, (n, outcome)) in self.notices.iter_mut() {
            while let Some(tx) = n.poll_transmit() {
                let _ = self.socket.send_to(&tx.data, tx.to).await;
            }
            match outcome {
                Some(Outcome::Answered { code, .. }) => {
                    tracing::info!(code, "verification MESSAGE answered");
                    finished.push(cid.clone());
                }
                Some(Outcome::TimedOut) => {
                    tracing::info!("verification MESSAGE not answered");
                    finished.push(cid.clone());
                }
                None => {}
            }
        }
        for cid in finished {
            self.notices.remove(&cid);
        }
    }
}
