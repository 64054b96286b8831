//! The top's third-party call controller (issue 13): one task owning a
//! UDP SIP socket, running each call's `peerdial_sip::pairing::Pairing`
//! (and the one-off verification MESSAGEs, `request::ClientRequest`) against the
//! clock, the conferences it hosts (`conference::Hosted`: legs and a
//! mixer room), and writing each call's progress into the [`CallBook`] the HTTP
//! API reads. For a foreign SIP server it sends both INVITEs through that
//! server to the accounts' addresses of record; the talkers' media flows
//! between them, never through here.

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

use crate::calls::CallBook;
use crate::conference::Hosted;
use peerdial_sip::conference::ConfProgress;

pub(crate) enum Command {
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
pub(crate) struct Controller {
    pub(crate) local: Local,
    tx: mpsc::UnboundedSender<Command>,
}

impl Controller {
    /// Binds `addr` and starts the task.
    pub(crate) fn start(addr: SocketAddr, book: Arc<CallBook>, stop: watch::Receiver<bool>) -> std::io::Result<Controller> {
        let std = std::net::UdpSocket::bind(addr)?;
        std.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std)?;
        let bound = socket.local_addr()?;
        let local = Local {
            uri: format!("sip:peerdial@{bound}"),
            addr: bound,
            user_agent: "peerdial-top".into(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(socket, local.clone(), rx, book, stop));
        Ok(Controller { local, tx })
    }

    pub(crate) fn send(&self, c: Command) {
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
                    Err(e) => crate::conference::record(&self.book, id, &ConfProgress::Ended { reason: e }),
                }
            }
            Command::Join { id, who, leg } => {
                if let Some(c) = self.conferences.get_mut(&id) {
                    if let Err(reason) = c.add(&who, &leg, now) {
                        crate::conference::record(&self.book, id, &ConfProgress::Failed { who, reason });
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
        crate::conference::record(&self.book, id, &ConfProgress::Failed { who, reason });
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
                crate::conference::record(&self.book, *id, &progress);
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
