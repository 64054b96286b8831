//! `dial --talker NAME NUMBER`: the phone as a dialer for another of its
//! owner's devices (issue 13). It signs in at the top (`--top`) with a
//! PASSporT its own region signs for its number (`POST /api/v1/session`),
//! asks the top's third-party call controller to connect the talker
//! `NAME` (or "any") with `NUMBER` (`POST /api/v1/calls`), and prints the
//! call's progress as `dial: …` lines until it connects and ends, or fails.
//!
//! What this is not: a talker (the call's media never touches this phone
//! unless it is the talker itself) or the controller (the top's).

use std::time::Duration;

use peerdial_number::Number;
use serde_json::{json, Value};

use crate::commands::Command;
use crate::display::UiEvent;
use crate::{caller_id, http, Identity, Phone};

/// How long a progress poll waits for news at the top.
const WAIT_S: u64 = 20;
/// Progress polls at most (a call that long is left to the top).
const MAX_POLLS: usize = 1_000;

fn json_of(r: &http::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn refusal(what: &str, r: &http::Response) -> String {
    let v = json_of(r);
    let why = v["error"].as_str().map(str::to_string).unwrap_or_else(|| r.status.to_string());
    format!("{what} ({}): {why}", r.status)
}

/// Signs in, places the call, and sends each progress line to `tx`.
async fn run(
    id: &Identity,
    own: Number,
    top: &str,
    talker: &str,
    callee: Number,
    tx: &tokio::sync::mpsc::Sender<Command>,
) -> Result<(), String> {
    let say = |l: String| async move {
        let _ = tx.send(Command::Notice(format!("dial: {l}"))).await;
    };
    let authority = peerdial_net::http_client::http_authority(top).map_err(|e| e.to_string())?;
    let t = Duration::from_secs(5);
    let identity = caller_id::passport(id, own)
        .await
        .map_err(|e| format!("no PASSporT from our region: {e}"))?;
    let own_s = own.to_string();
    let r = http::request(
        authority,
        "POST",
        "/api/v1/session",
        &[("Identity", &identity), ("X-Peerdial-From", &own_s)],
        b"",
        t,
    )
    .await
    .map_err(|e| e.to_string())?;
    if r.status != 201 {
        return Err(refusal("the top refused our sign-in", &r));
    }
    let token = json_of(&r)["token"]
        .as_str()
        .ok_or("the top's sign-in answer has no token")?
        .to_string();
    let auth = format!("Bearer {token}");
    let body = json!({"talker": talker, "callee": callee.to_string()}).to_string();
    let h = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let r = http::request(authority, "POST", "/api/v1/calls", &h, body.as_bytes(), t)
        .await
        .map_err(|e| e.to_string())?;
    if r.status != 201 {
        return Err(refusal("refused", &r));
    }
    let v = json_of(&r);
    let call = v["id"].as_u64().ok_or("the top's answer has no call id")?;
    say(format!(
        "matched: your {:?} with {}'s {:?} ({})",
        v["talker"].as_str().unwrap_or("?"),
        v["callee"].as_str().unwrap_or("?"),
        v["callee_talker"].as_str().unwrap_or("?"),
        v["reason"].as_str().unwrap_or("?")
    ))
    .await;
    let mut after = 0;
    for _ in 0..MAX_POLLS {
        let path = format!("/api/v1/calls/{call}?after={after}&wait={WAIT_S}");
        let r = http::request(authority, "GET", &path, &h[..1], b"", Duration::from_secs(WAIT_S + 5))
            .await
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(refusal("progress", &r));
        }
        let v = json_of(&r);
        for ev in v["events"].as_array().into_iter().flatten() {
            say(ev["text"].as_str().unwrap_or("?").to_string()).await;
        }
        after = v["next"].as_u64().unwrap_or(after);
        if v["over"].as_bool() == Some(true) {
            return Ok(());
        }
    }
    Ok(())
}

impl Phone {
    /// `dial --talker NAME NUMBER`.
    pub(crate) fn dial_for(&mut self, talker: String, number: &str) {
        let Some(top) = self.cfg.top.clone() else {
            return self.emit(UiEvent::Error("dial --talker needs the top's URL (--top)".into()));
        };
        let callee = match Number::dial(number, self.area) {
            Ok(n) => n,
            Err(e) => return self.emit(UiEvent::Error(format!("cannot dial {number:?}: {e}"))),
        };
        let (id, own, tx) = (self.id.clone(), self.own, self.cmd_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = run(&id, own, &top, &talker, callee, &tx).await {
                let _ = tx.send(Command::Notice(format!("dial: failed: {e}"))).await;
            }
        });
    }
}
