//! Limits on consecutive failed attempts, kept in the store so that restarts and replicas share
//! them (NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts on one account,
//! then a lockout; the counter resets on success).
//!
//! Two kinds of key are limited:
//! - `subject:<id>`: 1:1 verifications of one subject, enrolled or not (an unknown subject is
//!   answered and counted like a non-match, so the limit cannot be used to enumerate who is
//!   enrolled). Default 5 failures, then locked for 15 minutes.
//! - `identify:<token>`: 1:N identifications by one token that found nobody. Default 100 (the
//!   NIST ceiling: a kiosk sees many unenrolled faces), then the token is locked.
//!
//! Every failure is written to the store (atomically across replicas) before the answer goes
//! out, so a crash or a restart loses no count. Successes with no failures before them write
//! nothing, which keeps the common path as fast as before. Attempts in flight count against the
//! budget, so a burst of parallel requests gets no more tries than a sequence would. With
//! replicas, a replica re-reads a key's shared count before each attempt once it knows of a
//! failure on that key, and learns of other replicas' failures and locks through the change log
//! within one sync interval; until then it can evaluate at most one attempt more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{ApiError, Result};
use crate::store::{AttemptState, TemplateStore};

/// How many consecutive failures a kind of key may have, and how long it is locked after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Consecutive failures that start a lockout (at least 1).
    pub max: u32,
    /// Lockout length.
    pub lock: Duration,
}

/// The key limiting verifications of `subject`.
pub fn subject_key(subject: &str) -> String {
    format!("subject:{subject}")
}

/// The key limiting identifications by the token named `caller`.
pub fn identify_key(caller: &str) -> String {
    format!("identify:{caller}")
}

#[derive(Debug, Default, Clone, Copy)]
struct Local {
    state: AttemptState,
    in_flight: u32,
}

impl Local {
    fn is_idle(&self, now: u64) -> bool {
        self.in_flight == 0 && self.state.failures == 0 && !self.state.is_locked(now)
    }
}

type Table = Arc<Mutex<HashMap<String, Local>>>;

fn lock(t: &Table) -> std::sync::MutexGuard<'_, HashMap<String, Local>> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// The attempt counters: the store's, with an in-memory copy for the fast path.
pub struct AttemptLimits {
    store: Arc<dyn TemplateStore>,
    table: Table,
    lockouts: AtomicU64,
}

impl std::fmt::Debug for AttemptLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptLimits")
            .field("keys", &lock(&self.table).len())
            .finish_non_exhaustive()
    }
}

/// A granted attempt: hand it to [`AttemptLimits::finish`] with its outcome. Dropped unfinished
/// (the request was cancelled before an answer), it gives its slot back without counting.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    key: String,
    limit: Limit,
    table: Table,
    open: bool,
}

impl Attempt {
    fn close(&mut self, now: u64) {
        if !self.open {
            return;
        }
        self.open = false;
        let mut t = lock(&self.table);
        if let Some(e) = t.get_mut(&self.key) {
            e.in_flight = e.in_flight.saturating_sub(1);
            if e.is_idle(now) {
                t.remove(&self.key);
            }
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.close(crate::unix_now());
    }
}

/// What an attempt's outcome did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A success, or a failure under the limit.
    Counted,
    /// This failure started a lockout, until the given Unix second.
    LockedUntil(u64),
}

impl AttemptLimits {
    /// Counters over `store` (call [`AttemptLimits::load`] to pick up the stored state).
    pub fn new(store: Arc<dyn TemplateStore>) -> AttemptLimits {
        AttemptLimits {
            store,
            table: Arc::default(),
            lockouts: AtomicU64::new(0),
        }
    }

    /// Reads every key with failures or an unexpired lock from the store (at start).
    pub async fn load(&self, now: u64) -> Result<usize> {
        let stored = self.store.load_attempts(now).await?;
        let n = stored.len();
        let mut t = lock(&self.table);
        for (key, state) in stored {
            t.entry(key).or_default().state = state;
        }
        Ok(n)
    }

    /// Asks to try `key` at `now`: an [`Attempt`], or [`ApiError::TooManyAttempts`] with the wait.
    pub async fn begin(&self, key: &str, limit: Limit, now: u64) -> Result<Attempt, ApiError> {
        let known_failures = self.try_begin(key, limit, now)?;
        let attempt = Attempt {
            key: key.to_owned(),
            limit,
            table: self.table.clone(),
            open: true,
        };
        if known_failures && self.store.is_shared() {
            // Other replicas may have counted failures on this key since we last looked.
            let shared = self.store.attempt_state(key).await?.unwrap_or_default();
            let mut t = lock(&self.table);
            let e = t.entry(key.to_owned()).or_default();
            e.state = shared;
            if let Some(wait) = refusal(e, limit, now, 1) {
                drop(t);
                return Err(ApiError::TooManyAttempts(wait));
            }
        }
        Ok(attempt)
    }

