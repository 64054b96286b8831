//! The retry schedule of one push dispatch, sans-I/O: the edge asks
//! [`Delivery::poll_attempt`] whether to send now, reports each answer
//! with [`Delivery::handle_outcome`] (or [`Delivery::handle_timeout`] when
//! an attempt is slower than the policy allows), and sleeps until
//! [`Delivery::poll_timeout`]. Delays double from `first_ms` up to
//! `max_delay_ms` (a provider's `Retry-After` is honoured within that
//! cap); after `max_attempts` the dispatch has failed. One `Delivery` per
//! dispatch, each driven by its own task, so a slow endpoint holds up no
//! other. No clock: times are milliseconds the caller passes in.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_ms: u64,
    pub max_delay_ms: u64,
    pub max_attempts: u32,
    /// An attempt with no answer in this long counts as failed.
    pub attempt_timeout_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_ms: 200,
            max_delay_ms: 2_000,
            max_attempts: 4,
            attempt_timeout_ms: 1_500,
        }
    }
}

/// What one attempt's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again (5xx, 429, a refused or timed-out connection).
    Retry {
        retry_after_ms: Option<u64>,
    },
    /// The subscription is gone or the request is wrong (404, 410, 4xx).
    Permanent(u16),
}

impl Outcome {
    /// The meaning of an HTTP status (`None`: no answer at all).
    pub fn from_status(status: Option<u16>, retry_after_secs: Option<u64>) -> Outcome {
        let retry_after_ms = retry_after_secs.map(|s| s.saturating_mul(1000));
        match status {
            Some(200..=299) => Outcome::Delivered,
            Some(429) | Some(500..=599) | None => Outcome::Retry { retry_after_ms },
            Some(s) => Outcome::Permanent(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Waiting for the next attempt.
    Waiting,
    /// An attempt is out since this time.
    InFlight {
        since: u64,
    },
    Delivered {
        attempts: u32,
    },
    Failed {
        attempts: u32,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Delivery {
    policy: RetryPolicy,
    attempts: u32,
    next_at: u64,
    state: State,
}

impl Delivery {
    pub fn new(policy: RetryPolicy, now: u64) -> Delivery {
        Delivery {
            policy,
            attempts: 0,
            next_at: now,
            state: State::Waiting,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Delivered { .. } | State::Failed { .. })
    }

    /// When something is due: the next attempt, or an attempt's deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            State::Waiting => Some(self.next_at),
            State::InFlight { since } => Some(since + self.policy.attempt_timeout_ms),
            _ => None,
        }
    }

    /// True when an attempt should be sent now (it is then in flight).
    pub fn poll_attempt(&mut self, now: u64) -> bool {
        if self.state == State::Waiting && now >= self.next_at {
            self.attempts += 1;
            self.state = State::InFlight { since: now };
            return true;
        }
        false
    }

    /// An attempt still out at its deadline has failed (a slow endpoint).
    pub fn handle_timeout(&mut self, now: u64) {
        if let State::InFlight { since } = self.state {
            if now >= since + self.policy.attempt_timeout_ms {
                self.fail_attempt(now, None, "no answer in time");
            }
        }
    }

    /// The answer to the attempt in flight.
    pub fn handle_outcome(&mut self, now: u64, outcome: Outcome) {
        if !matches!(self.state, State::InFlight { .. }) {
            return; // a late answer after its deadline: already counted
        }
        match outcome {
            Outcome::Delivered => self.state = State::Delivered { attempts: self.attempts },
            Outcome::Permanent(s) => {
                self.state = State::Failed {
                    attempts: self.attempts,
                    reason: format!("the push service refused it ({s})"),
                }
            }
            Outcome::Retry { retry_after_ms } => self.fail_attempt(now, retry_after_ms, "the push service failed"),
        }
    }

    fn fail_attempt(&mut self, now: u64, retry_after_ms: Option<u64>, why: &str) {
        if self.attempts >= self.policy.max_attempts {
            self.state = State::Failed {
                attempts: self.attempts,
                reason: format!("{why} ({} attempts)", self.attempts),
            };
            return;
        }
        let backoff = self
            .policy
            .first_ms
            .saturating_mul(1 << (self.attempts - 1).min(20))
            .min(self.policy.max_delay_ms);
        let delay = retry_after_ms.map_or(backoff, |r| r.clamp(backoff, self.policy.max_delay_ms));
        self.next_at = now + delay;
        self.state = State::Waiting;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a delivery against a simulated endpoint: `answer(attempt)`
    /// gives the outcome and how long it took (None: never answers).
    fn run(policy: RetryPolicy, answer: impl Fn(u32) -> (Option<Outcome>, u64)) -> (Delivery, Vec<u64>) {
        let mut now = 0;
        let mut d = Delivery::new(policy, now);
        let mut sent_at = Vec::new();
        for _ in 0..100 {
            if d.is_done() {
                break;
            }
            if d.poll_attempt(now) {
                sent_at.push(now);
                match answer(d.attempts()) {
                    (Some(o), took) if took < policy.attempt_timeout_ms => {
                        now += took;
                        d.handle_outcome(now, o);
                    }
                    _ => {
                        now = d.poll_timeout().unwrap();
                        d.handle_timeout(now);
                    }
                }
                continue;
            }
            now = now.max(d.poll_timeout().unwrap());
        }
        (d, sent_at)
    }

    #[test]
    fn failing_endpoints_are_retried_with_doubling_delays() {
        let p = RetryPolicy::default();
        let (d, at) = run(p, |_| (Some(Outcome::Retry { retry_after_ms: None }), 10));
        assert_eq!(at, vec![0, 210, 620, 1430]);
        assert_eq!(
            d.state(),
            &State::Failed {
                attempts: 4,
                reason: "the push service failed (4 attempts)".into()
            }
        );
        // Succeeds on the third attempt.
        let (d, at) = run(p, |n| {
            (
                Some(if n < 3 {
                    Outcome::from_status(Some(503), None)
                } else {
                    Outcome::Delivered
                }),
                10,
            )
        });
        assert_eq!(d.state(), &State::Delivered { attempts: 3 });
        assert_eq!(at.len(), 3);
    }

    #[test]
    fn slow_endpoints_time_out_and_retry_after_is_capped() {
        let p = RetryPolicy::default();
        let (d, at) = run(p, |_| (None, 0));
        assert_eq!(at, vec![0, 1_700, 3_600, 5_900]);
        assert!(matches!(d.state(), State::Failed { attempts: 4, .. }));
        let (_, at) = run(p, |n| {
            (
                Some(if n == 1 {
                    Outcome::from_status(Some(429), Some(3600))
                } else {
                    Outcome::Delivered
                }),
                0,
            )
        });
        assert_eq!(at, vec![0, 2_000]);
        let (d, at) = run(p, |_| (Some(Outcome::from_status(Some(410), None)), 5));
        assert_eq!(at, vec![0]);
        assert!(matches!(d.state(), State::Failed { attempts: 1, .. }));
    }

    #[test]
    fn late_answers_are_ignored() {
        let mut d = Delivery::new(RetryPolicy::default(), 0);
        assert!(d.poll_attempt(0));
        assert!(!d.poll_attempt(0));
        d.handle_timeout(1_500);
        d.handle_outcome(1_600, Outcome::Delivered);
        assert_eq!(d.state(), &State::Waiting);
    }
}
