//! What a call sends: our responses, requests built from the dialog
//! (BYE, CANCEL, ACK's shape), and the UDP retransmission of the ones
//! that need it; and how a call ends.

use std::net::SocketAddr;

use super::*;

impl Call {
    /// Queues our response to request `msg` from `source`, with `extra`
    /// headers.
    pub(super) fn reply(&mut self, msg: &Message, via: &Via, source: SocketAddr, code: u16, reason: &str, extra: &[(&str, String)]) {
        let mut r = response(msg, via, source, code, reason, &self.local_tag);
        r.push("User-Agent", self.local.user_agent.clone());
        for (n, v) in extra {
            r.push(n, v.clone());
        }
        self.out.push_back(Transmit {
            to: source,
            data: r.to_bytes(),
        });
    }

    pub(super) fn end(&mut self, why: End) {
        if self.state != State::Ended {
            self.state = State::Ended;
            self.no_answer_at = None;
            self.events.push_back(CallEvent::Ended(why));
        }
    }

    pub(super) fn stop(&mut self, kind: RetransmitKind) {
        self.retransmits.retain(|r| r.kind != kind);
    }

    pub(super) fn send_reliably(&mut self, kind: RetransmitKind, data: Vec<u8>, to: SocketAddr, capped: bool, now: u64) {
        self.out.push_back(Transmit { to, data: data.clone() });
        self.retransmits.push(Retransmit {
            kind,
            data,
            to,
            next: now + T1,
            interval: T1,
            capped,
            deadline: now + TIMEOUT,
        });
    }

    pub(super) fn send_cancel(&mut self, now: u64) {
        // CANCEL copies the INVITE's Request-URI, Via, From, To, Call-ID
        // and CSeq number (RFC 3261 9.1).
        let mut c = self.invite.clone();
        c.start = StartLine::Request {
            method: "CANCEL".into(),
            uri: self.remote_uri.clone(),
        };
        c.headers
            .retain(|(n, _)| matches!(n.as_str(), "Via" | "From" | "To" | "Call-ID" | "Max-Forwards"));
        c.push("CSeq", format!("{} CANCEL", self.invite_cseq));
        c.body.clear();
        self.state = State::Ending;
        let to = self.remote_addr;
        self.send_reliably(RetransmitKind::Cancel, c.to_bytes(), to, true, now);
    }

    pub(super) fn send_bye(&mut self, now: u64) {
        self.cseq = self.cseq.max(self.invite_cseq) + 1;
        let bye = self.request("BYE", &branch(), self.cseq).to_bytes();
        self.state = State::Ending;
        let to = self.remote_addr;
        self.send_reliably(RetransmitKind::Bye, bye, to, true, now);
    }

    pub(super) fn respond_invite(&mut self, code: u16, reason: &str, now: u64) {
        let Some(via) = top_via(&self.invite) else { return };
        let mut r = response(&self.invite, &via, self.invite_source, code, reason, &self.local_tag);
        r.push("User-Agent", self.local.user_agent.clone());
        if (101..300).contains(&code) {
            for (n, v) in &self.extra {
                r.push(n, v.clone());
            }
            self.contact_and_body(&mut r);
            if code != 200 {
                r.body.clear();
                r.headers.retain(|(n, _)| n != "Content-Type");
            }
        }
        let data = r.to_bytes();
        self.last_response = Some(data.clone());
        if code >= 200 {
            // Final responses repeat until the ACK (Timers G and H).
            let to = self.invite_source;
            self.send_reliably(RetransmitKind::Final, data, to, true, now);
            if code >= 300 {
                self.linger_until = Some(now + TIMEOUT);
            }
        } else {
            self.out.push_back(Transmit {
                to: self.invite_source,
                data,
            });
        }
    }

    pub(super) fn contact_and_body(&self, r: &mut Message) {
        r.push("Contact", format!("<{}>", self.contact_uri()));
        r.push("Allow", ALLOW);
        if !self.local_sdp.is_empty() {
            r.push("Content-Type", "application/sdp");
            r.body = self.local_sdp.clone();
        }
    }

    pub(super) fn contact_uri(&self) -> String {
        let user = SipUri::parse(&self.local.uri).ok().and_then(|u| u.user).unwrap_or("peerdial");
        format!("sip:{}@{}", user, self.local.addr)
    }

    /// A request in this dialog (or the initial INVITE).
    pub(super) fn request(&self, method: &str, branch: &str, cseq: u32) -> Message {
        let uri = if method == "INVITE" {
            self.remote_uri.clone()
        } else {
            self.remote_target.clone()
        };
        let mut m = Message {
            start: StartLine::Request {
                method: method.into(),
                uri,
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push("Via", format!("SIP/2.0/UDP {};branch={branch};rport", self.local.addr));
        m.push("Max-Forwards", "70");
        let (from, to) = match self.role {
            Role::Caller => (
                format!("<{}>;tag={}", self.local.uri, self.local_tag),
                match &self.remote_tag {
                    Some(t) => format!("<{}>;tag={t}", self.remote_uri),
                    None => format!("<{}>", self.remote_uri),
                },
            ),
            // The callee's requests swap the INVITE's From and To.
            Role::Callee => (
                format!(
                    "{};tag={}",
                    self.invite
                        .header("To")
                        .unwrap_or_default()
                        .split(";tag=")
                        .next()
                        .unwrap_or_default(),
                    self.local_tag
                ),
                self.invite.header("From").unwrap_or_default().to_string(),
            ),
        };
        m.push("From", from);
        m.push("To", to);
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{cseq} {method}"));
        if matches!(method, "INVITE" | "REFER" | "NOTIFY") {
            m.push("Contact", format!("<{}>", self.contact_uri()));
        }
        if method == "INVITE" {
            m.push("Allow", ALLOW);
        }
        m.push("User-Agent", self.local.user_agent.clone());
        m
    }
}
