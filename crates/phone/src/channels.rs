//! The phone's side of broadcasts, channels and the marquee (issue 11).
//!
//! - Text MESSAGEs (RFC 3428) from the region (broadcasts, private items)
//!   or anyone else are answered 200 and shown; a body that is not
//!   `text/plain` gets 415, one that is not UTF-8 400. Every text is
//!   cleaned of escape sequences and control characters before it reaches
//!   the display ([`peerdial_channels::text::clean`]), and a MESSAGE that
//!   did not come from our region's address is marked so.
//! - The marquee: every `--marquee-interval` the phone asks its region for
//!   one item (`GET /api/v1/marquee`); at most one request is in flight.
//! - `subscribe NAME`, `unsubscribe NAME`, `channels`, `post NUMBER TEXT`
//!   (to a friend's private channel, on the friend's region, found through
//!   DNS; from another area with our region's PASSporT) and `publish
//!   CHANNEL TEXT` (as a publisher, through our region: a global channel's
//!   post goes on to the top).

use std::net::SocketAddr;
use std::time::Duration;

use peerdial_channels::text::clean;
use peerdial_number::Number;
use peerdial_sip::Message;
use serde_json::{json, Value};

use crate::display::UiEvent;
use crate::provision::Identity;
use crate::{account, Command, Phone, PhoneError};

/// What the user asked of channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelCommand {
    Subscribe(String),
    Unsubscribe(String),
    List,
    /// Post to the private channel of a friend.
    Post {
        to: String,
        text: String,
    },
    /// Post to a channel we publish on (local, or global through our region).
    Publish {
        channel: String,
        text: String,
    },
}

/// A marquee item as the region handed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarqueeItem {
    /// `None`: our private channel.
    pub channel: Option<String>,
    pub poster: Option<String>,
    pub text: String,
}

#[derive(Default)]
pub struct MarqueeSide {
    pub next_poll: u64,
    pub in_flight: bool,
}

/// The error text of a region's JSON answer, cleaned.
pub(crate) fn refusal(r: &crate::http::Response) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    clean(v["error"].as_str().unwrap_or("no reason given"))
}

async fn marquee(id: &Identity) -> Result<Option<MarqueeItem>, PhoneError> {
    let r = account::to_region(id, "GET", "/api/v1/marquee", None, Duration::from_secs(5)).await?;
    match r.status {
        204 => Ok(None),
        200 => {
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| PhoneError::Http(format!("marquee answer: {e}")))?;
            let field = |k: &str| v[k].as_str().map(clean);
            Ok(Some(MarqueeItem {
                channel: field("channel"),
                poster: field("poster"),
                text: field("text").unwrap_or_default(),
            }))
        }
        s => Err(PhoneError::Http(format!(
            "the region answered {s} for the marquee: {}",
            refusal(&r)
        ))),
    }
}

/// Runs a channel command; the line to show.
async fn run(id: Identity, dns: Option<peerdial_resolve::Dns>, root: String, c: ChannelCommand) -> Result<String, PhoneError> {
    let t = Duration::from_secs(5);
    let on = matches!(c, ChannelCommand::Subscribe(_));
    match c {
        ChannelCommand::Subscribe(name) | ChannelCommand::Unsubscribe(name) => {
            let path = format!("/api/v1/channels/{}/subscription", urlencode(&name));
            let r = account::to_region(&id, if on { "PUT" } else { "DELETE" }, &path, None, t).await?;
            if r.status != 200 {
                return Err(PhoneError::Http(format!("the region answered {}: {}", r.status, refusal(&r))));
            }
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let subs: Vec<String> = v["subscriptions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str())
                .map(clean)
                .collect();
            Ok(format!(
                "{} {}; subscriptions: {}",
                if on { "subscribed to" } else { "unsubscribed from" },
                clean(&name),
                if subs.is_empty() { "none".to_string() } else { subs.join(", ") }
            ))
        }
        ChannelCommand::List => {
            let r = account::to_region(&id, "GET", "/api/v1/channels", None, t).await?;
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let list: Vec<String> = v["channels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let mark = if c["subscribed"].as_bool() == Some(true) { "*" } else { "" };
                    format!("{}{mark}", clean(c["name"].as_str().unwrap_or_default()))
                })
                .collect();
            Ok(format!(
                "channels (* subscribed): {}",
                if list.is_empty() { "none".into() } else { list.join(" ") }
            ))
        }
        ChannelCommand::Publish { channel, text } => {
            let path = format!("/api/v1/channels/{}/items", urlencode(&channel));
            let r = account::to_region(&id, "POST", &path, Some(&json!({ "text": text })), t).await?;
            if r.status != 201 {
                return Err(PhoneError::Http(format!("the region answered {}: {}", r.status, refusal(&r))));
            }
            Ok(format!("posted to channel {}", clean(&channel)))
        }
        ChannelCommand::Post { to, text } => {
            let own = Number::parse(&id.number)?;
            let owner = if to.contains('-') || to.len() > 8 {
                Number::parse(&to)?
            } else {
                Number::parse(&format!("{}-{to}", id.area))?
            };
            let body = json!({ "text": text });
            let path = format!("/api/v1/private/{}", owner.digits());
            let r = if owner.area() == own.area() {
                account::to_region(&id, "POST", &path, Some(&body), t).await?
            } else {
                // Another region: prove our number with our region's PASSporT.
                let b = body.to_string();
                crate::caller_id::signed_post(&id, dns, &root, owner, &path, ("application/json", b.as_bytes()), t).await?
            };
            if r.status != 201 {
                return Err(PhoneError::Http(format!("{owner}'s region answered {}: {}", r.status, refusal(&r))));
            }
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            Ok(format!(
                "posted to {owner}'s private channel{}",
                if v["sent_now"].as_bool() == Some(true) {
                    " (delivered now)"
                } else {
                    " (kept until the phone is back)"
                }
            ))
        }
    }
}

