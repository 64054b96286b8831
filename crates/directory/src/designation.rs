//! Switch designation (issue 15, design §4 `peerdial switch`): for each
//! call the cloud (the top) decides how a caller reaches its callee.
//!
//! - (A) where the request came from: a device with its region's PASSporT,
//!   or a switch on behalf of one of its devices (the switch's token);
//! - (B) whether the callee is a valid device, and whether a switch serves it;
//! - (C2) behind a switch: ask that switch to accept; it answers with its
//!   SIP address, a one-time key and the caller's place in the callee's
//!   call-waiting queue, or refuses;
//! - (C3) no switch: wake the callee (push), or, without push parameters,
//!   call it directly as any peerdial number.
//!
//! This module is the decision and its records: the request parser, the
//! switches that joined and the devices each serves, the A/B/C table
//! ([`decide`]), how each outcome is answered ([`answer`]) and a bounded
//! log of designations. It is not an HTTP server, a SIP element or a
//! clock: the top asks the switch and the push service, and passes `now`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use peerdial_number::Number;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The SIP header that carries a switch key in the caller's INVITE.
pub const SWITCH_KEY_HEADER: &str = "X-Peerdial-Switch-Key";
/// How long a designated key is good for.
pub const KEY_LIFETIME_MS: u64 = 30_000;
/// How long the top waits for a switch's accept or refuse.
pub const ACCEPT_DEADLINE_MS: u64 = 2_000;
/// A switch that has not joined again within this long serves nobody.
pub const SWITCH_STALE_MS: u64 = 90_000;
/// Designations remembered (the oldest go first).
const MAX_RECORDS: usize = 4096;
/// Devices one switch may declare.
pub const MAX_DEVICES: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DesignationError {
    #[error("malformed request: {0}")]
    Json(String),
    #[error("invalid callee {0:?}")]
    Callee(String),
    #[error("invalid caller {0:?}")]
    Caller(String),
    #[error("a switch declares at most {MAX_DEVICES} devices")]
    TooManyDevices,
}

/// Where a designation request came from (A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Device,
    Switch,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Device => "device",
            Origin::Switch => "switch",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    callee: String,
    #[serde(default)]
    caller: Option<String>,
}

/// A parsed `POST /api/v1/calls/designate` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesignateRequest {
    pub callee: Number,
    /// Required from a switch: the device it asks for.
    pub caller: Option<Number>,
}

/// Parses `{"callee": "<number>", "caller"?: "<number>"}`; numbers in any
/// accepted form (`886-02-…`, digits).
pub fn parse_request(body: &[u8]) -> Result<DesignateRequest, DesignationError> {
    let raw: RawRequest = serde_json::from_slice(body).map_err(|e| DesignationError::Json(e.to_string()))?;
    let callee = Number::parse(&raw.callee).map_err(|_| DesignationError::Callee(clip(&raw.callee)))?;
    let caller = match raw.caller {
        Some(c) => Some(Number::parse(&c).map_err(|_| DesignationError::Caller(clip(&c)))?),
        None => None,
    };
    Ok(DesignateRequest { callee, caller })
}

fn clip(s: &str) -> String {
    s.chars().take(40).filter(|c| !c.is_control()).collect()
}

/// One device a switch declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    pub number: String,
    #[serde(default)]
    pub disabled: bool,
}

/// A switch's join (and heartbeat): `POST /api/v1/switches/join` with
/// `Authorization: Bearer <switch token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchJoin {
    /// Where callers send their INVITEs.
    pub sip: SocketAddr,
    /// Where the top asks it to accept (`http://ip:port`).
    pub http: String,
    /// What the top presents when it asks (Bearer); fresh per switch start.
    pub secret: String,
    pub devices: Vec<DeviceEntry>,
}

/// The top's question to a switch: `POST /api/v1/accept` (Bearer secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    pub caller: String,
    pub callee: String,
}

