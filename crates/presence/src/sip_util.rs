//! Small SIP helpers shared by the server, liveness and the clients.

use peerdial_sip::message::{NameAddr, StartLine};
use peerdial_sip::Message;

pub use peerdial_sip::ids::{branch, request, token};

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

pub use peerdial_number::{NumberHasher, NumberMap};
