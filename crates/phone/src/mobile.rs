//! The phone as a mobile (issue 14): a device with a phone number (MSISDN)
//! and a SIM (IMSI) that registers with the identity rendezvous, and turns
//! a mobile call into an internet call. The mobile network is simulated
//! (`peerdial cellular-sim`): it carries calls placed (`cellular-call
//! MSISDN`), rings (`cellular-ring FROM`), SMS and releases as events that
//! this module long-polls.
//!
//! Caller: places the mobile call, submits the callee's MSISDN and waits;
//! on a pairing it INVITEs the callee's contact directly with the session
//! key in [`KEY_HEADER`]. Callee: before ringing, submits its IMSI; on a
//! pairing it expects that key, from that caller, once, before it expires
//! ([`KeyRing`]: checked offline, 403 otherwise). Both release the mobile
//! call once the internet call is answered. No match: the mobile call just
//! goes on. The IMSI is sent only to the rendezvous, never shown or logged.
//!
//! What this is not: the call itself (that is `calls.rs`), or a model of a
//! real radio network.

use std::net::SocketAddr;
use std::time::Duration;

use peerdial_number::Number;
use peerdial_rendezvous::{Imsi, KeyRing, Msisdn, KEY_HEADER};
use peerdial_sip::call::Role;
use peerdial_sip::message::{NameAddr, SipUri};
use peerdial_sip::Message;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::{Command, Phone, PhoneError, UiEvent};

/// How long a long poll to the rendezvous may take (its window is 30 s).
const RENDEZVOUS_WAIT: Duration = Duration::from_secs(90);

/// `--msisdn`, `--imsi`, `--rendezvous`, `--cellular`, validated.
#[derive(Clone)]
pub struct MobileConfig {
    pub msisdn: Msisdn,
    /// Validated digits; sent to the rendezvous only.
    imsi: String,
    /// The rendezvous (the top's HTTP API).
    pub rendezvous: String,
    /// The mobile network simulator's HTTP API.
    pub cellular: Option<String>,
}

impl std::fmt::Debug for MobileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MobileConfig")
            .field("msisdn", &self.msisdn)
            .field("imsi", &"<redacted>")
            .field("rendezvous", &self.rendezvous)
            .field("cellular", &self.cellular)
            .finish()
    }
}

impl MobileConfig {
    pub fn new(msisdn: &str, imsi: &str, rendezvous: String, cellular: Option<String>) -> Result<MobileConfig, PhoneError> {
        let bad = |e: peerdial_rendezvous::RendezvousError| PhoneError::Config(e.to_string());
        let msisdn = Msisdn::parse(msisdn).map_err(bad)?;
        Imsi::parse(imsi).map_err(bad)?;
        for url in std::iter::once(&rendezvous).chain(cellular.iter()) {
            peerdial_net::http_client::http_authority(url).map_err(|e| PhoneError::Config(e.to_string()))?;
        }
        Ok(MobileConfig {
            msisdn,
            imsi: imsi.trim().to_string(),
            rendezvous,
            cellular,
        })
    }
}

/// What the mobile side hears: user commands, simulator events, answers.
#[derive(Debug)]
pub enum MobileCommand {
    /// `cellular-call MSISDN`: the user places an ordinary mobile call.
    Call(String),
    /// `cellular-ring FROM`: the mobile network rings us (call id if known).
    Ring { from: String, call: Option<String> },
    /// An SMS reached this mobile.
    Sms(String),
    /// The mobile network released a call.
    Released(String),
    /// Registration: Ok(true) registered, Ok(false) waiting for the code.
    Registration(Result<bool, String>),
    /// The rendezvous's answer to our call (`caller`) or ring submission;
    /// a caller that paired also has its region's PASSporT for the callee.
    Told {
        caller: bool,
        peer: String,
        cell_call: Option<String>,
        answer: Result<Value, String>,
        identity: Option<String>,
    },
}

/// The mobile side's state inside the phone.
#[derive(Default)]
pub(crate) struct MobileSide {
    cfg: Option<MobileConfig>,
    awaiting_code: bool,
    keys: KeyRing,
    /// Key for the INVITE about to be sent.
    invite_key: Option<String>,
    /// Callee: the mobile call to release once the keyed call is answered.
    incoming_cell: Option<String>,
    /// Callee: who paired with us, and until when its INVITE may come.
    awaiting_invite: Option<(String, u64)>,
    /// (SIP Call-ID, mobile call) released when the SIP call is answered.
    release: Vec<(String, Option<String>)>,
}

