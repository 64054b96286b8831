//! What comes in during a call: responses to our requests (the INVITE's
//! and re-INVITE's, CANCEL, BYE, REFER) and the other side's requests
//! (ACK, BYE, CANCEL, re-INVITE, INFO, REFER, NOTIFY, OPTIONS), each
//! moving the call's state; the answers go out through [`super::output`].

use std::net::SocketAddr;

use super::*;

impl Call {
    /// A datagram for this call (its Call-ID matched).
    pub fn handle(&mut self, msg: &Message, source: SocketAddr, now: u64) {
        match &msg.start {
            StartLine::Response { .. } => self.handle_response(msg, now),
            StartLine::Request { method, .. } => {
                let method = method.clone();
                self.handle_request(&method, msg, source, now)
            }
        }
    }

    pub(super) fn handle_response(&mut self, msg: &Message, now: u64) {
        let Some((code, reason)) = status(msg) else { return };
        let Some((cseq, method)) = cseq_of(msg) else { return };
        if self.refer_response(&method, code, reason, cseq) {
            return;
        }
        if method == "INVITE" && self.re.is_ours(cseq) {
            let reason = reason.to_string();
            self.reinvite_response(msg, code, &reason, cseq, now);
            return;
        }
        match method.as_str() {
            "INVITE" if self.role == Role::Caller && cseq == self.invite_cseq => {
                if (101..300).contains(&code) {
                    if let Some(info) = msg.header("Call-Info") {
                        self.remote_call_info = Some(info.to_string());
                    }
                }
                if code < 200 {
                    self.stop(RetransmitKind::Invite);
                    if self.state == State::Calling && code > 100 {
                        self.state = State::Ringing;
                        self.events.push_back(CallEvent::Ringing);
                    }
                    if self.cancel_wanted && code > 100 {
                        self.cancel_wanted = false;
                        self.send_cancel(now);
                    } else if self.cancel_wanted && self.state == State::Ending {
                        // 100 Trying is a provisional response too.
                        self.cancel_wanted = false;
                        self.send_cancel(now);
                    }
                } else if code < 300 {
                    self.stop(RetransmitKind::Invite);
                    self.stop(RetransmitKind::Cancel);
                    if let Some(ack) = &self.ack {
                        // A retransmitted 2xx: our ACK was lost.
                        self.out.push_back(Transmit {
                            to: self.remote_addr,
                            data: ack.clone(),
                        });
                        return;
                    }
                    if self.late_ack == Some(false) {
                        // A retransmitted 2xx while our answer is awaited.
                        return;
                    }
                    self.remote_tag = tag_of(msg.header("To"));
                    if let Some(c) = msg.header("Contact").and_then(|c| NameAddr::parse(c).ok()) {
                        self.remote_target = c.uri.to_string();
                        if let Some(a) = uri_addr(c.uri) {
                            self.remote_addr = a;
                        }
                    }
                    self.no_answer_at = None;
                    let cancelled = self.state == State::Ending || self.state == State::Ended;
                    if self.late_ack.is_some() {
                        self.late_ack = Some(false);
                        if cancelled {
                            self.ack_with(Vec::new(), now);
                        }
                    } else {
                        let ack = self.request("ACK", &branch(), self.invite_cseq).to_bytes();
                        self.out.push_back(Transmit {
                            to: self.remote_addr,
                            data: ack.clone(),
                        });
                        self.ack = Some(ack);
                    }
                    if cancelled {
                        // Answered after we cancelled: the call exists, so end it.
                        self.state = State::Confirmed;
                        self.send_bye(now);
                        return;
                    }
                    self.state = State::Confirmed;
                    self.answered = Some(msg.clone());
                    self.events.push_back(CallEvent::Answered { sdp: msg.body.clone() });
                } else {
                    // Non-2xx final: ACK within the INVITE transaction (17.1.1.3).
                    self.stop(RetransmitKind::Invite);
                    self.stop(RetransmitKind::Cancel);
                    let mut ack = self.invite.clone();
                    ack.start = StartLine::Request {
                        method: "ACK".into(),
                        uri: self.remote_uri.clone(),
                    };
                    ack.headers
                        .retain(|(n, _)| matches!(n.as_str(), "Via" | "From" | "Call-ID" | "Max-Forwards"));
                    ack.push("To", msg.header("To").unwrap_or_default());
                    ack.push("CSeq", format!("{} ACK", self.invite_cseq));
                    ack.body.clear();
                    self.out.push_back(Transmit {
                        to: self.remote_addr,
                        data: ack.to_bytes(),
                    });
                    if self.answer_invite_challenge(msg, code, now) {
                        return;
                    }
                    if self.state != State::Ended {
                        let end = if code == 487 {
                            End::Local
                        } else {
                            End::Rejected {
                                code,
                                reason: reason.to_string(),
                            }
                        };
                        self.end(end);
                    }
                }
            }
            "CANCEL" => self.stop(RetransmitKind::Cancel),
            "BYE" if code >= 200 => {
                self.stop(RetransmitKind::Bye);
                if self.state == State::Ending {
                    self.end(End::Local);
                }
            }
            _ => {}
        }
    }

