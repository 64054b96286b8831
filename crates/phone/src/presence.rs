//! Presence at the phone (design §9, RFC 3903/6665): publishing our own
//! state with `peerdial_presence::Publisher` (the user's `status`, and
//! "on-the-phone" while a call is up), asking a callee's region for its
//! presence before a call (SRV `_peerdial._tcp`, `GET /api/v1/presence/N`),
//! and watching contacts with `peerdial_presence::Watcher` (SUBSCRIBE to the
//! region that SRV `_sip._udp` names for the contact's area).
//!
//! What this is not: the presence server (the region), or PIDF (the
//! presence crate). Nothing is published until the user sets a status or a
//! call starts, so a phone that never uses presence sends no PUBLISH.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use peerdial_number::{Area, Number};
use peerdial_presence::client::{Package, PublishEvent, Publisher, PublisherConfig, Watcher, WatcherConfig};
use peerdial_presence::State;

use crate::display::{PresenceView, UiEvent};
use crate::resolve::{self, Dns};
use crate::{Command, Phone};

/// What the phone keeps of presence.
pub(crate) struct PresenceSide {
    pub publisher: Option<Publisher>,
    /// What the user chose (`status …`); Online by default.
    pub chosen: State,
    /// What we last asked the publisher to hold.
    pub asked: Option<State>,
    /// Watchers, one per watched number.
    pub watchers: HashMap<Number, Watcher>,
    /// Watched numbers whose PASSporT is being asked for.
    pub signing: HashSet<Number>,
    /// Names from the contacts file, and the last state shown per number.
    pub names: HashMap<Number, String>,
    pub shown: HashMap<Number, Option<State>>,
    /// The whole number on the keypad whose presence was asked last.
    pub typed: Option<Number>,
    /// A call held for the user's confirmation (callee offline, in a
    /// meeting or on dnd), and when it was asked (ms).
    pub pending: Option<Pending>,
    /// The last publishing failure shown (each is shown once, not at
    /// every retry).
    pub failure: Option<String>,
}

/// One contacts-file line: `NUMBER [name…]`; `#` starts a comment.
pub fn parse_contact(line: &str, own: Area) -> Option<Result<(Number, Option<String>), String>> {
    let line = line.split('#').next().unwrap_or_default().trim();
    if line.is_empty() {
        return None;
    }
    let (num, name) = match line.split_once(char::is_whitespace) {
        Some((n, rest)) => (n, Some(rest.trim().to_string()).filter(|s| !s.is_empty())),
        None => (line, None),
    };
    Some(
        Number::dial(num, own)
            .map(|n| (n, name.map(|s| s.chars().filter(|c| !c.is_control()).take(64).collect())))
            .map_err(|e| format!("{num:?}: {e}")),
    )
}

/// The state a `status` command names: `available` is online.
pub fn parse_status(s: &str) -> Option<State> {
    match s.trim().to_ascii_lowercase().as_str() {
        "available" | "online" => Some(State::Online),
        "meeting" => Some(State::Meeting),
        "dnd" => Some(State::Dnd),
        _ => None,
    }
}

/// A call waiting for the user's answer to "call anyway?".
#[derive(Debug)]
pub struct Pending {
    pub dialed: Number,
    pub found: crate::resolve::Lookup,
    pub identity: Option<String>,
    pub asked_ms: u64,
}

/// How long an unanswered question stands: the PASSporT fetched with the
/// lookup lives 60 s.
pub const PENDING_MS: u64 = 50_000;

/// Whether calling someone in `state` needs the user's confirmation: call
/// now, leave a message, or not (the patent's choice before calling).
pub fn needs_confirmation(state: State) -> bool {
    matches!(state, State::Meeting | State::Dnd | State::Offline)
}

