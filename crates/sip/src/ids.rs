//! Random identifiers every SIP element makes: tags, Call-IDs and Via
//! branches (RFC 3261 §8.1.1.7, §19.3), and a bare request to fill in.

use rand::Rng;

use crate::message::{Message, StartLine};

/// Random lowercase letters and digits, for tags, branches and Call-IDs.
pub fn token(n: usize) -> String {
    let mut r = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[r.gen_range(0..36)]))
        .collect()
}

/// A Via branch with the RFC 3261 magic cookie.
pub fn branch() -> String {
    format!("z9hG4bK{}", token(16))
}

/// A request with its start line and no headers yet.
pub fn request(method: &str, uri: &str) -> Message {
    Message {
        start: StartLine::Request {
            method: method.into(),
            uri: uri.into(),
        },
        headers: Vec::with_capacity(12),
        body: Vec::new(),
    }
}
