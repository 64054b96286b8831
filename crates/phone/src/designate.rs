//! Designation before a call (issue 15): with `--top`, the caller asks the
//! cloud `POST /api/v1/calls/designate` how to reach the callee, signed in
//! with a PASSporT its region makes for its own number. A callee behind a
//! switch gives that switch's address and a one-time key; the INVITE then
//! goes to the switch with the key in `X-Peerdial-Switch-Key`. A direct
//! route is called as any number; a push route waits for the woken callee
//! first and carries the cloud's token (`wake.rs`). An unknown, disabled, refusing or
//! silent callee ends the dial with the cloud's reason. A cloud without
//! designation, or that cannot be reached, is passed over: the number is
//! called directly.
//!
//! Not here: the call itself (`calls.rs`), the lookup (`resolve.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use peerdial_directory::designation::Route;
use peerdial_number::Number;

use crate::{caller_id, http, Identity};

/// What the cloud said.
#[derive(Debug)]
pub(crate) enum Designated {
    Switch {
        addr: SocketAddr,
        key: String,
        queue: u32,
    },
    /// Call it directly.
    Direct,
    /// The cloud woke the callee by push: wait for it to register, then
    /// call it directly with this token (`wake.rs`).
    Push {
        token: String,
    },
    /// The cloud refused: its status and reason.
    Refused {
        status: u16,
        why: String,
    },
    /// No designation to be had (the cloud is silent, or has none): call directly.
    Unavailable(String),
}

pub(crate) async fn ask(top: &str, id: &Identity, own: Number, callee: Number) -> Designated {
    let authority = match peerdial_net::http_client::http_authority(top) {
        Ok(a) => a.to_string(),
        Err(e) => return Designated::Unavailable(e.to_string()),
    };
    let identity = match caller_id::passport(id, own).await {
        Ok(i) => i,
        Err(e) => return Designated::Unavailable(format!("no PASSporT for the cloud: {e}")),
    };
    let body = serde_json::json!({ "callee": callee.digits() }).to_string();
    let from = own.digits();
    let headers = [
        ("Identity", identity.as_str()),
        ("X-Peerdial-From", from.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = match http::request(
        &authority,
        "POST",
        "/api/v1/calls/designate",
        &headers,
        body.as_bytes(),
        Duration::from_secs(5),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return Designated::Unavailable(e.to_string()),
    };
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    match r.status {
        200 => match serde_json::from_value::<Route>(json) {
            Ok(Route::Switch { switch, key, queue }) => Designated::Switch { addr: switch, key, queue },
            Ok(Route::Direct) => Designated::Direct,
            Ok(Route::Push { token }) => Designated::Push { token },
            Err(e) => Designated::Unavailable(format!("an answer we cannot read: {e}")),
        },
        403 | 404 | 409 | 502 | 504 => Designated::Refused {
            status: r.status,
            why: json["error"].as_str().unwrap_or("refused").chars().take(200).collect(),
        },
        s => Designated::Unavailable(format!("the cloud answered {s}")),
    }
}
