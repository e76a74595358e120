//! Per-subject limit on consecutive failed verifications (NIST SP 800-63B §5.2.2: at most 5
//! consecutive failures, then a lockout; the counter resets on success).
//!
//! Attempts in flight count against the limit, so a burst of parallel requests gets no more
//! tries than a sequence would. State is in memory: with several replicas behind a load balancer
//! each replica counts on its own (the effective limit is `replicas × max`); route a subject to
//! one replica (sticky by subject id) or keep replicas few.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Entry {
    failures: u32,
    in_flight: u32,
    locked_until: Option<Instant>,
}

/// The lockout table.
#[derive(Debug)]
pub struct Lockouts {
    max: u32,
    duration: Duration,
    table: Mutex<HashMap<String, Entry>>,
    total: AtomicU64,
}

/// A granted attempt; hand it back to [`Lockouts::finish`] with the outcome.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    subject: String,
}

impl Lockouts {
    /// `max` consecutive failures, then locked for `duration`.
    pub fn new(max: u32, duration: Duration) -> Lockouts {
        Lockouts {
            max: max.max(1),
            duration,
            table: Mutex::new(HashMap::new()),
            total: AtomicU64::new(0),
        }
    }

    /// Asks to try `subject` at time `now`: an [`Attempt`], or how long to wait.
    pub fn begin(&self, subject: &str, now: Instant) -> Result<Attempt, Duration> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let e = t.entry(subject.to_owned()).or_default();
        if let Some(until) = e.locked_until {
            if now < until {
                return Err(until - now);
            }
            e.locked_until = None;
            e.failures = 0;
        }
        if e.failures + e.in_flight >= self.max {
            // Earlier attempts still running could use up the budget: wait for them.
            return Err(Duration::from_secs(1));
        }
        e.in_flight += 1;
        Ok(Attempt {
            subject: subject.to_owned(),
        })
    }

    /// Records the outcome of an attempt; returns true when it started a lockout.
    pub fn finish(&self, attempt: Attempt, success: bool, now: Instant) -> bool {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = t.get_mut(&attempt.subject) else {
            return false;
        };
        e.in_flight = e.in_flight.saturating_sub(1);
        if success {
            e.failures = 0;
        } else {
            e.failures += 1;
            if e.failures >= self.max && e.locked_until.is_none() {
                e.locked_until = Some(now + self.duration);
                self.total.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        if e.failures == 0 && e.in_flight == 0 && e.locked_until.is_none() {
            t.remove(&attempt.subject);
        }
        false
    }

    /// Drops the state of a subject (on revocation or re-enrolment).
    pub fn forget(&self, subject: &str) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(subject);
    }

    /// Lockouts started since the server started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Subjects locked at `now`.
    pub fn locked_now(&self, now: Instant) -> usize {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.values()
            .filter(|e| e.locked_until.is_some_and(|u| u > now))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_unlocks_after_duration() {
        let l = Lockouts::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            let a = l.begin("s", t0).unwrap();
            assert_eq!(l.finish(a, false, t0), i == 2);
        }
        let wait = l.begin("s", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert_eq!(l.locked_now(t0), 1);
        assert_eq!(l.total(), 1);
        // Other subjects are unaffected.
        let a = l.begin("other", t0).unwrap();
        l.finish(a, false, t0);
        // After the lockout the subject gets a fresh budget.
        let later = t0 + Duration::from_secs(61);
        for _ in 0..2 {
            let a = l.begin("s", later).unwrap();
            l.finish(a, false, later);
        }
        assert!(l.begin("s", later).is_ok());
    }

    #[test]
    fn success_resets_the_counter() {
        let l = Lockouts::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..5 {
            let a = l.begin("s", t0).unwrap();
            l.finish(a, false, t0);
            let a = l.begin("s", t0).unwrap();
            l.finish(a, true, t0);
        }
        assert_eq!(l.total(), 0);
    }

    #[test]
    fn parallel_attempts_count_against_the_budget() {
        let l = Lockouts::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let a = l.begin("s", t0).unwrap();
        let b = l.begin("s", t0).unwrap();
        assert!(l.begin("s", t0).is_err(), "a third parallel attempt must wait");
        l.finish(a, false, t0);
        assert!(l.finish(b, false, t0));
        assert!(l.begin("s", t0).is_err());
    }
}
