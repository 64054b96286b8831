//! Watching one number's presence (RFC 6665, RFC 3856): SUBSCRIBE to
//! `sip:<number>@<region>`, answer each NOTIFY with 200 and report the
//! state it carries, refresh before expiry, subscribe again after the
//! region ends the subscription, and unsubscribe (Expires: 0).
//!
//! The same dialog handling serves the phone's subscription to its own
//! `message-summary` (RFC 3842, [`Package::MessageSummary`]): there the
//! NOTIFY bodies are handed over as they are ([`Watcher::poll_body`]),
//! since their format is the mailbox's, not presence's.

use std::collections::VecDeque;
use std::net::SocketAddr;

use peerdial_number::Number;
use peerdial_sip::message::{param, response, top_via, StartLine};
use peerdial_sip::Message;

use super::{answer_challenge, next_backoff, ClientTx};
use crate::sip_util::{branch, cseq_of, event_package, request, seconds, status, tag_of, token};
use crate::state::Presence;
use crate::{pidf, Transmit};

/// The event package subscribed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Package {
    /// RFC 3856: PIDF bodies, reported as [`WatchEvent`]s.
    #[default]
    Presence,
    /// RFC 3842 message waiting: bodies handed over raw.
    MessageSummary,
}

impl Package {
    fn name(self) -> &'static str {
        match self {
            Package::Presence => "presence",
            Package::MessageSummary => "message-summary",
        }
    }

    fn accept(self) -> &'static str {
        match self {
            Package::Presence => pidf::CONTENT_TYPE,
            Package::MessageSummary => "application/simple-message-summary",
        }
    }
}

#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// The watched number's region (found through DNS by the phone).
    pub server: SocketAddr,
    /// The region's domain: the host of the Request-URI.
    pub domain: String,
    pub target: Number,
    /// Our SIP address: Contact and Via.
    pub local: SocketAddr,
    /// Our own number's digits, when we have one: friends-only presence
    /// needs it (with `password`, to answer a digest challenge).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Requested subscription lifetime (seconds).
    pub expires: u32,
    pub user_agent: String,
    /// The watched number lives in another region, which cannot check our
    /// digest: `user` is proven by an `Identity` header (a PASSporT our
    /// region signs, RFC 8224) on each new dialog's first SUBSCRIBE. Each
    /// new dialog then waits for [`Watcher::start_signed`].
    pub signed: bool,
    pub package: Package,
}

/// The watched number's presence; `None` when it is not known (the
/// subscription failed or was refused; a retry is scheduled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub number: Number,
    pub presence: Option<Presence>,
}

/// NOTIFY bodies kept until read: only the latest state matters.
const MAX_BODIES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Active,
    Unsubscribing,
}

pub struct Watcher {
    cfg: WatcherConfig,
    call_id: String,
    tag: String,
    remote_tag: Option<String>,
    cseq: u32,
    phase: Phase,
    pending: Option<(ClientTx, u32, bool)>,
    refresh_at: Option<u64>,
    retry_at: Option<u64>,
    backoff: u64,
    last: Option<Presence>,
    out: VecDeque<Transmit>,
    events: VecDeque<WatchEvent>,
    /// NOTIFY bodies of a package other than presence.
    bodies: VecDeque<Vec<u8>>,
    /// The Identity header for the current dialog's first SUBSCRIBE.
    identity: Option<String>,
    /// A signed watcher waits for a token before a new dialog.
    wants_identity: bool,
}

impl Watcher {
    pub fn new(cfg: WatcherConfig) -> Watcher {
        Watcher {
            call_id: String::new(),
            tag: String::new(),
            remote_tag: None,
            cseq: 0,
            phase: Phase::Idle,
            pending: None,
            refresh_at: None,
            retry_at: None,
            backoff: 0,
            last: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            bodies: VecDeque::new(),
            identity: None,
            wants_identity: false,
            cfg,
        }
    }

    /// A signed watcher about to start a dialog needs a fresh token: ask
    /// for one and hand it to [`Watcher::start_signed`].
    pub fn wants_identity(&self) -> bool {
        self.wants_identity
    }

    pub fn number(&self) -> Number {
        self.cfg.target
    }

    /// The Call-ID of the current subscription (for routing NOTIFYs and
    /// responses to this watcher).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The last presence reported.
    pub fn presence(&self) -> Option<&Presence> {
        self.last.as_ref()
    }

    fn uri(&self) -> String {
        format!("sip:{}@{}", self.cfg.target.digits(), self.cfg.domain)
    }

    /// Starts a new subscription (a new dialog); a signed watcher first
    /// asks for a token ([`Watcher::wants_identity`]).
    pub fn start(&mut self, now: u64) {
        if self.cfg.signed {
            self.phase = Phase::Active;
            self.retry_at = None;
            self.pending = None;
            self.wants_identity = true;
            return;
        }
        self.begin(now);
    }

