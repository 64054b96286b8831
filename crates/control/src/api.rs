//! What the top asks a region's controller over HTTP (issue 13: "a region
//! controls calls for its numbers"): the paths and bodies, shared by the
//! region (which serves them) and the top (which asks). Every request
//! carries `Authorization: Bearer <join token>` — the secret the region
//! already shares with the top it joined; the region refuses anything else.
//! A country server serves the same API to the top above it (checking the
//! token it joined the top with) and passes each call on to the region
//! below it with its own join token: each hop uses the secret its two ends
//! already share, and no token goes further than that.
//!
//! - `POST {CALLS_PATH}` with a [`Start`]: 201 `{"id": N}`;
//! - `GET {CALLS_PATH}/{id}?after=N&wait=S`: `{"events": […], "next": N, "over": bool}`,
//!   the events exactly as the dialer reads them (`event`, `text`, …);
//! - `DELETE {CALLS_PATH}/{id}`: 202, the call is cancelled;
//! - `POST {CALLS_PATH}/{id}/participants` with an [`Add`]: 202.
//!
//! Refusals are `{"error": "…"}`: 401 without the token, 403 for a talker
//! of a new call that is not the region's, 404 for an unknown number, 409
//! for one offline; nothing is started then. A newcomer ([`Add`]) may be
//! any peerdial number: the region finds another region's number through
//! DNS (`crate::reach`). A newcomer whose talker is a foreign SIP account
//! comes with [`Via`]: the top verified the account, and the region sends
//! the INVITE through that account's server, as the top itself would.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::View;
use subtle::ConstantTimeEq;

/// Where the region serves its controller's calls.
pub const CALLS_PATH: &str = "/api/v1/control/calls";

/// A call to start: a pairing (`talker` then `callee`, RFC 3725 flow I),
/// or a conference hosted by the region (`talkers`, the dialer's first).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talkers: Option<Vec<Member>>,
}

/// One talker of a conference: how the dialer sees it, and its number.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub who: String,
    pub number: String,
}

/// One more talker in call `id`: into its conference, or (`grow`: the
/// labels of its two talkers) turning a connected pairing into one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Add {
    pub who: String,
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grow: Option<[String; 2]>,
    /// A foreign account instead of a number (`number` is then its
    /// address of record, for the progress only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

/// A foreign SIP account to call: its address of record, through its
/// server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Via {
    pub aor: String,
    pub server: std::net::SocketAddr,
}

/// The query of a progress request (`?after=N&wait=S`), the top's
/// dialers' and the region's alike.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct After {
    /// Events already read.
    #[serde(default)]
    pub after: usize,
    /// Seconds to wait for news (at most [`crate::book::MAX_WAIT_SECS`]).
    #[serde(default)]
    pub wait: u64,
}

/// Whether a control request comes from the server above: its
/// `Authorization` header value must be `Bearer <token>`, the token this
/// server joined that one (`whose`: "top", "parent") with. The refusal
/// (a 401) says why; a server that joined nothing takes no requests.
pub fn from_above(authorization: Option<&str>, token: Option<&str>, whose: &str) -> Result<(), String> {
    let Some(token) = token else {
        return Err(format!("this server joined no {whose}: it takes no control requests"));
    };
    if !carries(authorization, token) {
        return Err(format!(
            "control requests need the {whose}'s bearer token (the token this server joined it with)"
        ));
    }
    Ok(())
}

/// Whether an `Authorization` header value is `Bearer <token>` (compared
/// in constant time; an empty token never matches).
fn carries(authorization: Option<&str>, token: &str) -> bool {
    let given = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .as_bytes();
    !token.is_empty() && bool::from(given.ct_eq(token.as_bytes()))
}

/// The body of a progress answer: the events after `after` exactly as
/// the dialer reads them, the next mark, and whether the call is over.
pub fn progress(after: usize, v: View) -> Value {
    json!({"next": after + v.events.len(), "events": Value::Array(v.events), "over": v.over})
}

#[cfg(test)]
mod tests {
    use super::{carries, from_above};

    #[test]
    fn bearer_tokens() {
        assert!(carries(Some("Bearer t0ken"), "t0ken"));
        assert!(carries(Some("Bearer t0ken "), "t0ken"));
        assert!(!carries(Some("Bearer t0ke"), "t0ken"));
        assert!(!carries(Some("Bearer t0kem"), "t0ken"));
        assert!(!carries(Some("t0ken"), "t0ken"));
        assert!(!carries(None, "t0ken"));
        assert!(!carries(Some("Bearer "), ""));
        assert!(from_above(Some("Bearer t0ken"), Some("t0ken"), "top").is_ok());
        assert!(from_above(Some("Bearer t0ken"), None, "top").unwrap_err().contains("joined no top"));
        assert!(from_above(Some("Bearer x"), Some("t0ken"), "parent")
            .unwrap_err()
            .contains("parent's bearer token"));
    }
}
