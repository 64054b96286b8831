//! Caller identity at the phone (RFC 8224, design §9).
//!
//! As caller: before the INVITE, the phone asks its own region for a
//! PASSporT for the dialed number (`POST /api/v1/identity/passport`, HTTP
//! Basic with its SIP credentials) and sends it in an `Identity` header; if
//! the region cannot be reached the call goes out without one.
//!
//! As callee: the caller region's key is found through DNS alone — the TXT
//! record at the caller's area zone apex, asked of the phone's resolver (or,
//! in `--top` mode, of the region DNS the directory names) and cached for the
//! record's TTL (`peerdial_resolve::keys`) — and the header is checked with
//! `peerdial_identity::Verifier` against From and our own number. Ringing
//! waits for that verdict, so `--reject-unverified` can answer 438 instead.
//! A switch's device has no region to sign for it: the cloud vouches for
//! it instead, so a phone with `--top` also accepts a PASSporT under the
//! cloud's key (`GET /api/v1/push/key` on its own `--top`, fetched once).
//!
//! What this is not: it never fetches the key URL a header names (a caller
//! could point it anywhere), and it signs nothing.

use std::time::Duration;

use peerdial_identity::{PublicKey, Verdict};
use peerdial_number::Number;

use crate::display::UiEvent;
use crate::provision::Identity;
use crate::{Command, Phone, PhoneError};

/// The `Identity` header value for a call to `dest`, from our region.
pub async fn passport(id: &Identity, dest: Number) -> Result<String, PhoneError> {
    let body = serde_json::json!({ "dest": dest.to_string() });
    let r = crate::account::to_region(id, "POST", "/api/v1/identity/passport", Some(&body), Duration::from_secs(3)).await?;
    if r.status != 200 {
        return Err(PhoneError::Http(format!("the region answered {} for a PASSporT", r.status)));
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| PhoneError::Http(format!("PASSporT answer: {e}")))?;
    v["identity"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= peerdial_identity::MAX_HEADER && !s.contains(['\r', '\n']))
        .map(str::to_string)
        .ok_or_else(|| PhoneError::Http("PASSporT answer without a usable identity".into()))
}

/// A POST to `to`'s region (its API found through DNS: SRV
/// `_peerdial._tcp` at its area zone), our number proven by a PASSporT our
/// region signs for `to` (`Identity`, `X-Peerdial-From`): how a phone
/// writes to another region (private channel posts, mailbox messages).
pub async fn signed_post(
    id: &Identity,
    dns: Option<peerdial_resolve::Dns>,
    root: &str,
    to: Number,
    path: &str,
    (content_type, body): (&str, &[u8]),
    timeout: Duration,
) -> Result<crate::http::Response, PhoneError> {
    let dns = dns.ok_or_else(|| PhoneError::Config(format!("no resolver to find {to}'s region")))?;
    let api = peerdial_resolve::region_api(&dns, to, root)
        .await?
        .ok_or_else(|| PhoneError::Http(format!("{to}'s region publishes no API address")))?;
    let identity = passport(id, to).await?;
    let from = Number::parse(&id.number)?.to_string();
    crate::http::request(
        &api.to_string(),
        "POST",
        path,
        &[("Identity", &identity), ("X-Peerdial-From", &from), ("Content-Type", content_type)],
        body,
        timeout,
    )
    .await
}

/// Unix time in ms, for token times (and the call history).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Phone {
    /// A new incoming call was accepted into a slot: check its caller, then
    /// ring (or refuse with 438).
    pub(crate) fn check_caller(&mut self, cid: &str) {
        let Some(s) = self.calls.get(cid) else { return };
        let header = s.call.invite_header("Identity").map(str::to_string);
        let from = s.peer_number;
        match (header, from, self.dns.clone()) {
            (None, _, _) => self.caller_verdict(cid, Err("no Identity header".into())),
            (Some(_), None, _) => self.caller_verdict(cid, Err("the caller is not a number".into())),
            (Some(_), Some(_), None) => self.caller_verdict(cid, Err("no resolver to find the caller's key".into())),
            (Some(_), Some(from), Some(dns)) => {
                let (keys, tx, cid) = (self.keys.clone(), self.cmd_tx.clone(), cid.to_string());
                let cloud = self.cfg.top.clone().map(|top| (top, self.wake.cloud_key.clone()));
                tokio::spawn(async move {
                    let mut keys = keys.of(&dns, from).await;
                    if let Some((top, cache)) = cloud {
                        if let Ok(k) = cache.get(&top).await {
                            keys = Ok(keys.unwrap_or_default().into_iter().chain([k]).collect());
                        }
                    }
                    let _ = tx.send(Command::CallerKeys { call_id: cid, keys }).await;
                });
            }
        }
    }

    /// The caller's keys arrived (or could not be found).
    pub(crate) fn on_caller_keys(&mut self, cid: &str, keys: Result<Vec<PublicKey>, String>) {
        let Some(s) = self.calls.get(cid) else { return };
        let (Some(from), header) = (s.peer_number, s.call.invite_header("Identity")) else {
            return;
        };
        let verdict = match keys {
            Err(e) => Err(format!("caller's key not found: {e}")),
            Ok(keys) => match self.verifier.verify_any(header, from, self.own, &keys, unix_ms()) {
                Verdict::Verified(_) => Ok(()),
                Verdict::Unverified(reason) => Err(reason.to_string()),
            },
        };
        self.caller_verdict(cid, verdict);
    }

    fn caller_verdict(&mut self, cid: &str, verdict: Result<(), String>) {
        let now = self.now();
        let reject = self.cfg.reject_unverified;
        let callee_info = self
            .cfg
            .switch
            .is_none()
            .then(|| crate::greetings::call_info(&self.id.region_http, self.own, peerdial_greetings::Kind::Callee));
        // A waiting call rings but is never answered by itself.
        let alone = self.live_calls() <= 1;
        let Some(s) = self.calls.get_mut(cid) else { return };
        if s.call.state() == peerdial_sip::call::State::Ended {
            return;
        }
        let peer = s.peer.clone();
        let verified = verdict.is_ok();
        s.verified = Some(verified);
        let fetch = verified.then(|| (s.peer_number, s.call.invite_header("Call-Info").map(str::to_string)));
        if !verified && reject {
            s.call.reject(438, "Invalid Identity Header", now);
        } else {
            if let Some(info) = callee_info {
                s.call.push_response_header("Call-Info".into(), info);
            }
            s.call.ring(now);
            if self.cfg.auto_answer && alone {
                s.answer_at = Some(now + self.cfg.answer_after_ms);
            }
        }
        if let Some(c) = self.view_mut(cid) {
            c.verified = Some(verified);
        }
        self.emit(UiEvent::Caller {
            number: peer.clone(),
            unverified: verdict.err(),
        });
        if verified || !reject {
            self.emit(UiEvent::Incoming { from: peer });
        }
        if let Some((Some(n), Some(info))) = fetch {
            self.fetch_greeting(cid, n, peerdial_greetings::Kind::Caller, &info);
        }
    }
}
