//! One request outside any dialog (a MESSAGE, RFC 3428), as a non-INVITE
//! client transaction (RFC 3261 §17.1.2): sent at once, retransmitted on
//! Timer E over UDP (T1, doubling up to T2), given up on Timer F (64×T1),
//! finished by its first final response. Provisional answers stop the
//! retransmissions (they go on at T2 in the standard; here a 1xx only
//! tells the sender the request arrived).
//!
//! What this is not: a dialog, authentication (a 401 is handed back as an
//! outcome like any other) or a transport: the caller sends what
//! [`ClientRequest::poll_transmit`] gives.

use std::collections::VecDeque;

use crate::call::{Local, Transmit};
use crate::ids::token;
use crate::message::StartLine;
use crate::transaction::ClientTx;
use crate::Message;

/// How the request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A final response: its status and reason phrase.
    Answered { code: u16, reason: String },
    /// No final response before Timer F.
    TimedOut,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Answered { code: 200..=299, .. })
    }
}

pub struct ClientRequest {
    call_id: String,
    tx: ClientTx,
    outcome: Option<Outcome>,
    out: VecDeque<Transmit>,
}

impl ClientRequest {
    /// `method` to `uri` at `to`, from `local`, with `headers` and a body
    /// (its Content-Type and bytes).
    pub fn new(
        method: &str,
        uri: &str,
        to: std::net::SocketAddr,
        local: &Local,
        headers: &[(String, String)],
        body: Option<(&str, &[u8])>,
        now: u64,
    ) -> ClientRequest {
        let (content_type, body) = body.unwrap_or(("", b""));
        let call_id = format!("{}@{}", token(20), local.addr.ip());
        let cseq = 1;
        let mut m = Message {
            start: StartLine::Request {
                method: method.into(),
                uri: uri.into(),
            },
            headers: Vec::new(),
            body: body.to_vec(),
        };
        m.push("Via", format!("SIP/2.0/UDP {};branch=z9hG4bK{};rport", local.addr, token(16)));
        m.push("Max-Forwards", "70");
        m.push("From", format!("<{}>;tag={}", local.uri, token(10)));
        m.push("To", format!("<{uri}>"));
        m.push("Call-ID", call_id.clone());
        m.push("CSeq", format!("{cseq} {method}"));
        for (n, v) in headers {
            m.push(n, v.clone());
        }
        m.push("User-Agent", local.user_agent.clone());
        if !body.is_empty() {
            m.push("Content-Type", content_type);
        }
        let (tx, first) = ClientTx::start(cseq, to, m.to_bytes(), now);
        let mut out = VecDeque::new();
        out.push_back(Transmit { to, data: first.data });
        ClientRequest {
            call_id,
            tx,
            outcome: None,
            out,
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Whether `msg` is a response to this request.
    pub fn matches(&self, msg: &Message) -> bool {
        matches!(msg.start, StartLine::Response { .. })
            && msg.header("Call-ID") == Some(self.call_id.as_str())
            && msg.header("CSeq").and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok()) == Some(self.tx.cseq)
    }

    /// A response to this request (see [`ClientRequest::matches`]); the
    /// outcome once it is final.
    pub fn handle_response(&mut self, msg: &Message) -> Option<Outcome> {
        if self.outcome.is_some() || !self.matches(msg) {
            return None;
        }
        let StartLine::Response { code, reason } = &msg.start else {
            return None;
        };
        // Any answer stops the retransmissions; Timer F still applies.
        self.tx.next = u64::MAX;
        if *code < 200 {
            return None;
        }
        let o = Outcome::Answered {
            code: *code,
            reason: reason.clone(),
        };
        self.outcome = Some(o.clone());
        Some(o)
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        if self.outcome.is_some() {
            return None;
        }
        Some(self.tx.due())
    }

    /// Retransmits when due; the outcome once Timer F fired.
    pub fn handle_timeout(&mut self, now: u64) -> Option<Outcome> {
        if self.outcome.is_some() {
            return None;
        }
        match self.tx.on_timeout(now) {
            Ok(again) => {
                self.out.extend(again.map(|o| Transmit { to: o.to, data: o.data }));
                None
            }
            Err(()) => {
                self.outcome = Some(Outcome::TimedOut);
                self.outcome.clone()
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::T1;

    fn local() -> Local {
        Local {
            uri: "sip:886021234567@127.0.0.1:5070".into(),
            addr: "127.0.0.1:5070".parse().unwrap(),
            user_agent: "t".into(),
        }
    }

    fn answer(req: &[u8], code: u16) -> Message {
        let req = Message::parse(req).unwrap();
        let mut m = Message {
            start: StartLine::Response { code, reason: "R".into() },
            headers: Vec::new(),
            body: Vec::new(),
        };
        for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
            m.push(h, req.header(h).unwrap().to_string());
        }
        m
    }

    #[test]
    fn retransmits_until_answered_and_gives_up_on_timer_f() {
        let to = "127.0.0.1:5080".parse().unwrap();
        let hdr = vec![("Identity".to_string(), "tok".to_string())];
        let mut r = ClientRequest::new(
            "MESSAGE",
            "sip:886029876543@127.0.0.1:5080",
            to,
            &local(),
            &hdr,
            Some(("text/plain", b"hi")),
            0,
        );
        let first = r.poll_transmit().unwrap();
        let text = String::from_utf8_lossy(&first.data).to_string();
        assert!(text.starts_with("MESSAGE sip:886029876543@127.0.0.1:5080 SIP/2.0\r\n"), "{text}");
        assert!(text.contains("Content-Type: text/plain\r\n") && text.contains("Identity: tok\r\n") && text.ends_with("\r\n\r\nhi"));
        // Timer E: 500 ms, 1 s, 2 s, 4 s, 4 s …
        let mut sent = vec![];
        let mut now = 0;
        while let Some(t) = r.poll_timeout() {
            now = t;
            if let Some(o) = r.handle_timeout(now) {
                assert_eq!(o, Outcome::TimedOut);
                break;
            }
            if r.poll_transmit().is_some() {
                sent.push(now);
            }
        }
        assert_eq!(now, 64 * T1);
        assert_eq!(&sent[..5], &[500, 1500, 3500, 7500, 11500]);
        assert_eq!(r.poll_timeout(), None);

        // A 100 stops retransmissions; the 202 ends it; a repeat is ignored.
        let mut r = ClientRequest::new("MESSAGE", "sip:x@127.0.0.1:5080", to, &local(), &[], Some(("text/plain", b"hi")), 0);
        let req = r.poll_transmit().unwrap().data;
        assert_eq!(r.handle_response(&answer(&req, 100)), None);
        assert_eq!(r.poll_timeout(), Some(64 * T1));
        let o = r.handle_response(&answer(&req, 202)).unwrap();
        assert!(o.is_success());
        assert_eq!(r.handle_response(&answer(&req, 202)), None);
        // Someone else's response is not ours.
        let mut other = answer(&req, 200);
        other.headers.retain(|(n, _)| n != "Call-ID");
        other.push("Call-ID", "else");
        assert!(!r.matches(&other));
    }
}
