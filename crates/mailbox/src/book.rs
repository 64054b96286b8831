//! The index of every number's stored messages: quotas, retention and
//! per-device delivery state. Bodies and rows live in the store; this
//! holds what the rules need (kind, size, time, read, who confirmed).
//!
//! Room for a message is taken with [`Book::reserve`] *before* the store
//! commits it, so concurrent deposits cannot overrun a quota between the
//! check and the commit; [`Book::commit`] or [`Book::cancel`] settles it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use peerdial_number::Number;

use crate::{Class, Counts, Kind, MailboxError, Summary};

/// Quotas per mailbox and how long messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_count: u32,
    pub max_bytes: u64,
    /// The largest single message.
    pub max_message: u64,
    /// Messages older than this are removed (read or not).
    pub retention_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_count: 200,
            max_bytes: 64 << 20,
            max_message: 16 << 20,
            retention_ms: 30 * 24 * 3600 * 1000,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    size: u64,
    at_ms: u64,
    read: bool,
    /// Devices that confirmed they received it.
    confirmed: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Mailbox {
    entries: BTreeMap<i64, Entry>,
    bytes: u64,
    reserved_count: u32,
    reserved_bytes: u64,
}

/// A stored message as the index needs it (loaded at start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub kind: Kind,
    pub size: u64,
    pub at_ms: u64,
    pub read: bool,
}

/// Room taken in one mailbox for a message being stored.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "commit or cancel a reservation, or the room stays taken"]
pub struct Reservation {
    number: Number,
    size: u64,
}

impl Reservation {
    pub fn number(&self) -> Number {
        self.number
    }
}

/// Every mailbox of a region.
#[derive(Debug, Default)]
pub struct Book {
    limits: Limits,
    boxes: HashMap<Number, Mailbox>,
}