/// A switch's yes: where to send the INVITE, the key to put in it, and the
/// caller's place in the callee's queue (0: the callee is free).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub address: SocketAddr,
    pub key: String,
    pub queue: u32,
}

/// A switch as the top knows it.
#[derive(Debug, Clone)]
pub struct SwitchEntry {
    pub sip: SocketAddr,
    pub http: String,
    pub secret: String,
    /// Device → disabled.
    pub devices: BTreeMap<Number, bool>,
    pub seen_ms: u64,
}

/// The switches that joined and the devices each serves (a device served
/// by two switches belongs to the one that declared it last).
#[derive(Debug, Default)]
pub struct Switches {
    by_name: HashMap<String, SwitchEntry>,
    by_device: HashMap<Number, String>,
}

impl Switches {
    /// Records a join; devices it no longer declares are let go.
    pub fn join(&mut self, name: &str, join: SwitchJoin, now_ms: u64) -> Result<(), DesignationError> {
        if join.devices.len() > MAX_DEVICES {
            return Err(DesignationError::TooManyDevices);
        }
        let mut devices = BTreeMap::new();
        for d in &join.devices {
            let n = Number::parse(&d.number).map_err(|_| DesignationError::Callee(clip(&d.number)))?;
            devices.insert(n, d.disabled);
        }
        if let Some(old) = self.by_name.get(name) {
            for n in old.devices.keys() {
                if !devices.contains_key(n) && self.by_device.get(n).is_some_and(|s| s == name) {
                    self.by_device.remove(n);
                }
            }
        }
        for n in devices.keys() {
            self.by_device.insert(*n, name.to_string());
        }
        self.by_name.insert(
            name.to_string(),
            SwitchEntry {
                sip: join.sip,
                http: join.http,
                secret: join.secret,
                devices,
                seen_ms: now_ms,
            },
        );
        Ok(())
    }

    /// The live switch serving `n`, with whether `n` is disabled there.
    pub fn serving(&self, n: Number, now_ms: u64) -> Option<(&str, &SwitchEntry, bool)> {
        let name = self.by_device.get(&n)?;
        let e = self.by_name.get(name)?;
        (now_ms < e.seen_ms + SWITCH_STALE_MS).then(|| (name.as_str(), e, e.devices.get(&n).copied().unwrap_or(false)))
    }

    /// Whether switch `name` declared `n` (a switch asks only for its own).
    pub fn serves(&self, name: &str, n: Number) -> bool {
        self.by_name.get(name).is_some_and(|e| e.devices.contains_key(&n))
    }
}

/// What the top knows of the callee (B).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalleeIs {
    Unknown,
    Disabled,
    /// A live switch serves it.
    BehindSwitch {
        switch: String,
    },
    /// A valid number with no switch.
    NoSwitch,
}

/// What to do next (C).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Refuse(Refusal),
    /// C2: ask this switch to accept.
    AskSwitch {
        switch: String,
    },
    /// C3: wake the callee (push), else call directly.
    Wake,
}

/// The A/B/C table.
pub fn decide(callee: &CalleeIs) -> Step {
    match callee {
        CalleeIs::Unknown => Step::Refuse(Refusal::UnknownCallee),
        CalleeIs::Disabled => Step::Refuse(Refusal::CalleeDisabled),
        CalleeIs::BehindSwitch { switch } => Step::AskSwitch { switch: switch.clone() },
        CalleeIs::NoSwitch => Step::Wake,
    }
}

