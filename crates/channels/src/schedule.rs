//! When broadcasts go out: once, or every N minutes until a time.

use std::collections::BTreeMap;

use crate::ChannelError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub id: u64,
    pub text: String,
    /// Repeat this often (`None`: once).
    pub every_ms: Option<u64>,
    /// No delivery starts after this (`None`: no end; only with no repeat).
    pub until_ms: Option<u64>,
    /// When it goes out next.
    pub next_ms: u64,
}

/// The shortest repeat: a minute (a marquee is not a chat).
pub const MIN_EVERY_MS: u64 = 60_000;

impl Broadcast {
    /// Checks a new broadcast's schedule.
    pub fn check(&self) -> Result<(), ChannelError> {
        match (self.every_ms, self.until_ms) {
            (Some(e), _) if e < MIN_EVERY_MS => Err(ChannelError::BadSchedule("repeat at most once a minute".into())),
            (Some(_), None) => Err(ChannelError::BadSchedule(
                "a repeating broadcast needs an end time (--until)".into(),
            )),
            (_, Some(u)) if u <= self.next_ms => Err(ChannelError::BadSchedule("the end time is in the past".into())),
            _ => Ok(()),
        }
    }
}

#[derive(Default)]
pub struct Schedule {
    pending: BTreeMap<u64, Broadcast>,
}

impl Schedule {
    pub fn new() -> Schedule {
        Schedule::default()
    }

    pub fn add(&mut self, b: Broadcast) {
        self.pending.insert(b.id, b);
    }

    pub fn cancel(&mut self, id: u64) -> bool {
        self.pending.remove(&id).is_some()
    }

    pub fn pending(&self) -> impl Iterator<Item = &Broadcast> {
        self.pending.values()
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.pending.values().map(|b| b.next_ms).min()
    }

    /// The broadcasts due at `now`, each with its next time moved on (or
    /// gone when it was the last). A repeat missed while the region was
    /// down is sent once, not once per missed interval.
    pub fn due(&mut self, now: u64) -> Vec<Broadcast> {
        let ids: Vec<u64> = self.pending.values().filter(|b| b.next_ms <= now).map(|b| b.id).collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(mut b) = self.pending.remove(&id) else { continue };
            out.push(b.clone());
            if let (Some(every), Some(until)) = (b.every_ms, b.until_ms) {
                let behind = (now - b.next_ms) / every + 1;
                b.next_ms += behind * every;
                if b.next_ms <= until {
                    self.pending.insert(id, b);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(id: u64, next: u64, every: Option<u64>, until: Option<u64>) -> Broadcast {
        Broadcast {
            id,
            text: format!("b{id}"),
            every_ms: every,
            until_ms: until,
            next_ms: next,
        }
    }

    #[test]
    fn repeats_until_the_end_time_then_stops() {
        let mut s = Schedule::new();
        s.add(b(1, 0, Some(60_000), Some(150_000)));
        s.add(b(2, 30_000, None, None));
        let mut sent = Vec::new();
        while let Some(t) = s.poll_timeout() {
            sent.extend(s.due(t).into_iter().map(|b| (t, b.id)));
        }
        assert_eq!(sent, [(0, 1), (30_000, 2), (60_000, 1), (120_000, 1)]);
    }

    #[test]
    fn a_region_that_was_down_sends_a_missed_repeat_once() {
        let mut s = Schedule::new();
        s.add(b(1, 0, Some(60_000), Some(3_600_000)));
        assert_eq!(s.due(605_000).len(), 1);
        assert_eq!(s.poll_timeout(), Some(660_000));
    }

    #[test]
    fn schedules_are_checked() {
        assert!(b(1, 0, None, None).check().is_ok());
        assert!(b(1, 0, Some(1_000), Some(10_000_000)).check().is_err());
        assert!(b(1, 0, Some(60_000), None).check().is_err());
        assert!(b(1, 100, None, Some(50)).check().is_err());
    }
}