/// A number's presence from its own region's HTTP API (found by SRV).
pub async fn lookup(dns: Dns, number: Number, root: String) -> Result<State, String> {
    let api = resolve::region_api(&dns, number, &root)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no _peerdial._tcp record for {number}'s area"))?;
    let authority = api.to_string();
    let r = crate::http::request(
        &authority,
        "GET",
        &format!("/api/v1/presence/{number}"),
        &[],
        b"",
        Duration::from_secs(2),
    )
    .await
    .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("the region answered {}", r.status));
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    State::parse(v["state"].as_str().unwrap_or_default()).map_err(|e| e.to_string())
}

impl PresenceSide {
    pub fn new() -> PresenceSide {
        PresenceSide {
            publisher: None,
            chosen: State::Online,
            asked: None,
            watchers: HashMap::new(),
            signing: HashSet::new(),
            names: HashMap::new(),
            shown: HashMap::new(),
            typed: None,
            pending: None,
            failure: None,
        }
    }

    pub fn poll_timeout(&self) -> u64 {
        let p = self.publisher.as_ref().and_then(|p| p.poll_timeout()).unwrap_or(u64::MAX);
        self.watchers.values().filter_map(|w| w.poll_timeout()).fold(p, u64::min)
    }
}

impl Default for PresenceSide {
    fn default() -> Self {
        Self::new()
    }
}