impl Book {
    pub fn new(limits: Limits) -> Book {
        Book {
            limits,
            boxes: HashMap::new(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes room for a message of `size` bytes, or says why there is none.
    pub fn reserve(&mut self, number: Number, size: u64) -> Result<Reservation, MailboxError> {
        if size == 0 {
            return Err(MailboxError::Empty);
        }
        if size > self.limits.max_message {
            return Err(MailboxError::TooLarge {
                size,
                max: self.limits.max_message,
            });
        }
        self.places_for(number, 1)?;
        let b = self.boxes.entry(number).or_default();
        let used = b.bytes + b.reserved_bytes;
        if used + size > self.limits.max_bytes {
            return Err(MailboxError::TooManyBytes {
                number,
                used,
                size,
                max: self.limits.max_bytes,
            });
        }
        b.reserved_count += 1;
        b.reserved_bytes += size;
        Ok(Reservation { number, size })
    }

    /// Whether `needed` more messages fit in `number`'s count (those being
    /// stored count as kept).
    fn places_for(&mut self, number: Number, needed: u32) -> Result<(), MailboxError> {
        let b = self.boxes.entry(number).or_default();
        let count = b.entries.len() as u32 + b.reserved_count;
        if count + needed > self.limits.max_count {
            return Err(MailboxError::TooManyMessages {
                number,
                count,
                needed,
                max: self.limits.max_count,
            });
        }
        Ok(())
    }

    /// Room for the messages of one post (a file and its caption), all or
    /// none; a refusal for the count says how many places it needed.
    pub fn reserve_all(&mut self, number: Number, sizes: &[u64]) -> Result<Vec<Reservation>, MailboxError> {
        self.places_for(number, sizes.len() as u32)?;
        let mut rooms = Vec::new();
        for &size in sizes {
            match self.reserve(number, size) {
                Ok(r) => rooms.push(r),
                Err(e) => {
                    rooms.into_iter().for_each(|r| self.cancel(r));
                    return Err(e);
                }
            }
        }
        Ok(rooms)
    }

    /// The message is committed as `id`: it now counts as stored. `size`
    /// may be less than was reserved (a recording reserves its longest).
    pub fn commit(&mut self, r: Reservation, id: i64, kind: Kind, size: u64, at_ms: u64) {
        let size = size.min(r.size);
        let b = self.release(&r);
        b.bytes += size;
        b.entries.insert(
            id,
            Entry {
                kind,
                size,
                at_ms,
                read: false,
                confirmed: BTreeSet::new(),
            },
        );
    }

    /// The store did not take it: give the room back.
    pub fn cancel(&mut self, r: Reservation) {
        self.release(&r);
    }

    fn release(&mut self, r: &Reservation) -> &mut Mailbox {
        let b = self.boxes.entry(r.number).or_default();
        b.reserved_count = b.reserved_count.saturating_sub(1);
        b.reserved_bytes = b.reserved_bytes.saturating_sub(r.size);
        b
    }

    /// Adds a message already in the store (at start-up); quotas are not
    /// checked, the store is the truth.
    pub fn load(&mut self, number: Number, m: Stored, confirmed: impl IntoIterator<Item = String>) {
        let b = self.boxes.entry(number).or_default();
        b.bytes += m.size;
        b.entries.insert(
            m.id,
            Entry {
                kind: m.kind,
                size: m.size,
                at_ms: m.at_ms,
                read: m.read,
                confirmed: confirmed.into_iter().collect(),
            },
        );
    }

    fn entry(&mut self, number: Number, id: i64) -> Result<&mut Entry, MailboxError> {
        self.boxes
            .get_mut(&number)
            .and_then(|b| b.entries.get_mut(&id))
            .ok_or(MailboxError::NoSuchMessage(id))
    }

    /// `device` confirmed it has message `id`; whether this is news (the
    /// caller stores only news).
    pub fn confirm(&mut self, number: Number, id: i64, device: &str) -> Result<bool, MailboxError> {
        Ok(self.entry(number, id)?.confirmed.insert(device.to_string()))
    }

    /// Messages of `number` that `device` has not confirmed, oldest first.
    pub fn pending(&self, number: Number, device: &str) -> Vec<i64> {
        self.boxes
            .get(&number)
            .map(|b| {
                b.entries
                    .iter()
                    .filter(|(_, e)| !e.confirmed.contains(device))
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// As [`Book::pending`], only messages of `kind`.
    pub fn pending_of(&self, number: Number, device: &str, kind: Kind) -> Vec<i64> {
        self.boxes
            .get(&number)
            .map(|b| {
                b.entries
                    .iter()
                    .filter(|(_, e)| e.kind == kind && !e.confirmed.contains(device))
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Marks a message read; whether it was new.
    pub fn mark_read(&mut self, number: Number, id: i64) -> Result<bool, MailboxError> {
        let e = self.entry(number, id)?;
        Ok(!std::mem::replace(&mut e.read, true))
    }

    /// Forgets a message (after the store deleted it).
    pub fn remove(&mut self, number: Number, id: i64) -> Result<(), MailboxError> {
        let b = self.boxes.get_mut(&number).ok_or(MailboxError::NoSuchMessage(id))?;
        let e = b.entries.remove(&id).ok_or(MailboxError::NoSuchMessage(id))?;
        b.bytes -= e.size;
        Ok(())
    }

    /// Messages past the retention period at `now_ms`: delete them from
    /// the store, then [`Book::remove`] each.
    pub fn expired(&self, now_ms: u64) -> Vec<(Number, i64)> {
        let before = now_ms.saturating_sub(self.limits.retention_ms);
        let mut out: Vec<(Number, i64)> = self
            .boxes
            .iter()
            .flat_map(|(n, b)| b.entries.iter().filter(|(_, e)| e.at_ms < before).map(|(id, _)| (*n, *id)))
            .collect();
        out.sort();
        out
    }

    /// When the next message passes the retention period (the first
    /// time [`Book::expired`] will name it), or None with nothing stored:
    /// the region's sweep sleeps until then (at most a minute, as new
    /// messages may come).
    pub fn next_expiry(&self) -> Option<u64> {
        self.boxes
            .values()
            .flat_map(|b| b.entries.values())
            .map(|e| e.at_ms + self.limits.retention_ms + 1)
            .min()
    }

    /// The message ids of `number`, oldest first.
    pub fn ids(&self, number: Number) -> Vec<i64> {
        self.boxes
            .get(&number)
            .map(|b| b.entries.keys().copied().collect())
            .unwrap_or_default()
    }

    /// What MWI says for `number` (`account`: its mailbox URI).
    pub fn summary(&self, number: Number, account: Option<String>) -> Summary {
        let mut counts: BTreeMap<Class, Counts> = BTreeMap::new();
        if let Some(b) = self.boxes.get(&number) {
            for e in b.entries.values() {
                let c = counts.entry(e.kind.class()).or_default();
                if e.read {
                    c.old += 1;
                } else {
                    c.new += 1;
                }
            }
        }
        Summary {
            waiting: counts.values().any(|c| c.new > 0),
            account,
            counts: counts.into_iter().collect(),
        }
    }

    /// Bytes and messages stored for `number`.
    pub fn usage(&self, number: Number) -> (u32, u64) {
        self.boxes.get(&number).map_or((0, 0), |b| (b.entries.len() as u32, b.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> Number {
        Number::new(peerdial_number::Area::parse("886-02").unwrap(), i)
    }

    fn small() -> Book {
        Book::new(Limits {
            max_count: 2,
            max_bytes: 100,
            max_message: 60,
            retention_ms: 1000,
        })
    }

    #[test]
    fn quotas_count_reservations_and_say_what_is_full() {
        let mut b = small();
        assert_eq!(b.reserve(n(1), 0), Err(MailboxError::Empty));
        assert!(matches!(b.reserve(n(1), 61), Err(MailboxError::TooLarge { size: 61, max: 60 })));
        let r1 = b.reserve(n(1), 60).unwrap();
        // Not yet committed, but its room is taken.
        let e = b.reserve(n(1), 41).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("the mailbox of {} is full: 60 of 100 bytes used, the message needs 41 more", n(1))
        );
        let r2 = b.reserve(n(1), 40).unwrap();
        assert!(matches!(
            b.reserve(n(1), 1),
            Err(MailboxError::TooManyMessages { count: 2, max: 2, .. })
        ));
        // A post of two (a file and its caption) where one place is left:
        // refused whole, saying what it needed, and nothing is taken.
        b.cancel(r2);
        let e = b.reserve_all(n(1), &[10, 5]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the mailbox of {} is full: it keeps 1 of at most 2 messages, and this needs room for 2",
                n(1)
            )
        );
        let r2 = b.reserve(n(1), 40).unwrap();
        b.commit(r1, 7, Kind::Voice, 60, 10);
        b.cancel(r2);
        assert_eq!(b.usage(n(1)), (1, 60));
        // Another mailbox has its own quota.
        assert!(b.reserve(n(2), 60).is_ok());
        let r = b.reserve(n(1), 40).unwrap();
        b.commit(r, 8, Kind::Text, 40, 20);
        b.remove(n(1), 7).unwrap();
        assert_eq!(b.usage(n(1)), (1, 40));
        assert_eq!(b.remove(n(1), 7), Err(MailboxError::NoSuchMessage(7)));
    }

    #[test]
    fn the_retention_sweep_removes_each_message_when_its_time_is_up() {
        // Simulated time: a sweep that sleeps until the next expiry.
        let mut b = small();
        assert_eq!(b.next_expiry(), None);
        for (id, at) in [(1, 0), (2, 400), (3, 400), (4, 2500)] {
            let r = b.reserve(n(id as u32 % 2), 5).unwrap();
            b.commit(r, id, Kind::Text, 5, at);
        }
        let mut removed = Vec::new();
        let mut now = 0;
        for _ in 0..10 {
            let Some(next) = b.next_expiry() else { break };
            assert!(next > now, "the sweep always moves forward");
            // Nothing is due a millisecond early.
            assert!(b.expired(next - 1).is_empty());
            now = next;
            for (number, id) in b.expired(now) {
                b.remove(number, id).unwrap();
                removed.push((id, now));
            }
        }
        assert_eq!(removed, vec![(1, 1001), (2, 1401), (3, 1401), (4, 3501)]);
        assert_eq!(b.usage(n(0)), (0, 0));
        assert_eq!(b.usage(n(1)), (0, 0));
        assert_eq!(b.next_expiry(), None);
    }

    #[test]
    fn each_device_gets_each_message_until_it_confirms() {
        let mut b = small();
        let r = b.reserve(n(1), 5).unwrap();
        b.commit(r, 1, Kind::Text, 5, 0);
        let r = b.reserve(n(1), 5).unwrap();
        b.commit(r, 2, Kind::Voice, 3, 0);
        assert_eq!(b.pending(n(1), "tv"), vec![1, 2]);
        assert!(b.confirm(n(1), 1, "tv").unwrap());
        assert!(!b.confirm(n(1), 1, "tv").unwrap(), "a second confirmation is no news");
        assert_eq!(b.pending(n(1), "tv"), vec![2]);
        assert_eq!(b.pending(n(1), "desk"), vec![1, 2], "another device still gets both");
        assert_eq!(b.pending_of(n(1), "desk", Kind::Voice), vec![2]);
        assert_eq!(b.confirm(n(1), 9, "tv"), Err(MailboxError::NoSuchMessage(9)));
    }

    #[test]
    fn summary_counts_new_and_read_by_class_and_retention_expires() {
        let mut b = small();
        let stored = |id, kind, at_ms| Stored {
            id,
            kind,
            size: 5,
            at_ms,
            read: false,
        };
        b.load(n(1), stored(1, Kind::Voice, 0), []);
        b.load(n(1), stored(2, Kind::Image, 500), ["tv".to_string()]);
        assert!(b.mark_read(n(1), 2).unwrap());
        assert!(!b.mark_read(n(1), 2).unwrap());
        let s = b.summary(n(1), None);
        assert!(s.waiting);
        assert_eq!(
            s.counts,
            vec![
                (
                    Class::Voice,
                    Counts {
                        new: 1,
                        ..Counts::default()
                    }
                ),
                (
                    Class::Multimedia,
                    Counts {
                        old: 1,
                        ..Counts::default()
                    }
                )
            ]
        );
        assert_eq!(b.expired(1200), vec![(n(1), 1)]);
        assert!(b.expired(999).is_empty());
        assert!(!b.summary(n(2), None).waiting);
        assert_eq!(b.pending(n(1), "tv"), vec![1]);
    }
}
