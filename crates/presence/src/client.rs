//! The phone's side of presence: a [`Publisher`] of its own state (RFC
//! 3903 PUBLISH) and a [`Watcher`] of another number's (RFC 6665
//! SUBSCRIBE), both sans-I/O like the registration client of the sip
//! crate: `handle…` with messages, `poll_transmit`, `poll_timeout`,
//! `handle_timeout` and `poll_event`, over UDP with its retransmission
//! timers.

mod publisher;
mod watcher;

pub use publisher::{PublishEvent, Publisher, PublisherConfig};
pub use watcher::{Package, WatchEvent, Watcher, WatcherConfig};

pub(crate) use peerdial_sip::client::answer_challenge;
pub(crate) use peerdial_sip::transaction::ClientTx;

/// Back-off after failures: 5 s doubling to 5 minutes.
pub(crate) fn next_backoff(b: u64) -> u64 {
    (b * 2).clamp(5_000, 300_000)
}