    /// The synchronous part of [`AttemptLimits::begin`]: reserves a slot; true when the key has
    /// failures on record.
    fn try_begin(&self, key: &str, limit: Limit, now: u64) -> Result<bool, ApiError> {
        let mut t = lock(&self.table);
        let e = t.entry(key.to_owned()).or_default();
        if e.state.locked_until != 0 && !e.state.is_locked(now) {
            // The lock ran out: a fresh budget (the store applies the same rule).
            e.state = AttemptState::default();
        }
        if let Some(wait) = refusal(e, limit, now, 0) {
            if e.is_idle(now) {
                t.remove(key);
            }
            return Err(ApiError::TooManyAttempts(wait));
        }
        e.in_flight += 1;
        Ok(e.state.failures > 0)
    }

    /// Records the outcome of `attempt` at `now`. A failure is durable in the store before this
    /// returns (an error here must not be answered with the decision).
    pub async fn finish(&self, mut attempt: Attempt, success: bool, now: u64) -> Result<Outcome> {
        let key = attempt.key.clone();
        let known = lock(&self.table).get(&key).map(|e| e.state);
        if success {
            if known.is_some_and(|s| s.failures > 0 || s.locked_until != 0) {
                self.store.clear_attempts(&key).await?;
                if let Some(e) = lock(&self.table).get_mut(&key) {
                    e.state = AttemptState::default();
                }
            }
            attempt.close(now);
            return Ok(Outcome::Counted);
        }
        let limit = attempt.limit;
        let state = self
            .store
            .record_failure(&key, limit.max, limit.lock.as_secs(), now)
            .await?;
        if let Some(e) = lock(&self.table).get_mut(&key) {
            e.state = state;
        }
        attempt.close(now);
        if state.locked_until != 0 && state.failures == limit.max.max(1) {
            self.lockouts.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::LockedUntil(state.locked_until));
        }
        Ok(Outcome::Counted)
    }

    /// Whether `key` is locked at `now`, as far as this process knows.
    pub fn is_locked(&self, key: &str, now: u64) -> bool {
        lock(&self.table).get(key).is_some_and(|e| e.state.is_locked(now))
    }

    /// Drops the counters of `key` (on revocation or re-enrolment), in the store too.
    pub async fn forget(&self, key: &str) -> Result<()> {
        let local = lock(&self.table).get(key).map(|e| e.state);
        let stored = match local {
            Some(s) if s != AttemptState::default() => true,
            _ if self.store.is_shared() => self.store.attempt_state(key).await?.is_some(),
            _ => false,
        };
        if stored {
            self.store.clear_attempts(key).await?;
        }
        let mut t = lock(&self.table);
        if let Some(e) = t.get_mut(key) {
            e.state = AttemptState::default();
            if e.in_flight == 0 {
                t.remove(key);
            }
        }
        Ok(())
    }

    /// Re-reads `key` from the store (another replica changed it).
    pub async fn refresh(&self, key: &str, now: u64) -> Result<()> {
        let state = self.store.attempt_state(key).await?.unwrap_or_default();
        let mut t = lock(&self.table);
        let e = t.entry(key.to_owned()).or_default();
        e.state = state;
        if e.is_idle(now) {
            t.remove(key);
        }
        Ok(())
    }

    /// Lockouts this process started since it started.
    pub fn total(&self) -> u64 {
        self.lockouts.load(Ordering::Relaxed)
    }

    /// Keys locked at `now`.
    pub fn locked_now(&self, now: u64) -> usize {
        lock(&self.table)
            .values()
            .filter(|e| e.state.is_locked(now))
            .count()
    }

    /// Subjects locked at `now` (their keys without the `subject:` prefix).
    pub fn locked_subjects(&self, now: u64) -> Vec<String> {
        lock(&self.table)
            .iter()
            .filter(|(_, e)| e.state.is_locked(now))
            .filter_map(|(k, _)| k.strip_prefix("subject:").map(str::to_owned))
            .collect()
    }
}

