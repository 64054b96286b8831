//! PUBLISH (RFC 3903) for the `presence` event: a phone publishes its own
//! state; the server keeps one publication per number with an entity tag,
//! refreshed (SIP-If-Match, no body), modified (SIP-If-Match with a body),
//! removed (Expires: 0) or expired.

use std::net::SocketAddr;

use peerdial_number::Number;
use peerdial_sip::message::{response, Via};
use peerdial_sip::Message;

use crate::pidf;
use crate::server::{PresenceServer, Publication, Timer, WatcherAuth};
use crate::sip_util::{seconds, token};

impl PresenceServer {
    pub(crate) fn publish(&mut self, msg: &Message, via: &Via, source: SocketAddr, watcher: WatcherAuth, now: u64) -> Message {
        let plain = |code: u16, reason: &str| response(msg, via, source, code, reason, &token(10));
        let Some(number) = PresenceServer::presentity(msg).filter(|n| self.entries.contains_key(n)) else {
            return plain(404, "Not Found");
        };
        // Only the number itself may publish its presence.
        if watcher != WatcherAuth::Authenticated(number) {
            return plain(403, "Forbidden");
        }
        let expires = match seconds(msg, "Expires") {
            None => self.cfg.publish_default_expires,
            Some(Ok(0)) => 0,
            Some(Ok(e)) => e.clamp(self.cfg.publish_min_expires, self.cfg.publish_max_expires),
            Some(Err(())) => return plain(400, "Bad Expires"),
        };
        let if_match = msg.header("SIP-If-Match").map(str::trim);
        let entry = self.entries.get_mut(&number).expect("checked above");
        if let Some(tag) = if_match {
            if entry.publication.as_ref().is_none_or(|p| p.etag != tag) {
                return plain(412, "Conditional Request Failed");
            }
        } else if msg.body.is_empty() {
            return plain(400, "Missing Body");
        }
        let doc = if msg.body.is_empty() {
            None
        } else {
            let ctype = msg.header("Content-Type").unwrap_or_default();
            let ctype = ctype.split(';').next().unwrap_or_default().trim();
            if !ctype.eq_ignore_ascii_case(pidf::CONTENT_TYPE) {
                let mut r = plain(415, "Unsupported Media Type");
                r.push("Accept", pidf::CONTENT_TYPE);
                return r;
            }
            match pidf::decode(&msg.body) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::debug!(%number, error = %e, "malformed PIDF in PUBLISH");
                    return plain(400, "Bad PIDF Document");
                }
            }
        };
        if expires == 0 {
            entry.publication = None;
            let mut ok = plain(200, "OK");
            ok.push("Expires", "0");
            self.recompute(number, now);
            return ok;
        }
        let etag = token(12);
        let expires_at = now + expires as u64 * 1000;
        let publication = match (entry.publication.take(), doc) {
            (Some(old), None) => Publication {
                etag: etag.clone(),
                expires_at,
                ..old
            },
            (_, Some(d)) => Publication {
                etag: etag.clone(),
                state: d.state,
                note: d.note,
                expires_at,
            },
            // Not reached: without If-Match a body is required, with it a publication exists.
            (None, None) => return plain(412, "Conditional Request Failed"),
        };
        entry.publication = Some(publication);
        self.schedule(expires_at, Timer::PublishExpiry(number));
        self.recompute(number, now);
        let mut ok = plain(200, "OK");
        ok.push("SIP-ETag", etag);
        ok.push("Expires", expires.to_string());
        ok
    }

    pub(crate) fn publish_expiry(&mut self, number: Number, now: u64) {
        let Some(e) = self.entries.get_mut(&number) else { return };
        if e.publication.as_ref().is_some_and(|p| p.expires_at <= now) {
            e.publication = None;
            self.recompute(number, now);
        }
    }

    /// The state the number's phone published, if a publication is live.
    pub fn published(&self, number: Number) -> Option<crate::State> {
        self.entries.get(&number)?.publication.as_ref().map(|p| p.state)
    }
}
