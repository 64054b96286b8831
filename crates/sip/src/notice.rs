//! One SIP MESSAGE (RFC 3428) out of dialog, with its UDP retransmissions
//! (Timer E, capped at T2) until a final answer or Timer F: what a server
//! uses to send a one-off text, such as a verification code, to an
//! address of record through that account's SIP server.
//!
//! Not a dialog, not a fan-out (see `peerdial-channels` for many at once).

use std::net::SocketAddr;

use crate::call::{Local, Transmit, T1, T2};
use crate::ids::{branch, token};
use crate::message::StartLine;
use crate::Message;

/// How a MESSAGE ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A final response: 2xx delivered, anything else refused.
    Answered(u16),
    /// Nothing final within 32 s.
    NoResponse,
}

pub struct Notice {
    call_id: String,
    data: Vec<u8>,
    to: SocketAddr,
    next: u64,
    interval: u64,
    deadline: u64,
    sent: bool,
    outcome: Option<Outcome>,
}

impl Notice {
    /// A MESSAGE to `uri` carrying `text`, sent to `next_hop` (the
    /// account's SIP server, or the URI's own address).
    pub fn new(local: &Local, uri: &str, next_hop: SocketAddr, text: &str, now: u64) -> Notice {
        let call_id = format!("{}@{}", token(20), local.addr.ip());
        let mut m = Message {
            start: StartLine::Request {
                method: "MESSAGE".into(),
                uri: uri.into(),
            },
            headers: Vec::new(),
            body: text.as_bytes().to_vec(),
        };
        m.push("Via", format!("SIP/2.0/UDP {};branch={};rport", local.addr, branch()));
        m.push("Max-Forwards", "70");
        m.push("From", format!("<{}>;tag={}", local.uri, token(10)));
        m.push("To", format!("<{uri}>"));
        m.push("Call-ID", call_id.clone());
        m.push("CSeq", "1 MESSAGE");
        m.push("User-Agent", local.user_agent.clone());
        m.push("Content-Type", "text/plain;charset=UTF-8");
        Notice {
            call_id,
            data: m.to_bytes(),
            to: next_hop,
            next: now,
            interval: T1,
            deadline: now + 64 * T1,
            sent: false,
            outcome: None,
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// A response with our Call-ID.
    pub fn handle(&mut self, msg: &Message) {
        if let StartLine::Response { code, .. } = msg.start {
            if code >= 200 && self.outcome.is_none() {
                self.outcome = Some(Outcome::Answered(code));
            } else if code >= 100 {
                // Provisional: the server has it; stop repeating, keep waiting.
                self.next = u64::MAX;
            }
        }
    }

    pub fn poll_transmit(&mut self, now: u64) -> Option<Transmit> {
        if self.outcome.is_some() || now < self.next {
            return None;
        }
        if self.sent {
            self.interval = (self.interval * 2).min(T2);
        }
        self.sent = true;
        self.next = now + self.interval;
        Some(Transmit {
            to: self.to,
            data: self.data.clone(),
        })
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.outcome.is_none().then(|| self.next.min(self.deadline))
    }

    pub fn handle_timeout(&mut self, now: u64) {
        if self.outcome.is_none() && now >= self.deadline {
            self.outcome = Some(Outcome::NoResponse);
        }
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_until_answered_or_timer_f() {
        let local = Local {
            uri: "sip:directory@127.0.0.1:5060".into(),
            addr: "127.0.0.1:5060".parse().unwrap(),
            user_agent: "t".into(),
        };
        let to: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut n = Notice::new(&local, "sip:alice@example.org", to, "code 123456", 0);
        let first = n.poll_transmit(0).unwrap();
        assert_eq!(first.to, to);
        let m = Message::parse(&first.data).unwrap();
        assert_eq!(m.method(), Some("MESSAGE"));
        assert_eq!(m.body, b"code 123456");
        assert!(n.poll_transmit(100).is_none());
        assert!(n.poll_transmit(500).is_some());
        assert_eq!(n.poll_timeout(), Some(1500));
        let ok = Message::parse(
            format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060\r\nCall-ID: {}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
                n.call_id()
            )
            .as_bytes(),
        )
        .unwrap();
        n.handle(&ok);
        assert_eq!(n.outcome(), Some(&Outcome::Answered(200)));
        assert!(n.poll_transmit(10_000).is_none() && n.poll_timeout().is_none());

        let mut n = Notice::new(&local, "sip:alice@example.org", to, "x", 0);
        let mut now = 0;
        while n.outcome().is_none() {
            while n.poll_transmit(now).is_some() {}
            now = n.poll_timeout().unwrap();
            n.handle_timeout(now);
        }
        assert_eq!(n.outcome(), Some(&Outcome::NoResponse));
        assert_eq!(now, 32_000);
    }
}
