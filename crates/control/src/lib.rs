//! The third-party call controller's edge (issue 13), one piece of code
//! for every server that controls calls: the top (foreign SIP servers,
//! calls across regions, mixed conferences) and each region (calls and
//! conferences of its own numbers, handed to it by the top).
//!
//! - [`controller`]: one tokio task owning a UDP SIP socket, running
//!   `peerdial_sip::pairing::Pairing`s (RFC 3725 flow I), hosted
//!   conferences and verification MESSAGEs against the clock;
//! - [`hosted`]: a conference's legs (`peerdial_sip::conference`) and its
//!   mixer room (`peerdial_media::room`);
//! - [`book`]: every call's progress as the dialer reads it;
//! - [`reach`]: a peerdial number's contact now, through DNS.
//!
//! It is not the protocol logic (the sans-I/O cores in `peerdial-sip` and
//! `peerdial-media`), the matching (`peerdial-directory`) or an HTTP API
//! (each server has its own around the book).

pub mod api;
pub mod book;
pub mod controller;
pub mod hosted;
pub mod reach;

pub use book::{describe, describe_conf, CallBook, Growable, View};
pub use controller::{Command, Controller};
pub use hosted::Hosted;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot bind the controller's SIP socket {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("no such number")]
    NoSuchNumber,
    #[error("offline")]
    Offline,
    #[error("{0}")]
    Lookup(String),
}
