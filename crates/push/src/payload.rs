//! What a wake push carries (JSON, encrypted before it leaves the top):
//! who calls, from where, the token the caller will present and the one
//! the callee presents back. Parsed strictly (unknown fields refused).

use serde::{Deserialize, Serialize};

use crate::{PushError, Result};

/// Largest payload a phone accepts (Web Push allows 4 KiB of ciphertext).
pub const MAX_PAYLOAD: usize = 3_500;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakePayload {
    /// Always "wake".
    pub kind: String,
    pub caller: String,
    pub callee: String,
    /// The caller's address as the cloud saw it, if known.
    #[serde(default)]
    pub caller_addr: Option<String>,
    /// The token the caller's INVITE will carry.
    pub caller_token: String,
    /// The token the callee puts in its answer.
    pub callee_token: String,
}

impl std::fmt::Debug for WakePayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakePayload")
            .field("caller", &self.caller)
            .field("callee", &self.callee)
            .field("caller_addr", &self.caller_addr)
            .finish_non_exhaustive()
    }
}

impl WakePayload {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serialises")
    }

    pub fn parse(bytes: &[u8]) -> Result<WakePayload> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(PushError::Payload(format!("longer than {MAX_PAYLOAD} bytes")));
        }
        let p: WakePayload = serde_json::from_slice(bytes).map_err(|e| PushError::Payload(e.to_string()))?;
        if p.kind != "wake" {
            return Err(PushError::Payload("not a wake push".into()));
        }
        Ok(p)
    }
}
