//! peerdial's SIP core, free of I/O.
//!
//! - [`message`]: parse and serialise SIP messages, frame stream transports;
//! - [`digest`]: digest authentication (SHA-256 and MD5), stateless nonces;
//! - [`registrar`]: the registrar state machine that a region server feeds
//!   with bytes and time;
//! - [`call`]: one call's INVITE dialog, either side, with UDP timers;
//! - [`request`]: one request outside a dialog (MESSAGE), with UDP timers;
//! - [`transaction`]: a non-INVITE client transaction's UDP timers (E, F);
//! - [`conference`]: the legs of a conference a server hosts (one call
//!   per talker, each with its port on the mixer) and when it ends;
//! - [`pairing`]: third-party call control (RFC 3725): two calls paired so
//!   that two talkers talk, the controller never in their media;
//! - [`validate`]: what a request must satisfy before it is acted on, and
//!   the answers (400, 505, 416, 420) to those that do not.
//!
//! It is not a proxy and holds no sockets: callers own the transport.

pub mod call;
pub mod client;
pub mod conference;
pub mod digest;
pub mod ids;
pub mod message;
pub mod pairing;
pub mod registrar;
pub mod request;
pub mod transaction;
pub mod validate;

pub use message::Message;
pub use registrar::{Binding, Change, Output, Registrar, RegistrarConfig, Transport};

/// A request or response a server-side machine wants sent, and over which
/// transport: over TCP the edge writes it on the open connection from
/// `to` (the phone's source address), over UDP it sends a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub to: std::net::SocketAddr,
    pub transport: Transport,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("empty message")]
    Empty,
    #[error("incomplete message (no blank line after the headers)")]
    Incomplete,
    #[error("message of {0} bytes is too large")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A request line naming a SIP version other than 2.0 (answered 505).
    #[error("unsupported SIP version")]
    Version,
}
