//! Publishing the phone's own presence (RFC 3903): an initial PUBLISH with
//! a PIDF body, refreshes with SIP-If-Match and no body before expiry, a
//! modification when the user changes state, and removal (Expires: 0).
//! One request at a time; a change made while one is in flight is sent
//! after it. A digest challenge is answered once per request.

use std::collections::VecDeque;
use std::net::SocketAddr;

use peerdial_sip::Message;

use super::{answer_challenge, next_backoff, ClientTx};
use crate::sip_util::{branch, cseq_of, request, seconds, status, token};
use crate::state::{Presence, State};
use crate::{pidf, Transmit};

#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// The region's SIP address.
    pub server: SocketAddr,
    /// Our number's digits and the region's domain: `sip:<user>@<domain>`.
    pub user: String,
    pub domain: String,
    pub password: String,
    /// Requested publication lifetime (seconds).
    pub expires: u32,
    pub local: SocketAddr,
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishEvent {
    /// The region holds this state, for `expires` seconds (refreshed).
    Published { state: State, expires: u32 },
    /// Removed at our request.
    Removed,
    /// Refused or unanswered; a retry is scheduled.
    Failed { reason: String },
}

type Wanted = (State, Option<String>);

struct InFlight {
    tx: ClientTx,
    /// What this request asks the region to hold (None: removal).
    wanted: Option<Wanted>,
    body: Vec<u8>,
    if_match: Option<String>,
    expires: u32,
    auth_tried: bool,
}

pub struct Publisher {
    cfg: PublisherConfig,
    call_id: String,
    tag: String,
    cseq: u32,
    etag: Option<String>,
    /// What the user wants published; None: nothing (removed).
    desired: Option<Wanted>,
    /// What the region holds, as far as we know.
    held: Option<Wanted>,
    pending: Option<InFlight>,
    refresh_at: Option<u64>,
    retry_at: Option<u64>,
    backoff: u64,
    out: VecDeque<Transmit>,
    events: VecDeque<PublishEvent>,
}

impl Publisher {
    pub fn new(cfg: PublisherConfig) -> Publisher {
        Publisher {
            call_id: format!("{}@{}", token(20), cfg.local.ip()),
            tag: token(10),
            cfg,
            cseq: 0,
            etag: None,
            desired: None,
            held: None,
            pending: None,
            refresh_at: None,
            retry_at: None,
            backoff: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.cfg.user, self.cfg.domain)
    }

    /// The Call-ID of our PUBLISH requests (for routing responses).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Publishes `state` (and a note), or modifies what is published.
    pub fn set(&mut self, state: State, note: Option<String>, now: u64) {
        self.desired = Some((state, note));
        self.kick(now);
    }

    /// Removes the publication (Expires: 0).
    pub fn remove(&mut self, now: u64) {
        self.desired = None;
        self.kick(now);
    }

    /// Sends what is needed now, unless a request is in flight.
    fn kick(&mut self, now: u64) {
        if self.pending.is_some() {
            return;
        }
        self.retry_at = None;
        if self.desired != self.held {
            match &self.desired {
                Some((state, note)) => {
                    let p = Presence {
                        state: *state,
                        since: now / 1000,
                        note: note.clone(),
                    };
                    let body = pidf::encode(&self.aor(), &p);
                    self.send(self.desired.clone(), body, self.etag.clone(), self.cfg.expires, now);
                }
                None => match self.etag.clone() {
                    Some(tag) => self.send(None, Vec::new(), Some(tag), 0, now),
                    None => self.held = None,
                },
            }
        } else if self.refresh_at.is_some_and(|t| t <= now) {
            if let Some(tag) = self.etag.clone() {
                self.send(self.held.clone(), Vec::new(), Some(tag), self.cfg.expires, now);
            }
        }
    }

    fn send(&mut self, wanted: Option<Wanted>, body: Vec<u8>, if_match: Option<String>, expires: u32, now: u64) {
        self.refresh_at = None;
        self.pending = Some(self.build(wanted, body, if_match, expires, None, now));
    }