/// Channel names are [a-z0-9-]; anything else is sent escaped and the
/// region refuses it.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The name shown for a MESSAGE's sender: the From display name, else the
/// user part (a number is shown as a number), cleaned.
fn sender(msg: &Message) -> String {
    let from = msg.header("From").unwrap_or_default();
    let Ok(na) = peerdial_sip::message::NameAddr::parse(from) else {
        return "unknown".into();
    };
    let display = from.find('<').map(|at| from[..at].trim().trim_matches('"').replace("\\\"", "\""));
    let name = display.map(|d| clean(&d)).filter(|d| !d.is_empty());
    let user = peerdial_sip::message::SipUri::parse(na.uri)
        .ok()
        .and_then(|u| u.user.map(str::to_string));
    match (name, user) {
        (Some(n), _) => n,
        (None, Some(u)) => Number::parse(&u).map(|n| n.to_string()).unwrap_or_else(|_| clean(&u)),
        (None, None) => "unknown".into(),
    }
}

impl Phone {
    /// A MESSAGE outside any dialog.
    pub(crate) fn on_message(&mut self, data: &[u8], msg: &Message, from: SocketAddr) {
        let ctype = msg.header("Content-Type").unwrap_or("text/plain").to_ascii_lowercase();
        if ctype.split(';').next().is_none_or(|t| t.trim() != "text/plain") {
            self.reply_stateless(data, from, 415, "Unsupported Media Type", &[("Accept", "text/plain")]);
            return;
        }
        let Ok(text) = std::str::from_utf8(&msg.body) else {
            self.reply_stateless(data, from, 400, "Body Is Not UTF-8", &[]);
            return;
        };
        self.reply_stateless(data, from, 200, "OK", &[]);
        if !self.mailbox.first_delivery(msg) {
            return;
        }
        let text = clean(text);
        if text.is_empty() {
            return;
        }
        self.emit(UiEvent::Message {
            from: sender(msg),
            text,
            via_region: from.ip() == self.id.registrar.ip(),
        });
    }

    pub(crate) fn on_channel_command(&mut self, c: ChannelCommand) {
        let (id, dns, root, tx) = (self.id.clone(), self.dns.clone(), self.root.clone(), self.cmd_tx.clone());
        tokio::spawn(async move {
            let line = run(id, dns, root, c).await.unwrap_or_else(|e| format!("not done: {e}"));
            let _ = tx.send(Command::Notice(line)).await;
        });
    }

    /// Asks for the next marquee item when it is time.
    pub(crate) fn poll_marquee(&mut self, now: u64) {
        let every = self.cfg.marquee_interval_ms;
        if self.marquee_wake() > now {
            return;
        }
        self.marquee.in_flight = true;
        self.marquee.next_poll = now + every;
        let (id, tx) = (self.id.clone(), self.cmd_tx.clone());
        tokio::spawn(async move {
            let r = marquee(&id).await.map_err(|e| e.to_string());
            let _ = tx.send(Command::Marquee(r)).await;
        });
    }

    pub(crate) fn on_marquee(&mut self, r: Result<Option<MarqueeItem>, String>) {
        self.marquee.in_flight = false;
        match r {
            Ok(Some(item)) => self.emit(UiEvent::Marquee {
                channel: item.channel,
                poster: item.poster,
                text: item.text,
            }),
            Ok(None) => {}
            Err(e) => tracing::debug!("marquee: {e}"),
        }
    }

    /// When the marquee is next asked for (never while unregistered: the
    /// event loop would find it due on every turn).
    pub(crate) fn marquee_wake(&self) -> u64 {
        if self.cfg.marquee_interval_ms == 0 || self.marquee.in_flight || self.snapshot.registered != Some(true) {
            u64::MAX
        } else {
            self.marquee.next_poll
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_shown_clean() {
        let m = |from: &str| {
            Message::parse(format!("MESSAGE sip:x@y SIP/2.0\r\nFrom: {from}\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n\r\n").as_bytes()).unwrap()
        };
        assert_eq!(sender(&m("\"peerdial 886-02\" <sip:broadcast@r>;tag=1")), "peerdial 886-02");
        assert_eq!(sender(&m("<sip:8860210000001@r>;tag=1")), "886-02-10000001");
        assert_eq!(sender(&m("<sip:alice@r>;tag=1")), "alice");
        assert_eq!(urlencode("news"), "news");
        assert_eq!(urlencode("a/b c"), "a%2Fb%20c");
    }
}
