//! The registrar as a plain state machine (RFC 3261 section 10.3).
//!
//! Fed datagrams or stream frames with their source address and the wall
//! clock in milliseconds, it answers with what to send and which binding
//! change must be made durable before the answer may go out. It keeps the
//! credentials and the bindings of one area in memory, absorbs
//! retransmissions like a non-INVITE server transaction (Timer J), expires
//! stale bindings, and rate-limits wrong passwords. No I/O, no clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

use peerdial_number::{Area, Number};

use crate::digest::{challenges, Algorithm, Credentials, Ha1, NonceCheck, NonceKey};
use crate::message::{Message, NameAddr, SipUri, StartLine, Via, MAX_MESSAGE};
use crate::validate::{is_known_method, reject_unparseable, stable_tag, validate_request};

/// What the registrar does, for Allow headers.
const ALLOW: &str = "REGISTER, OPTIONS";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    pub fn parse(s: &str) -> Option<Transport> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            _ => None,
        }
    }
}

/// A check of a Contact URI's parameters: `Err(reason)` refuses it.
pub type ContactCheck = fn(&str) -> Result<(), String>;

#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    pub area: Area,
    pub realm: String,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Wrong passwords allowed per source address or user within the window.
    pub max_failures: u32,
    pub failure_window_ms: u64,
    pub nonce_lifetime_ms: u64,
    pub nonce_key: [u8; 32],
    pub server_name: String,
    /// Digest algorithms offered, most preferred first; only these are
    /// accepted. MD5 alone by default: older phones (libre-based ones,
    /// sipsak) give up when any challenge names an algorithm they lack.
    pub algorithms: Vec<Algorithm>,
    /// Seconds between the keep-alives a phone registered over TCP should
    /// send (RFC 5626 §5.4 `Flow-Timer` in the 200); None: not said.
    pub flow_timer: Option<u32>,
    /// Checks a Contact URI's parameters (the region's: RFC 8599 push
    /// parameters); an error is the 400's reason and nothing changes.
    pub contact_check: Option<ContactCheck>,
}

impl RegistrarConfig {
    pub fn new(area: Area, realm: impl Into<String>, nonce_key: [u8; 32]) -> RegistrarConfig {
        RegistrarConfig {
            area,
            realm: realm.into(),
            min_expires: 30,
            max_expires: 3600,
            default_expires: 3600,
            max_failures: 5,
            failure_window_ms: 60_000,
            nonce_lifetime_ms: 300_000,
            nonce_key,
            server_name: "peerdial".into(),
            flow_timer: None,
            contact_check: None,
            algorithms: vec![Algorithm::Md5],
        }
    }
}

/// Where a number is reachable now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The SIP URI published in DNS: built from the address the REGISTER
    /// really came from, not from what the Contact claims.
    pub uri: String,
    /// The Contact URI as the phone registered it (echoed in 200 OK).
    pub contact: String,
    pub transport: Transport,
    pub addr: SocketAddr,
    pub expires_at_ms: u64,
    pub call_id: String,
    pub cseq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Upsert(Number, Binding),
    Remove(Number),
}