    pub(super) fn handle_request(&mut self, method: &str, msg: &Message, source: SocketAddr, now: u64) {
        let Some(via) = top_via(msg) else { return };
        if method != "ACK" {
            if let Err(refusal) = validate_request(msg, &[]) {
                let mut r = response(msg, &via, source, refusal.code, &refusal.reason, &self.local_tag);
                for (n, v) in refusal.headers {
                    r.push(n, v);
                }
                self.out.push_back(Transmit {
                    to: source,
                    data: r.to_bytes(),
                });
                return;
            }
        }
        match method {
            "INVITE" if self.role == Role::Callee && via.branch == Some(self.invite_branch.as_str()) => {
                // A retransmission of the INVITE: repeat our last answer.
                if let Some(last) = &self.last_response {
                    self.out.push_back(Transmit {
                        to: self.invite_source,
                        data: last.clone(),
                    });
                }
            }
            "INVITE" => self.incoming_reinvite(msg, &via, source, now),
            "ACK" if cseq_of(msg).is_some_and(|(c, _)| self.ack_for_reinvite(c)) => {}
            "ACK" => {
                if self.role == Role::Callee && self.retransmits.iter().any(|r| r.kind == RetransmitKind::Final) {
                    self.stop(RetransmitKind::Final);
                    if self.state == State::Confirmed {
                        if self.invite.body.is_empty() {
                            self.events.push_back(CallEvent::AckAnswer { sdp: msg.body.clone() });
                        }
                        self.events.push_back(CallEvent::Confirmed);
                    }
                }
            }
            "CANCEL" => {
                self.reply(msg, &via, source, 200, "OK", &[]);
                if self.role == Role::Callee && matches!(self.state, State::Calling | State::Ringing) {
                    self.respond_invite(487, "Request Terminated", now);
                    self.end(End::CancelledByCaller);
                }
            }
            "BYE" => {
                self.reply(msg, &via, source, 200, "OK", &[]);
                if self.state != State::Ended {
                    self.retransmits.retain(|r| r.kind == RetransmitKind::Final);
                    self.end(End::Remote);
                }
            }
            "INFO" => {
                self.reply(msg, &via, source, 200, "OK", &[]);
                let body = String::from_utf8_lossy(&msg.body);
                if let Some(sig) = body.lines().find_map(|l| l.strip_prefix("Signal=")) {
                    if let Some(k) = sig.trim().chars().next() {
                        self.events.push_back(CallEvent::InfoDtmf(k));
                    }
                }
            }
            "REFER" => self.incoming_refer(msg, &via, source),
            "NOTIFY" => self.incoming_notify(msg, &via, source),
            "OPTIONS" | "UPDATE" => self.reply(msg, &via, source, 200, "OK", &[]),
            _ => self.reply(msg, &via, source, 501, "Not Implemented", &[]),
        }
    }
}

/// An INVITE's offer must be SDP, and the answer SDP must be acceptable to
/// the caller: 415 (with Accept) and 406 otherwise (RFC 3261 21.4.13,
/// 21.4.7; RFC 4475 3.3.6 and 3.3.15).
pub(super) fn acceptable_offer(msg: &Message) -> Result<(), Refusal> {
    let media = |v: &str| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !msg.body.is_empty() && msg.header("Content-Type").map(media).as_deref() != Some("application/sdp") {
        let mut r = Refusal::new(415, "Unsupported Media Type");
        r.headers.push(("Accept", "application/sdp".into()));
        return Err(r);
    }
    let accept = msg.header_values("Accept");
    if msg.header("Accept").is_some()
        && !accept
            .iter()
            .any(|a| matches!(media(a).as_str(), "application/sdp" | "application/*" | "*/*"))
    {
        return Err(Refusal::new(406, "Not Acceptable (only application/sdp)"));
    }
    Ok(())
}
