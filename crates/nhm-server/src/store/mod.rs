//! Template storage: the [`TemplateStore`] trait and its two backends.
//!
//! - [`EmbeddedStore`] (default): one redb file. redb rather than SQLite because it is pure Rust
//!   (no C build, no cross-compiling pain), ACID with copy-on-write B-trees and checksummed
//!   two-phase commits, crash-safe (a killed process leaves the last committed state), and with
//!   `Durability::Immediate` (its default) a commit returns only after fsync: the server
//!   acknowledges an enrolment only after that.
//! - [`PostgresStore`]: for several server replicas sharing one gallery; schema from numbered
//!   SQL migrations in `migrations/`, applied at start under an advisory lock.
//!
//! Stores hold hashmaps only (peppered when the server has a pepper), in the nhm-template wire
//! format; never an image or an embedding.

mod embedded;
mod postgres;

pub use embedded::{EmbeddedStore, DB_FILE};
pub use postgres::PostgresStore;

use nhm_template::Hashmap;
use serde::Serialize;

use crate::error::{Error, Result};

/// Metadata of an enrolled subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SubjectInfo {
    /// Subject id.
    pub id: String,
    /// Number of enrolled templates.
    pub templates: usize,
    /// First enrolment, seconds since the Unix epoch.
    pub created: u64,
    /// Last change, seconds since the Unix epoch.
    pub updated: u64,
}

/// A subject with its templates.
#[derive(Debug, Clone)]
pub struct StoredSubject {
    /// Metadata.
    pub info: SubjectInfo,
    /// The templates, as stored (peppered when the server has a pepper).
    pub templates: Vec<Hashmap>,
}

/// What an enrolment does when the subject exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Fail with [`Error::SubjectExists`] (HTTP 409).
    #[default]
    Create,
    /// Add the templates to the existing ones (or create).
    Append,
    /// Replace the existing templates (or create): re-keying.
    Replace,
}

/// Durable storage of hashmaps by subject. Every write returns only when it is durable.
#[async_trait::async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// Writes templates for `subject` per `mode` at time `now` (Unix seconds); returns the new record.
    async fn put_templates(
        &self,
        subject: &str,
        templates: Vec<Hashmap>,
        mode: WriteMode,
        now: u64,
    ) -> Result<StoredSubject>;
    /// Removes a subject; false when it was not there.
    async fn delete_subject(&self, subject: &str) -> Result<bool>;
    /// One subject with its templates.
    async fn get_subject(&self, subject: &str) -> Result<Option<StoredSubject>>;
    /// Up to `limit` subjects with ids greater than `after`, in id order (keyset paging).
    async fn list_subjects(&self, after: Option<&str>, limit: usize) -> Result<Vec<SubjectInfo>>;
    /// Every subject (to rebuild the in-memory gallery at start).
    async fn load_all(&self) -> Result<Vec<StoredSubject>>;
    /// Number of subjects.
    async fn count(&self) -> Result<usize>;
    /// Bulk load (the `seed-gallery` fast path): writes records as given, overwriting.
    async fn bulk_put(&self, subjects: Vec<StoredSubject>) -> Result<()>;
    /// A configuration value stored with the gallery (threshold, template kind and dim, pepper id).
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Stores a configuration value durably.
    async fn put_meta(&self, key: &str, value: &str) -> Result<()>;
    /// What other replicas changed after change-log position `seq`, in commit order: a change
    /// that committed is never behind a position already handed out. Single-process stores have
    /// no other writers and report nothing.
    async fn changes_since(&self, seq: u64) -> Result<ChangeBatch> {
        Ok(ChangeBatch {
            last: seq,
            ..ChangeBatch::default()
        })
    }
    /// The latest change-log position (taken before loading the gallery at start).
    async fn latest_change(&self) -> Result<u64> {
        Ok(0)
    }
    /// Whether other processes write to this store too (replicas): then shared state such as
    /// attempt counters must be re-read before it is trusted.
    fn is_shared(&self) -> bool {
        false
    }
    /// Counts one failed attempt on `key` at `now` (Unix seconds), atomically across replicas,
    /// and returns the new state. A lock that has expired is cleared first (a fresh budget); the
    /// count reaching `max` locks the key until `now + lock_secs`. Durable before it returns.
    async fn record_failure(&self, key: &str, max: u32, lock_secs: u64, now: u64) -> Result<AttemptState>;
    /// Forgets `key`'s failures and lock (a success, a re-enrolment, a revocation).
    async fn clear_attempts(&self, key: &str) -> Result<()>;
    /// The stored state of `key`; `None` when it has neither failures nor a lock.
    async fn attempt_state(&self, key: &str) -> Result<Option<AttemptState>>;
    /// Every key with failures, or with a lock not yet expired at `now` (loaded at start).
    async fn load_attempts(&self, now: u64) -> Result<Vec<(String, AttemptState)>>;
    /// Drops change-log entries older than `keep_secs` before `now` and attempt rows whose lock
    /// expired that long ago; returns how many rows went. A replica whose position was pruned
    /// away is told to reload ([`ChangeBatch::reload`]).
    async fn prune(&self, now: u64, keep_secs: u64) -> Result<u64> {
        let _ = (now, keep_secs);
        Ok(0)
    }
}

/// One change in the store's change log (what a replica must re-read).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A subject was written or deleted.
    Subject(String),
    /// A meta value was written (the threshold, for example).
    Meta(String),
    /// An attempt counter changed (a failure, a lockout, a reset).
    Attempts(String),
}

