//! Update codes: strong ETags derived from a greeting's PNG bytes, and the
//! `If-None-Match` comparison of RFC 9110 §13.1.2.

use sha2::{Digest, Sha256};

/// The strong ETag of a greeting: `"` + the first 16 bytes of the SHA-256 of
/// the PNG, as lower-case hex, + `"`.
///
/// Derived from the bytes alone, so every region and every restart gives the
/// same code for the same picture, and a changed picture a different one.
pub fn etag_of(png: &[u8]) -> String {
    let digest = Sha256::digest(png);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Whether an `If-None-Match` header value matches `etag`, i.e. whether the
/// server should answer 304 Not Modified (for GET/HEAD) instead of the body.
///
/// Per RFC 9110 §13.1.2: `*` matches any current representation; otherwise
/// the value is a comma-separated list of entity tags compared with the
/// *weak* comparison (a `W/` prefix on either side is ignored, the opaque
/// tags must be equal). A malformed value matches nothing, so the client
/// gets the full answer rather than a wrong 304.
pub fn if_none_match(header_value: &str, etag: &str) -> bool {
    let Some(ours) = opaque_tag(etag.trim()) else {
        return false;
    };
    let value = header_value.trim_matches(is_ows);
    if value == "*" {
        return true;
    }
    let mut rest = value.as_bytes();
    let mut matched = false;
    let mut seen_any = false;
    loop {
        // Empty list elements (`a, , b`) are allowed by the list syntax (§5.6.1).
        rest = skip(rest, |b| is_ows_byte(b) || b == b',');
        if rest.is_empty() {
            break;
        }
        let Some((tag, after)) = parse_entity_tag(rest) else {
            return false;
        };
        seen_any = true;
        matched |= tag == ours.as_bytes();
        rest = skip(after, is_ows_byte);
        match rest.first() {
            None => break,
            Some(b',') => {}
            Some(_) => return false,
        }
    }
    seen_any && matched
}

/// The opaque tag (with its quotes) of a single entity tag, weak or strong.
fn opaque_tag(etag: &str) -> Option<&str> {
    let (tag, rest) = parse_entity_tag(etag.as_bytes())?;
    if !rest.is_empty() {
        return None;
    }
    // `tag` is a sub-slice of `etag` made of ASCII quotes and etagc bytes;
    // etag is valid UTF-8, and the slice begins and ends on quotes, so it is
    // on character boundaries.
    let start = etag.len() - rest.len() - tag.len();
    etag.get(start..start + tag.len())
}

/// Parses `[W/]"etagc*"` at the start of `input`; returns the quoted opaque
/// tag (quotes included) and what follows.
fn parse_entity_tag(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = input.strip_prefix(b"W/").unwrap_or(input);
    if body.first() != Some(&b'"') {
        return None;
    }
    let end = body[1..].iter().position(|&b| b == b'"')? + 1;
    if !body[1..end].iter().all(|&b| is_etagc(b)) {
        return None;
    }
    Some((&body[..=end], &body[end + 1..]))
}

/// etagc = %x21 / %x23-7E / obs-text
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7E).contains(&b) || b >= 0x80
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_ows_byte(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip(input: &[u8], pred: impl Fn(u8) -> bool) -> &[u8] {
    let n = input.iter().take_while(|&&b| pred(b)).count();
    &input[n..]
}
