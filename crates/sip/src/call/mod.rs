//! One call (an INVITE dialog, RFC 3261 sections 12–17) as a state machine,
//! for either side: the INVITE client or server transaction, CANCEL, the
//! ACK, BYE, and the retransmission timers of UDP (A/B, E/F, G/H).
//!
//! Fed datagrams and milliseconds through [`Call::handle`] and
//! [`Call::handle_timeout`]; it yields datagrams from
//! [`Call::poll_transmit`] and what happened from [`Call::poll_event`]. The
//! SDP body is opaque here: the phone negotiates it. Offers inside the
//! call (hold, resume) are in [`reinvite`]; blind transfer (REFER and its
//! NOTIFYs) in [`refer`].

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use crate::message::{response, top_via, NameAddr, SipUri, StartLine, Via};
use crate::validate::{reject_unparseable, validate_request, Refusal};
use crate::Message;
use input::acceptable_offer;

mod auth;
mod input;
mod output;
mod refer;
mod reinvite;
mod stateless;

pub use refer::parse_sipfrag;
pub use stateless::stateless_response;

/// The methods a call takes (Allow).
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY";

/// RFC 3261 timer values (section 17.1.1.1).
pub const T1: u64 = 500;
pub const T2: u64 = 4_000;
const TIMEOUT: u64 = 64 * T1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Caller,
    Callee,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Caller: INVITE sent, nothing heard yet. Callee: INVITE received.
    Calling,
    /// A provisional response (caller) or 180 sent (callee).
    Ringing,
    /// 2xx sent or received: talking.
    Confirmed,
    /// BYE or CANCEL sent, waiting for its answer.
    Ending,
    Ended,
}

/// Why a call ended, as a phone would tell its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// We hung up (BYE sent) or cancelled.
    Local,
    /// The other side hung up (BYE received).
    Remote,
    /// The caller gave up before we answered (CANCEL received).
    CancelledByCaller,
    /// The callee answered with a failure: 486 busy, 603 declined, 488…
    Rejected { code: u16, reason: String },
    /// Nothing answered the INVITE or BYE within 32 s (Timer B/F).
    NoResponse,
    /// Rang until the no-answer timer; we cancelled.
    NoAnswer,
    /// Our 2xx was never acknowledged (Timer H).
    NoAck,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// Caller: 180/183 arrived (with an early SDP body, if any).
    Ringing,
    /// Caller: 2xx arrived with the callee's SDP answer.
    Answered {
        sdp: Vec<u8>,
    },
    /// Callee of an INVITE that carried no offer (RFC 3264 late offer,
    /// RFC 3725 flow I): our 2xx held the offer and this ACK the answer
    /// (empty when the ACK had none). Comes just before `Confirmed`.
    AckAnswer {
        sdp: Vec<u8>,
    },
    /// Callee: our 2xx was acknowledged.
    Confirmed,
    /// A DTMF key sent with SIP INFO (application/dtmf-relay).
    InfoDtmf(char),
    /// The other side sent a new offer (re-INVITE): answer it with
    /// [`Call::answer_reoffer`] or [`Call::reject_reoffer`].
    Reoffer {
        sdp: Vec<u8>,
    },
    /// Our re-INVITE was answered with this SDP.
    Reanswered {
        sdp: Vec<u8>,
    },
    /// Our re-INVITE was refused; the call goes on as before.
    ReofferFailed {
        code: u16,
        reason: String,
    },
    /// The other side asks us to call `target` (a `sip:` URI) in its place:
    /// answer with [`Call::accept_refer`] or [`Call::reject_refer`].
    Referred {
        target: String,
        referred_by: Option<String>,
    },
    /// Our REFER was accepted (202); progress follows.
    ReferAccepted,
    /// Our REFER was refused or got no answer; the call goes on.
    ReferFailed {
        code: u16,
        reason: String,
    },
    /// How the transfer's new call goes (a NOTIFY's sipfrag); `done` when
    /// the subscription ended with it.
    TransferProgress {
        code: u16,
        reason: String,
        done: bool,
    },
    Ended(End),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// Who we are: the URI others see and the address we listen on.