/// Why no route is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated,
    /// A switch asked for a caller it does not serve.
    NotYourDevice,
    UnknownCallee,
    CalleeDisabled,
    SwitchRefused(String),
    SwitchTimeout,
    PushFailed(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Unauthenticated => 401,
            Refusal::NotYourDevice | Refusal::CalleeDisabled => 403,
            Refusal::UnknownCallee => 404,
            Refusal::SwitchRefused(_) => 409,
            Refusal::SwitchTimeout => 504,
            Refusal::PushFailed(_) => 502,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Unauthenticated => "authenticate: a device's Identity and X-Peerdial-From, or a switch's Bearer token".into(),
            Refusal::NotYourDevice => "that caller is not a device of this switch".into(),
            Refusal::UnknownCallee => "invalid call: unknown callee".into(),
            Refusal::CalleeDisabled => "invalid call: callee disabled".into(),
            Refusal::SwitchRefused(why) => format!("the callee's switch refused: {why}"),
            Refusal::SwitchTimeout => "the callee's switch did not answer in time".into(),
            Refusal::PushFailed(why) => format!("the callee could not be woken: {why}"),
        }
    }
}

/// How a designation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Switch(Accepted),
    Push { token: String },
    Direct,
    Refused(Refusal),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Switch(_) => "switch",
            Outcome::Push { .. } => "push",
            Outcome::Direct => "direct",
            Outcome::Refused(_) => "refused",
        }
    }
}

/// The HTTP status and JSON body for an outcome.
pub fn answer(origin: Origin, outcome: &Outcome) -> (u16, Value) {
    let expires_in = KEY_LIFETIME_MS / 1000;
    match outcome {
        Outcome::Switch(a) => (
            200,
            json!({"route": "switch", "from": origin.as_str(), "switch": a.address.to_string(),
                   "key": a.key, "queue": a.queue, "expires_in": expires_in}),
        ),
        Outcome::Push { token } => (
            200,
            json!({"route": "push", "from": origin.as_str(), "token": token, "expires_in": expires_in}),
        ),
        Outcome::Direct => (200, json!({"route": "direct", "from": origin.as_str()})),
        Outcome::Refused(r) => (r.status(), json!({"error": r.message()})),
    }
}

/// A route as the caller reads it from the answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "route", rename_all = "lowercase")]
pub enum Route {
    Switch { switch: SocketAddr, key: String, queue: u32 },
    Push { token: String },
    Direct,
}

/// One designation as recorded (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    pub origin: Origin,
    pub caller: Number,
    pub callee: Number,
    pub at_ms: u64,
    pub outcome: &'static str,
}

/// The latest designations, bounded.
#[derive(Debug, Default)]
pub struct Designations {
    next: u64,
    recent: VecDeque<Record>,
}

impl Designations {
    pub fn record(&mut self, origin: Origin, caller: Number, callee: Number, outcome: &Outcome, at_ms: u64) -> u64 {
        self.next += 1;
        if self.recent.len() == MAX_RECORDS {
            self.recent.pop_front();
        }
        self.recent.push_back(Record {
            id: self.next,
            origin,
            caller,
            callee,
            at_ms,
            outcome: outcome.label(),
        });
        self.next
    }