impl Phone {
    pub(crate) fn presence_publisher(&self) -> Publisher {
        Publisher::new(PublisherConfig {
            server: self.id.registrar,
            user: self.id.sip_username.clone(),
            domain: self.id.sip_realm.clone(),
            password: self.id.sip_password.clone(),
            expires: 600,
            local: self.snapshot.sip,
            user_agent: format!("peerdial-phone/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    /// A SIP message for presence (PUBLISH answers, NOTIFYs, SUBSCRIBE
    /// answers); false if it is not one.
    pub(crate) fn on_presence_sip(&mut self, msg: &peerdial_sip::Message, from: SocketAddr, cid: &str) -> bool {
        let now = self.now();
        if let Some(p) = self.presence.publisher.as_mut().filter(|p| p.call_id() == cid) {
            if !msg.is_request() {
                p.handle_response(msg, now);
            }
            return true;
        }
        // By the current dialog: a watcher that subscribed anew has a new
        // Call-ID under its first one's key.
        if let Some(w) = self.presence.watchers.values_mut().find(|w| w.call_id() == cid) {
            if let Some(t) = w.handle(msg, from, now) {
                let sip = self.sip.clone();
                tokio::spawn(async move {
                    let _ = sip.send_to(&t.data, t.to).await;
                });
            }
            return true;
        }
        false
    }

    pub(crate) fn presence_timeouts(&mut self, now: u64) {
        if let Some(p) = &mut self.presence.publisher {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
            }
        }
        for w in self.presence.watchers.values_mut() {
            if w.poll_timeout().is_some_and(|t| t <= now) {
                w.handle_timeout(now);
            }
        }
    }

    /// Publishes what should be published now (on the phone during calls),
    /// sends what presence queued and reports its events.
    pub(crate) async fn flush_presence(&mut self) {
        let now = self.now();
        let want = if self.busy() { State::OnThePhone } else { self.presence.chosen };
        let first = self.presence.asked.is_none() && want != State::Online;
        // A switch's device has no region to publish to.
        if self.cfg.register && self.cfg.switch.is_none() && (first || self.presence.asked.is_some_and(|a| a != want)) {
            if self.presence.publisher.is_none() {
                self.presence.publisher = Some(self.presence_publisher());
            }
            if let Some(p) = &mut self.presence.publisher {
                p.set(want, None, now);
            }
            self.presence.asked = Some(want);
        }
        let mut ui = Vec::new();
        if let Some(p) = &mut self.presence.publisher {
            while let Some(t) = p.poll_transmit() {
                let _ = self.sip.send_to(&t.data, t.to).await;
            }
            while let Some(e) = p.poll_event() {
                match e {
                    PublishEvent::Published { state, .. } => {
                        self.presence.failure = None;
                        ui.push(UiEvent::Status {
                            state: state.as_str().into(),
                        })
                    }
                    PublishEvent::Removed => {}
                    PublishEvent::Failed { reason } => {
                        if self.presence.failure.as_ref() != Some(&reason) {
                            self.presence.failure = Some(reason.clone());
                            ui.push(UiEvent::StatusFailed { reason });
                        }
                    }
                }
            }
        }
        self.ask_watch_identities();
        for w in self.presence.watchers.values_mut() {
            while let Some(t) = w.poll_transmit() {
                let _ = self.sip.send_to(&t.data, t.to).await;
            }
            while let Some(e) = w.poll_event() {
                let state = e.presence.map(|p| p.state);
                if self.presence.shown.insert(e.number, state) != Some(state) {
                    ui.push(UiEvent::Contact {
                        number: e.number.to_string(),
                        name: self.presence.names.get(&e.number).cloned(),
                        state: state.map(|s| s.as_str()).unwrap_or("unknown").into(),
                    });
                }
            }
        }
        for e in ui {
            self.emit(e);
        }
    }

    /// `watch N`: find N's region SIP address through DNS, then subscribe.
    pub(crate) fn watch(&mut self, dialed: &str) {
        let number = match Number::dial(dialed, self.area) {
            Ok(n) => n,
            Err(e) => return self.emit(UiEvent::Error(format!("cannot watch {dialed:?}: {e}"))),
        };
        if self.presence.watchers.values().any(|w| w.number() == number) {
            return;
        }
        // Listed at once; its state comes with the first NOTIFY.
        let name = self.presence.names.get(&number).cloned();
        self.snapshot.watching(&number.to_string(), name);
        self.display.redraw(&self.snapshot);
        let Some(dns) = self.dns.clone() else { return };
        let (root, tx) = (self.root.clone(), self.cmd_tx.clone());
        tokio::spawn(async move {
            let zone = number.area().zone_name(&root);
            let server = match dns.server_for(number).await {
                Ok(s) => resolve::srv_addr(s, &format!("_sip._udp.{zone}")).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let server = server.and_then(|s| s.ok_or_else(|| format!("no _sip._udp record for {zone}")));
            let _ = tx.send(Command::WatchReady { number, server }).await;
        });
    }

    pub(crate) fn on_watch_ready(&mut self, number: Number, server: Result<SocketAddr, String>) {
        let server = match server {
            Ok(s) => s,
            Err(e) => return self.emit(UiEvent::Error(format!("cannot watch {number}: {e}"))),
        };
        // Our credentials only go to our own region (friends-only
        // presence); another region is shown a token our region signs.
        let own_region = number.area() == self.area;
        let mut w = Watcher::new(WatcherConfig {
            server,
            domain: number.area().zone_name(&self.root).trim_end_matches('.').to_string(),
            target: number,
            local: self.snapshot.sip,
            user: Some(if own_region {
                self.id.sip_username.clone()
            } else {
                self.own.digits()
            }),
            password: own_region.then(|| self.id.sip_password.clone()),
            expires: 600,
            user_agent: format!("peerdial-phone/{}", env!("CARGO_PKG_VERSION")),
            signed: !own_region,
            package: Package::Presence,
        });
        w.start(self.now());
        self.presence.watchers.insert(number, w);
    }

    /// Signed watchers about to start a dialog get a fresh PASSporT from
    /// our region (one request at a time per watcher).
    fn ask_watch_identities(&mut self) {
        for w in self.presence.watchers.values().filter(|w| w.wants_identity()) {
            let number = w.number();
            if !self.presence.signing.insert(number) {
                continue;
            }
            let (id, tx) = (self.id.clone(), self.cmd_tx.clone());
            tokio::spawn(async move {
                let identity = crate::caller_id::passport(&id, number)
                    .await
                    .map_err(|e| tracing::warn!("watching {number} without a signed identity: {e}"))
                    .ok();
                let _ = tx.send(Command::WatchIdentity { number, identity }).await;
            });
        }
    }

    pub(crate) fn on_watch_identity(&mut self, number: Number, identity: Option<String>) {
        self.presence.signing.remove(&number);
        let now = self.now();
        if let Some(w) = self.presence.watchers.values_mut().find(|w| w.number() == number) {
            w.start_signed(identity, now);
        }
    }

    /// Reads `--contacts FILE` and watches each number in it.
    pub(crate) fn load_contacts(&mut self) {
        let Some(path) = self.cfg.contacts.clone() else { return };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => return self.emit(UiEvent::Error(format!("contacts {}: {e}", path.display()))),
        };
        for line in text.lines().take(1000) {
            match parse_contact(line, self.area) {
                None => {}
                Some(Err(e)) => self.emit(UiEvent::Error(format!("contacts {}: {e}", path.display()))),
                Some(Ok((n, name))) => {
                    if let Some(name) = name {
                        self.presence.names.insert(n, name);
                    }
                    self.watch(&n.to_string());
                }
            }
        }
    }

    /// The keypad changed: once it holds a whole number, ask that number's
    /// region for its presence (once per number), so the display shows it
    /// before the call is placed. A presence shown for another number goes.
    pub(crate) fn typed_presence(&mut self) {
        let number = Number::dial(&self.snapshot.input, self.area).ok();
        if self
            .snapshot
            .presence
            .as_ref()
            .is_some_and(|p| Some(&p.number) != number.map(|n| n.to_string()).as_ref())
        {
            self.snapshot.presence = None;
        }
        if self.presence.typed == number {
            return;
        }
        self.presence.typed = number;
        let (Some(number), Some(dns)) = (number, self.dns.clone()) else {
            return;
        };
        let (root, tx) = (self.root.clone(), self.cmd_tx.clone());
        tokio::spawn(async move {
            let state = lookup(dns, number, root).await;
            let _ = tx.send(Command::TypedPresence { number, state }).await;
        });
    }

    pub(crate) fn on_typed_presence(&mut self, number: Number, state: Result<State, String>) {
        // Typed on (or dialed) since: not this number's presence any more.
        if self.presence.typed != Some(number) {
            return;
        }
        match state {
            Ok(state) => {
                self.snapshot.presence = Some(PresenceView {
                    number: number.to_string(),
                    state: state.as_str().into(),
                });
                self.display.redraw(&self.snapshot);
            }
            Err(e) => tracing::debug!("presence of {number}: {e}"),
        }
    }

    /// Stops publishing and watching (on quit).
    pub(crate) fn presence_quit(&mut self) {
        let now = self.now();
        if let Some(p) = &mut self.presence.publisher {
            if self.presence.asked.is_some() {
                p.remove(now);
            }
        }
        for w in self.presence.watchers.values_mut() {
            w.stop(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_lines_and_status_words() {
        let area: Area = "886-02".parse().unwrap();
        let (n, name) = parse_contact("886-03-12345678  Aunt May # family", area).unwrap().unwrap();
        assert_eq!((n.to_string().as_str(), name.as_deref()), ("886-03-12345678", Some("Aunt May")));
        let (n, name) = parse_contact("12345678", area).unwrap().unwrap();
        assert_eq!((n.to_string().as_str(), name), ("886-02-12345678", None));
        assert!(parse_contact("   # just a comment", area).is_none());
        assert!(parse_contact("", area).is_none());
        assert!(parse_contact("12ab bob", area).unwrap().is_err());
        assert_eq!(parse_status("meeting"), Some(State::Meeting));
        assert_eq!(parse_status("DND"), Some(State::Dnd));
        assert_eq!(parse_status("available"), Some(State::Online));
        assert_eq!(parse_status("on-the-phone"), None);
        assert!(needs_confirmation(State::Meeting) && needs_confirmation(State::Dnd) && needs_confirmation(State::Offline));
        assert!(!needs_confirmation(State::Online) && !needs_confirmation(State::OnThePhone));
    }
}
