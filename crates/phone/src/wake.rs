//! Push wake-up on the phone (issue 15).
//!
//! Callee side: with `--push URL` the phone keeps a Web Push subscription
//! at that endpoint (a UnifiedPush/Web Push endpoint: pushes are POSTed to
//! it, the phone fetches them with `GET URL?wait=S`, over HTTPS with the
//! webpki roots plus `--push-ca`); its keys (p256dh and
//! auth) live in `DIR/push-keys.json`, owner-only, never printed. Its
//! REGISTERs carry the RFC 8599 parameters. `--asleep`: after that first
//! registration the phone sleeps — no SIP, no refreshes — and only listens
//! for push. A push is decrypted (one that does not decrypt with our keys
//! is refused), its two cloud tokens are checked with the cloud's key
//! (`GET /api/v1/push/key` on `--top`), then the phone registers again and
//! waits for that caller: its INVITE must carry the caller's token
//! (else 403), and our answer carries ours.
//!
//! Caller side: with `--top` a call first asks the cloud for its route
//! (`designate.rs`); when the cloud woke the callee by push, the phone
//! waits ([`PushWait`], bounded) until the
//! callee's contact is in DNS, presents the cloud's token in its INVITE
//! and checks the callee's token in the 200.
//!
//! `--wake-by-cloud`: the phone also holds the cloud's command connection
//! (`wake_cloud.rs`); a wake that comes down it is checked the same way.
//!
//! Not here: switches (route "switch").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerdial_number::Number;
use peerdial_push::token::{self, Role};
use peerdial_push::webpush::UaKeys;
use peerdial_push::{Provider, PushParams, WakePayload};
use peerdial_sip::message::{NameAddr, SipUri};
use peerdial_sip::Message;

use crate::display::UiEvent;
use crate::{resolve, Command, Phone, PhoneError};

#[derive(Debug, Clone)]
pub struct PushConfig {
    /// The subscription's endpoint (`https://…`; `http://` to loopback
    /// only), if the phone has one.
    pub endpoint: Option<String>,
    /// Extra CA certificates (PEM) to trust for the push service.
    pub ca: Option<std::path::PathBuf>,
    /// Hold the cloud's command connection (`--top`): wakes come down it.
    pub cloud: bool,
    /// Sleep after registering; wake only by push or cloud command.
    pub asleep: bool,
}

