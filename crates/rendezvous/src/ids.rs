//! The two identities of a mobile device: its phone number (MSISDN, E.164)
//! and its SIM's identity (IMSI, 15 digits), and the keyed hash under
//! which an IMSI is kept.
//!
//! An [`Imsi`] has no `Display` and its `Debug` is redacted, so it cannot
//! reach a log or a response by accident; parse errors never echo it. Only
//! [`ImsiHasher::hash`] looks at its digits.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::RendezvousError;

/// A phone number in E.164 form: `+`, a country code not starting with 0,
/// 8 to 15 digits in all. Spaces, `-`, `.` and brackets are ignored.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(String);

impl Msisdn {
    pub fn parse(s: &str) -> Result<Msisdn, RendezvousError> {
        // The text is not echoed: a number typed in the wrong field may be an
        // IMSI, which must never reach a response or a log.
        let bad = |why: &str| RendezvousError::Msisdn(format!("not an E.164 number: {why}"));
        let t = s.trim();
        let rest = t
            .strip_prefix('+')
            .ok_or_else(|| bad("it must start with + and the country code"))?;
        let digits: String = rest.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("only digits may follow the +"));
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(bad("it has 8 to 15 digits"));
        }
        if digits.starts_with('0') {
            return Err(bad("no country code starts with 0"));
        }
        Ok(Msisdn(format!("+{digits}")))
    }

    /// `+` and the digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Msisdn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Msisdn({})", self.0)
    }
}

/// A SIM's identity: exactly 15 digits (MCC, MNC, MSIN). Never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Imsi([u8; 15]);

impl Imsi {
    pub fn parse(s: &str) -> Result<Imsi, RendezvousError> {
        let b = s.trim().as_bytes();
        if b.len() != 15 || !b.iter().all(u8::is_ascii_digit) {
            // Not echoed: a mistyped IMSI is still mostly an IMSI.
            return Err(RendezvousError::Imsi(format!(
                "an IMSI is exactly 15 digits (got {} characters{})",
                b.len(),
                if b.iter().all(u8::is_ascii_digit) { "" } else { ", not all digits" }
            )));
        }
        let mut d = [0u8; 15];
        d.copy_from_slice(b);
        Ok(Imsi(d))
    }
}

impl std::fmt::Debug for Imsi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Imsi(<redacted>)")
    }
}

/// HMAC-SHA256 of an IMSI under the server's secret: what is stored and
/// compared. Without the secret it cannot be turned back into an IMSI by
/// trying the (small) space of IMSIs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImsiHash(pub [u8; 32]);

impl ImsiHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<ImsiHash> {
        let v = hex::decode(s).ok()?;
        Some(ImsiHash(v.try_into().ok()?))
    }
}

impl std::fmt::Debug for ImsiHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImsiHash({}…)", &self.to_hex()[..8])
    }
}

/// Hashes IMSIs with the server's secret key.
#[derive(Clone)]
pub struct ImsiHasher {
    mac: Hmac<Sha256>,
}

impl ImsiHasher {
    /// Any length works; 32 random bytes is what the top makes.
    pub fn new(secret: &[u8]) -> ImsiHasher {
        ImsiHasher {
            mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length"),
        }
    }

    pub fn hash(&self, imsi: &Imsi) -> ImsiHash {
        let mut m = self.mac.clone();
        m.update(b"peerdial-imsi-v1:");
        m.update(&imsi.0);
        ImsiHash(m.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msisdns_are_e164() {
        assert_eq!(Msisdn::parse("+886912345678").unwrap().as_str(), "+886912345678");
        assert_eq!(Msisdn::parse(" +886 912-345.678 ").unwrap().as_str(), "+886912345678");
        for bad in [
            "886912345678",
            "+0886912345",
            "+1234567",
            "+1234567890123456",
            "+88691234567x",
            "",
            "+",
        ] {
            let e = Msisdn::parse(bad).unwrap_err().to_string();
            assert!(e.contains("E.164"), "{bad:?}: {e}");
        }
        // An IMSI typed into the number's field is not repeated (found by
        // the rendezvous_submission fuzz target).
        let e = Msisdn::parse("-!`-!466920123456789").unwrap_err().to_string();
        assert!(!e.contains("466920123456789"), "{e}");
    }

    #[test]
    fn imsis_are_15_digits_and_never_echoed() {
        assert!(Imsi::parse("466920123456789").is_ok());
        for bad in ["46692012345678", "4669201234567890", "46692012345678x"] {
            let e = Imsi::parse(bad).unwrap_err().to_string();
            assert!(e.contains("15 digits") && !e.contains("4669201"), "{e}");
        }
        assert_eq!(format!("{:?}", Imsi::parse("466920123456789").unwrap()), "Imsi(<redacted>)");
    }

    #[test]
    fn hashes_depend_on_the_secret() {
        let imsi = Imsi::parse("466920123456789").unwrap();
        let (a, b) = (ImsiHasher::new(b"one"), ImsiHasher::new(b"two"));
        assert_eq!(a.hash(&imsi), a.hash(&imsi));
        assert_ne!(a.hash(&imsi), b.hash(&imsi));
        let h = a.hash(&imsi);
        assert_eq!(ImsiHash::from_hex(&h.to_hex()), Some(h));
        assert!(!h.to_hex().contains("466920123456789"));
    }
}
