//! SIP that arrives outside the registration's answers: requests and
//! responses for our calls, presence and messages, and the stateless
//! answers to everything else (RFC 3261 8.2.1, 12.2.2: 481 for a dialog we
//! do not have, 405 or 501 with Allow, 400 for what does not parse).
//!
//! What this is not: the call state machine (`peerdial_sip::call`) or the
//! handling of each request (calls.rs, presence.rs, channels.rs).

use std::net::SocketAddr;

use peerdial_sip::Message;

use crate::{Phone, ALLOW};

impl Phone {
    pub(crate) fn on_sip(&mut self, data: &[u8], from: SocketAddr) {
        let now = self.now();
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%from, "unparseable SIP: {e}");
                // A request we can partly read still deserves a 400.
                self.reply_stateless(data, from, 400, "Bad Request", &[]);
                return;
            }
        };
        let cid = msg.header("Call-ID").unwrap_or_default().to_string();
        if !self.calls.contains_key(&cid) && (self.on_presence_sip(&msg, from, &cid) || self.on_mwi_sip(&msg, from, &cid)) {
            return;
        }
        if !msg.is_request() {
            if self.on_message_response(&msg) {
                return;
            }
            if let Some(s) = self.calls.get_mut(&cid) {
                s.call.handle(&msg, from, now);
            } else {
                self.reg.handle(&msg, now);
            }
            return;
        }
        if let Some(s) = self.calls.get_mut(&cid) {
            s.call.handle(&msg, from, now);
            return;
        }
        // Outside any call (RFC 3261 8.2.1, 12.2.2): a request for a dialog
        // we do not have gets 481; a method we do not do, 405 or 501 with
        // Allow. Invalid requests get 400 first (in stateless_response).
        let no_dialog = "Call/Transaction Does Not Exist";
        let in_dialog =
            peerdial_sip::message::NameAddr::parse(msg.header("To").unwrap_or_default()).is_ok_and(|t| t.param("tag").is_some());
        let allow = [("Allow", ALLOW)];
        match msg.method().unwrap_or_default() {
            "ACK" => {}
            "INVITE" if in_dialog => self.reply_stateless(data, from, 481, no_dialog, &[]),
            "INVITE" => self.on_invite(data, &msg, from, now),
            "MESSAGE" => self.on_message(data, &msg, from),
            "OPTIONS" => self.reply_stateless(data, from, 200, "OK", &[("Allow", ALLOW), ("Accept", "application/sdp")]),
            "BYE" | "CANCEL" | "INFO" | "UPDATE" | "PRACK" | "NOTIFY" => self.reply_stateless(data, from, 481, no_dialog, &[]),
            "REGISTER" => self.reply_stateless(data, from, 405, "Method Not Allowed", &allow),
            _ => self.reply_stateless(data, from, 501, "Not Implemented", &allow),
        }
    }

    pub(crate) fn reply_stateless(&mut self, data: &[u8], from: SocketAddr, code: u16, reason: &str, headers: &[(&str, &str)]) {
        if let Ok(Some(t)) = peerdial_sip::call::stateless_response(data, from, code, reason, headers) {
            let sip = self.sip.clone();
            tokio::spawn(async move {
                let _ = sip.send_to(&t.data, t.to).await;
            });
        }
    }
}
