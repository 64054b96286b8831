//! A minimal `POST /api/v1/calls/designate` (issue 15's contract) with
//! only the device-authenticated, no-switch branch: the caller's region
//! vouches for it (`Identity`, `X-Peerdial-From`), an unknown callee is
//! refused, and a callee with push parameters is woken (C3). The full
//! designation (switches, queues, keys) replaces this file.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use serde::Deserialize;
use serde_json::json;

use crate::push::{wake, WakeRequest, Woken};
use crate::TopShared;

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new().route("/api/v1/calls/designate", post(designate))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Designate {
    callee: String,
    #[serde(default)]
    caller: Option<String>,
}

async fn designate(
    State(shared): State<Arc<TopShared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = match crate::users::vouched(&shared, &headers).await {
        Ok(Some(n)) => n,
        Ok(None) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "a device signs in with Identity and X-Peerdial-From".into(),
            )
        }
        Err(r) => return r,
    };
    let req: Designate = match json_body(body, crate::MAX_BODY) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.caller.as_deref().is_some_and(|c| Number::parse(c).ok() != Some(caller)) {
        return error(StatusCode::FORBIDDEN, "a device designates only its own calls".into());
    }
    let Ok(callee) = Number::dial(&req.callee, caller.area()) else {
        return error(StatusCode::NOT_FOUND, "invalid call: unknown callee".into());
    };
    if shared.dns_for(callee).is_none() {
        return error(StatusCode::NOT_FOUND, "invalid call: unknown callee".into());
    }
    let w = WakeRequest {
        caller,
        callee,
        caller_addr: Some(peer.ip().to_string()),
    };
    match wake(&shared, &w).await {
        Ok(Woken::Pushed { token }) => Json(json!({"route": "push", "from": "device", "token": token, "expires_in": 30})).into_response(),
        Ok(Woken::NoPushRegistration) => Json(json!({"route": "direct", "from": "device"})).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
