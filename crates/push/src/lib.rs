//! Push wake-up for devices without a switch (issue 15, design §10).
//!
//! - [`params`]: the RFC 8599 parameters a phone puts on its REGISTER
//!   Contact (`pn-provider`, `pn-prid`, `pn-param`), parsed strictly.
//! - [`webpush`]: Web Push (RFC 8030) requests with the payload encrypted
//!   per RFC 8291 (`aes128gcm`) and VAPID (RFC 8292), built with
//!   `web-push-native`; the user agent's keys and decryption for phones and
//!   for the test push service; VAPID checks.
//! - [`adapter`]: one interface ([`adapter::PushAdapter`]) over Web Push,
//!   APNs and FCM: each turns parameters and a payload into an HTTP request.
//! - [`retry`]: the retry schedule with back-off, sans-I/O.
//! - [`token`]: the cloud-signed wake tokens the two phones exchange.
//! - [`payload`]: what a wake push carries.
//!
//! It is not an HTTP client or server: the top sends what it builds, the
//! phone receives and hands the bytes in. It keeps no clock.

pub mod adapter;
pub mod params;
pub mod payload;
pub mod retry;
pub mod token;
pub mod webpush;

pub use adapter::{PushAdapter, PushRequest};
pub use params::{Provider, PushParams};
pub use payload::WakePayload;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Malformed RFC 8599 parameters (the text is safe to put in a 400).
    #[error("{0}")]
    Params(String),
    #[error("key file {path}: {why}")]
    Key { path: String, why: String },
    #[error("encryption: {0}")]
    Encrypt(String),
    #[error("the push did not decrypt with this subscription's keys")]
    Decrypt,
    #[error("VAPID: {0}")]
    Vapid(String),
    #[error("wake token: {0}")]
    Token(String),
    #[error("payload: {0}")]
    Payload(String),
    #[error("{0} push is not configured on this server")]
    NotConfigured(&'static str),
}

pub type Result<T> = std::result::Result<T, PushError>;

/// Milliseconds since the Unix epoch (for the edges; the cores take `now`).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
