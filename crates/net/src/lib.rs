//! Network edges shared by the servers and the phone: socket pairs, the
//! DNS socket server that any zone engine plugs into, a small HTTP
//! client for our own JSON APIs, and HTTPS (client and server TLS) for
//! other parties' servers such as push services. Protocol logic lives elsewhere.

pub mod dns_server;
pub mod http_client;
pub mod http_server;
pub mod https_client;
mod sockets;
pub mod sse;
pub mod tls;

pub use sockets::{bind_pair, tcp_listener};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("HTTP: {0}")]
    Http(String),
    #[error("TLS: {0}")]
    Tls(String),
}
