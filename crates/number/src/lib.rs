//! The peerdial number plan.
//!
//! A number is a 3-digit country code, a 2-digit area code and an 8-digit
//! individual code: `886-02-12345678`. This crate parses, validates and
//! formats numbers, normalises what a user dials relative to the dialing
//! phone's own area, and maps numbers to and from ENUM-style DNS names
//! (RFC 6116: digits reversed, one label each, under a root domain).
//!
//! It does no I/O and knows nothing of DNS messages or SIP.

use std::fmt;
use std::str::FromStr;

/// Why a number, area or ENUM name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("empty number")]
    Empty,
    #[error("invalid character {0:?} in number (only digits, '+', space, '-' and '.' are allowed)")]
    InvalidChar(char),
    #[error("'+' is only allowed at the start of a number")]
    MisplacedPlus,
    #[error("a number with '+' needs all 13 digits, got {0}")]
    PlusNeedsFull(usize),
    #[error("wrong number of digits: {0} (dial 8 digits in your area, 10 in your country, or all 13)")]
    WrongLength(usize),
    #[error("country code 000 is never assigned")]
    UnassignedCountry,
    #[error("invalid area {0:?}: expected CCC-AA, like 886-02")]
    InvalidArea(String),
    #[error("name {0:?} is not an ENUM name under {1:?}")]
    NotEnum(String, String),
}

/// A full 13-digit number. Stored as the integer of its digits, so it is
/// cheap to copy, hash and index (a zone of a million numbers stays small).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Number(u64);

/// A country and area: the first five digits of a number (`886-02`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Area {
    country: u16,
    area: u8,
}

pub const COUNTRY_DIGITS: usize = 3;
pub const AREA_DIGITS: usize = 2;
pub const INDIVIDUAL_DIGITS: usize = 8;
pub const NUMBER_DIGITS: usize = COUNTRY_DIGITS + AREA_DIGITS + INDIVIDUAL_DIGITS;
const INDIVIDUAL_SPAN: u64 = 100_000_000;

impl Number {
    /// The number of a phone that has none yet.
    pub const NONE: Number = Number(0);

    /// Builds a number from its parts. `individual` must be below 10^8.
    pub fn new(area: Area, individual: u32) -> Number {
        assert!((individual as u64) < INDIVIDUAL_SPAN, "individual code has 8 digits");
        Number(area.prefix_value() * INDIVIDUAL_SPAN + individual as u64)
    }

    /// Parses a full number (13 digits, separators and a leading `+` allowed).
    /// `000-00-00000000` parses as [`Number::NONE`]; any other number in
    /// country `000` is refused.
    pub fn parse(s: &str) -> Result<Number, NumberError> {
        let d = Dialed::scan(s)?;
        if d.len != NUMBER_DIGITS {
            return Err(NumberError::WrongLength(d.len));
        }
        Number::from_digits(d.value)
    }

    fn from_digits(value: u64) -> Result<Number, NumberError> {
        let n = Number(value);
        if n.area().country == 0 && n != Number::NONE {
            return Err(NumberError::UnassignedCountry);
        }
        Ok(n)
    }

    /// Rebuilds a number from [`Number::as_u64`].
    pub fn from_u64(v: u64) -> Result<Number, NumberError> {
        if v >= 10u64.pow(NUMBER_DIGITS as u32) {
            return Err(NumberError::WrongLength(v.to_string().len()));
        }
        Number::from_digits(v)
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }

    pub fn is_none(self) -> bool {
        self == Number::NONE
    }

    pub fn area(self) -> Area {
        let prefix = self.0 / INDIVIDUAL_SPAN;
        Area {
            country: (prefix / 100) as u16,
            area: (prefix % 100) as u8,
        }
    }

    pub fn individual(self) -> u32 {
        (self.0 % INDIVIDUAL_SPAN) as u32
    }

    /// The 13 digits with no separators: the SIP user part (`8860212345678`).
    pub fn digits(self) -> String {
        format!("{:013}", self.0)
    }

    /// The ENUM owner name under `root` (which may or may not end in a dot;
    /// the result always does): `8.7.6.5.4.3.2.1.2.0.6.8.8.<root>.`
    pub fn enum_name(self, root: &str) -> String {
        let digits = self.digits();
        let mut out = String::with_capacity(NUMBER_DIGITS * 2 + root.len() + 1);
        for c in digits.chars().rev() {
            out.push(c);
            out.push('.');
        }
        out.push_str(root.trim_end_matches('.'));
        out.push('.');
        out
    }

    /// Parses an ENUM name under `root` back to a number. Case of the root
    /// and a trailing dot are ignored.
    pub fn from_enum_name(name: &str, root: &str) -> Result<Number, NumberError> {
        let err = || NumberError::NotEnum(name.to_string(), root.to_string());
        let n = name.trim_end_matches('.');
        let r = root.trim_end_matches('.');
        let lower = n.to_ascii_lowercase();
        let prefix = lower
            .strip_suffix(&r.to_ascii_lowercase())
            .and_then(|p| p.strip_suffix('.'))
            .ok_or_else(err)?;
        let mut value = 0u64;
        let mut count = 0;
        // Labels are least significant digit first.
        for label in prefix.rsplit('.') {
            let b = label.as_bytes();
            if b.len() != 1 || !b[0].is_ascii_digit() {
                return Err(err());
            }
            value = value * 10 + (b[0] - b'0') as u64;
            count += 1;
        }
        if count != NUMBER_DIGITS {
            return Err(err());
        }
        Number::from_digits(value)
    }