impl MobileSide {
    pub(crate) fn new(cfg: Option<MobileConfig>) -> MobileSide {
        MobileSide {
            cfg,
            ..MobileSide::default()
        }
    }

    /// The header for an INVITE placed after a pairing (none otherwise).
    pub(crate) fn invite_header(&mut self) -> Option<(String, String)> {
        self.invite_key.take().map(|k| (KEY_HEADER.to_string(), k))
    }
}

/// A JSON POST; the body of a 2xx, or the server's `error` text.
async fn post(base: &str, path: &str, body: Value) -> Result<Value, String> {
    let authority = peerdial_net::http_client::http_authority(base).map_err(|e| e.to_string())?;
    let body = body.to_string();
    let r = crate::http::request(
        authority,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        RENDEZVOUS_WAIT,
    )
    .await
    .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    if (200..300).contains(&r.status) {
        Ok(v)
    } else {
        Err(format!("{} {}", r.status, v["error"].as_str().unwrap_or("refused")))
    }
}

/// Long-polls the simulator for this mobile's events until the phone stops.
async fn poll_events(cellular: String, msisdn: Msisdn, tx: mpsc::Sender<Command>) {
    let Ok(authority) = peerdial_net::http_client::http_authority(&cellular).map(str::to_string) else {
        return;
    };
    let path = format!("/sim/v1/events/{msisdn}?wait=20");
    loop {
        let r = crate::http::request(&authority, "GET", &path, &[], b"", Duration::from_secs(30)).await;
        let events = match r {
            Ok(r) if r.status == 200 => serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
            other => {
                tracing::debug!("cellular simulator: {other:?}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for e in events["events"].as_array().into_iter().flatten() {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            let c = match e["kind"].as_str() {
                Some("ring") => MobileCommand::Ring {
                    from: s("from"),
                    call: Some(s("call")),
                },
                Some("sms") => MobileCommand::Sms(s("text")),
                Some("released") => MobileCommand::Released(s("call")),
                _ => continue,
            };
            if tx.send(Command::Mobile(c)).await.is_err() {
                return;
            }
        }
    }
}

/// The user part of a SIP URI (`sip:886021234567@…` → the digits).
fn uri_user(uri: &str) -> Option<&str> {
    SipUri::parse(uri).ok().and_then(|u| u.user)
}

impl Phone {
    fn mobile_contact(&self) -> String {
        format!("sip:{}@{}", self.own.digits(), self.snapshot.sip)
    }

    /// At start: listen to the mobile network and register with the rendezvous.
    pub(crate) fn mobile_start(&mut self) {
        let Some(cfg) = self.mobile.cfg.clone() else { return };
        if let Some(cellular) = cfg.cellular.clone() {
            tokio::spawn(poll_events(cellular, cfg.msisdn.clone(), self.cmd_tx.clone()));
        }
        self.emit(UiEvent::Info(format!("mobile {}: registering with the rendezvous", cfg.msisdn)));
        self.mobile.awaiting_code = true;
        let tx = self.cmd_tx.clone();
        tokio::spawn(async move {
            let body = json!({ "msisdn": cfg.msisdn.as_str(), "imsi": cfg.imsi });
            let r = post(&cfg.rendezvous, "/api/v1/rendezvous/devices", body)
                .await
                .map(|v| v["status"] == "registered");
            let _ = tx.send(Command::Mobile(MobileCommand::Registration(r))).await;
        });
    }

    pub(crate) fn on_mobile(&mut self, c: MobileCommand) {
        let Some(cfg) = self.mobile.cfg.clone() else {
            return self.emit(UiEvent::Error("not a mobile: start with --msisdn, --imsi and --rendezvous".into()));
        };
        match c {
            MobileCommand::Registration(Ok(true)) => {
                self.mobile.awaiting_code = false;
                self.emit(UiEvent::Info(format!("mobile {} registered with the rendezvous", cfg.msisdn)));
            }
            MobileCommand::Registration(Ok(false)) => {
                self.emit(UiEvent::Info(format!("mobile {}: waiting for the code by SMS", cfg.msisdn)))
            }
            MobileCommand::Registration(Err(e)) => {
                self.mobile.awaiting_code = false;
                self.emit(UiEvent::Error(format!("mobile registration failed: {e}")));
            }
            MobileCommand::Sms(text) => {
                // The text is the user's; only its arrival is shown.
                self.emit(UiEvent::Info("SMS received".into()));
                let code = text.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6);
                if let (true, Some(code)) = (self.mobile.awaiting_code, code) {
                    let body = json!({ "msisdn": cfg.msisdn.as_str(), "imsi": cfg.imsi, "code": code });
                    let tx = self.cmd_tx.clone();
                    tokio::spawn(async move {
                        let r = post(&cfg.rendezvous, "/api/v1/rendezvous/devices/verify", body).await.map(|_| true);
                        let _ = tx.send(Command::Mobile(MobileCommand::Registration(r))).await;
                    });
                }
            }
            MobileCommand::Call(to) => self.mobile_call(&cfg, &to),
            MobileCommand::Ring { from, call } => {
                self.emit(UiEvent::Info(format!(
                    "cellular-ring from {from}: asking the rendezvous before ringing"
                )));
                let body = json!({ "imsi": cfg.imsi, "msisdn": cfg.msisdn.as_str(), "contact": self.mobile_contact() });
                let tx = self.cmd_tx.clone();
                tokio::spawn(async move {
                    let answer = post(&cfg.rendezvous, "/api/v1/rendezvous/ring", body).await;
                    let told = MobileCommand::Told {
                        caller: false,
                        peer: from,
                        cell_call: call,
                        answer,
                        identity: None,
                    };
                    let _ = tx.send(Command::Mobile(told)).await;
                });
            }
            MobileCommand::Released(call) => self.emit(UiEvent::Info(format!("mobile call {call} released"))),
            MobileCommand::Told {
                caller,
                peer,
                cell_call,
                answer,
                identity,
            } => self.on_told(caller, &peer, cell_call, answer, identity),
        }
    }

    /// `cellular-call MSISDN`: the mobile call, and the rendezvous asked.
    fn mobile_call(&mut self, cfg: &MobileConfig, to: &str) {
        let callee = match Msisdn::parse(to) {
            Ok(m) => m,
            Err(e) => return self.emit(UiEvent::Error(format!("cannot place a mobile call: {e}"))),
        };
        self.emit(UiEvent::Info(format!(
            "mobile call to {callee}: asking the rendezvous for an internet path"
        )));
        let (cfg, tx, contact, id) = (cfg.clone(), self.cmd_tx.clone(), self.mobile_contact(), self.id.clone());
        tokio::spawn(async move {
            let mut cell_call = None;
            if let Some(sim) = &cfg.cellular {
                match post(sim, "/sim/v1/calls", json!({ "from": cfg.msisdn.as_str(), "to": callee.as_str() })).await {
                    Ok(v) => cell_call = v["call"].as_str().map(str::to_string),
                    Err(e) => tracing::warn!("the mobile network refused the call: {e}"),
                }
            }
            let body = json!({ "msisdn": cfg.msisdn.as_str(), "imsi": cfg.imsi, "callee": callee.as_str(), "contact": contact });
            let answer = post(&cfg.rendezvous, "/api/v1/rendezvous/call", body).await;
            // Signed caller identity as on any call, for the number paired with.
            let dest = answer
                .as_ref()
                .ok()
                .and_then(|v| uri_user(v["contact"].as_str()?).and_then(|u| Number::parse(u).ok()));
            let identity = match dest {
                Some(n) => crate::caller_id::passport(&id, n)
                    .await
                    .map_err(|e| tracing::warn!("calling without caller identity: {e}"))
                    .ok(),
                None => None,
            };
            let told = MobileCommand::Told {
                caller: true,
                peer: callee.to_string(),
                cell_call,
                answer,
                identity,
            };
            let _ = tx.send(Command::Mobile(told)).await;
        });
    }

    fn on_told(&mut self, caller: bool, peer: &str, cell_call: Option<String>, answer: Result<Value, String>, identity: Option<String>) {
        let v = match answer {
            Ok(v) => v,
            Err(e) => {
                self.emit(UiEvent::Error(format!("rendezvous: {e}")));
                return self.emit(UiEvent::Info(format!("the mobile call with {peer} goes on")));
            }
        };
        let (contact, key) = (v["contact"].as_str().unwrap_or_default(), v["key"].as_str().unwrap_or_default());
        let user = uri_user(contact).unwrap_or_default().to_string();
        if v["status"] != "paired" || key.is_empty() || user.is_empty() {
            let line = if caller {
                format!("no internet match for {peer}: the mobile call continues")
            } else {
                format!("mobile call from {peer} rings (no internet match)")
            };
            return self.emit(UiEvent::Info(line));
        }
        if !caller {
            let expires = self.now() + v["expires_in_ms"].as_u64().unwrap_or(30_000);
            self.mobile.keys.expect(key, &user, expires);
            self.mobile.incoming_cell = cell_call;
            self.mobile.awaiting_invite = Some((peer.to_string(), expires));
            return self.emit(UiEvent::Info(format!(
                "rendezvous paired with {peer}: waiting for its internet call"
            )));
        }
        let number = match Number::parse(&user) {
            Ok(n) => n,
            Err(e) => return self.emit(UiEvent::Error(format!("rendezvous gave an unusable contact: {e}"))),
        };
        self.emit(UiEvent::Info(format!(
            "rendezvous paired with {peer}: calling {contact} over the internet"
        )));
        self.mobile.invite_key = Some(key.to_string());
        let placed = self.place_call(number, contact.to_string(), identity, None);
        self.mobile.invite_key = None;
        if let Err(e) = placed {
            return self.emit(UiEvent::Error(format!("cannot call {peer} over the internet: {e}")));
        }
        let cid = self
            .calls
            .iter()
            .find(|(_, s)| s.call.role == Role::Caller && s.answered_at.is_none() && !s.call.is_done())
            .map(|(c, _)| c.clone());
        if let Some(cid) = cid {
            self.mobile.release.push((cid, cell_call));
        }
    }

    /// An INVITE carrying a rendezvous key: true when it was refused (403).
    pub(crate) fn mobile_refuses(&mut self, data: &[u8], msg: &Message, from: SocketAddr) -> bool {
        let Some(key) = msg.header(KEY_HEADER) else { return false };
        let caller = NameAddr::parse(msg.header("From").unwrap_or_default())
            .ok()
            .and_then(|n| uri_user(n.uri).map(str::to_string))
            .unwrap_or_default();
        let now = self.now();
        match self.mobile.keys.check(key, &caller, now) {
            Ok(()) => {
                self.emit(UiEvent::Info(format!("internet call from {caller} carries its rendezvous key")));
                let cid = msg.header("Call-ID").unwrap_or_default().to_string();
                self.mobile.awaiting_invite = None;
                self.mobile.release.push((cid, self.mobile.incoming_cell.take()));
                false
            }
            Err(why) => {
                self.emit(UiEvent::Error(format!(
                    "refused an internet call from {caller}: rendezvous key {}",
                    why.as_str()
                )));
                let warning = format!("399 peerdial \"rendezvous key {}\"", why.as_str());
                self.reply_stateless(data, from, 403, "Forbidden", &[("Warning", &warning)]);
                true
            }
        }
    }

    /// Releases mobile calls whose internet call has been answered.
    pub(crate) fn mobile_tick(&mut self) {
        if let Some((peer, until)) = self.mobile.awaiting_invite.clone() {
            if self.now() >= until {
                self.mobile.awaiting_invite = None;
                self.emit(UiEvent::Info(format!(
                    "mobile call from {peer} rings (its internet call did not come)"
                )));
            }
        }
        if self.mobile.release.is_empty() {
            return;
        }
        let Some(sim) = self.mobile.cfg.as_ref().and_then(|c| c.cellular.clone()) else {
            self.mobile.release.clear();
            return;
        };
        let mut lines = Vec::new();
        self.mobile.release.retain(|(cid, cell)| {
            let Some(slot) = self.calls.get(cid) else { return false };
            if slot.answered_at.is_none() {
                return true;
            }
            if let Some(cell) = cell.clone() {
                let (sim, path) = (sim.clone(), format!("/sim/v1/calls/{cell}/release"));
                tokio::spawn(async move {
                    match post(&sim, &path, json!({})).await {
                        Ok(_) => {}
                        // Both sides release; the second finds it gone.
                        Err(e) if e.starts_with("404") => tracing::debug!("mobile call already released"),
                        Err(e) => tracing::warn!("could not release the mobile call: {e}"),
                    }
                });
                lines.push(format!("releasing mobile call {cell}: the call goes on over the internet"));
            }
            false
        });
        for l in lines {
            self.emit(UiEvent::Info(l));
        }
    }
}
