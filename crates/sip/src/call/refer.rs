//! Blind transfer inside a call: REFER (RFC 3515) and the implicit `refer`
//! subscription whose NOTIFYs carry the new call's progress as a
//! `message/sipfrag` status line (RFC 3420).
//!
//! The transferor sends [`Call::refer`]; the answer comes back as
//! [`CallEvent::ReferAccepted`] or [`CallEvent::ReferFailed`] and each
//! NOTIFY as [`CallEvent::TransferProgress`]. The transferee sees
//! [`CallEvent::Referred`] and decides ([`Call::accept_refer`] sends 202
//! and the first NOTIFY, `100 Trying`; [`Call::reject_refer`] refuses),
//! then reports the new call with [`Call::notify_transfer`] until a final
//! status ends the subscription.
//!
//! What this is not: placing the new call or deciding whom a transfer may
//! reach (the phone does both), or consultative transfer (Replaces).

use std::net::SocketAddr;

use super::{Call, CallEvent, Incoming, RetransmitKind, State, Transmit};
use crate::ids::branch;
use crate::message::{response, top_via, NameAddr, SipUri, Via};
use crate::Message;

/// How long the transferee keeps the subscription open (RFC 3515 2.4.4:
/// the NOTIFYs say when it ends).
const SUBSCRIPTION_SECS: u32 = 60;

#[derive(Debug, Default)]
pub(super) struct Refers {
    /// Our REFER's CSeq until its final response.
    outgoing: Option<u32>,
    /// We sent a REFER in this call, so NOTIFYs for `refer` are ours to
    /// take (they may arrive before the 202).
    subscribed: bool,
    incoming: Option<Incoming>,
    /// Our final answer to the last REFER (its Via branch, bytes), for
    /// its retransmissions.
    answered: Option<(String, Vec<u8>)>,
    /// We accepted a REFER and notify its progress until a final status.
    pub(super) notifying: bool,
}

/// The status line of a `message/sipfrag` body: `SIP/2.0 200 OK`.
pub fn parse_sipfrag(body: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim_end();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    if !(100..700).contains(&code) || reason.chars().any(char::is_control) {
        return None;
    }
    Some((code, reason.to_string()))
}

/// The one URI of a Refer-To header (`<sip:…>` or a bare URI), if it is a
/// `sip:` URI that parses.
fn refer_target(value: &str) -> Option<String> {
    let uri = NameAddr::parse(value).ok()?.uri.to_string();
    // Headers embedded in the URI (`?Replaces=…`) are not for blind transfer.
    let bare = uri.split('?').next().unwrap_or_default();
    SipUri::parse(bare).ok()?;
    Some(bare.to_string())
}

impl Call {
    /// Asks the other side to call `target` (a `sip:` URI) and leave us.
    /// `false` when it cannot go now: the call is not established or a
    /// REFER is already under way.
    pub fn refer(&mut self, target: &str, now: u64) -> bool {
        if self.state != State::Confirmed || self.refer.outgoing.is_some() {
            return false;
        }
        self.cseq = self.cseq.max(self.invite_cseq) + 1;
        let cseq = self.cseq;
        let mut m = self.request("REFER", &branch(), cseq);
        m.push("Refer-To", format!("<{target}>"));
        m.push("Referred-By", format!("<{}>", self.local.uri));
        let to = self.remote_addr;
        self.send_reliably(RetransmitKind::Refer, m.to_bytes(), to, true, now);
        self.refer.outgoing = Some(cseq);
        self.refer.subscribed = true;
        true
    }

    /// Whether our REFER is waiting for its answer.
    pub fn refer_pending(&self) -> bool {
        self.refer.outgoing.is_some()
    }

