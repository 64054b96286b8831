//! Sign-in attempt limits: after too many wrong passwords for one number,
//! or from one client address, within a window, further attempts are
//! refused (without checking the password) until the window passes.
//! In memory: a restart forgets counts, which only helps the owner.

use std::collections::HashMap;
use std::net::IpAddr;

/// Wrong passwords allowed per number in a window.
pub const PER_NUMBER: u32 = 5;
/// Wrong passwords allowed per client address in a window.
pub const PER_ADDRESS: u32 = 20;
/// The window, in milliseconds.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Entries kept before old ones are swept.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct Limits {
    numbers: HashMap<i64, (u32, i64)>,
    addresses: HashMap<IpAddr, (u32, i64)>,
}

/// Why an attempt is refused, and for how many more minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Number(i64),
    Address(i64),
}

fn count<K: std::hash::Hash + Eq>(m: &HashMap<K, (u32, i64)>, k: &K, now: i64) -> (u32, i64) {
    match m.get(k) {
        Some(&(n, start)) if now - start < WINDOW_MS => (n, start),
        _ => (0, now),
    }
}

fn minutes_left(start: i64, now: i64) -> i64 {
    ((start + WINDOW_MS - now) / 60_000).max(1)
}

impl Limits {
    /// Whether an attempt may be checked now.
    pub fn check(&self, number: i64, addr: IpAddr, now: i64) -> Result<(), Refusal> {
        let (n, start) = count(&self.numbers, &number, now);
        if n >= PER_NUMBER {
            return Err(Refusal::Number(minutes_left(start, now)));
        }
        let (n, start) = count(&self.addresses, &addr, now);
        if n >= PER_ADDRESS {
            return Err(Refusal::Address(minutes_left(start, now)));
        }
        Ok(())
    }

    /// Counts a wrong password against the number and the address.
    pub fn failed(&mut self, number: i64, addr: IpAddr, now: i64) {
        if self.numbers.len() + self.addresses.len() > MAX_ENTRIES {
            self.numbers.retain(|_, (_, s)| now - *s < WINDOW_MS);
            self.addresses.retain(|_, (_, s)| now - *s < WINDOW_MS);
        }
        let (n, start) = count(&self.numbers, &number, now);
        self.numbers.insert(number, (n + 1, start));
        let (n, start) = count(&self.addresses, &addr, now);
        self.addresses.insert(addr, (n + 1, start));
    }

    /// Counts a wrong password against the number alone (a check asked
    /// for by another server, which limits its own clients' addresses).
    pub fn failed_number(&mut self, number: i64, now: i64) {
        if self.numbers.len() > MAX_ENTRIES {
            self.numbers.retain(|_, (_, s)| now - *s < WINDOW_MS);
        }
        let (n, start) = count(&self.numbers, &number, now);
        self.numbers.insert(number, (n + 1, start));
    }

    /// A right password clears the number's count (not the address's).
    pub fn succeeded(&mut self, number: i64) {
        self.numbers.remove(&number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_are_limited_separately() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let mut l = Limits::default();
        for _ in 0..PER_NUMBER {
            assert_eq!(l.check(1, a, 0), Ok(()));
            l.failed(1, a, 0);
        }
        assert_eq!(l.check(1, b, 0), Err(Refusal::Number(15)));
        assert_eq!(l.check(2, a, 0), Ok(()));
        assert_eq!(l.check(1, a, WINDOW_MS), Ok(()), "the window passes");
        for i in 0..PER_ADDRESS as i64 {
            l.failed(100 + i, b, 0);
        }
        assert_eq!(l.check(3, b, 60_000), Err(Refusal::Address(14)));
        l.succeeded(1);
        assert_eq!(l.check(1, a, 0), Ok(()));
    }
}
