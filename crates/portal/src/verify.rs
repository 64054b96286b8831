//! Checking a number's password or pairing code, for the region's own
//! sign-in page and for sign-in elsewhere (design §9: the account lives in
//! the number's region; the top delegates to it).
//!
//! `POST /api/v1/account/verify {"number", "password"}` (or `"code"`
//! instead of a password) is the server-to-server form: the region applies
//! the same per-number limits and Argon2id check as its sign-in page, and
//! on success answers with a PASSporT for the number (orig = dest = the
//! number, signed with the caller-identity key, valid 60 s) that the asker
//! verifies with the key it finds in DNS. A refusal is a stable code
//! (`wrong_password`, `too_many_number`, …) that the asker shows in its
//! own language. Passwords are never logged or stored by this module.
//!
//! The per-address limit is the asker's business for delegated checks:
//! every request comes from the asker's address, so counting it here would
//! let a few wrong passwords lock everybody out of the top.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use peerdial_number::Number;
use peerdial_store::PairingOutcome;
use serde::{Deserialize, Serialize};

use crate::i18n::Msg;
use crate::limit::Refusal;
use crate::{now_ms, verify_password, Portal};

/// Why a sign-in is refused; `code()` names it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    BadNumber,
    /// Too many wrong attempts for the number: minutes left.
    TooManyNumber(i64),
    /// Too many wrong attempts from the address: minutes left.
    TooManyAddress(i64),
    Disabled,
    WrongPassword,
    CodeExpired,
    CodeUsed,
    CodeWrong,
}

impl Denied {
    pub fn code(self) -> &'static str {
        match self {
            Denied::BadNumber => "bad_number",
            Denied::TooManyNumber(_) => "too_many_number",
            Denied::TooManyAddress(_) => "too_many_address",
            Denied::Disabled => "number_disabled",
            Denied::WrongPassword => "wrong_password",
            Denied::CodeExpired => "code_expired",
            Denied::CodeUsed => "code_used",
            Denied::CodeWrong => "code_wrong",
        }
    }

    /// The refusal a code names (`minutes` for the limits).
    pub fn from_code(code: &str, minutes: i64) -> Option<Denied> {
        Some(match code {
            "bad_number" => Denied::BadNumber,
            "too_many_number" => Denied::TooManyNumber(minutes.max(1)),
            "too_many_address" => Denied::TooManyAddress(minutes.max(1)),
            "number_disabled" => Denied::Disabled,
            "wrong_password" => Denied::WrongPassword,
            "code_expired" => Denied::CodeExpired,
            "code_used" => Denied::CodeUsed,
            "code_wrong" => Denied::CodeWrong,
            _ => return None,
        })
    }

    fn minutes(self) -> i64 {
        match self {
            Denied::TooManyNumber(m) | Denied::TooManyAddress(m) => m,
            _ => 0,
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Denied::BadNumber => StatusCode::BAD_REQUEST,
            Denied::TooManyNumber(_) | Denied::TooManyAddress(_) => StatusCode::TOO_MANY_REQUESTS,
            Denied::Disabled => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// What the person reads, in the page's language.
    pub fn text(self, t: &Msg) -> String {
        match self {
            Denied::BadNumber => t.bad_number.to_string(),
            Denied::TooManyNumber(m) => format!("{} {m} {}", t.too_many_number, t.minutes),
            Denied::TooManyAddress(m) => format!("{} {m} {}", t.too_many_address, t.minutes),
            Denied::Disabled => t.number_disabled.to_string(),
            Denied::WrongPassword => t.wrong_password.to_string(),
            Denied::CodeExpired => t.code_expired.to_string(),
            Denied::CodeUsed => t.code_used.to_string(),
            Denied::CodeWrong => t.code_wrong.to_string(),
        }
    }
}

/// Why a check could not be made or was refused.
pub(crate) enum Failed {
    Denied(Denied),
    /// The database did not answer.
    Unavailable(String),
}

/// Checks a password (or, when `code` is not empty, a pairing code) of
/// `number`, a number of this area. `addr`: the client's address, counted
/// when the client is a person at this region's page. Ok(paired).
pub(crate) async fn check(portal: &Portal, number: Number, password: String, code: &str, addr: Option<IpAddr>) -> Result<bool, Failed> {
    let key = number.as_u64() as i64;
    let now = now_ms();
    // Delegated checks have no address of their own: one that never fails.
    let ip = addr.unwrap_or(IpAddr::from([0u8; 16]));
    let checked = portal.limits.lock().expect("limits lock").check(key, ip, now);
    if let Err(r) = checked {
        return Err(Failed::Denied(match r {
            Refusal::Number(m) => Denied::TooManyNumber(m),
            Refusal::Address(m) => Denied::TooManyAddress(m),
        }));
    }
    if portal.link.disabled(number) {
        return Err(Failed::Denied(Denied::Disabled));
    }
    let paired = !code.is_empty();
    let verdict = if paired {
        match crate::pairing::redeem(&portal.store, key, code, now).await {
            Ok(PairingOutcome::Accepted) => Ok(()),
            Ok(PairingOutcome::Expired) => Err(Denied::CodeExpired),
            Ok(PairingOutcome::Used) => Err(Denied::CodeUsed),
            Ok(PairingOutcome::Wrong) => Err(Denied::CodeWrong),
            Err(e) => return Err(Failed::Unavailable(e.to_string())),
        }
    } else {
        let ok = match portal.store.password_hash(key).await {
            Ok(Some(h)) => verify_password(password, h).await,
            Ok(None) => false,
            Err(e) => return Err(Failed::Unavailable(e.to_string())),
        };
        if ok {
            Ok(())
        } else {
            Err(Denied::WrongPassword)
        }
    };
    let mut limits = portal.limits.lock().expect("limits lock");
    match verdict {
        Ok(()) => {
            limits.succeeded(key);
            Ok(paired)
        }
        Err(d) => {
            match addr {
                Some(a) => limits.failed(key, a, now),
                None => limits.failed_number(key, now),
            }
            Err(Failed::Denied(d))
        }
    }
}

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new().route("/api/v1/account/verify", post(verify))
}

