//! A phone's registration, as a state machine: REGISTER, answer the digest
//! challenge, refresh before expiry (with jitter, so phones that started
//! together do not refresh together), re-register at once when the local
//! address changes, retry with back-off after failures, unregister.
//!
//! Over UDP by default; [`RegisterClient::set_flow`] moves it onto a TCP
//! flow (RFC 5626): Via names TCP and our end of the connection, nothing
//! is retransmitted, the Contact keeps saying UDP (calls still come to
//! our UDP socket), and the registrar's `Flow-Timer` is kept for the
//! edge's keep-alives.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rand::Rng;

use crate::call::{Transmit, T1, T2};
use crate::digest::{Algorithm, Credentials};
use crate::message::{split_list, NameAddr, StartLine};
use crate::Message;

#[derive(Debug, Clone)]
pub struct RegisterConfig {
    pub registrar: SocketAddr,
    /// The address-of-record's user part and domain: `sip:<user>@<domain>`.
    pub user: String,
    pub domain: String,
    pub password: String,
    pub expires: u32,
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegEvent {
    /// Registered, with the expiry the registrar granted.
    Registered {
        expires: u32,
    },
    /// The registrar refused or did not answer; a retry is scheduled.
    Failed {
        reason: String,
    },
    Unregistered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegState {
    Idle,
    Registering,
    Registered,
    Unregistering,
}

pub struct RegisterClient {
    cfg: RegisterConfig,
    local: SocketAddr,
    call_id: String,
    tag: String,
    cseq: u32,
    state: RegState,
    /// The request in flight: bytes, next retransmission, interval, deadline.
    pending: Option<(Vec<u8>, u64, u64, u64)>,
    branch: String,
    auth_tried: bool,
    refresh_at: Option<u64>,
    backoff: u64,
    out: VecDeque<Transmit>,
    events: VecDeque<RegEvent>,
    /// Our end of the TCP flow the requests travel on (None: UDP).
    flow: Option<SocketAddr>,
    /// The registrar's Flow-Timer from its last 200 (seconds).
    flow_timer: Option<u32>,
    /// Extra Contact URI parameters (`;pn-provider=…`, RFC 8599).
    contact_params: String,
}

use crate::ids::token;

impl RegisterClient {
    pub fn new(cfg: RegisterConfig, local: SocketAddr) -> RegisterClient {
        RegisterClient {
            call_id: format!("{}@{}", token(20), local.ip()),
            tag: token(10),
            cfg,
            local,
            cseq: 0,
            state: RegState::Idle,
            pending: None,
            branch: String::new(),
            auth_tried: false,
            refresh_at: None,
            backoff: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            flow: None,
            flow_timer: None,
            contact_params: String::new(),
        }
    }

    /// Registers over the TCP flow whose local end is `flow` from the next
    /// request on (None: back to UDP).
    pub fn set_flow(&mut self, flow: Option<SocketAddr>) {
        self.flow = flow;
        if flow.is_none() {
            self.flow_timer = None;
        }
    }

    /// Parameters added to our Contact URI from the next request on
    /// (`;name=value…`, already escaped), e.g. RFC 8599 push parameters.
    pub fn set_contact_params(&mut self, params: &str) {
        self.contact_params = params.to_string();
    }

    pub fn contact_params(&self) -> &str {
        &self.contact_params
    }

    /// Seconds between keep-alives on the flow, as the registrar asked.
    pub fn flow_timer(&self) -> Option<u32> {
        self.flow_timer
    }

    pub fn state(&self) -> RegState {
        self.state
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.cfg.user, self.cfg.domain)
    }

    pub fn start(&mut self, now: u64) {
        self.state = RegState::Registering;
        self.auth_tried = false;
        self.send(None, self.cfg.expires, now);
    }

    /// The phone's address changed (a new DHCP lease): register the new
    /// one now rather than at the next refresh.
    pub fn set_local_addr(&mut self, local: SocketAddr, now: u64) {
        if local != self.local {
            self.local = local;
            self.start(now);
        }
    }

    pub fn unregister(&mut self, now: u64) {
        self.state = RegState::Unregistering;
        self.auth_tried = false;
        self.refresh_at = None;
        self.send(None, 0, now);
    }

    fn expires_wanted(&self) -> u32 {
        if self.state == RegState::Unregistering {
            0
        } else {
            self.cfg.expires
        }
    }

    fn send(&mut self, auth: Option<(&str, String)>, expires: u32, now: u64) {
        self.cseq += 1;
        self.branch = format!("z9hG4bK{}", token(16));
        let uri = format!("sip:{}", self.cfg.domain);
        let mut m = Message {
            start: StartLine::Request {
                method: "REGISTER".into(),
                uri,
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        match self.flow {
            Some(f) => m.push("Via", format!("SIP/2.0/TCP {f};branch={};rport", self.branch)),
            None => m.push("Via", format!("SIP/2.0/UDP {};branch={};rport", self.local, self.branch)),
        }
        m.push("Max-Forwards", "70");
        m.push("From", format!("<{}>;tag={}", self.aor(), self.tag));
        m.push("To", format!("<{}>", self.aor()));
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{} REGISTER", self.cseq));
        m.push("Contact", format!("<{}>", self.contact_uri()));
        m.push("Expires", expires.to_string());
        if let Some((name, value)) = auth {
            m.push(name, value);
        }
        m.push("User-Agent", self.cfg.user_agent.clone());
        let data = m.to_bytes();
        self.out.push_back(Transmit {
            to: self.cfg.registrar,
            data: data.clone(),
        });
        // A reliable transport retransmits for us (RFC 3261 §17.1.2.2).
        let first_retransmit = if self.flow.is_some() { u64::MAX } else { now + T1 };
        self.pending = Some((data, first_retransmit, T1, now + 64 * T1));
    }

    /// Our contact: the UDP socket, said so explicitly on a TCP flow.
    fn contact_uri(&self) -> String {
        match self.flow {
            Some(_) => format!("sip:{}@{};transport=udp{}", self.cfg.user, self.local, self.contact_params),
            None => format!("sip:{}@{}{}", self.cfg.user, self.local, self.contact_params),
        }
    }

    /// A datagram from the registrar (a response to our REGISTER).
    pub fn handle(&mut self, msg: &Message, now: u64) {
        let StartLine::Response { code, reason } = &msg.start else { return };
        if msg.header("Call-ID") != Some(self.call_id.as_str()) {
            return;
        }
        let cseq_ok = msg.header("CSeq").and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok()) == Some(self.cseq);
        if !cseq_ok || *code < 200 {
            return;
        }
        self.pending = None;
        match code {
            200..=299 => {
                self.auth_tried = false;
                self.backoff = 0;
                if self.state == RegState::Unregistering {
                    self.state = RegState::Idle;
                    self.events.push_back(RegEvent::Unregistered);
                    return;
                }
                let granted = self.granted_expires(msg).unwrap_or(self.cfg.expires).max(1);
                if self.flow.is_some() {
                    self.flow_timer = msg.header("Flow-Timer").and_then(|v| v.trim().parse().ok());
                }
                self.state = RegState::Registered;
                // Refresh between half and four fifths of the interval.
                let ms = granted as u64 * 1000;
                let at = rand::thread_rng().gen_range(ms / 2..=ms * 4 / 5);
                self.refresh_at = Some(now + at.max(1000));
                self.events.push_back(RegEvent::Registered { expires: granted });
            }
            401 | 407 if !self.auth_tried => {
                let uri = format!("sip:{}", self.cfg.domain);
                match answer_challenge(msg, *code, &self.cfg.user, &self.cfg.password, "REGISTER", &uri) {
                    Some((name, value)) => {
                        self.auth_tried = true;
                        let expires = self.expires_wanted();
                        self.send(Some((name, value)), expires, now);
                    }
                    None => self.fail("no digest challenge with an algorithm we support".into(), now),
                }
            }
            423 => {
                // Interval too brief: take the registrar's minimum.
                if let Some(min) = msg.header("Min-Expires").and_then(|v| v.trim().parse().ok()) {
                    self.cfg.expires = min;
                    self.start(now);
                } else {
                    self.fail(format!("{code} {reason}"), now);
                }
            }
            _ => self.fail(format!("{code} {reason}"), now),
        }
    }

    fn granted_expires(&self, msg: &Message) -> Option<u32> {
        let ours = self.contact_uri();
        for v in msg.header_values("Contact") {
            for c in split_list(v) {
                if let Ok(na) = NameAddr::parse(c) {
                    if na.uri == ours {
                        if let Some(Some(e)) = na.param("expires") {
                            return e.parse().ok();
                        }
                    }
                }
            }
        }
        msg.header("Expires").and_then(|e| e.trim().parse().ok())
    }

    fn fail(&mut self, reason: String, now: u64) {
        self.pending = None;
        self.auth_tried = false;
        // 5 s, 10 s, 20 s … up to 5 minutes, with jitter.
        self.backoff = (self.backoff * 2).clamp(5_000, 300_000);
        let jitter = rand::thread_rng().gen_range(0..=self.backoff / 4);
        self.refresh_at = Some(now + self.backoff + jitter);
        if self.state == RegState::Unregistering {
            self.state = RegState::Idle;
            self.refresh_at = None;
        } else {
            self.state = RegState::Registering;
        }
        self.events.push_back(RegEvent::Failed { reason });
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        match &self.pending {
            Some((_, next, _, deadline)) => Some((*next).min(*deadline)),
            None => self.refresh_at,
        }
    }

    pub fn handle_timeout(&mut self, now: u64) {
        if let Some((data, next, interval, deadline)) = &mut self.pending {
            if *deadline <= now {
                self.fail("the registrar did not answer".into(), now);
            } else if *next <= now {
                self.out.push_back(Transmit {
                    to: self.cfg.registrar,
                    data: data.clone(),
                });
                *interval = (*interval * 2).min(T2);
                *next = now + *interval;
            }
            return;
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            self.start(now);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RegEvent> {
        self.events.pop_front()
    }
}

/// The Authorization (or Proxy-Authorization) header answering a 401 (or
/// 407) challenge: the first digest challenge with an algorithm we support
/// (RFC 8760: challenges come in preference order). `None` when there is none.
pub fn answer_challenge(msg: &Message, code: u16, user: &str, password: &str, method: &str, uri: &str) -> Option<(&'static str, String)> {
    let (challenge, answer) = if code == 401 {
        ("WWW-Authenticate", "Authorization")
    } else {
        ("Proxy-Authenticate", "Proxy-Authorization")
    };
    msg.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(challenge))
        .find_map(|(_, ch)| {
            let params = ch.trim().strip_prefix("Digest")?;
            let get = |k: &str| {
                split_list(params).into_iter().find_map(|item| {
                    let (n, v) = item.split_once('=')?;
                    n.trim().eq_ignore_ascii_case(k).then(|| v.trim().trim_matches('"').to_string())
                })
            };
            let alg = match get("algorithm") {
                Some(a) => Algorithm::from_name(&a)?,
                None => Algorithm::Md5,
            };
            let c = Credentials::respond(user, &get("realm")?, password, alg, method, uri, &get("nonce")?);
            Some((answer, c.to_header()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::{Output, Registrar, RegistrarConfig, Transport};
    use peerdial_number::{Area, Number};

    const T0: u64 = 1_700_000_000_000;

    fn setup(password: &str) -> (RegisterClient, Registrar, Number) {
        let area: Area = "886-02".parse().unwrap();
        let n = Number::parse("886-02-10000001").unwrap();
        let mut r = Registrar::new(RegistrarConfig::new(area, "2.0.6.8.8.peerdial.internal", [7; 32]));
        r.set_credential(n, crate::digest::Ha1::new(&n.digits(), "2.0.6.8.8.peerdial.internal", "secret"));
        let cfg = RegisterConfig {
            registrar: "127.0.0.1:5060".parse().unwrap(),
            user: n.digits(),
            domain: "2.0.6.8.8.peerdial.internal".into(),
            password: password.into(),
            expires: 600,
            user_agent: "t".into(),
        };
        (RegisterClient::new(cfg, "127.0.0.1:5070".parse().unwrap()), r, n)
    }

    /// Runs the exchange against the real registrar core until quiet.
    fn exchange(c: &mut RegisterClient, r: &mut Registrar, now: u64) {
        while let Some(t) = c.poll_transmit() {
            let reply = match r.handle(&t.data, Transport::Udp, c.local_addr(), now) {
                Output::Reply(b) | Output::Commit { reply: b, .. } => b,
                Output::Drop => continue,
            };
            c.handle(&Message::parse(&reply).unwrap(), now);
        }
    }

    #[test]
    fn registers_through_the_challenge_and_refreshes_with_jitter() {
        let (mut c, mut r, n) = setup("secret");
        c.start(T0);
        exchange(&mut c, &mut r, T0);
        assert_eq!(c.poll_event(), Some(RegEvent::Registered { expires: 600 }));
        assert_eq!(r.binding(n).unwrap().uri, format!("sip:{}@127.0.0.1:5070", n.digits()));
        let refresh = c.poll_timeout().unwrap() - T0;
        assert!((300_000..=480_000).contains(&refresh), "{refresh}");
        // Two phones pick different refresh times (with overwhelming odds).
        let (mut c2, mut r2, _) = setup("secret");
        c2.start(T0);
        exchange(&mut c2, &mut r2, T0);
        assert_ne!(c2.poll_timeout(), c.poll_timeout());
    }

    #[test]
    fn address_change_re_registers_at_once() {
        let (mut c, mut r, n) = setup("secret");
        c.start(T0);
        exchange(&mut c, &mut r, T0);
        c.set_local_addr("127.0.0.2:5070".parse().unwrap(), T0 + 1000);
        let t = c.poll_transmit().unwrap();
        let reply = match r.handle(&t.data, Transport::Udp, "127.0.0.2:5070".parse().unwrap(), T0 + 1000) {
            Output::Reply(b) | Output::Commit { reply: b, .. } => b,
            Output::Drop => panic!("dropped"),
        };
        c.handle(&Message::parse(&reply).unwrap(), T0 + 1000);
        exchange(&mut c, &mut r, T0 + 1000);
        assert!(r.binding(n).unwrap().uri.contains("127.0.0.2:5070"), "{:?}", r.binding(n));
    }

    #[test]
    fn wrong_password_fails_and_backs_off() {
        let (mut c, mut r, _) = setup("wrong");
        c.start(T0);
        exchange(&mut c, &mut r, T0);
        assert!(matches!(c.poll_event(), Some(RegEvent::Failed { reason }) if reason.starts_with("403")));
        let retry = c.poll_timeout().unwrap() - T0;
        assert!((5_000..=6_250).contains(&retry), "{retry}");
    }

    #[test]
    fn silence_retransmits_then_fails() {
        let (mut c, _, _) = setup("secret");
        c.start(T0);
        let mut sent = 0;
        while c.state() == RegState::Registering && c.pending.is_some() {
            while c.poll_transmit().is_some() {
                sent += 1;
            }
            let t = c.poll_timeout().unwrap();
            c.handle_timeout(t);
        }
        assert!(sent >= 10, "{sent}");
        assert!(matches!(c.poll_event(), Some(RegEvent::Failed { .. })));
    }

    #[test]
    fn unregister() {
        let (mut c, mut r, n) = setup("secret");
        c.start(T0);
        exchange(&mut c, &mut r, T0);
        c.unregister(T0 + 5);
        exchange(&mut c, &mut r, T0 + 5);
        assert_eq!(c.poll_event(), Some(RegEvent::Registered { expires: 600 }));
        assert_eq!(c.poll_event(), Some(RegEvent::Unregistered));
        assert!(r.binding(n).is_none());
    }

    #[test]
    fn over_a_tcp_flow_the_contact_stays_udp_and_nothing_is_retransmitted() {
        let (mut c, _, n) = setup("secret");
        let area: Area = "886-02".parse().unwrap();
        let mut cfg = RegistrarConfig::new(area, "2.0.6.8.8.peerdial.internal", [7; 32]);
        cfg.flow_timer = Some(7);
        let mut r = Registrar::new(cfg);
        r.set_credential(n, crate::digest::Ha1::new(&n.digits(), "2.0.6.8.8.peerdial.internal", "secret"));
        let conn: std::net::SocketAddr = "127.0.0.1:40001".parse().unwrap();
        c.set_flow(Some(conn));
        c.start(T0);
        let mut rounds = 0;
        while let Some(t) = c.poll_transmit() {
            let text = String::from_utf8_lossy(&t.data).to_string();
            assert!(text.contains("Via: SIP/2.0/TCP 127.0.0.1:40001;"), "{text}");
            assert!(
                text.contains(&format!("Contact: <sip:{}@127.0.0.1:5070;transport=udp>", n.digits())),
                "{text}"
            );
            let reply = match r.handle(&t.data, Transport::Tcp, conn, T0) {
                Output::Reply(b) | Output::Commit { reply: b, .. } => b,
                Output::Drop => panic!("dropped"),
            };
            c.handle(&Message::parse(&reply).unwrap(), T0);
            rounds += 1;
        }
        assert_eq!(rounds, 2, "challenge, then the answer");
        assert_eq!(c.poll_event(), Some(RegEvent::Registered { expires: 600 }));
        assert_eq!(c.flow_timer(), Some(7));
        // Calls come over UDP to the contact's port at the connection's IP.
        assert_eq!(r.binding(n).unwrap().uri, format!("sip:{}@127.0.0.1:5070", n.digits()));
        // Silence: no retransmission on a reliable transport, only Timer F.
        c.start(T0 + 1);
        assert!(c.poll_transmit().is_some());
        assert_eq!(c.poll_timeout(), Some(T0 + 1 + 64 * T1));
        c.handle_timeout(T0 + 2_000);
        assert!(c.poll_transmit().is_none());
    }
}
