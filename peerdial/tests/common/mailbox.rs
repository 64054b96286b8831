//! A number's mailbox as its owner reads it over HTTP.

use super::{basic, http_raw, parse_http, Device, Region};

/// The smallest MP4 the mailbox takes: an `ftyp` box, then `free` and an
/// empty `mdat`.
pub const TINY_MP4: &[u8] = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2\0\0\0\x08free\0\0\0\x08mdat";

pub fn owner_get(r: &Region, d: &Device, path: &str) -> Vec<u8> {
    http_raw(r.http, "GET", path, &[("Authorization", &basic(&d.user, &d.password))], b"")
}

pub fn messages(r: &Region, d: &Device) -> serde_json::Value {
    let (status, j) = parse_http(&owner_get(r, d, &format!("/api/v1/messages/{}", d.user)));
    assert_eq!(status, 200, "{j}");
    j
}

pub fn body_of(raw: &[u8]) -> &[u8] {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP head");
    &raw[at + 4..]
}