    /// Starts the dialog a signed watcher waited for, with `identity` (the
    /// `Identity` header value; `None`: none could be had, so anonymous).
    pub fn start_signed(&mut self, identity: Option<String>, now: u64) {
        if !self.wants_identity {
            return;
        }
        self.wants_identity = false;
        self.identity = identity;
        self.begin(now);
    }

    fn begin(&mut self, now: u64) {
        self.call_id = format!("{}@{}", token(20), self.cfg.local.ip());
        self.tag = token(10);
        self.remote_tag = None;
        self.cseq = 0;
        self.phase = Phase::Active;
        self.retry_at = None;
        self.send(self.cfg.expires, None, now);
    }

    /// Ends the subscription (SUBSCRIBE with Expires: 0).
    pub fn stop(&mut self, now: u64) {
        self.retry_at = None;
        self.wants_identity = false;
        self.refresh_at = None;
        if self.phase == Phase::Active && self.remote_tag.is_some() {
            self.phase = Phase::Unsubscribing;
            self.send(0, None, now);
        } else {
            self.phase = Phase::Idle;
            self.pending = None;
        }
    }

    fn send(&mut self, expires: u32, auth: Option<(&str, String)>, now: u64) {
        self.cseq += 1;
        let uri = self.uri();
        let me = match &self.cfg.user {
            Some(u) => format!("sip:{u}@{}", self.cfg.local),
            None => format!("sip:anonymous@{}", self.cfg.local),
        };
        let mut m = request("SUBSCRIBE", &uri);
        m.push("Via", format!("SIP/2.0/UDP {};branch={};rport", self.cfg.local, branch()));
        m.push("Max-Forwards", "70");
        m.push("From", format!("<{me}>;tag={}", self.tag));
        m.push(
            "To",
            match &self.remote_tag {
                Some(t) => format!("<{uri}>;tag={t}"),
                None => format!("<{uri}>"),
            },
        );
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{} SUBSCRIBE", self.cseq));
        m.push("Contact", format!("<{me}>"));
        m.push("Event", self.cfg.package.name());
        m.push("Accept", self.cfg.package.accept());
        m.push("Expires", expires.to_string());
        if let Some((n, v)) = auth.as_ref() {
            m.push(n, v.clone());
        }
        if let (None, Some(id)) = (&self.remote_tag, &self.identity) {
            m.push("Identity", id.clone());
        }
        m.push("User-Agent", self.cfg.user_agent.clone());
        let (tx, t) = ClientTx::start(self.cseq, self.cfg.server, m.to_bytes(), now);
        self.out.push_back(t);
        self.pending = Some((tx, expires, auth.is_some()));
        self.refresh_at = None;
    }

    /// A message for this watcher: a NOTIFY (answered in the return value)
    /// or a response to our SUBSCRIBE. Messages of other dialogs are left
    /// alone (`None`, and nothing changes).
    pub fn handle(&mut self, msg: &Message, source: SocketAddr, now: u64) -> Option<Transmit> {
        if self.call_id.is_empty() || msg.header("Call-ID") != Some(self.call_id.as_str()) {
            return None;
        }
        if msg.is_request() {
            return self.notify(msg, source, now);
        }
        self.response(msg, now);
        None
    }

    fn notify(&mut self, msg: &Message, source: SocketAddr, now: u64) -> Option<Transmit> {
        if msg.method() != Some("NOTIFY") {
            return None;
        }
        let via = top_via(msg)?;
        let reply = |code: u16, reason: &str| {
            Some(Transmit {
                to: source,
                transport: peerdial_sip::Transport::Udp,
                data: response(msg, &via, source, code, reason, "").to_bytes(),
            })
        };
        if tag_of(msg.header("To")).as_deref() != Some(self.tag.as_str()) || self.phase == Phase::Idle {
            return reply(481, "Subscription Does Not Exist");
        }
        if event_package(msg).is_none_or(|e| !e.eq_ignore_ascii_case(self.cfg.package.name())) {
            return reply(489, "Bad Event");
        }
        if self.remote_tag.is_none() {
            // The NOTIFY may overtake the 200: it fixes the dialog too.
            self.remote_tag = tag_of(msg.header("From"));
        }
        if self.cfg.package != Package::Presence {
            if !msg.body.is_empty() {
                if self.bodies.len() >= MAX_BODIES {
                    self.bodies.pop_front();
                }
                self.bodies.push_back(msg.body.clone());
            }
        } else if !msg.body.is_empty() {
            match pidf::decode(&msg.body) {
                Ok(d) => {
                    let p = Presence {
                        state: d.state,
                        since: d.timestamp.unwrap_or(now / 1000),
                        note: d.note,
                    };
                    if self.last.as_ref() != Some(&p) {
                        self.last = Some(p.clone());
                        self.events.push_back(WatchEvent {
                            number: self.cfg.target,
                            presence: Some(p),
                        });
                    }
                }
                Err(_) => return reply(400, "Bad PIDF Document"),
            }
        }
        let state = msg.header("Subscription-State").unwrap_or("active");
        if state.trim_start().to_ascii_lowercase().starts_with("terminated") {
            let reason = param(state, "reason").flatten().unwrap_or("").to_ascii_lowercase();
            self.ended(&reason, now);
        }
        reply(200, "OK")
    }

