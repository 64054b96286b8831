//! The cloud directory of people and devices (design §9 "people and
//! devices", issue 13): a user's *talkers* — the devices they talk on —
//! each an account on some SIP server (a peerdial number in its region, or
//! a foreign SIP account: an address of record on a SIP server), whether
//! each is proven yet, the verification codes that prove a foreign one,
//! and the rule that pairs a caller's talker with a callee's on a common
//! server.
//!
//! [`designation`] is the cloud's per-call choice of route (issue 15):
//! switches, their devices, the A/B/C table and its records.
//!
//! It is not a store, a SIP element or a clock: the top keeps the rows,
//! sends the verification MESSAGE, and hands the chosen pair to the
//! third-party call controller (`peerdial_sip::pairing`).

pub mod designation;
mod matching;
mod talker;
mod verify;

pub use matching::{match_pair, Callee, Pair, Refusal, Route, Wanted, Why};
pub use talker::{Account, Talker};
pub use verify::{Codes, VerifyError, CODE_LIFETIME_MS, MAX_TRIES};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    #[error("a talker's name is 1 to 40 printable characters")]
    Name,
    #[error("invalid address of record {0:?}: want sip:user@host[:port]")]
    Aor(String),
    #[error("invalid SIP server {0:?}: want host:port (an IP address)")]
    Server(String),
    #[error("invalid number {0:?}")]
    Number(String),
}
