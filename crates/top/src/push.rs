//! Push wake-up for callees without a switch (issue 15, C3). This is the
//! minimal stand-in the designation builds against: nobody has push
//! parameters yet, so every callee is called directly. The push branch
//! replaces it with RFC 8599 parameters and Web Push sending.

use peerdial_number::Number;

use crate::TopShared;

/// Who to wake, for whom.
#[derive(Debug, Clone)]
#[allow(dead_code)] // read by the push service
pub(crate) struct WakeRequest {
    pub caller: Number,
    pub callee: Number,
    /// The caller's address as the top saw it.
    pub caller_addr: Option<String>,
}

/// What the wake-up did.
#[derive(Debug, Clone)]
pub(crate) enum Woken {
    /// Pushed; the caller presents `token` to the woken callee.
    #[allow(dead_code)] // made by the push service
    Pushed { token: String },
    /// The callee registered no push parameters: call it directly.
    NoPushRegistration,
}

/// Why a push failed (the caller hears 502).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WakeError {
    #[allow(dead_code)] // made by the push service
    #[error("push delivery failed: {0}")]
    Delivery(String),
}

pub(crate) async fn wake(_shared: &TopShared, _req: &WakeRequest) -> Result<Woken, WakeError> {
    Ok(Woken::NoPushRegistration)
}