    /// Normalises what a user dialed, relative to the dialing phone's own
    /// area: 8 digits get the own country and area, 10 digits the own
    /// country, 13 digits or a leading `+` are taken as they are.
    pub fn dial(dialed: &str, own: Area) -> Result<Number, NumberError> {
        let d = Dialed::scan(dialed)?;
        if d.plus && d.len != NUMBER_DIGITS {
            return Err(NumberError::PlusNeedsFull(d.len));
        }
        let value = match d.len {
            INDIVIDUAL_DIGITS => own.prefix_value() * INDIVIDUAL_SPAN + d.value,
            10 => own.country as u64 * 10u64.pow(10) + d.value,
            NUMBER_DIGITS => d.value,
            n => return Err(NumberError::WrongLength(n)),
        };
        let n = Number::from_digits(value)?;
        if n.is_none() {
            return Err(NumberError::UnassignedCountry);
        }
        Ok(n)
    }
}

/// Digits scanned from user input with separators removed.
struct Dialed {
    value: u64,
    len: usize,
    plus: bool,
}

impl Dialed {
    fn scan(s: &str) -> Result<Dialed, NumberError> {
        let mut value = 0u64;
        let mut len = 0usize;
        let mut plus = false;
        for (i, c) in s.trim().chars().enumerate() {
            match c {
                '0'..='9' => {
                    len += 1;
                    if len > NUMBER_DIGITS {
                        // Keep counting for the error message, but stop accumulating.
                        continue;
                    }
                    value = value * 10 + (c as u64 - '0' as u64);
                }
                '+' if i == 0 => plus = true,
                '+' => return Err(NumberError::MisplacedPlus),
                ' ' | '-' | '.' => {}
                other => return Err(NumberError::InvalidChar(other)),
            }
        }
        if len == 0 {
            return Err(NumberError::Empty);
        }
        Ok(Dialed { value, len, plus })
    }
}

impl Area {
    pub fn new(country: u16, area: u8) -> Result<Area, NumberError> {
        if country > 999 || area > 99 {
            return Err(NumberError::InvalidArea(format!("{country}-{area}")));
        }
        if country == 0 {
            return Err(NumberError::UnassignedCountry);
        }
        Ok(Area { country, area })
    }

    /// Parses `CCC-AA` (separators optional: `88602` works too).
    pub fn parse(s: &str) -> Result<Area, NumberError> {
        let digits: String = s.chars().filter(|c| !matches!(c, '-' | ' ' | '.')).collect();
        if digits.len() != COUNTRY_DIGITS + AREA_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NumberError::InvalidArea(s.to_string()));
        }
        let country: u16 = digits[..3].parse().map_err(|_| NumberError::InvalidArea(s.to_string()))?;
        let area: u8 = digits[3..].parse().map_err(|_| NumberError::InvalidArea(s.to_string()))?;
        Area::new(country, area)
    }

    pub fn country(self) -> u16 {
        self.country
    }

    pub fn code(self) -> u8 {
        self.area
    }

    fn prefix_value(self) -> u64 {
        self.country as u64 * 100 + self.area as u64
    }

    /// The area's zone name under `root`: `2.0.6.8.8.<root>.`
    pub fn zone_name(self, root: &str) -> String {
        let digits = format!("{:03}{:02}", self.country, self.area);
        let mut out = String::new();
        for c in digits.chars().rev() {
            out.push(c);
            out.push('.');
        }
        out.push_str(root.trim_end_matches('.'));
        out.push('.');
        out
    }

    /// Whether `n` lies in this area.
    pub fn contains(self, n: Number) -> bool {
        n.area() == self
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.area();
        write!(f, "{:03}-{:02}-{:08}", a.country, a.area, self.individual())
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number({self})")
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}-{:02}", self.country, self.area)
    }
}

impl fmt::Debug for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Area({self})")
    }
}

impl FromStr for Number {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Number::parse(s)
    }
}

impl FromStr for Area {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Area::parse(s)
    }
}

/// Numbers are handed out by regions, not chosen by clients, so maps keyed
/// by them (or by other server-made integers) can use a plain
/// multiplicative hash instead of SipHash.
#[derive(Default, Clone, Copy)]
pub struct NumberHasher(u64);

