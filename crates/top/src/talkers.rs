//! A signed-in user's talkers at the top (issue 13): `GET/POST
//! /api/v1/talkers`, `DELETE /api/v1/talkers/{id}`, and for a foreign
//! account `POST /api/v1/talkers/{id}/code` (send a code again) and
//! `POST /api/v1/talkers/{id}/verify {"code"}`. A peerdial number is
//! proven at once by its device's credentials (a PASSporT its region
//! signed, as `Identity` with `X-Peerdial-From`); a foreign account is
//! proven by the code the controller sends to it in a SIP MESSAGE
//! through its server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use peerdial_directory::{Account, Talker, VerifyError};
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use peerdial_store::directory::TalkerRow;
use peerdial_store::StoreError;
use serde::Deserialize;
use serde_json::json;

use crate::users::{now_ms, user, vouched};
use crate::TopShared;
use peerdial_control::Command;

/// Talkers a user may have.
pub const MAX_TALKERS: usize = 20;

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new()
        .route("/api/v1/talkers", get(list).post(add))
        .route("/api/v1/talkers/{id}", delete(remove))
        .route("/api/v1/talkers/{id}/code", post(resend))
        .route("/api/v1/talkers/{id}/verify", post(verify))
}

fn talker(r: &TalkerRow) -> Talker {
    let account = if r.kind == "peerdial" {
        Account::Peerdial {
            number: Number::from_u64(r.number as u64).map(|n| n.to_string()).unwrap_or_default(),
        }
    } else {
        Account::Sip {
            aor: r.aor.clone(),
            server: r.server.clone(),
        }
    };
    Talker {
        id: r.id,
        owner: Number::from_u64(r.owner as u64).map(|n| n.to_string()).unwrap_or_default(),
        name: r.name.clone(),
        account,
        verified: r.verified,
    }
}

/// A user's talkers, as the directory sees them.
pub(crate) async fn talkers_of(shared: &TopShared, owner: Number) -> Result<Vec<Talker>, StoreError> {
    Ok(shared.store.talkers(owner.as_u64() as i64).await?.iter().map(talker).collect())
}

fn db(e: StoreError) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, format!("the top's database: {e}"))
}

async fn list(State(shared): State<Arc<TopShared>>, headers: HeaderMap) -> Response {
    let me = match user(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    match talkers_of(&shared, me).await {
        Ok(t) => Json(json!({"user": me.to_string(), "talkers": t})).into_response(),
        Err(e) => db(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTalker {
    name: String,
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    aor: Option<String>,
    #[serde(default)]
    server: Option<String>,
}

/// Sends a fresh code for talker `id` to its address of record.
fn send_code(shared: &TopShared, id: i64, aor: &str, server: &str) {
    let Ok(next_hop) = server.parse::<SocketAddr>() else { return };
    let code = shared.dialing.codes.lock().expect("codes").issue(id, now_ms());
    shared.dialing.controller.send(Command::Notice {
        uri: aor.to_string(),
        next_hop,
        text: format!("peerdial verification code: {code}"),
    });
}

async fn add(State(shared): State<Arc<TopShared>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let me = match user(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let req: NewTalker = match json_body(body, crate::MAX_BODY) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let bad = |e: peerdial_directory::DirectoryError| error(StatusCode::BAD_REQUEST, e.to_string());
    let name = match Talker::check_name(&req.name) {
        Ok(n) => n,
        Err(e) => return bad(e),
    };
    let account = match (&req.number, &req.aor, &req.server) {
        (Some(n), None, None) => Account::peerdial(n),
        (None, Some(a), Some(s)) => Account::sip(a, s),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "a talker is a peerdial \"number\", or a foreign account: \"aor\" and \"server\"".into(),
            )
        }
    };
    let account = match account {
        Ok(a) => a,
        Err(e) => return bad(e),
    };
    let mut row = TalkerRow {
        id: 0,
        owner: me.as_u64() as i64,
        name,
        kind: String::new(),
        number: 0,
        aor: String::new(),
        server: String::new(),
        verified: false,
    };
    match &account {
        Account::Peerdial { number } => {
            let n = Number::parse(number).expect("checked");
            match vouched(&shared, &headers).await {
                Ok(Some(v)) if v == n => {}
                Ok(_) => {
                    return error(
                        StatusCode::FORBIDDEN,
                        format!("prove {n} with its device's credentials: Identity (a PASSporT from its region) and X-Peerdial-From"),
                    )
                }
                Err(r) => return r,
            }
            row.kind = "peerdial".into();
            row.number = n.as_u64() as i64;
            row.verified = true;
        }
        Account::Sip { aor, server } => {
            row.kind = "sip".into();
            row.aor = aor.clone();
            row.server = server.clone();
        }
    }
    match shared.store.talkers(row.owner).await {
        Ok(t) if t.len() >= MAX_TALKERS => {
            return error(StatusCode::CONFLICT, format!("at most {MAX_TALKERS} talkers"));
        }
        Ok(_) => {}
        Err(e) => return db(e),
    }
    let id = match shared.store.add_talker(&row, now_ms() as i64).await {
        Ok(Some(id)) => id,
        Ok(None) => return error(StatusCode::CONFLICT, format!("you already have a talker named {:?}", row.name)),
        Err(e) => return db(e),
    };
    row.id = id;
    if !row.verified {
        send_code(&shared, id, &row.aor, &row.server);
    }
    let status = if row.verified { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    let mut body = json!({"talker": talker(&row)});
    if !row.verified {
        body["code_sent_to"] = json!(row.aor);
    }
    (status, Json(body)).into_response()
}

/// The caller's talker `id`, or 404.
async fn own(shared: &TopShared, me: Number, id: i64) -> Result<TalkerRow, Response> {
    match shared.store.talkers(me.as_u64() as i64).await {
        Ok(t) => t
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("you have no talker {id}"))),
        Err(e) => Err(db(e)),
    }
}

async fn remove(State(shared): State<Arc<TopShared>>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    let me = match user(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    match shared.store.remove_talker(me.as_u64() as i64, id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("you have no talker {id}")),
        Err(e) => db(e),
    }
}

async fn resend(State(shared): State<Arc<TopShared>>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    let me = match user(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let t = match own(&shared, me, id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if t.kind != "sip" || t.verified {
        return error(StatusCode::CONFLICT, format!("talker {id} needs no code"));
    }
    send_code(&shared, id, &t.aor, &t.server);
    (StatusCode::ACCEPTED, Json(json!({"code_sent_to": t.aor}))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Code {
    code: String,
}

async fn verify(
    State(shared): State<Arc<TopShared>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let me = match user(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let req: Code = match json_body(body, crate::MAX_BODY) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut t = match own(&shared, me, id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if t.verified {
        return Json(json!({"talker": talker(&t)})).into_response();
    }
    let checked = shared.dialing.codes.lock().expect("codes").check(id, &req.code, now_ms());
    match checked {
        Ok(()) => {}
        Err(e @ VerifyError::Wrong) | Err(e @ VerifyError::NoCode) => return error(StatusCode::FORBIDDEN, e.to_string()),
    }
    match shared.store.verify_talker(t.owner, id).await {
        Ok(_) => {
            t.verified = true;
            Json(json!({"talker": talker(&t)})).into_response()
        }
        Err(e) => db(e),
    }
}
