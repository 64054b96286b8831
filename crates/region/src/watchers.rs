//! Watchers from other regions (design §9, "trust in every new exchange").
//!
//! A phone proves its number to its own region with its SIP credentials;
//! another region has none of them. So a SUBSCRIBE from elsewhere carries an
//! `Identity` header (RFC 8224): a PASSporT the watcher's region signed with
//! `orig` = the watcher and `dest` = the watched number. This region finds
//! the signer's key through DNS alone (`peerdial_resolve::keys`: TXT at the
//! watcher's area zone apex, cached for its TTL), checks the token, and
//! hands the agent the watcher's number, so a friends-only presence is shown
//! to the owner's friends wherever they are.
//!
//! A verified dialog is remembered (Call-ID, From tag and source), so its
//! retransmissions and refreshes, whose token has long expired or was seen
//! already, stay the same watcher. An unverifiable token makes the watcher
//! anonymous; it is never an error for the request.
//!
//! What this is not: the digest check of the region's own phones
//! (`Registrar::authenticate`), or the presence agent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use peerdial_identity::PublicKey;
use peerdial_number::Number;
use peerdial_resolve::keys::Tokens;
use peerdial_resolve::Dns;
use peerdial_sip::message::{SipUri, StartLine};
use peerdial_sip::Message;

/// How long a verified dialog stays known: longer than any subscription
/// the agent grants, so refreshes keep their watcher.
const REMEMBER_MS: u64 = 2 * 3_600_000;
/// Verified dialogs remembered at most (the oldest goes first).
const MAX_DIALOGS: usize = 20_000;

/// What a SUBSCRIBE says about who sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A dialog verified before.
    Known(Number),
    /// A token to check.
    Token(Token),
    /// Nothing to check: anonymous.
    None,
}

/// An `Identity` header and the numbers it must be for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub watcher: Number,
    pub watched: Number,
    pub header: String,
}

type DialogKey = (String, String, SocketAddr);

pub struct SignedWatchers {
    own_area: peerdial_number::Area,
    own_key: PublicKey,
    dns: Option<Dns>,
    tokens: Tokens,
    dialogs: Mutex<HashMap<DialogKey, (Number, u64)>>,
}

fn dialog_key(msg: &Message, source: SocketAddr) -> Option<DialogKey> {
    let call_id = msg.header("Call-ID")?.to_string();
    let from = msg.header("From")?;
    let tag = from.split(';').find_map(|p| p.trim().strip_prefix("tag="))?.to_string();
    Some((call_id, tag, source))
}

/// The user part of a name-addr or URI as a number.
fn number_in(value: &str) -> Option<Number> {
    let uri = match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next()?.trim(),
    };
    Number::parse(SipUri::parse(uri).ok()?.user?).ok()
}

impl SignedWatchers {
    /// `dns`: where other areas' keys are found (a resolver, or the tree's
    /// directory); without it, only tokens signed by this region verify.
    pub fn new(own_area: peerdial_number::Area, own_key: PublicKey, root: &str, dns: Option<Dns>) -> SignedWatchers {
        SignedWatchers {
            own_area,
            own_key,
            dns,
            tokens: Tokens::new(root),
            dialogs: Mutex::new(HashMap::new()),
        }
    }

    /// Where other areas' records are found, when this region knows.
    pub fn dns(&self) -> Option<&Dns> {
        self.dns.as_ref()
    }

    /// What `msg` (a SUBSCRIBE without credentials) claims.
    pub fn claim(&self, msg: &Message, source: SocketAddr, now: u64) -> Claim {
        if let Some(key) = dialog_key(msg, source) {
            if let Some((n, until)) = self.dialogs.lock().expect("dialogs").get(&key) {
                if *until > now {
                    return Claim::Known(*n);
                }
            }
        }
        let Some(token) = msg.header("Identity") else { return Claim::None };
        let watched = match &msg.start {
            StartLine::Request { uri, .. } => SipUri::parse(uri).ok().and_then(|u| u.user).and_then(|u| Number::parse(u).ok()),
            _ => None,
        };
        match (msg.header("From").and_then(number_in), watched) {
            (Some(watcher), Some(watched)) => Claim::Token(Token {
                watcher,
                watched,
                header: token.to_string(),
            }),
            _ => Claim::None,
        }
    }