/// Why `e` may not start one more attempt (`own` of its in-flight ones are the caller's): the
/// wait, or `None`.
fn refusal(e: &Local, limit: Limit, now: u64, own: u32) -> Option<Duration> {
    if e.state.is_locked(now) {
        return Some(Duration::from_secs((e.state.locked_until - now).max(1)));
    }
    if e.state.failures + e.in_flight.saturating_sub(own) >= limit.max.max(1) {
        // Attempts still running could use up the budget: wait for them.
        return Some(Duration::from_secs(1));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddedStore;

    const LIMIT: Limit = Limit {
        max: 3,
        lock: Duration::from_secs(60),
    };

    fn limits(dir: &std::path::Path) -> AttemptLimits {
        AttemptLimits::new(Arc::new(EmbeddedStore::open(dir).unwrap()))
    }

    #[tokio::test]
    async fn locks_after_max_failures_and_unlocks_after_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let l = limits(dir.path());
        let t0 = 1_000;
        for i in 0..3 {
            let a = l.begin("s", LIMIT, t0).await.unwrap();
            let out = l.finish(a, false, t0).await.unwrap();
            assert_eq!(out == Outcome::LockedUntil(t0 + 60), i == 2);
        }
        match l.begin("s", LIMIT, t0 + 10).await {
            Err(ApiError::TooManyAttempts(w)) => assert_eq!(w, Duration::from_secs(50)),
            other => panic!("expected a lockout, got {other:?}"),
        }
        assert_eq!(l.locked_now(t0), 1);
        assert_eq!(l.total(), 1);
        // Other keys are unaffected.
        let a = l.begin("other", LIMIT, t0).await.unwrap();
        l.finish(a, false, t0).await.unwrap();
        // After the lock a fresh budget.
        let later = t0 + 61;
        for _ in 0..2 {
            let a = l.begin("s", LIMIT, later).await.unwrap();
            l.finish(a, false, later).await.unwrap();
        }
        assert!(l.begin("s", LIMIT, later).await.is_ok());
    }

    #[tokio::test]
    async fn success_resets_the_counter() {
        let dir = tempfile::tempdir().unwrap();
        let l = limits(dir.path());
        for _ in 0..5 {
            let a = l.begin("s", LIMIT, 10).await.unwrap();
            l.finish(a, false, 10).await.unwrap();
            let a = l.begin("s", LIMIT, 10).await.unwrap();
            l.finish(a, true, 10).await.unwrap();
        }
        assert_eq!(l.total(), 0);
        assert!(dir.path().join(crate::store::DB_FILE).exists());
    }

    #[tokio::test]
    async fn parallel_attempts_count_against_the_budget_and_cancelled_ones_give_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let l = limits(dir.path());
        let a = l.begin("s", LIMIT, 10).await.unwrap();
        let b = l.begin("s", LIMIT, 10).await.unwrap();
        let c = l.begin("s", LIMIT, 10).await.unwrap();
        assert!(
            l.begin("s", LIMIT, 10).await.is_err(),
            "a fourth parallel attempt must wait"
        );
        drop(c);
        let c = l
            .begin("s", LIMIT, 10)
            .await
            .expect("a dropped attempt frees its slot");
        l.finish(a, false, 10).await.unwrap();
        l.finish(b, false, 10).await.unwrap();
        assert_eq!(l.finish(c, false, 10).await.unwrap(), Outcome::LockedUntil(70));
        assert!(l.begin("s", LIMIT, 10).await.is_err());
    }

    #[tokio::test]
    async fn counts_and_locks_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let l = limits(dir.path());
            for _ in 0..2 {
                let a = l.begin("s", LIMIT, 10).await.unwrap();
                l.finish(a, false, 10).await.unwrap();
            }
            for _ in 0..3 {
                let a = l.begin("t", LIMIT, 10).await.unwrap();
                l.finish(a, false, 10).await.unwrap();
            }
        }
        let l = limits(dir.path());
        assert_eq!(l.load(20).await.unwrap(), 2);
        assert!(l.is_locked("t", 20), "the lock is kept across the restart");
        let a = l.begin("s", LIMIT, 20).await.unwrap();
        assert_eq!(
            l.finish(a, false, 20).await.unwrap(),
            Outcome::LockedUntil(80),
            "the third failure overall locks, though it is the first since the restart"
        );
        l.forget("s").await.unwrap();
        assert!(!l.is_locked("s", 20));
        drop(l);
        assert_eq!(
            limits(dir.path()).load(20).await.unwrap(),
            1,
            "forget clears the store too"
        );
    }
}