/// How long a woken phone waits for its caller.
const EXPECT_MS: u64 = 30_000;
/// How long a caller waits for a woken callee to register.
const REGISTER_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub enum WakeCommand {
    /// An encrypted push arrived.
    Pushed(Vec<u8>),
    /// A wake came down the cloud's command connection (plain JSON).
    Commanded(Vec<u8>),
    /// A push decrypted and its tokens checked (or why not).
    Checked(Result<Expected, String>),
    /// A line for the user from a background step.
    Note(String),
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Expected {
    /// "push" or "cloud command".
    via: &'static str,
    caller: Number,
    caller_addr: Option<String>,
    caller_token: String,
    callee_token: String,
    until: u64,
}

#[derive(Default)]
pub(crate) struct WakeSide {
    pub(crate) cfg: Option<PushConfig>,
    keys: Option<UaKeys>,
    pub(crate) sleeping: bool,
    expected: Option<Expected>,
    /// Tokens to present, by callee (filled by the dial task).
    pub(crate) outgoing: Arc<Mutex<HashMap<Number, String>>>,
    /// Calls whose answer must carry the callee's token.
    checking: HashMap<String, Number>,
    /// The cloud's wake-token key, once fetched.
    pub(crate) cloud_key: token::CloudKey,
}

impl WakeSide {
    /// Loads or makes the subscription's keys; the Contact parameters.
    pub(crate) fn open(cfg: Option<PushConfig>, data: &std::path::Path) -> Result<(WakeSide, Option<String>), PhoneError> {
        let Some(c) = cfg else { return Ok((WakeSide::default(), None)) };
        let Some(endpoint) = c.endpoint.clone() else {
            let side = WakeSide {
                cfg: Some(c),
                ..WakeSide::default()
            };
            return Ok((side, None));
        };
        let keys = UaKeys::load_or_generate(&data.join("push-keys.json")).map_err(|e| PhoneError::Config(e.to_string()))?;
        let params = PushParams {
            provider: Provider::Webpush,
            prid: endpoint,
            param: Some(keys.pn_param()),
        };
        params.check().map_err(|e| PhoneError::Config(format!("--push: {e}")))?;
        Ok((
            WakeSide {
                cfg: Some(c),
                keys: Some(keys),
                ..WakeSide::default()
            },
            Some(params.to_uri_params()),
        ))
    }
}

/// Fetches pushes from the endpoint, one long poll at a time.
async fn listen(endpoint: String, client: peerdial_net::https_client::HttpsClient, tx: tokio::sync::mpsc::Sender<Command>) {
    let wait = format!("{endpoint}{}wait=20", if endpoint.contains('?') { '&' } else { '?' });
    loop {
        match client.send("GET", &wait, &[], b"", Duration::from_secs(25)).await {
            Ok(r) if r.status == 200 => {
                if tx.send(Command::Wake(WakeCommand::Pushed(r.body))).await.is_err() {
                    return;
                }
            }
            Ok(r) if r.status == 204 => {}
            Ok(r) => {
                tracing::warn!(status = r.status, "the push endpoint refused to deliver");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                tracing::debug!("push endpoint: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

fn from_number(msg: &Message) -> Option<Number> {
    let from = NameAddr::parse(msg.header("From")?).ok()?;
    Number::parse(SipUri::parse(from.uri).ok()?.user?).ok()
}

/// A callee the cloud woke by push: wait (at most [`REGISTER_WAIT`])
/// until its contact is back in DNS, then keep the caller's token for the
/// INVITE.
pub(crate) struct PushWait {
    top: String,
    callee: Number,
    resolver: Option<std::net::SocketAddr>,
    root: String,
    key_cache: token::CloudKey,
    outgoing: Arc<Mutex<HashMap<Number, String>>>,
    tx: tokio::sync::mpsc::Sender<Command>,
}

impl PushWait {
    pub(crate) async fn run(self, token: String) {
        let note = |s: String| {
            let tx = self.tx.clone();
            async move {
                let _ = tx.send(Command::Wake(WakeCommand::Note(s))).await;
            }
        };
        let callee = self.callee;
        note(format!("the cloud woke {callee} by push; waiting for it to register")).await;
        let _ = self.key_cache.get(&self.top).await;
        let deadline = tokio::time::Instant::now() + REGISTER_WAIT;
        loop {
            let found = resolve::lookup_either(self.resolver, Some(&self.top), callee, &self.root).await;
            if let Ok(resolve::Lookup::Found { then, .. }) = found {
                if !then.is_empty() {
                    note(format!("{callee} registered after its push")).await;
                    break;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                note(format!("{callee} did not register after its push; calling anyway")).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.outgoing.lock().expect("wake lock").insert(callee, token);
    }
}

impl Phone {
    /// At start: listen for pushes.
    pub(crate) fn wake_start(&mut self) {
        let Some(c) = self.wake.cfg.clone() else { return };
        if let Some(endpoint) = c.endpoint {
            match peerdial_net::https_client::HttpsClient::new(c.ca.as_deref()) {
                Ok(client) => {
                    tokio::spawn(listen(endpoint.clone(), client, self.cmd_tx.clone()));
                    self.emit(UiEvent::Info(format!("push: subscribed at {endpoint}")));
                }
                Err(e) => self.emit(UiEvent::Error(format!("push: --push-ca: {e}"))),
            }
        }
        if let (true, Some(top)) = (c.cloud, self.cfg.top.clone()) {
            tokio::spawn(crate::wake_cloud::hold(top, self.id.clone(), self.own, self.cmd_tx.clone()));
        }
    }

    /// Registered: an asleep phone goes to sleep after its first registration.
    pub(crate) fn wake_registered(&mut self, first: bool) {
        if first && self.wake.cfg.as_ref().is_some_and(|c| c.asleep) {
            self.wake.sleeping = true;
            let what = match self.wake.cfg.as_ref().map(|c| (c.endpoint.is_some(), c.cloud)) {
                Some((true, true)) => "push and cloud commands",
                Some((false, true)) => "cloud commands",
                _ => "push",
            };
            self.emit(UiEvent::Info(format!("asleep: listening for {what} only")));
        }
    }

    pub(crate) fn on_wake(&mut self, c: WakeCommand) {
        match c {
            WakeCommand::Pushed(body) => {
                let Some(keys) = self.wake.keys.clone() else { return };
                match keys.decrypt(&body) {
                    Ok(p) => self.check_wake(&p, "push"),
                    Err(e) => self.emit(UiEvent::Error(format!("push refused: {e}"))),
                }
            }
            WakeCommand::Commanded(payload) => self.check_wake(&payload, "cloud command"),
            WakeCommand::Checked(Ok(e)) => {
                let at = e.caller_addr.as_deref().map(|a| format!(" at {a}")).unwrap_or_default();
                self.emit(UiEvent::Info(format!(
                    "woken by {}: call from {}{at}; its cloud token checks; registering",
                    e.via, e.caller
                )));
                self.wake.expected = Some(e);
                self.wake.sleeping = false;
                let now = self.now();
                self.reg.start(now);
            }
            WakeCommand::Checked(Err(why)) => self.emit(UiEvent::Error(format!("wake refused: {why}"))),
            WakeCommand::Note(line) => self.emit(UiEvent::Info(line)),
            WakeCommand::Failed(line) => self.emit(UiEvent::Error(line)),
        }
    }

    /// A wake's payload (decrypted push or cloud command): for us, and
    /// both its tokens signed by the cloud, checked off the loop.
    fn check_wake(&mut self, payload: &[u8], via: &'static str) {
        let p = match WakePayload::parse(payload) {
            Ok(p) => p,
            Err(e) => return self.emit(UiEvent::Error(format!("{via} refused: {e}"))),
        };
        let (Some(top), own) = (self.cfg.top.clone(), self.own) else {
            return self.emit(UiEvent::Error(format!("{via} refused: no --top to check its tokens with")));
        };
        let (cache, tx, now) = (self.wake.cloud_key.clone(), self.cmd_tx.clone(), self.now());
        tokio::spawn(async move {
            let r = async {
                let caller = Number::parse(&p.caller).map_err(|e| e.to_string())?;
                if Number::parse(&p.callee).ok() != Some(own) {
                    return Err("it is for another number".to_string());
                }
                let key = cache.get(&top).await?;
                let unix = crate::caller_id::unix_ms() / 1000;
                token::verify(&key, &p.caller_token, Role::Caller, caller, own, unix).map_err(|e| e.to_string())?;
                token::verify(&key, &p.callee_token, Role::Callee, caller, own, unix).map_err(|e| e.to_string())?;
                Ok(Expected {
                    via,
                    caller,
                    caller_addr: p.caller_addr.clone(),
                    caller_token: p.caller_token.clone(),
                    callee_token: p.callee_token.clone(),
                    until: now + EXPECT_MS,
                })
            }
            .await;
            let _ = tx.send(Command::Wake(WakeCommand::Checked(r))).await;
        });
    }

    /// An INVITE from the caller a push announced must carry its token:
    /// `Err` when it was refused (403); `Ok(Some(header))`: our token, for
    /// the answer.
    #[allow(clippy::result_unit_err)]
    pub(crate) fn wake_refuses(&mut self, data: &[u8], msg: &Message, from: std::net::SocketAddr) -> Result<Option<(String, String)>, ()> {
        let now = self.now();
        if self.wake.expected.as_ref().is_some_and(|e| now > e.until) {
            self.wake.expected = None;
        }
        let Some(e) = self.wake.expected.clone() else { return Ok(None) };
        if from_number(msg) != Some(e.caller) {
            return Ok(None);
        }
        if msg.header(token::HEADER) == Some(e.caller_token.as_str()) {
            self.wake.expected = None;
            self.emit(UiEvent::Info(format!("{} presented the cloud's token: verified", e.caller)));
            Ok(Some((token::HEADER.to_string(), e.callee_token)))
        } else {
            self.emit(UiEvent::Error(format!("refused a call from {}: no valid cloud token", e.caller)));
            let warning = "399 peerdial \"wake token missing or wrong\"";
            self.reply_stateless(data, from, 403, "Forbidden", &[("Warning", warning)]);
            Err(())
        }
    }

    /// The header for an INVITE to `callee` after a push, if any.
    pub(crate) fn wake_invite_header(&mut self, callee: Number) -> Option<(String, String)> {
        let t = self.wake.outgoing.lock().expect("wake lock").remove(&callee)?;
        Some((token::HEADER.to_string(), t))
    }

    /// The call `cid` to `callee` carried a wake token: check the answer's.
    pub(crate) fn wake_expect_answer(&mut self, cid: &str, callee: Number) {
        self.wake.checking.insert(cid.to_string(), callee);
    }

    /// The callee answered a call we placed after a push: check its token;
    /// a call whose answer has none, or a wrong one, is ended.
    pub(crate) fn wake_check_answer(&mut self, cid: &str, header: Option<String>) {
        let Some(callee) = self.wake.checking.remove(cid) else { return };
        let key = self.wake.cloud_key.cached();
        let unix = crate::caller_id::unix_ms() / 1000;
        let r = match (key, header) {
            (Some(k), Some(t)) => token::verify(&k, &t, Role::Callee, self.own, callee, unix).map_err(|e| e.to_string()),
            (None, _) => Err("the cloud's key is unknown".into()),
            (_, None) => Err("no token in its answer".into()),
        };
        match r {
            Ok(_) => self.emit(UiEvent::Info(format!("{callee} presented the cloud's token: verified"))),
            Err(why) => {
                // Not the phone the cloud woke: we do not talk to it.
                self.emit(UiEvent::Error(format!("{callee}'s cloud token: {why}; hanging up")));
                let now = self.now();
                if let Some(s) = self.calls.get_mut(cid) {
                    s.call.hangup(now);
                }
            }
        }
    }
}

impl Phone {
    /// What waiting for a callee woken by push needs (see
    /// `designate.rs`); `None` without a cloud.
    pub(crate) fn push_wait(&self, callee: Number) -> Option<PushWait> {
        let top = self.cfg.top.clone()?;
        Some(PushWait {
            top,
            callee,
            resolver: self.resolver,
            root: self.root.clone(),
            key_cache: self.wake.cloud_key.clone(),
            outgoing: self.wake.outgoing.clone(),
            tx: self.cmd_tx.clone(),
        })
    }
}