#[derive(Debug, Clone)]
pub struct Local {
    /// `sip:<number>@<host>` for From/To.
    pub uri: String,
    /// Where the phone's SIP socket is: Contact and Via.
    pub addr: SocketAddr,
    pub user_agent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetransmitKind {
    Invite,
    Cancel,
    Bye,
    /// Callee: the final response to the INVITE, until the ACK.
    Final,
    /// Our re-INVITE.
    Reinvite,
    /// Our 2xx to a re-INVITE, until the ACK.
    ReFinal,
    /// Our failure response to a re-INVITE, until the ACK.
    ReReject,
    /// Our REFER, until its final response.
    Refer,
    /// Our NOTIFY of a transfer's progress.
    Notify,
}

/// A request from the other side waiting for the phone's decision (a
/// re-INVITE's offer, a REFER), kept to answer it later.
#[derive(Debug)]
struct Incoming {
    msg: Message,
    via_branch: String,
    source: SocketAddr,
}

#[derive(Debug)]
struct Retransmit {
    kind: RetransmitKind,
    data: Vec<u8>,
    to: SocketAddr,
    next: u64,
    interval: u64,
    /// INVITE requests double without a cap (Timer A); others cap at T2.
    capped: bool,
    deadline: u64,
}

pub struct Call {
    pub role: Role,
    state: State,
    call_id: String,
    local: Local,
    local_tag: String,
    remote_uri: String,
    remote_tag: Option<String>,
    /// Where in-dialog requests go (the peer's Contact).
    remote_target: String,
    remote_addr: SocketAddr,
    cseq: u32,
    invite_cseq: u32,
    invite_branch: String,
    /// Caller: the INVITE as sent (for CANCEL). Callee: the INVITE received.
    invite: Message,
    /// Callee: where the INVITE came from, for responses.
    invite_source: SocketAddr,
    local_sdp: Vec<u8>,
    cancel_wanted: bool,
    ack: Option<Vec<u8>>,
    /// Caller with no offer (third-party call control, RFC 3725): the 2xx
    /// carries the callee's offer, and the ACK waits for the answer
    /// ([`Call::ack_with`]). `Some(false)`: a 2xx came, ACK not sent yet.
    late_ack: Option<bool>,
    last_response: Option<Vec<u8>>,
    retransmits: Vec<Retransmit>,
    no_answer_at: Option<u64>,
    linger_until: Option<u64>,
    out: VecDeque<Transmit>,
    events: VecDeque<CallEvent>,
    /// Added to our INVITE (caller) or to our 18x/2xx (callee): Identity,
    /// Call-Info.
    extra: Vec<(String, String)>,
    /// Caller: the Call-Info of the callee's last 18x/2xx.
    remote_call_info: Option<String>,
    /// The 2xx that answered our INVITE.
    answered: Option<Message>,
    re: reinvite::Reinvites,
    refer: refer::Refers,
    auth: auth::InviteAuth,
}

use crate::ids::{branch, token as random_token};

/// The address a `sip:` URI with an IP literal host names.
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let u = SipUri::parse(uri).ok()?;
    let ip: IpAddr = u.host.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
}

fn tag_of(header: Option<&str>) -> Option<String> {
    NameAddr::parse(header?).ok()?.param("tag").flatten().map(str::to_string)
}

fn cseq_of(m: &Message) -> Option<(u32, String)> {
    let v = m.header("CSeq")?;
    let mut it = v.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.to_string()))
}

/// A retransmitted request (its Via branch is `branch`) gets our answer
/// again when `answered` (branch, bytes) is for it; `true` if so.
fn repeat_answer(out: &mut VecDeque<Transmit>, answered: Option<(&str, &[u8])>, branch: &str, to: SocketAddr) -> bool {
    match answered {
        Some((b, data)) if b == branch => {
            out.push_back(Transmit { to, data: data.to_vec() });
            true
        }
        _ => false,
    }
}