/// The changes after a change-log position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeBatch {
    /// The position to ask from next time.
    pub last: u64,
    /// The changes in commit order (a key may repeat).
    pub changes: Vec<Change>,
    /// The log no longer reaches back to the position asked for (it was pruned): the replica
    /// must reload everything, then continue from `last`.
    pub reload: bool,
}

/// The failed-attempt state of one key (a subject, or a caller of identify).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptState {
    /// Consecutive failures since the last success or the end of the last lock.
    pub failures: u32,
    /// Unix seconds until which the key is locked; 0 when it is not.
    pub locked_until: u64,
}

impl AttemptState {
    /// Whether the key is locked at `now` (Unix seconds).
    pub fn is_locked(&self, now: u64) -> bool {
        self.locked_until > now
    }

    /// The state after one more failure at `now` ([`TemplateStore::record_failure`]'s rule, for
    /// stores that apply it in their own transaction).
    pub fn after_failure(self, max: u32, lock_secs: u64, now: u64) -> AttemptState {
        let mut s = if self.locked_until != 0 && self.locked_until <= now {
            AttemptState::default()
        } else {
            self
        };
        s.failures = s.failures.saturating_add(1);
        if s.failures >= max.max(1) && s.locked_until == 0 {
            s.locked_until = now.saturating_add(lock_secs);
        }
        s
    }

    /// Encodes as failures u32 | locked_until u64, little-endian (the stores' row format).
    pub(crate) fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.failures.to_le_bytes());
        b[4..].copy_from_slice(&self.locked_until.to_le_bytes());
        b
    }

    /// Decodes [`AttemptState::to_bytes`]; `None` when the length is wrong.
    pub(crate) fn from_bytes(b: &[u8]) -> Option<AttemptState> {
        let failures = u32::from_le_bytes(b.get(..4)?.try_into().ok()?);
        let locked_until = u64::from_le_bytes(b.get(4..12)?.try_into().ok()?);
        (b.len() == 12).then_some(AttemptState {
            failures,
            locked_until,
        })
    }
}

/// Encodes a subject record: created u64 | updated u64 | n u32 | n × (len u32 | wire bytes), little-endian.
pub(crate) fn encode_record(info: &SubjectInfo, templates: &[Hashmap]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + templates.len() * 48);
    out.extend_from_slice(&info.created.to_le_bytes());
    out.extend_from_slice(&info.updated.to_le_bytes());
    out.extend_from_slice(&(templates.len() as u32).to_le_bytes());
    for t in templates {
        let b = t.to_bytes();
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&b);
    }
    out
}

/// Decodes [`encode_record`]'s output, validating every template.
pub(crate) fn decode_record(id: &str, bytes: &[u8]) -> Result<StoredSubject> {
    let corrupt = |reason: &str| Error::CorruptRecord {
        subject: id.to_owned(),
        reason: reason.to_owned(),
    };
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = bytes.get(pos..pos + n).ok_or_else(|| corrupt("truncated"))?;
        pos += n;
        Ok(s)
    };
    let u64_at = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
    let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
    let created = u64_at(take(8)?);
    let updated = u64_at(take(8)?);
    let n = u32_at(take(4)?) as usize;
    let mut templates = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len = u32_at(take(4)?) as usize;
        let t = Hashmap::from_bytes(take(len)?).map_err(|e| corrupt(&e.to_string()))?;
        templates.push(t);
    }
    if pos != bytes.len() {
        return Err(corrupt("trailing bytes"));
    }
    let info = SubjectInfo {
        id: id.to_owned(),
        templates: templates.len(),
        created,
        updated,
    };
    Ok(StoredSubject { info, templates })
}

/// Applies `mode` to an existing record (or none) and returns the record to write.
pub(crate) fn merge(
    subject: &str,
    existing: Option<StoredSubject>,
    templates: Vec<Hashmap>,
    mode: WriteMode,
    now: u64,
) -> Result<StoredSubject> {
    match (existing, mode) {
        (Some(_), WriteMode::Create) => Err(Error::SubjectExists(subject.to_owned())),
        (Some(mut old), WriteMode::Append) => {
            old.templates.extend(templates);
            old.info.templates = old.templates.len();
            old.info.updated = now;
            Ok(old)
        }
        (Some(old), WriteMode::Replace) => Ok(StoredSubject {
            info: SubjectInfo {
                templates: templates.len(),
                updated: now,
                ..old.info
            },
            templates,
        }),
        (None, _) => Ok(StoredSubject {
            info: SubjectInfo {
                id: subject.to_owned(),
                templates: templates.len(),
                created: now,
                updated: now,
            },
            templates,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::AttemptState;

    #[test]
    fn failures_lock_at_max_and_an_expired_lock_gives_a_fresh_budget() {
        let mut s = AttemptState::default();
        for i in 1..=3 {
            s = s.after_failure(3, 60, 100);
            assert_eq!(s.failures, i);
        }
        assert_eq!(s.locked_until, 160);
        assert!(s.is_locked(159) && !s.is_locked(160));
        // A failure while locked keeps the lock's end (no extension by hammering).
        let again = s.after_failure(3, 60, 150);
        assert_eq!(again.locked_until, 160);
        let fresh = s.after_failure(3, 60, 161);
        assert_eq!(
            fresh,
            AttemptState {
                failures: 1,
                locked_until: 0
            }
        );
    }

    #[test]
    fn attempt_state_round_trips_and_rejects_wrong_lengths() {
        let s = AttemptState {
            failures: 7,
            locked_until: 1 << 40,
        };
        assert_eq!(AttemptState::from_bytes(&s.to_bytes()), Some(s));
        assert_eq!(AttemptState::from_bytes(&[0; 11]), None);
        assert_eq!(AttemptState::from_bytes(&[0; 13]), None);
    }
}
