//! How an HTTP request between regions (and to the top) carries a
//! vouched number: the PASSporT in `Identity`, and the number it vouches
//! for in `X-Peerdial-From` beside it, so the receiver knows whose key to
//! fetch before it parses the token.

use peerdial_number::Number;

/// The request header naming the number that `Identity` vouches for.
pub const FROM_HEADER: &str = "X-Peerdial-From";

/// What a request's `Identity` and `X-Peerdial-From` claim, before any
/// signature is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpClaim<'a> {
    /// No `Identity`: the request is not vouched for.
    Absent,
    /// `Identity` without a number beside it (or with one that does not parse).
    MissingFrom,
    /// `identity` claims to vouch for `from`.
    Vouched { identity: &'a str, from: Number },
}

impl<'a> HttpClaim<'a> {
    /// Read the two header values (`None` for a missing or non-text one).
    pub fn read(identity: Option<&'a str>, from: Option<&str>) -> Self {
        match (identity, from.and_then(|f| Number::parse(f).ok())) {
            (None, _) => Self::Absent,
            (Some(_), None) => Self::MissingFrom,
            (Some(identity), Some(from)) => Self::Vouched { identity, from },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_needs_both_headers_and_a_number() {
        let n = Number::parse("886-02-12345678").unwrap();
        assert_eq!(HttpClaim::read(None, Some("886-02-12345678")), HttpClaim::Absent);
        assert_eq!(HttpClaim::read(Some("t"), None), HttpClaim::MissingFrom);
        assert_eq!(HttpClaim::read(Some("t"), Some("not a number")), HttpClaim::MissingFrom);
        assert_eq!(
            HttpClaim::read(Some("t"), Some("886-02-12345678")),
            HttpClaim::Vouched { identity: "t", from: n }
        );
    }
}