fn status(m: &Message) -> Option<(u16, &str)> {
    match &m.start {
        StartLine::Response { code, reason } => Some((*code, reason.as_str())),
        _ => None,
    }
}

impl Call {
    /// Starts a call to `remote_uri` at `remote_addr` with an SDP offer.
    /// `ring_timeout` ends an unanswered call with [`End::NoAnswer`].
    pub fn outgoing(local: Local, remote_uri: &str, remote_addr: SocketAddr, sdp: Vec<u8>, ring_timeout: u64, now: u64) -> Call {
        Call::outgoing_with(local, remote_uri, remote_addr, sdp, Vec::new(), ring_timeout, now)
    }

    /// As [`Call::outgoing`], with `headers` added to the INVITE (and kept
    /// on its retransmissions): Identity, Call-Info.
    pub fn outgoing_with(
        local: Local,
        remote_uri: &str,
        remote_addr: SocketAddr,
        sdp: Vec<u8>,
        headers: Vec<(String, String)>,
        ring_timeout: u64,
        now: u64,
    ) -> Call {
        let mut call = Call {
            role: Role::Caller,
            state: State::Calling,
            call_id: format!("{}@{}", random_token(20), local.addr.ip()),
            local_tag: random_token(10),
            remote_uri: remote_uri.to_string(),
            remote_tag: None,
            remote_target: remote_uri.to_string(),
            remote_addr,
            cseq: 1,
            invite_cseq: 1,
            invite_branch: branch(),
            invite: Message {
                start: StartLine::Request {
                    method: "INVITE".into(),
                    uri: remote_uri.into(),
                },
                headers: vec![],
                body: vec![],
            },
            invite_source: remote_addr,
            local_sdp: sdp,
            local,
            cancel_wanted: false,
            ack: None,
            late_ack: None,
            last_response: None,
            retransmits: Vec::new(),
            no_answer_at: Some(now + ring_timeout),
            linger_until: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            extra: headers,
            remote_call_info: None,
            answered: None,
            re: Default::default(),
            refer: Default::default(),
            auth: Default::default(),
        };
        let branch = call.invite_branch.clone();
        let mut invite = call.request("INVITE", &branch, 1);
        for (n, v) in &call.extra {
            invite.push(n, v.clone());
        }
        if !call.local_sdp.is_empty() {
            invite.push("Content-Type", "application/sdp");
            invite.body = call.local_sdp.clone();
        }
        let data = invite.to_bytes();
        call.invite = invite;
        call.send_reliably(RetransmitKind::Invite, data, remote_addr, false, now);
        call
    }

    /// Starts a call with no offer (RFC 3725 flow I): the callee's 2xx
    /// carries its offer ([`CallEvent::Answered`]), and our answer goes in
    /// the ACK, sent by [`Call::ack_with`]. `remote_addr` may be a proxy
    /// (the callee's SIP server) that forwards to `remote_uri`; requests in
    /// the dialog go to the Contact of the 2xx.
    pub fn outgoing_without_offer(local: Local, remote_uri: &str, remote_addr: SocketAddr, ring_timeout: u64, now: u64) -> Call {
        let mut call = Call::outgoing_with(local, remote_uri, remote_addr, Vec::new(), Vec::new(), ring_timeout, now);
        call.late_ack = Some(true);
        call
    }

    /// Caller without an offer: acknowledge the 2xx with our answer `sdp`
    /// (empty: an ACK with no body, before a BYE when there is no answer).
    pub fn ack_with(&mut self, sdp: Vec<u8>, _now: u64) {
        if self.late_ack != Some(false) || self.ack.is_some() {
            return;
        }
        let mut ack = self.request("ACK", &branch(), self.invite_cseq);
        if !sdp.is_empty() {
            ack.push("Content-Type", "application/sdp");
            ack.body = sdp;
        }
        let ack = ack.to_bytes();
        self.out.push_back(Transmit {
            to: self.remote_addr,
            data: ack.clone(),
        });
        self.ack = Some(ack);
    }