    fn build(
        &mut self,
        wanted: Option<Wanted>,
        body: Vec<u8>,
        if_match: Option<String>,
        expires: u32,
        auth: Option<(&str, String)>,
        now: u64,
    ) -> InFlight {
        self.cseq += 1;
        let auth_tried = auth.is_some();
        let aor = self.aor();
        let mut m = request("PUBLISH", &aor);
        m.push("Via", format!("SIP/2.0/UDP {};branch={};rport", self.cfg.local, branch()));
        m.push("Max-Forwards", "70");
        m.push("From", format!("<{aor}>;tag={}", self.tag));
        m.push("To", format!("<{aor}>"));
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{} PUBLISH", self.cseq));
        m.push("Event", "presence");
        m.push("Expires", expires.to_string());
        if let Some(tag) = &if_match {
            m.push("SIP-If-Match", tag.clone());
        }
        if let Some((n, v)) = auth {
            m.push(n, v);
        }
        m.push("User-Agent", self.cfg.user_agent.clone());
        if !body.is_empty() {
            m.push("Content-Type", pidf::CONTENT_TYPE);
            m.body = body.clone();
        }
        let (tx, t) = ClientTx::start(self.cseq, self.cfg.server, m.to_bytes(), now);
        self.out.push_back(t);
        InFlight {
            tx,
            wanted,
            body,
            if_match,
            expires,
            auth_tried,
        }
    }

    /// A response from the region. Returns whether it was ours.
    pub fn handle_response(&mut self, msg: &Message, now: u64) -> bool {
        let Some(code) = status(msg) else { return false };
        if msg.header("Call-ID") != Some(self.call_id.as_str()) {
            return false;
        }
        let Some(p) = self.pending.as_ref() else { return true };
        if cseq_of(msg) != Some((p.tx.cseq, "PUBLISH")) || code < 200 {
            return true;
        }
        let p = self.pending.take().expect("checked above");
        match code {
            200..=299 => {
                self.backoff = 0;
                if p.expires == 0 {
                    self.etag = None;
                    self.held = None;
                    self.events.push_back(PublishEvent::Removed);
                } else {
                    self.etag = msg.header("SIP-ETag").map(|t| t.trim().to_string());
                    let granted = match seconds(msg, "Expires") {
                        Some(Ok(e)) if e > 0 => e,
                        _ => p.expires,
                    };
                    self.held = p.wanted.clone();
                    // Refresh at four fifths of the interval.
                    self.refresh_at = Some(now + (granted as u64 * 800).max(1000));
                    if let Some((state, _)) = &p.wanted {
                        self.events.push_back(PublishEvent::Published {
                            state: *state,
                            expires: granted,
                        });
                    }
                }
            }
            412 => {
                // The region forgot our publication: publish afresh.
                self.etag = None;
                self.held = None;
            }
            401 | 407 if !p.auth_tried => {
                let uri = self.aor();
                match answer_challenge(msg, code, &self.cfg.user, &self.cfg.password, "PUBLISH", &uri) {
                    Some((n, v)) => {
                        let next = self.build(p.wanted, p.body, p.if_match, p.expires, Some((n, v)), now);
                        self.pending = Some(next);
                        return true;
                    }
                    None => self.fail("no digest challenge with an algorithm we support".into(), now),
                }
            }
            _ => {
                let reason = match &msg.start {
                    peerdial_sip::message::StartLine::Response { reason, .. } => format!("{code} {reason}"),
                    _ => code.to_string(),
                };
                self.fail(reason, now);
            }
        }
        if self.retry_at.is_none() {
            self.kick(now);
        }
        true
    }

    fn fail(&mut self, reason: String, now: u64) {
        self.pending = None;
        self.backoff = next_backoff(self.backoff);
        self.retry_at = Some(now + self.backoff);
        self.events.push_back(PublishEvent::Failed { reason });
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        match &self.pending {
            Some(p) => Some(p.tx.due()),
            None => match (self.retry_at, self.refresh_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    pub fn handle_timeout(&mut self, now: u64) {
        if let Some(p) = &mut self.pending {
            match p.tx.on_timeout(now) {
                Ok(Some(t)) => self.out.push_back(t),
                Ok(None) => {}
                Err(()) => self.fail("the region did not answer".into(), now),
            }
            return;
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.kick(now);
        } else if self.refresh_at.is_some_and(|t| t <= now) {
            self.kick(now);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<PublishEvent> {
        self.events.pop_front()
    }
}