    /// Takes the REFER reported as [`CallEvent::Referred`]: 202, then the
    /// first NOTIFY (`100 Trying`). The phone places the new call and
    /// reports it with [`Call::notify_transfer`].
    pub fn accept_refer(&mut self, now: u64) {
        let Some(inc) = self.refer.incoming.take() else { return };
        self.refer_final(&inc, 202, "Accepted");
        self.refer.notifying = true;
        self.notify_transfer(100, "Trying", now);
    }

    /// Refuses the REFER reported as [`CallEvent::Referred`] (603 when the
    /// user declines, 403 for a target the phone will not call).
    pub fn reject_refer(&mut self, code: u16, reason: &str) {
        let Some(inc) = self.refer.incoming.take() else { return };
        self.refer_final(&inc, code, reason);
    }

    /// Whether a REFER waits for [`Call::accept_refer`] or
    /// [`Call::reject_refer`].
    pub fn refer_waiting(&self) -> bool {
        self.refer.incoming.is_some()
    }

    /// Tells the transferor how the new call goes: a provisional status
    /// keeps the subscription, a final one ends it.
    pub fn notify_transfer(&mut self, code: u16, reason: &str, now: u64) {
        if !self.refer.notifying || matches!(self.state, State::Ended) {
            return;
        }
        let state = if code >= 200 {
            self.refer.notifying = false;
            "terminated;reason=noresource".to_string()
        } else {
            format!("active;expires={SUBSCRIPTION_SECS}")
        };
        self.cseq = self.cseq.max(self.invite_cseq) + 1;
        let cseq = self.cseq;
        let mut m = self.request("NOTIFY", &branch(), cseq);
        m.push("Event", "refer");
        m.push("Subscription-State", state);
        m.push("Content-Type", "message/sipfrag;version=2.0");
        m.body = format!("SIP/2.0 {code} {reason}\r\n").into_bytes();
        let to = self.remote_addr;
        // One NOTIFY at a time is enough: a newer status replaces the older.
        self.stop(RetransmitKind::Notify);
        self.send_reliably(RetransmitKind::Notify, m.to_bytes(), to, true, now);
    }

    fn refer_final(&mut self, inc: &Incoming, code: u16, reason: &str) {
        let Some(via) = top_via(&inc.msg) else { return };
        let mut r = response(&inc.msg, &via, inc.source, code, reason, &self.local_tag);
        r.push("User-Agent", self.local.user_agent.clone());
        if code < 300 {
            r.push("Contact", format!("<{}>", self.contact_uri()));
        }
        let data = r.to_bytes();
        self.out.push_back(Transmit {
            to: inc.source,
            data: data.clone(),
        });
        self.refer.answered = Some((inc.via_branch.clone(), data));
    }

    /// A REFER from the other side.
    pub(super) fn incoming_refer(&mut self, msg: &Message, via: &Via, source: SocketAddr) {
        let b = via.branch.unwrap_or_default().to_string();
        let answered = self.refer.answered.as_ref().map(|(ab, data)| (ab.as_str(), data.as_slice()));
        if super::repeat_answer(&mut self.out, answered, &b, source) {
            return;
        }
        if self.refer.incoming.as_ref().is_some_and(|i| i.via_branch == b) {
            return; // still deciding
        }
        let targets = msg.header_values("Refer-To");
        if targets.len() != 1 {
            return self.reply(msg, via, source, 400, "Bad Request (one Refer-To is needed)", &[]);
        }
        let Some(target) = refer_target(targets[0]) else {
            return self.reply(msg, via, source, 400, "Bad Request (Refer-To is not a sip URI)", &[]);
        };
        if self.state != State::Confirmed {
            return self.reply(msg, via, source, 403, "Forbidden (the call is not established)", &[]);
        }
        if self.refer.incoming.is_some() || self.refer.notifying {
            return self.reply(msg, via, source, 491, "Request Pending", &[]);
        }
        self.refer.incoming = Some(Incoming {
            msg: msg.clone(),
            via_branch: b,
            source,
        });
        let referred_by = msg
            .header("Referred-By")
            .and_then(|v| NameAddr::parse(v).ok())
            .map(|n| n.uri.to_string());
        self.events.push_back(CallEvent::Referred { target, referred_by });
    }