    /// Takes an incoming INVITE that starts a new dialog. On a malformed
    /// one, returns the 400 to send back.
    pub fn incoming(local: Local, data: &[u8], source: SocketAddr, now: u64) -> Result<Call, Option<Transmit>> {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => return Err(reject_unparseable(data, &e, source).map(|data| Transmit { to: source, data })),
        };
        let via = top_via(&msg).ok_or(None)?;
        if let Err(r) = validate_request(&msg, &[]).and_then(|()| acceptable_offer(&msg)) {
            let mut resp = response(&msg, &via, source, r.code, &r.reason, &random_token(10));
            for (n, v) in r.headers {
                resp.push(n, v);
            }
            return Err(Some(Transmit {
                to: source,
                data: resp.to_bytes(),
            }));
        }
        let from = NameAddr::parse(msg.header("From").unwrap_or_default()).map_err(|_| None)?;
        let remote_target = msg
            .header("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|c| c.uri.to_string())
            .unwrap_or_else(|| from.uri.to_string());
        let (cseq, _) = cseq_of(&msg).ok_or(None)?;
        let mut call = Call {
            role: Role::Callee,
            state: State::Calling,
            call_id: msg.header("Call-ID").unwrap_or_default().to_string(),
            local_tag: random_token(10),
            remote_uri: from.uri.to_string(),
            remote_tag: from.param("tag").flatten().map(str::to_string),
            remote_addr: uri_addr(&remote_target).unwrap_or(source),
            remote_target,
            cseq: 0,
            invite_cseq: cseq,
            invite_branch: via.branch.unwrap_or_default().to_string(),
            invite_source: source,
            local_sdp: Vec::new(),
            local,
            cancel_wanted: false,
            ack: None,
            late_ack: None,
            last_response: None,
            retransmits: Vec::new(),
            no_answer_at: None,
            linger_until: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            extra: Vec::new(),
            remote_call_info: None,
            answered: None,
            re: Default::default(),
            refer: Default::default(),
            auth: Default::default(),
            invite: msg,
        };
        call.respond_invite(100, "Trying", now);
        Ok(call)
    }