/// What an asker sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub number: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub code: String,
}

/// What the region answers: `identity` (the `Identity` header value for
/// the number) on success, `refused` and `minutes` otherwise.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VerifyAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn refused(d: Denied) -> Response {
    let minutes = (d.minutes() > 0).then_some(d.minutes());
    let body = VerifyAnswer {
        refused: Some(d.code().to_string()),
        minutes,
        ..VerifyAnswer::default()
    };
    (d.status(), Json(body)).into_response()
}

fn failure(status: StatusCode, why: String) -> Response {
    let body = VerifyAnswer {
        error: Some(why),
        ..VerifyAnswer::default()
    };
    (status, Json(body)).into_response()
}

async fn verify(State(portal): State<Arc<Portal>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, body: Bytes) -> Response {
    let req: VerifyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"number\", \"password\"}} or {{\"number\", \"code\"}}: {e}"),
            )
        }
    };
    let number = match Number::parse(req.number.trim()) {
        Ok(n) if portal.area.contains(n) => n,
        _ => return refused(Denied::BadNumber),
    };
    match check(&portal, number, req.password, req.code.trim(), None).await {
        Ok(paired) => match portal.link.vouch(number) {
            Ok(identity) => {
                tracing::info!(%number, paired, asker = %peer.ip(), "sign-in checked for another server");
                Json(VerifyAnswer {
                    identity: Some(identity),
                    ..VerifyAnswer::default()
                })
                .into_response()
            }
            Err(why) => failure(StatusCode::SERVICE_UNAVAILABLE, why.to_string()),
        },
        Err(Failed::Denied(d)) => {
            tracing::info!(%number, asker = %peer.ip(), refused = d.code(), "delegated sign-in refused");
            refused(d)
        }
        Err(Failed::Unavailable(e)) => {
            tracing::warn!(error = %e, "portal storage failed");
            failure(StatusCode::SERVICE_UNAVAILABLE, "the region's database is not answering".into())
        }
    }
}
