//! Network edges shared by the servers and the phone: socket pairs, the
//! DNS socket server that any zone engine plugs into, and a small HTTP
//! client for our own JSON APIs. Protocol logic lives elsewhere.

pub mod dns_server;
pub mod http_client;
pub mod http_server;
mod sockets;
pub mod sse;

pub use sockets::{bind_pair, tcp_listener};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("HTTP: {0}")]
    Http(String),
}