    /// The region ended the subscription: subscribe again, soon after a
    /// timeout, much later when it said the number does not exist.
    fn ended(&mut self, reason: &str, now: u64) {
        let unsubscribing = self.phase == Phase::Unsubscribing;
        self.phase = Phase::Idle;
        self.refresh_at = None;
        if unsubscribing {
            return;
        }
        let wait = match reason {
            "noresource" | "rejected" => 3_600_000,
            "deactivated" | "timeout" | "" => 0,
            _ => 300_000,
        };
        if wait > 0 {
            self.unknown();
        }
        self.retry_at = Some(now + wait);
    }

    fn unknown(&mut self) {
        if self.last.take().is_some() && self.cfg.package == Package::Presence {
            self.events.push_back(WatchEvent {
                number: self.cfg.target,
                presence: None,
            });
        }
    }

    fn response(&mut self, msg: &Message, now: u64) {
        let Some(code) = status(msg) else { return };
        let Some((tx, expires, auth_tried)) = self.pending.as_ref() else {
            return;
        };
        let (expires, auth_tried) = (*expires, *auth_tried);
        if cseq_of(msg) != Some((tx.cseq, "SUBSCRIBE")) || code < 200 {
            return;
        }
        self.pending = None;
        match code {
            200..=299 => {
                self.backoff = 0;
                if self.remote_tag.is_none() {
                    self.remote_tag = tag_of(msg.header("To"));
                }
                if expires == 0 {
                    return;
                }
                let granted = match seconds(msg, "Expires") {
                    Some(Ok(e)) if e > 0 => e,
                    _ => expires,
                };
                if self.phase == Phase::Active {
                    self.refresh_at = Some(now + (granted as u64 * 800).max(1000));
                }
            }
            401 | 407 if !auth_tried => {
                let (Some(user), Some(pw)) = (self.cfg.user.clone(), self.cfg.password.clone()) else {
                    return self.fail(code, msg, now);
                };
                match answer_challenge(msg, code, &user, &pw, "SUBSCRIBE", &self.uri()) {
                    Some((n, v)) => self.send(expires, Some((n, v)), now),
                    None => self.fail(code, msg, now),
                }
            }
            481 if self.phase == Phase::Active => {
                // The region forgot us (a restart): a new subscription.
                self.start(now);
            }
            _ => self.fail(code, msg, now),
        }
    }

    fn fail(&mut self, code: u16, msg: &Message, now: u64) {
        if self.phase == Phase::Unsubscribing {
            self.phase = Phase::Idle;
            return;
        }
        tracing::debug!(code, number = %self.cfg.target, "subscription failed");
        self.phase = Phase::Idle;
        self.unknown();
        self.backoff = next_backoff(self.backoff.max(15_000));
        let mut wait = self.backoff;
        if let (StartLine::Response { .. }, Some(Ok(r))) = (&msg.start, seconds(msg, "Retry-After")) {
            wait = wait.max(r as u64 * 1000);
        }
        self.retry_at = Some(now + wait);
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        [self.pending.as_ref().map(|p| p.0.due()), self.refresh_at, self.retry_at]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: u64) {
        if let Some((tx, _, _)) = &mut self.pending {
            match tx.on_timeout(now) {
                Ok(Some(t)) => self.out.push_back(t),
                Ok(None) => {}
                Err(()) => {
                    self.pending = None;
                    if self.phase == Phase::Unsubscribing {
                        self.phase = Phase::Idle;
                    } else {
                        self.phase = Phase::Idle;
                        self.unknown();
                        self.backoff = next_backoff(self.backoff.max(15_000));
                        self.retry_at = Some(now + self.backoff);
                    }
                }
            }
            return;
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.start(now);
        } else if self.refresh_at.is_some_and(|t| t <= now) && self.phase == Phase::Active {
            self.send(self.cfg.expires, None, now);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<WatchEvent> {
        self.events.pop_front()
    }

    /// The next NOTIFY body of a [`Package`] other than presence.
    pub fn poll_body(&mut self) -> Option<Vec<u8>> {
        self.bodies.pop_front()
    }
}
