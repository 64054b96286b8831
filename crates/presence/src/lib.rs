//! Presence for peerdial, free of I/O (design §9: "online means reachable
//! now").
//!
//! - [`state`]: the five states a number shows and the rule that derives
//!   the shown state from reachability, calls and what the user set;
//! - [`pidf`]: PIDF (RFC 3863) with RPID activities (RFC 4480), encode and
//!   a strict, bounded decode (on the small XML reader in [`xml`]);
//! - [`server`]: the region's presence agent: SUBSCRIBE/NOTIFY (RFC 6665,
//!   RFC 3856) with fan-out to every watcher, PUBLISH (RFC 3903),
//!   friends-only policy and subscription flood limits;
//! - [`liveness`]: which numbers are reachable now (UDP keep-alives with
//!   OPTIONS, TCP connections);
//! - [`client`]: the phone's side, a [`client::Publisher`] and a
//!   [`client::Watcher`].
//!
//! Every machine here is fed parsed messages (or bytes) and the wall clock
//! in milliseconds and yields datagrams from `poll_transmit`, deadlines from
//! `poll_timeout` and what happened from `poll_event`. It holds no sockets,
//! no clock and no storage, authenticates no one (the edge checks digest
//! credentials and says who asked with [`server::WatcherAuth`]), and serves
//! no HTTP: the region maps [`server::PresenceServer::presence`] and
//! [`server::PresenceEvent`]s onto its JSON API and Server-Sent Events.

pub mod client;
pub mod liveness;
pub mod pidf;
mod publish;
pub mod server;
mod sip_util;
pub mod state;
mod subscription;
pub mod xml;

pub use liveness::{Liveness, LivenessConfig, LivenessEvent};
pub use server::{Policy, PresenceEvent, PresenceServer, ServerConfig, WatcherAuth};
pub use state::{Presence, State};

/// A datagram or stream frame to send, and over which transport.
pub use peerdial_sip::Outbound as Transmit;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("document of {0} bytes is too large")]
    TooLarge(usize),
    #[error("not a presence document: {0}")]
    Pidf(String),
    #[error("unknown presence state {0:?} (online, offline, meeting, dnd, on-the-phone)")]
    UnknownState(String),
    #[error(transparent)]
    Sip(#[from] peerdial_sip::SipError),
}
