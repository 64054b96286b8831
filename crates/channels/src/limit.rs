//! How fast one poster may post: at most `per_minute` posts in any
//! rolling minute (a sliding log of post times, bounded by `per_minute`).

use std::collections::{HashMap, VecDeque};

use crate::ChannelError;

const MINUTE: u64 = 60_000;
/// Posters remembered at most; the quietest are forgotten first.
const MAX_POSTERS: usize = 100_000;

pub struct RateLimit {
    per_minute: usize,
    posts: HashMap<u64, VecDeque<u64>>,
}

impl RateLimit {
    pub fn new(per_minute: usize) -> RateLimit {
        RateLimit {
            per_minute: per_minute.max(1),
            posts: HashMap::new(),
        }
    }

    /// Counts a post by `poster` at `now` if it is allowed; otherwise says
    /// how long to wait. A refused post is not counted.
    pub fn check(&mut self, poster: u64, now: u64) -> Result<(), ChannelError> {
        if self.posts.len() >= MAX_POSTERS && !self.posts.contains_key(&poster) {
            self.posts.retain(|_, times| times.back().is_some_and(|t| t + MINUTE > now));
        }
        let times = self.posts.entry(poster).or_default();
        while times.front().is_some_and(|t| t + MINUTE <= now) {
            times.pop_front();
        }
        if times.len() >= self.per_minute {
            let wait = times.front().map_or(0, |t| (t + MINUTE - now).div_ceil(1000));
            return Err(ChannelError::RateLimited(wait.max(1)));
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_over_the_limit_wait_for_the_minute_to_roll() {
        let mut l = RateLimit::new(3);
        for t in [0, 10, 20] {
            l.check(7, t).unwrap();
        }
        assert_eq!(l.check(7, 30), Err(ChannelError::RateLimited(60)));
        l.check(8, 30).expect("another poster has its own count");
        assert!(l.check(7, 59_999).is_err());
        l.check(7, 60_000).expect("the first post left the window");
        assert!(
            l.check(7, 60_001).is_err(),
            "refused posts are not counted, but the window is full again"
        );
    }
}
