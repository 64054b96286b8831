//! What the top asks a region's controller over HTTP (issue 13: "a region
//! controls calls for its numbers"): the paths and bodies, shared by the
//! region (which serves them) and the top (which asks). Every request
//! carries `Authorization: Bearer <join token>` — the secret the region
//! already shares with the top it joined; the region refuses anything else.
//!
//! - `POST {CALLS_PATH}` with a [`Start`]: 201 `{"id": N}`;
//! - `GET {CALLS_PATH}/{id}?after=N&wait=S`: `{"events": […], "next": N, "over": bool}`,
//!   the events exactly as the dialer reads them (`event`, `text`, …);
//! - `DELETE {CALLS_PATH}/{id}`: 202, the call is cancelled;
//! - `POST {CALLS_PATH}/{id}/participants` with an [`Add`]: 202.
//!
//! Refusals are `{"error": "…"}`: 401 without the token, 403 for a number
//! that is not the region's, 404 for an unknown one, 409 for one offline;
//! nothing is started then.

use serde::{Deserialize, Serialize};

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
