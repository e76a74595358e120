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
    /// Subjects changed after change number `seq`, and the latest change number; lets replicas
    /// sharing one store refresh their in-memory galleries. Single-process stores have none.
    async fn changes_since(&self, seq: u64) -> Result<(u64, Vec<String>)> {
        let _ = seq;
        Ok((0, Vec::new()))
    }
    /// The latest change number (taken before loading the gallery at start).
    async fn latest_change(&self) -> Result<u64> {
        Ok(0)
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