    /// Checks a token (finding the signer's key first); on success the
    /// dialog is remembered. `unix_ms`: the wall clock, for token times;
    /// `now`: the region's clock, for the memory.
    pub async fn verify(&self, msg: &Message, source: SocketAddr, t: &Token, unix_ms: u64, now: u64) -> Option<Number> {
        let watcher = self.verify_token(t.watcher, t.watched, &t.header, unix_ms).await?;
        if let Some(key) = dialog_key(msg, source) {
            let mut d = self.dialogs.lock().expect("dialogs");
            d.retain(|_, (_, until)| *until > now);
            if d.len() >= MAX_DIALOGS {
                if let Some(oldest) = d.iter().min_by_key(|(_, (_, u))| *u).map(|(k, _)| k.clone()) {
                    d.remove(&oldest);
                }
            }
            d.insert(key, (watcher, now + REMEMBER_MS));
        }
        Some(watcher)
    }

    /// Checks an `Identity` header value claiming that `orig` (of any
    /// area) speaks to `dest`, finding the signer's key through DNS; each
    /// token verifies once (replays are refused). Used for watchers and
    /// for posts to a private channel.
    pub async fn verify_token(&self, orig: Number, dest: Number, token: &str, unix_ms: u64) -> Option<Number> {
        let checked = if orig.area() == self.own_area {
            self.tokens
                .check_with(std::slice::from_ref(&self.own_key), orig, dest, token, unix_ms)
        } else {
            match &self.dns {
                Some(dns) => self.tokens.check(dns, orig, dest, token, unix_ms).await,
                None => Err("no way to find another region's key".into()),
            }
        };
        match checked {
            Ok(()) => Some(orig),
            Err(reason) => {
                tracing::debug!(%orig, %reason, "identity not verified");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerdial_identity::{Passport, SigningKey};

    fn subscribe(from: &str, to: &str, identity: Option<&str>) -> Message {
        let mut s = format!(
            "SUBSCRIBE sip:{to}@r SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
From: <sip:{from}@127.0.0.1:5070>;tag=ft\r\nTo: <sip:{to}@r>\r\nCall-ID: c1\r\nCSeq: 1 SUBSCRIBE\r\n\
Event: presence\r\nContact: <sip:{from}@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n"
        );
        if let Some(i) = identity {
            s.push_str(&format!("Identity: {i}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(s.as_bytes()).expect("message")
    }

    #[tokio::test]
    async fn a_token_from_the_watchers_region_makes_it_that_watcher_for_the_dialog() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        let w = SignedWatchers::new(
            peerdial_number::Area::parse("886-02").unwrap(),
            key.public_key().clone(),
            "peerdial.internal.",
            None,
        );
        let (watcher, watched) = (Number::parse("886-02-00000001").unwrap(), Number::parse("886-02-00000002").unwrap());
        let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let now_unix = 1_800_000_000_000;
        let token = |k: &SigningKey, dest: Number| {
            let t = Passport::sign(k, watcher, &[dest], now_unix / 1000, 60, "https://r/key").unwrap();
            peerdial_identity::IdentityHeader::new(t, "https://r/key").to_string()
        };
        // No header: anonymous.
        assert_eq!(w.claim(&subscribe("8860200000001", "8860200000002", None), src, 0), Claim::None);
        // Signed by another key, or for another number: not verified.
        for bad in [token(&other, watched), token(&key, Number::parse("886-02-00000003").unwrap())] {
            let m = subscribe("8860200000001", "8860200000002", Some(&bad));
            let Claim::Token(t) = w.claim(&m, src, 0) else { panic!("no claim") };
            assert_eq!(w.verify(&m, src, &t, now_unix, 0).await, None);
        }
        // The right token: verified, and the dialog stays that watcher.
        let m = subscribe("8860200000001", "8860200000002", Some(&token(&key, watched)));
        let Claim::Token(t) = w.claim(&m, src, 0) else { panic!("no claim") };
        assert_eq!(w.verify(&m, src, &t, now_unix, 0).await, Some(watcher));
        assert_eq!(w.claim(&m, src, 1000), Claim::Known(watcher));
        // …but not from another address, nor after it is forgotten.
        assert!(matches!(w.claim(&m, "127.0.0.1:5071".parse().unwrap(), 1000), Claim::Token(..)));
        assert!(matches!(w.claim(&m, src, REMEMBER_MS + 1), Claim::Token(..)));
        // Another area's token with no way to find its key: anonymous.
        let far = Number::parse("886-03-00000001").unwrap();
        let far_token = Token { watcher: far, ..t };
        assert_eq!(w.verify(&m, src, &far_token, now_unix, 0).await, None);
    }
}
