//! The phone's subscription to its own `message-summary` (RFC 3842):
//! started once registered, on the presence watcher's dialog code
//! ([`Package::MessageSummary`]); each NOTIFY whose body reads as a
//! summary makes `mailbox.rs` fetch the list at once.
//!
//! What this is not: the list itself (`mailbox.rs`, over HTTP), or the
//! region's side (`peerdial-region`'s `mailbox_mwi`).

use std::net::SocketAddr;

use peerdial_presence::client::{Package, Watcher, WatcherConfig};

use crate::Phone;

impl Phone {
    /// Registered: watch our own mailbox (once; a new identity starts
    /// afresh). A `call N` phone is gone before anything arrives.
    pub(crate) fn start_mwi(&mut self) {
        if self.mailbox.mwi.is_some() || self.cfg.dial.is_some() || self.cfg.switch.is_some() {
            return;
        }
        let mut w = Watcher::new(WatcherConfig {
            server: self.id.registrar,
            domain: self.own.area().zone_name(&self.root).trim_end_matches('.').to_string(),
            target: self.own,
            local: self.snapshot.sip,
            user: Some(self.id.sip_username.clone()),
            password: Some(self.id.sip_password.clone()),
            expires: 3600,
            user_agent: format!("peerdial-phone/{}", env!("CARGO_PKG_VERSION")),
            signed: false,
            package: Package::MessageSummary,
        });
        w.start(self.now());
        self.mailbox.mwi = Some(w);
    }

    /// A NOTIFY of our message-summary, or an answer to our SUBSCRIBE.
    pub(crate) fn on_mwi_sip(&mut self, msg: &peerdial_sip::Message, from: SocketAddr, cid: &str) -> bool {
        let now = self.now();
        let Some(w) = self.mailbox.mwi.as_mut().filter(|w| w.call_id() == cid) else {
            return false;
        };
        if let Some(t) = w.handle(msg, from, now) {
            let sip = self.sip.clone();
            tokio::spawn(async move {
                let _ = sip.send_to(&t.data, t.to).await;
            });
        }
        true
    }

    /// Quitting: end the subscription (flushed with the rest).
    pub(crate) fn stop_mwi(&mut self) {
        let now = self.now();
        if let Some(w) = &mut self.mailbox.mwi {
            w.stop(now);
        }
    }

    /// A new identity: the old subscription's credentials are gone.
    pub(crate) fn forget_mwi(&mut self) {
        self.mailbox.mwi = None;
    }

    /// Queues what the subscription sends; whether a NOTIFY said the
    /// mailbox changed.
    pub(crate) fn poll_mwi(&mut self, out: &mut Vec<(Vec<u8>, SocketAddr)>) -> bool {
        let Some(w) = &mut self.mailbox.mwi else { return false };
        out.extend(std::iter::from_fn(|| w.poll_transmit()).map(|t| (t.data, t.to)));
        let mut changed = false;
        while let Some(body) = w.poll_body() {
            match peerdial_mailbox::summary::Summary::parse(&body) {
                Ok(_) => changed = true,
                Err(e) => tracing::debug!("a message-summary NOTIFY we cannot read: {e}"),
            }
        }
        changed
    }
}
