//! A talker: a named device of a user, and the account it answers on.

use std::net::SocketAddr;

use peerdial_number::Number;
use serde::{Deserialize, Serialize};

use crate::DirectoryError;

/// Where a talker answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Account {
    /// A peerdial number; its region is the number's area.
    Peerdial { number: String },
    /// A foreign SIP account: `aor` (`sip:user@host[:port]`) registered at
    /// `server` (the SIP server's `ip:port`, where the controller sends).
    Sip { aor: String, server: String },
}

impl Account {
    /// A peerdial number's account, the number checked.
    pub fn peerdial(number: &str) -> Result<Account, DirectoryError> {
        let n = Number::parse(number).map_err(|_| DirectoryError::Number(number.into()))?;
        if n.is_none() {
            return Err(DirectoryError::Number(number.into()));
        }
        Ok(Account::Peerdial { number: n.to_string() })
    }

    /// A foreign account, both parts checked: `sip:` URI with a user part,
    /// no parameters or headers; the server an IP address and port.
    pub fn sip(aor: &str, server: &str) -> Result<Account, DirectoryError> {
        let bad = || DirectoryError::Aor(aor.into());
        let rest = aor.strip_prefix("sip:").ok_or_else(bad)?;
        let (user, host) = rest.split_once('@').ok_or_else(bad)?;
        let clean = |s: &str, extra: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'+".contains(&b) || extra.as_bytes().contains(&b))
        };
        if !clean(user, "") || !clean(host, ":[]") {
            return Err(bad());
        }
        let addr: SocketAddr = server.parse().map_err(|_| DirectoryError::Server(server.into()))?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(DirectoryError::Server(server.into()));
        }
        Ok(Account::Sip {
            aor: aor.into(),
            server: addr.to_string(),
        })
    }

    /// The peerdial area (`886-02`) this account is in, if it is a number.
    pub fn region(&self) -> Option<String> {
        match self {
            Account::Peerdial { number } => Number::parse(number).ok().map(|n| n.area().to_string()),
            Account::Sip { .. } => None,
        }
    }

    /// The foreign server, if it is a foreign account.
    pub fn server(&self) -> Option<&str> {
        match self {
            Account::Sip { server, .. } => Some(server),
            Account::Peerdial { .. } => None,
        }
    }
}

/// One of a user's talkers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Talker {
    pub id: i64,
    /// The user (a peerdial number) who owns it.
    pub owner: String,
    /// "desk phone", "living-room TV": unique per owner.
    pub name: String,
    pub account: Account,
    /// Proven: a number by its device's credentials, a foreign account by
    /// the code sent to it.
    pub verified: bool,
}

impl Talker {
    /// A name as users type it, checked: 1–40 characters, no control
    /// characters, trimmed.
    pub fn check_name(name: &str) -> Result<String, DirectoryError> {
        let n = name.trim();
        if n.is_empty() || n.chars().count() > 40 || n.chars().any(char::is_control) {
            return Err(DirectoryError::Name);
        }
        Ok(n.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_checked() {
        assert_eq!(
            Account::sip("sip:alice@127.0.0.1:5070", "127.0.0.1:5070").unwrap().server(),
            Some("127.0.0.1:5070")
        );
        for (aor, server) in [
            ("alice@host", "127.0.0.1:5060"),
            ("sip:@host", "127.0.0.1:5060"),
            ("sip:a;b@host", "127.0.0.1:5060"),
            ("sip:a@host>\r\nX: y", "127.0.0.1:5060"),
            ("sip:a@host", "kamailio"),
            ("sip:a@host", "127.0.0.1:0"),
            ("sip:a@host", "0.0.0.0:5060"),
        ] {
            assert!(Account::sip(aor, server).is_err(), "{aor} {server}");
        }
        let a = Account::peerdial("886-02-12345678").unwrap();
        assert_eq!(a.region().as_deref(), Some("886-02"));
        assert!(Account::peerdial("12").is_err());
        assert!(Account::peerdial("000-00-00000000").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(Talker::check_name("  desk phone ").unwrap(), "desk phone");
        assert!(Talker::check_name("").is_err());
        assert!(Talker::check_name("a\u{1b}[2J").is_err());
        assert!(Talker::check_name(&"x".repeat(41)).is_err());
    }
}
