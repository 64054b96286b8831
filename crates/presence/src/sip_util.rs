//! Small SIP helpers shared by the server, liveness and the clients.

use peerdial_sip::message::{NameAddr, StartLine};
use peerdial_sip::Message;
use rand::Rng;

/// Random lowercase letters and digits, for tags, branches and Call-IDs.
pub fn token(n: usize) -> String {
    let mut r = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[r.gen_range(0..36)]))
        .collect()
}

pub fn branch() -> String {
    format!("z9hG4bK{}", token(16))
}

pub fn tag_of(header: Option<&str>) -> Option<String> {
    NameAddr::parse(header?).ok()?.param("tag").flatten().map(str::to_string)
}

pub fn cseq_of(m: &Message) -> Option<(u32, &str)> {
    let mut it = m.header("CSeq")?.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?))
}

pub fn status(m: &Message) -> Option<u16> {
    match &m.start {
        StartLine::Response { code, .. } => Some(*code),
        StartLine::Request { .. } => None,
    }
}

/// The event package of an Event header (`presence;id=1` → `presence`).
pub fn event_package(m: &Message) -> Option<&str> {
    m.header("Event").map(|e| e.split(';').next().unwrap_or_default().trim())
}

/// A header's value as a number of seconds, if present and numeric.
pub fn seconds(m: &Message, name: &str) -> Option<Result<u32, ()>> {
    m.header(name).map(|v| {
        let v = v.trim();
        // Absurdly large values are clamped by the caller, not refused.
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            Ok(v.parse::<u64>().map_or(u32::MAX, |n| n.min(u32::MAX as u64) as u32))
        } else {
            Err(())
        }
    })
}

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

pub use peerdial_number::{NumberHasher, NumberMap};
