//! Update codes and If-None-Match (RFC 9110 §13.1.2), and the greeting kinds.

use peerdial_greetings::{etag_of, if_none_match, Kind};

const TAG: &str = "\"0123456789abcdef0123456789abcdef\"";

#[test]
fn etag_of_is_a_strong_tag_of_the_bytes() {
    assert_eq!(etag_of(b"abc"), etag_of(b"abc"));
    assert_ne!(etag_of(b"abc"), etag_of(b"abd"));
    // SHA-256("abc") starts ba7816bf8f01cfea414140de5dae2223.
    assert_eq!(etag_of(b"abc"), "\"ba7816bf8f01cfea414140de5dae2223\"");
}

#[test]
fn matches() {
    for header in [
        TAG,
        "*",
        "  *  ",
        "\"other\", \"0123456789abcdef0123456789abcdef\"",
        "\"other\",\"0123456789abcdef0123456789abcdef\"",
        // Weak comparison: W/ on the client's side is ignored ...
        "W/\"0123456789abcdef0123456789abcdef\"",
        "\"x\" ,\tW/\"0123456789abcdef0123456789abcdef\" , \"y\"",
        // ... and empty list elements are allowed.
        ", ,\"0123456789abcdef0123456789abcdef\",",
    ] {
        assert!(if_none_match(header, TAG), "{header:?} should match");
    }
    // and W/ on our side too.
    assert!(if_none_match(TAG, "W/\"0123456789abcdef0123456789abcdef\""));
}

#[test]
fn does_not_match() {
    for header in [
        "",
        "   ",
        "\"other\"",
        "\"0123456789ABCDEF0123456789ABCDEF\"",   // opaque tags are case-sensitive
        "0123456789abcdef0123456789abcdef",       // unquoted
        "\"0123456789abcdef0123456789abcdef",     // unterminated
        "w/\"0123456789abcdef0123456789abcdef\"", // W/ is case-sensitive
        "\"0123456789abcdef0123456789abcdef\"junk",
        "\"0123456789abcdef0123456789abcdef\" \"other\"", // missing comma: malformed
        "\"a\", *",                                       // * is only valid alone
        "\"0123456789abcdef 0123456789abcdef\"",          // space is not etagc
    ] {
        assert!(!if_none_match(header, TAG), "{header:?} should not match");
    }
}

#[test]
fn a_comma_inside_a_tag_is_part_of_it() {
    let tag = "\"a,b\"";
    assert!(if_none_match("\"a,b\"", tag));
    assert!(if_none_match("\"x\", \"a,b\"", tag));
    assert!(!if_none_match("\"a\", \"b\"", tag));
}

#[test]
fn a_malformed_current_tag_matches_nothing() {
    assert!(!if_none_match("\"abc\"", "abc"));
    assert!(!if_none_match("*", "abc"));
}

#[test]
fn kinds() {
    assert_eq!(Kind::parse("caller"), Some(Kind::Caller));
    assert_eq!(Kind::parse("callee"), Some(Kind::Callee));
    for bad in ["Caller", "", "callers", " caller"] {
        assert_eq!(Kind::parse(bad), None, "{bad:?}");
    }
    for k in Kind::ALL {
        assert_eq!(Kind::parse(k.as_str()), Some(k));
        assert_eq!(k.to_string(), k.as_str());
    }
}