    /// A NOTIFY in this dialog: progress of our REFER, or 481 for a
    /// subscription we do not have.
    pub(super) fn incoming_notify(&mut self, msg: &Message, via: &Via, source: SocketAddr) {
        let event = msg.header("Event").unwrap_or_default();
        let package = event.split(';').next().unwrap_or_default().trim();
        if !package.eq_ignore_ascii_case("refer") || !self.refer.subscribed {
            return self.reply(msg, via, source, 481, "Subscription Does Not Exist", &[]);
        }
        let Some((code, reason)) = parse_sipfrag(&msg.body) else {
            return self.reply(msg, via, source, 400, "Bad Request (the body is not a sipfrag status line)", &[]);
        };
        self.reply(msg, via, source, 200, "OK", &[]);
        let terminated = msg
            .header("Subscription-State")
            .is_some_and(|s| s.trim_start().to_ascii_lowercase().starts_with("terminated"));
        let done = terminated || code >= 200;
        if done {
            self.refer.subscribed = false;
        }
        self.events.push_back(CallEvent::TransferProgress { code, reason, done });
    }

    /// A response to our REFER (`cseq`) or NOTIFY.
    pub(super) fn refer_response(&mut self, method: &str, code: u16, reason: &str, cseq: u32) -> bool {
        match method {
            "REFER" if self.refer.outgoing == Some(cseq) => {
                if code < 200 {
                    return true;
                }
                self.stop(RetransmitKind::Refer);
                self.refer.outgoing = None;
                if code < 300 {
                    self.events.push_back(CallEvent::ReferAccepted);
                } else {
                    self.refer.subscribed = false;
                    self.events.push_back(CallEvent::ReferFailed {
                        code,
                        reason: reason.to_string(),
                    });
                }
                true
            }
            "NOTIFY" => {
                if code >= 200 {
                    self.stop(RetransmitKind::Notify);
                }
                if code == 481 {
                    // The transferor forgot the subscription: stop telling it.
                    self.refer.notifying = false;
                }
                true
            }
            _ => false,
        }
    }

    /// Our REFER got no answer at all (Timer F).
    pub(super) fn refer_timed_out(&mut self) {
        if self.refer.outgoing.take().is_some() {
            self.refer.subscribed = false;
            self.events.push_back(CallEvent::ReferFailed {
                code: 408,
                reason: "Request Timeout".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_status_lines() {
        assert_eq!(parse_sipfrag(b"SIP/2.0 200 OK\r\n"), Some((200, "OK".into())));
        assert_eq!(parse_sipfrag(b"SIP/2.0 180 Ringing"), Some((180, "Ringing".into())));
        assert_eq!(
            parse_sipfrag(b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n"),
            Some((486, "Busy Here".into()))
        );
        assert_eq!(parse_sipfrag(b"SIP/2.0 100"), Some((100, String::new())));
        for bad in [
            &b""[..],
            b"HTTP/1.1 200 OK",
            b"SIP/2.0 20 OK",
            b"SIP/2.0 999 x",
            b"SIP/2.0 200 O\x1bK",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_sipfrag(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn refer_to_values() {
        assert_eq!(
            refer_target("<sip:886021234567@10.0.0.1:5062>").as_deref(),
            Some("sip:886021234567@10.0.0.1:5062")
        );
        assert_eq!(refer_target("sip:bob@example.com").as_deref(), Some("sip:bob@example.com"));
        assert_eq!(
            refer_target("<sip:bob@example.com?Replaces=abc%40x>").as_deref(),
            Some("sip:bob@example.com")
        );
        assert_eq!(refer_target("<mailto:bob@example.com>"), None);
        assert_eq!(refer_target("garbage"), None);
    }
}