impl Change {
    pub fn number(&self) -> Number {
        match self {
            Change::Upsert(n, _) | Change::Remove(n) => *n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once per request, moved, not stored
pub enum Output {
    /// Send these bytes back to the source.
    Reply(Vec<u8>),
    /// Make `change` durable, then send `reply`. If that fails, call
    /// [`Registrar::fail_commit`] with `previous` and send nothing: the
    /// phone's retransmission asks again.
    Commit {
        change: Change,
        previous: Option<Binding>,
        reply: Vec<u8>,
    },
    /// Nothing to send (responses, ACKs, unparseable input).
    Drop,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TxKey {
    branch: String,
    method: String,
    source: SocketAddr,
}

/// Timer J for unreliable transports: 64 * T1.
const TRANSACTION_MS: u64 = 32_000;

pub struct Registrar {
    cfg: RegistrarConfig,
    nonces: NonceKey,
    credentials: NumberMap<Ha1>,
    bindings: NumberMap<Binding>,
    expiries: BinaryHeap<Reverse<(u64, Number)>>,
    replies: HashMap<TxKey, Vec<u8>>,
    reply_order: VecDeque<(u64, TxKey)>,
    failures: HashMap<FailKey, (u32, u64)>,
}

/// Whom wrong passwords are counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FailKey {
    Ip(std::net::IpAddr),
    User(Number),
}

type NumberMap<V> = peerdial_number::NumberMap<Number, V>;

struct Request<'a> {
    msg: &'a Message,
    method: &'a str,
    via: Via<'a>,
    source: SocketAddr,
    transport: Transport,
}

impl Registrar {
    pub fn new(cfg: RegistrarConfig) -> Registrar {
        Registrar {
            nonces: NonceKey::new(cfg.nonce_key, cfg.nonce_lifetime_ms),
            cfg,
            credentials: NumberMap::default(),
            bindings: NumberMap::default(),
            expiries: BinaryHeap::new(),
            replies: HashMap::new(),
            reply_order: VecDeque::new(),
            failures: HashMap::new(),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.cfg
    }

    pub fn set_credential(&mut self, number: Number, ha1: Ha1) {
        self.credentials.insert(number, ha1);
    }

    /// Forgets a number's credential and its binding (a number disabled or
    /// moved away): its REGISTERs are refused from now on. Returns the
    /// binding it had.
    pub fn remove_credential(&mut self, number: Number) -> Option<Binding> {
        self.credentials.remove(&number);
        self.bindings.remove(&number)
    }

    pub fn has_credential(&self, number: Number) -> bool {
        self.credentials.contains_key(&number)
    }

    /// The number's HA1, for checking its credentials elsewhere (HTTP).
    pub fn credential(&self, number: Number) -> Option<&Ha1> {
        self.credentials.get(&number)
    }

    pub fn credential_count(&self) -> usize {
        self.credentials.len()
    }

    pub fn binding(&self, number: Number) -> Option<&Binding> {
        self.bindings.get(&number)
    }

    pub fn bindings(&self) -> impl Iterator<Item = (&Number, &Binding)> {
        self.bindings.iter()
    }

    /// Restores a binding loaded from storage (at start-up).
    pub fn restore(&mut self, number: Number, binding: Binding) {
        self.expiries.push(Reverse((binding.expires_at_ms, number)));
        self.bindings.insert(number, binding);
    }

    /// Undoes a change whose commit failed.
    pub fn revert(&mut self, number: Number, previous: Option<Binding>) {
        match previous {
            Some(b) => self.restore(number, b),
            None => {
                self.bindings.remove(&number);
            }
        }
    }

    /// Undoes a change whose commit failed, and forgets its cached answer
    /// so that the phone's retransmission is processed afresh.
    pub fn fail_commit(&mut self, number: Number, previous: Option<Binding>, reply: &[u8]) {
        self.revert(number, previous);
        self.replies.retain(|_, r| r.as_slice() != reply);
    }

    /// When [`Registrar::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<u64> {
        let a = self.expiries.peek().map(|Reverse((t, _))| *t);
        let b = self.reply_order.front().map(|(t, _)| *t);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires bindings and forgets finished transactions. Returns the
    /// removals, which the caller must make durable and publish.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some(Reverse((t, n))) = self.expiries.peek().copied() {
            if t > now_ms {
                break;
            }
            self.expiries.pop();
            // The heap may hold superseded entries: only the live expiry counts.
            if self.bindings.get(&n).is_some_and(|b| b.expires_at_ms <= now_ms) {
                self.bindings.remove(&n);
                out.push(Change::Remove(n));
            }
        }
        while let Some((t, _)) = self.reply_order.front() {
            if *t > now_ms {
                break;
            }
            let (_, key) = self.reply_order.pop_front().expect("peeked");
            self.replies.remove(&key);
        }
        let window = self.cfg.failure_window_ms;
        if self.failures.len() > 10_000 {
            self.failures.retain(|_, (_, start)| now_ms.saturating_sub(*start) < window);
        }
        out
    }

    /// Handles one datagram or stream frame.
    pub fn handle(&mut self, data: &[u8], transport: Transport, source: SocketAddr, now_ms: u64) -> Output {
        if data.len() > MAX_MESSAGE {
            return Output::Drop;
        }
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%source, error = %e, "unparseable SIP message");
                // Answered when a response can be routed; never cached, as
                // there is no transaction to match it with.
                return match reject_unparseable(data, &e, source) {
                    Some(reply) => Output::Reply(reply),
                    None => Output::Drop,
                };
            }
        };
        let StartLine::Request { method, .. } = &msg.start else {
            return Output::Drop;
        };
        if method == "ACK" {
            return Output::Drop;
        }
        // Without a usable Via there is nowhere to send an answer.
        let Some(via) = msg
            .header("Via")
            .and_then(|v| crate::message::split_list(v).first().copied())
            .and_then(|v| Via::parse(v).ok())
        else {
            return Output::Drop;
        };
        let req = Request {
            msg: &msg,
            method,
            via,
            source,
            transport,
        };
        let key = req.via.branch.filter(|b| b.len() > 7 && b.starts_with("z9hG4bK")).map(|b| TxKey {
            branch: b.to_string(),
            method: method.clone(),
            source,
        });
        if let Some(cached) = key.as_ref().and_then(|k| self.replies.get(k)) {
            return Output::Reply(cached.clone());
        }
        let allow = || ("Allow", ALLOW.to_string());
        let out = match validate_request(&msg, &[]) {
            Err(r) => Output::Reply(self.respond(&req, r.code, &r.reason, &r.headers)),
            Ok(()) => match method.as_str() {
                "REGISTER" => self.register(&req, now_ms),
                "OPTIONS" => Output::Reply(self.respond(&req, 200, "OK", &[allow(), ("Accept", "application/sdp".into())])),
                // No INVITE or other transaction here that a CANCEL could match.
                "CANCEL" => Output::Reply(self.respond(&req, 481, "Call/Transaction Does Not Exist", &[])),
                m if is_known_method(m) => Output::Reply(self.respond(&req, 405, "Method Not Allowed", &[allow()])),
                _ => Output::Reply(self.respond(&req, 501, "Not Implemented", &[allow()])),
            },
        };
        if let Some(key) = key {
            let bytes = match &out {
                Output::Reply(b) | Output::Commit { reply: b, .. } => Some(b.clone()),
                Output::Drop => None,
            };
            if let Some(b) = bytes {
                self.reply_order.push_back((now_ms + TRANSACTION_MS, key.clone()));
                self.replies.insert(key, b);
            }
        }
        out
    }

    fn register(&mut self, req: &Request, now_ms: u64) -> Output {
        let m = req.msg;
        let to = NameAddr::parse(m.header("To").unwrap_or_default()).expect("validated");
        // The address of record must be a SIP URI (RFC 4475 3.3.4).
        if SipUri::parse(to.uri).is_err() {
            return Output::Reply(self.respond(req, 400, "Bad To (not a SIP URI)", &[]));
        }
        let number = match SipUri::parse(to.uri).ok().and_then(|u| u.user).and_then(|u| Number::parse(u).ok()) {
            Some(n) if self.cfg.area.contains(n) => n,
            _ => return Output::Reply(self.respond(req, 404, "Not Found (no such number in this area)", &[])),
        };
        if let Err(reply) = self.check_digest(req, Some(number), now_ms) {
            return Output::Reply(reply);
        }

        let contacts = m.header_values("Contact");
        let header_expires = match m.header("Expires") {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(e) => Some(e.min(u32::MAX as u64) as u32),
                Err(_) => return Output::Reply(self.respond(req, 400, "Bad Expires", &[])),
            },
            None => None,
        };
        if contacts.is_empty() {
            // A query: report the current binding.
            let extra = self.contact_header(number, now_ms);
            return Output::Reply(self.respond(req, 200, "OK", &extra));
        }
        let call_id = m.header("Call-ID").unwrap_or_default();
        let cseq: u32 = m
            .header("CSeq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if let Some(old) = self.bindings.get(&number) {
            if old.call_id == call_id && cseq < old.cseq {
                return Output::Reply(self.respond(req, 500, "Server Internal Error (CSeq out of order)", &[]));
            }
        }
        if contacts.contains(&"*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Output::Reply(self.respond(req, 400, "Bad Request ('*' needs Expires: 0 and no other Contact)", &[]));
            }
            return self.remove(req, number);
        }
        let contact = match NameAddr::parse(contacts[0]) {
            Ok(c) => c,
            Err(_) => return Output::Reply(self.respond(req, 400, "Bad Contact", &[])),
        };
        let contact_uri = match SipUri::parse(contact.uri) {
            Ok(u) => u,
            Err(_) => return Output::Reply(self.respond(req, 400, "Bad Contact URI", &[])),
        };
        if let Some(Err(why)) = self.cfg.contact_check.map(|check| check(contact_uri.params)) {
            let why: String = why.chars().filter(|c| !c.is_control()).take(200).collect();
            return Output::Reply(self.respond(req, 400, &format!("Bad Contact ({why})"), &[]));
        }
        let expires = match contact.param("expires") {
            Some(Some(e)) => match e.parse::<u64>() {
                Ok(e) => e.min(u32::MAX as u64) as u32,
                Err(_) => return Output::Reply(self.respond(req, 400, "Bad Contact expires", &[])),
            },
            _ => header_expires.unwrap_or(self.cfg.default_expires),
        };
        if expires == 0 {
            return self.remove(req, number);
        }
        if expires < self.cfg.min_expires {
            return Output::Reply(self.respond(req, 423, "Interval Too Brief", &[("Min-Expires", self.cfg.min_expires.to_string())]));
        }
        let expires = expires.min(self.cfg.max_expires);
        // The binding follows where the request really came from (RFC 3581):
        // UDP answers go back to the source port; a TCP source port is
        // ephemeral, so new calls go to the source IP at the Contact's port,
        // over TCP unless the Contact says UDP (a phone that keeps its
        // registration on a TCP flow and takes calls over UDP, as ours).
        let addr = match req.transport {
            Transport::Udp => req.source,
            Transport::Tcp => SocketAddr::new(req.source.ip(), contact_uri.port.unwrap_or(5060)),
        };
        let mut uri = format!("sip:{}@{}", number.digits(), addr);
        let says_udp = contact_uri
            .params
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("transport=udp"));
        if req.transport == Transport::Tcp && !says_udp {
            uri.push_str(";transport=tcp");
        }
        let binding = Binding {
            uri,
            contact: contact.uri.to_string(),
            transport: req.transport,
            addr,
            expires_at_ms: now_ms + expires as u64 * 1000,
            call_id: call_id.to_string(),
            cseq,
        };
        self.expiries.push(Reverse((binding.expires_at_ms, number)));
        let previous = self.bindings.insert(number, binding.clone());
        let mut extra = self.contact_header(number, now_ms);
        if let (Transport::Tcp, Some(t)) = (req.transport, self.cfg.flow_timer) {
            extra.push(("Flow-Timer", t.to_string()));
        }
        let reply = self.respond(req, 200, "OK", &extra);
        Output::Commit {
            change: Change::Upsert(number, binding),
            previous,
            reply,
        }
    }

    /// Checks a request's digest credentials (RFC 3261 22), with the
    /// nonces, algorithms and failure limits of REGISTER: for PUBLISH and
    /// SUBSCRIBE, which the region's presence agent serves. Returns the
    /// number the credentials prove, or the answer to send: 401 with a
    /// fresh challenge (none, stale or foreign credentials), 400 (unreadable
    /// ones) or 403 (wrong password, unknown user, too many failures). An
    /// empty answer means the request has no Via to answer along.
    pub fn authenticate(&mut self, msg: &Message, source: SocketAddr, transport: Transport, now_ms: u64) -> Result<Number, Vec<u8>> {
        let (Some(via), StartLine::Request { method, .. }) = (crate::message::top_via(msg), &msg.start) else {
            return Err(Vec::new());
        };
        let req = Request {
            msg,
            method,
            via,
            source,
            transport,
        };
        self.check_digest(&req, None, now_ms)
    }

    /// The digest check shared by REGISTER and [`Registrar::authenticate`]:
    /// `number` is the user the credentials must be for (REGISTER: the
    /// To number); `None` takes the user they name, if it is one of ours.
    fn check_digest(&mut self, req: &Request, number: Option<Number>, now_ms: u64) -> Result<Number, Vec<u8>> {
        let m = req.msg;
        let ip_key = FailKey::Ip(req.source.ip());
        let too_many = |r: &Registrar| r.respond(req, 403, "Forbidden (too many failed attempts)", &[("Retry-After", "60".into())]);
        if self.limited(ip_key, now_ms) || number.is_some_and(|n| self.limited(FailKey::User(n), now_ms)) {
            return Err(too_many(self));
        }
        // Only Digest is ours: other schemes are ignored and challenged
        // (RFC 4475 3.3.7), as are Digest credentials for another realm.
        let digests = || {
            m.headers
                .iter()
                .filter(|(n, _)| n == "Authorization")
                .map(|(_, v)| v)
                .filter(|v| v.trim_start().get(..7).is_some_and(|s| s.eq_ignore_ascii_case("Digest ")))
        };
        let Some(cred) = digests().filter_map(|v| Credentials::parse(v)).find(|c| c.realm == self.cfg.realm) else {
            // Digest credentials sent, none of them readable: say so rather
            // than challenge again.
            if digests().next().is_some() && digests().all(|v| Credentials::parse(v).is_none()) {
                return Err(self.respond(req, 400, "Bad Request (malformed Authorization)", &[]));
            }
            return Err(self.challenge(req, now_ms, false));
        };
        match self.nonces.check(&cred.nonce, now_ms) {
            NonceCheck::Valid => {}
            NonceCheck::Stale => return Err(self.challenge(req, now_ms, true)),
            NonceCheck::Invalid => return Err(self.challenge(req, now_ms, false)),
        }
        let number = match number {
            Some(n) if cred.username != n.digits() => {
                self.fail(&[ip_key, FailKey::User(n)], now_ms);
                return Err(self.respond(req, 403, "Forbidden (user does not match the To number)", &[]));
            }
            Some(n) => n,
            None => match Number::parse(&cred.username).ok().filter(|n| self.credentials.contains_key(n)) {
                Some(n) if self.limited(FailKey::User(n), now_ms) => return Err(too_many(self)),
                Some(n) => n,
                None => {
                    self.fail(&[ip_key], now_ms);
                    return Err(self.respond(req, 403, "Forbidden (wrong user or password)", &[]));
                }
            },
        };
        let user_key = FailKey::User(number);
        let offered = cred.algorithm().is_some_and(|a| self.cfg.algorithms.contains(&a));
        let ok = offered && self.credentials.get(&number).is_some_and(|ha1| cred.verify(ha1, req.method));
        if !ok {
            self.fail(&[ip_key, user_key], now_ms);
            tracing::info!(number = %number, source = %req.source, method = req.method, "wrong digest credentials");
            return Err(self.respond(req, 403, "Forbidden (wrong user or password)", &[]));
        }
        // Checked first: hashing the key costs more than the common case
        // (nobody has failed lately) is worth.
        if !self.failures.is_empty() {
            self.failures.remove(&user_key);
        }
        Ok(number)
    }

    fn remove(&mut self, req: &Request, number: Number) -> Output {
        let reply = self.respond(req, 200, "OK", &[]);
        match self.bindings.remove(&number) {
            Some(previous) => Output::Commit {
                change: Change::Remove(number),
                previous: Some(previous),
                reply,
            },
            None => Output::Reply(reply),
        }
    }

    fn contact_header(&self, number: Number, now_ms: u64) -> Vec<(&'static str, String)> {
        match self.bindings.get(&number) {
            Some(b) => {
                let left = b.expires_at_ms.saturating_sub(now_ms).div_ceil(1000);
                vec![("Contact", format!("<{}>;expires={}", b.contact, left))]
            }
            None => vec![],
        }
    }

    fn limited(&self, key: FailKey, now_ms: u64) -> bool {
        self.failures
            .get(&key)
            .is_some_and(|(n, start)| *n >= self.cfg.max_failures && now_ms.saturating_sub(*start) < self.cfg.failure_window_ms)
    }

    fn fail(&mut self, keys: &[FailKey], now_ms: u64) {
        for &key in keys {
            let e = self.failures.entry(key).or_insert((0, now_ms));
            if now_ms.saturating_sub(e.1) >= self.cfg.failure_window_ms {
                *e = (0, now_ms);
            }
            e.0 += 1;
        }
    }

    fn challenge(&self, req: &Request, now_ms: u64, stale: bool) -> Vec<u8> {
        let nonce = self.nonces.issue(now_ms);
        let headers: Vec<(&str, String)> = challenges(&self.cfg.realm, &nonce, stale, &self.cfg.algorithms)
            .into_iter()
            .map(|c| ("WWW-Authenticate", c))
            .collect();
        self.respond(req, 401, "Unauthorized", &headers)
    }

    /// Builds a response to `req` (RFC 3261 8.2.6): Vias with received and
    /// rport filled in, From, To with a tag, Call-ID, CSeq.
    fn respond(&self, req: &Request, code: u16, reason: &str, extra: &[(&str, String)]) -> Vec<u8> {
        // A stable tag per Call-ID, so retransmitted answers agree.
        let tag = stable_tag(req.msg);
        let mut resp = crate::message::response(req.msg, &req.via, req.source, code, reason, &tag);
        for (n, v) in extra {
            resp.push(n, v.clone());
        }
        resp.push("Server", self.cfg.server_name.clone());
        resp.to_bytes()
    }
}

#[cfg(test)]
mod tests;