    /// Caller: give up on a callee that answers nothing at all (not even
    /// 100 Trying) within `ms`, instead of Timer B's 32 s.
    pub fn set_response_timeout(&mut self, ms: u64, now: u64) {
        for r in self.retransmits.iter_mut().filter(|r| r.kind == RetransmitKind::Invite) {
            r.deadline = now + ms;
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The caller's URI (callee side) or the callee's (caller side).
    pub fn remote_uri(&self) -> &str {
        &self.remote_uri
    }

    /// The INVITE's body (callee side): the caller's SDP offer.
    pub fn remote_offer(&self) -> &[u8] {
        &self.invite.body
    }

    /// A header of the INVITE (callee side), e.g. Call-Info.
    pub fn invite_header(&self, name: &str) -> Option<&str> {
        self.invite.header(name)
    }

    /// Callee: headers for our 18x and 2xx from now on (Call-Info).
    pub fn set_response_headers(&mut self, headers: Vec<(String, String)>) {
        self.extra = headers;
    }

    /// Callee: one more header for our 18x and 2xx from now on.
    pub fn push_response_header(&mut self, name: String, value: String) {
        self.extra.push((name, value));
    }

    /// Caller: a header of the callee's 2xx, once answered.
    pub fn answer_header(&self, name: &str) -> Option<&str> {
        self.answered.as_ref()?.header(name)
    }

    /// Caller: the Call-Info header of the callee's latest 18x/2xx.
    pub fn remote_call_info(&self) -> Option<&str> {
        self.remote_call_info.as_deref()
    }

    /// Nothing more to do: ended, and retransmissions absorbed.
    pub fn is_done(&self) -> bool {
        self.state == State::Ended && self.retransmits.is_empty() && self.linger_until.is_none()
    }

    // ---- the user's actions ----

    /// Callee: 180 Ringing.
    pub fn ring(&mut self, now: u64) {
        if self.role == Role::Callee && self.state == State::Calling {
            self.state = State::Ringing;
            self.respond_invite(180, "Ringing", now);
        }
    }

    /// Callee: another provisional answer (e.g. 182 Queued), sent as is;
    /// the call stays where it was (a later [`Call::ring`] still rings).
    pub fn progress(&mut self, code: u16, reason: &str, now: u64) {
        if self.role == Role::Callee && matches!(self.state, State::Calling | State::Ringing) && (101..200).contains(&code) {
            self.respond_invite(code, reason, now);
        }
    }

    /// Callee: 200 OK with our SDP answer.
    pub fn answer(&mut self, sdp: Vec<u8>, now: u64) {
        if self.role != Role::Callee || !matches!(self.state, State::Calling | State::Ringing) {
            return;
        }
        self.local_sdp = sdp;
        self.state = State::Confirmed;
        self.respond_invite(200, "OK", now);
    }

    /// Callee: a failure response (486 Busy Here, 603 Decline, 488…).
    pub fn reject(&mut self, code: u16, reason: &str, now: u64) {
        if self.role != Role::Callee || !matches!(self.state, State::Calling | State::Ringing) {
            return;
        }
        self.respond_invite(code, reason, now);
        self.end(End::Local);
    }

    /// Hang up: BYE when talking, CANCEL while ringing out, 603 while
    /// ringing in.
    pub fn hangup(&mut self, now: u64) {
        match (self.role, self.state) {
            (_, State::Confirmed) => {
                // A 2xx still waiting for our answer is acknowledged first.
                self.ack_with(Vec::new(), now);
                self.send_bye(now);
            }
            (Role::Caller, State::Calling) => {
                // RFC 3261 9.1: no CANCEL before a provisional response.
                self.cancel_wanted = true;
                self.state = State::Ending;
            }
            (Role::Caller, State::Ringing) => self.send_cancel(now),
            (Role::Callee, State::Calling | State::Ringing) => self.reject(603, "Decline", now),
            _ => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.retransmits
            .iter()
            .flat_map(|r| [r.next, r.deadline])
            .chain(self.no_answer_at)
            .chain(self.linger_until)
            .chain(self.re.retry_at())
            .min()
    }

    pub fn handle_timeout(&mut self, now: u64) {
        if self.no_answer_at.is_some_and(|t| t <= now) {
            self.no_answer_at = None;
            if self.role == Role::Caller && matches!(self.state, State::Calling | State::Ringing) {
                if self.state == State::Ringing {
                    self.send_cancel(now);
                } else {
                    self.stop(RetransmitKind::Invite);
                }
                self.end(End::NoAnswer);
            }
        }
        if self.linger_until.is_some_and(|t| t <= now) {
            self.linger_until = None;
        }
        self.reinvite_timeout(now);
        let mut expired = Vec::new();
        for r in &mut self.retransmits {
            if r.deadline <= now {
                expired.push(r.kind);
                continue;
            }
            if r.next <= now {
                self.out.push_back(Transmit {
                    to: r.to,
                    data: r.data.clone(),
                });
                r.interval = if r.capped { (r.interval * 2).min(T2) } else { r.interval * 2 };
                r.next = now + r.interval;
            }
        }
        for kind in expired {
            self.stop(kind);
            match kind {
                RetransmitKind::Invite | RetransmitKind::Bye if self.state != State::Ended => self.end(End::NoResponse),
                RetransmitKind::Reinvite if self.state == State::Confirmed => {
                    // No answer to a re-INVITE ends the dialog (14.1).
                    self.send_bye(now);
                    self.end(End::NoResponse);
                }
                RetransmitKind::Refer => self.refer_timed_out(),
                RetransmitKind::Final | RetransmitKind::ReFinal if self.state == State::Confirmed => {
                    // RFC 3261 13.3.1.4: no ACK for our 2xx, so end the dialog.
                    self.send_bye(now);
                    self.end(End::NoAck);
                }
                _ => {}
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
