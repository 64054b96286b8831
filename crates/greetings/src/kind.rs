//! Which of a number's two greetings.

use std::fmt;

/// Every number has two greeting pictures: one shown to the people it calls
/// (as caller) and one shown to the people who call it (as callee).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Shown on the callee's display when this number calls.
    Caller,
    /// Shown on the caller's display when this number is called.
    Callee,
}

impl Kind {
    /// Both kinds, for listing.
    pub const ALL: [Kind; 2] = [Kind::Caller, Kind::Callee];

    /// `"caller"` or `"callee"` (exactly, as in the URL path); anything else
    /// is `None`.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "caller" => Some(Kind::Caller),
            "callee" => Some(Kind::Callee),
            _ => None,
        }
    }

    /// The name used in URLs and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Caller => "caller",
            Kind::Callee => "callee",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