    pub fn recent(&self) -> impl Iterator<Item = &Record> {
        self.recent.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    fn join(devices: &[(&str, bool)]) -> SwitchJoin {
        SwitchJoin {
            sip: "127.0.0.1:5070".parse().unwrap(),
            http: "http://127.0.0.1:8070".into(),
            secret: "s".into(),
            devices: devices
                .iter()
                .map(|(d, off)| DeviceEntry {
                    number: d.to_string(),
                    disabled: *off,
                })
                .collect(),
        }
    }

    #[test]
    fn requests_parse_or_say_why() {
        let r = parse_request(br#"{"callee":"886-02-12345678"}"#).unwrap();
        assert_eq!(r.callee, n("8860212345678"));
        assert_eq!(r.caller, None);
        let r = parse_request(br#"{"callee":"886-02-12345678","caller":"886-03-11112222"}"#).unwrap();
        assert_eq!(r.caller, Some(n("886-03-11112222")));
        assert!(matches!(parse_request(b"{"), Err(DesignationError::Json(_))));
        assert!(matches!(parse_request(br#"{"callee":"1","x":1}"#), Err(DesignationError::Json(_))));
        assert!(matches!(parse_request(br#"{"callee":"abc"}"#), Err(DesignationError::Callee(_))));
        assert!(matches!(
            parse_request(br#"{"callee":"886-02-12345678","caller":"x"}"#),
            Err(DesignationError::Caller(_))
        ));
    }

    #[test]
    fn the_table_refuses_asks_or_wakes() {
        assert_eq!(decide(&CalleeIs::Unknown), Step::Refuse(Refusal::UnknownCallee));
        assert_eq!(decide(&CalleeIs::Disabled), Step::Refuse(Refusal::CalleeDisabled));
        assert_eq!(
            decide(&CalleeIs::BehindSwitch { switch: "office".into() }),
            Step::AskSwitch { switch: "office".into() }
        );
        assert_eq!(decide(&CalleeIs::NoSwitch), Step::Wake);
        assert_eq!(Refusal::UnknownCallee.status(), 404);
        assert_eq!(Refusal::CalleeDisabled.status(), 403);
        assert_eq!(Refusal::SwitchTimeout.status(), 504);
        assert_eq!(Refusal::SwitchRefused("busy".into()).status(), 409);
        assert_eq!(Refusal::PushFailed("x".into()).status(), 502);
        let (code, body) = answer(Origin::Device, &Outcome::Refused(Refusal::UnknownCallee));
        assert_eq!((code, body["error"].as_str()), (404, Some("invalid call: unknown callee")));
    }

    #[test]
    fn switches_serve_their_declared_devices_while_alive() {
        let mut s = Switches::default();
        s.join("a", join(&[("886-02-11110001", false), ("886-02-11110002", true)]), 0)
            .unwrap();
        let (name, e, off) = s.serving(n("886-02-11110001"), 10).unwrap();
        assert_eq!((name, e.sip.port(), off), ("a", 5070, false));
        assert!(s.serving(n("886-02-11110002"), 10).unwrap().2);
        assert!(s.serves("a", n("886-02-11110001")));
        assert!(!s.serves("b", n("886-02-11110001")));
        // Silent too long: serves nobody.
        assert!(s.serving(n("886-02-11110001"), SWITCH_STALE_MS).is_none());
        // A new join lets go of what it no longer declares.
        s.join("a", join(&[("886-02-11110002", false)]), 100).unwrap();
        assert!(s.serving(n("886-02-11110001"), 100).is_none());
        assert!(!s.serving(n("886-02-11110002"), 100).unwrap().2);
        // Another switch takes a device over; the first's later join of
        // other devices does not take it back.
        s.join("b", join(&[("886-02-11110002", false)]), 200).unwrap();
        s.join("a", join(&[]), 300).unwrap();
        assert_eq!(s.serving(n("886-02-11110002"), 300).unwrap().0, "b");
        assert_eq!(
            s.join("a", join(&[("bad", false)]), 300),
            Err(DesignationError::Callee("bad".into()))
        );
    }

    #[test]
    fn answers_carry_the_route_and_records_stay_bounded() {
        let a = Accepted {
            address: "127.0.0.1:5070".parse().unwrap(),
            key: "k".into(),
            queue: 2,
        };
        let (code, body) = answer(Origin::Switch, &Outcome::Switch(a));
        assert_eq!(code, 200);
        let route: Route = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(
            route,
            Route::Switch {
                switch: "127.0.0.1:5070".parse().unwrap(),
                key: "k".into(),
                queue: 2
            }
        );
        assert_eq!(body["from"], "switch");
        let (_, body) = answer(Origin::Device, &Outcome::Direct);
        assert_eq!(serde_json::from_value::<Route>(body).unwrap(), Route::Direct);
        let mut d = Designations::default();
        for i in 0..(MAX_RECORDS as u64 + 5) {
            d.record(Origin::Device, n("886-02-11110001"), n("886-02-11110002"), &Outcome::Direct, i);
        }
        assert_eq!(d.recent().count(), MAX_RECORDS);
        assert_eq!(d.recent().next().unwrap().id, 6);
    }
}