impl std::hash::Hasher for NumberHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A map keyed by numbers (or server-made integers), hashed with [`NumberHasher`].
pub type NumberMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<NumberHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ROOT: &str = "peerdial.internal.";

    fn area() -> Area {
        Area::parse("886-02").unwrap()
    }

    #[test]
    fn parses_and_formats() {
        let n = Number::parse("886-02-12345678").unwrap();
        assert_eq!(n.to_string(), "886-02-12345678");
        assert_eq!(n.digits(), "8860212345678");
        assert_eq!(n.area(), area());
        assert_eq!(n.individual(), 12345678);
        assert_eq!(Number::parse("+886 02 1234.5678").unwrap(), n);
        assert_eq!(Number::parse("000-00-00000000").unwrap(), Number::NONE);
    }

    #[test]
    fn enum_names() {
        let n = Number::parse("886-02-12345678").unwrap();
        assert_eq!(n.enum_name(ROOT), "8.7.6.5.4.3.2.1.2.0.6.8.8.peerdial.internal.");
        assert_eq!(n.enum_name("peerdial.internal"), "8.7.6.5.4.3.2.1.2.0.6.8.8.peerdial.internal.");
        assert_eq!(
            Number::from_enum_name("8.7.6.5.4.3.2.1.2.0.6.8.8.PEERDIAL.internal", ROOT).unwrap(),
            n
        );
        assert_eq!(area().zone_name(ROOT), "2.0.6.8.8.peerdial.internal.");
        assert!(Number::from_enum_name("7.6.5.4.3.2.1.2.0.6.8.8.peerdial.internal.", ROOT).is_err());
        assert!(Number::from_enum_name("x.7.6.5.4.3.2.1.2.0.6.8.8.peerdial.internal.", ROOT).is_err());
        assert!(Number::from_enum_name("8.7.6.5.4.3.2.1.2.0.6.8.8.example.", ROOT).is_err());
        assert!(Number::from_enum_name("88.7.6.5.4.3.2.1.2.0.6.8.8.peerdial.internal.", ROOT).is_err());
    }

    #[test]
    fn dialing_rules() {
        let own = area();
        assert_eq!(Number::dial("12345678", own).unwrap().to_string(), "886-02-12345678");
        assert_eq!(Number::dial("03 1234 5678", own).unwrap().to_string(), "886-03-12345678");
        assert_eq!(Number::dial("001-05-00000042", own).unwrap().to_string(), "001-05-00000042");
        assert_eq!(Number::dial("+044 20 12345678", own).unwrap().to_string(), "044-20-12345678");
        assert_eq!(Number::dial("1234567", own), Err(NumberError::WrongLength(7)));
        assert_eq!(Number::dial("12345678901", own), Err(NumberError::WrongLength(11)));
        assert_eq!(Number::dial("+12345678", own), Err(NumberError::PlusNeedsFull(8)));
        assert_eq!(Number::dial("1234a678", own), Err(NumberError::InvalidChar('a')));
        assert_eq!(Number::dial("12+345678", own), Err(NumberError::MisplacedPlus));
        assert_eq!(Number::dial("", own), Err(NumberError::Empty));
        assert_eq!(Number::dial("000-01-12345678", own), Err(NumberError::UnassignedCountry));
        assert_eq!(Number::dial("000-00-00000000", own), Err(NumberError::UnassignedCountry));
        // 40 digits: refused, and the count is reported rather than overflowing.
        assert_eq!(Number::dial(&"9".repeat(40), own), Err(NumberError::WrongLength(40)));
    }

    #[test]
    fn areas() {
        assert_eq!(Area::parse("88602").unwrap(), area());
        assert!(Area::parse("886-2").is_err());
        assert!(Area::parse("000-02").is_err());
        assert!(Area::parse("886-0x").is_err());
        assert!(area().contains(Number::parse("886-02-00000001").unwrap()));
        assert!(!area().contains(Number::parse("886-03-00000001").unwrap()));
    }

    proptest! {
        #[test]
        fn roundtrip_text(country in 1u16..1000, a in 0u8..100, ind in 0u32..100_000_000) {
            let n = Number::new(Area::new(country, a).unwrap(), ind);
            prop_assert_eq!(Number::parse(&n.to_string()).unwrap(), n);
            prop_assert_eq!(Number::parse(&n.digits()).unwrap(), n);
            prop_assert_eq!(Number::from_u64(n.as_u64()).unwrap(), n);
        }

        #[test]
        fn roundtrip_enum(country in 1u16..1000, a in 0u8..100, ind in 0u32..100_000_000) {
            let n = Number::new(Area::new(country, a).unwrap(), ind);
            prop_assert_eq!(Number::from_enum_name(&n.enum_name(ROOT), ROOT).unwrap(), n);
            prop_assert!(n.enum_name(ROOT).ends_with(&n.area().zone_name(ROOT)));
        }

        #[test]
        fn short_dial_stays_in_area(ind in 0u32..100_000_000) {
            let n = Number::dial(&format!("{ind:08}"), area()).unwrap();
            prop_assert_eq!(n.area(), area());
            prop_assert_eq!(n.individual(), ind);
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".{0,40}") {
            let _ = Number::parse(&s);
            let _ = Number::dial(&s, area());
            let _ = Area::parse(&s);
            let _ = Number::from_enum_name(&s, ROOT);
        }
    }
}
