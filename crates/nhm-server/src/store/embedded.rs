//! The embedded store: one redb file, every write committed with `Durability::Immediate`.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nhm_template::Hashmap;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{
    decode_record, encode_record, merge, AttemptState, StoredSubject, SubjectInfo, TemplateStore, WriteMode,
};
use crate::error::{Error, Result};

const SUBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("subjects");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// Attempt counters by key: [`AttemptState::to_bytes`].
const ATTEMPTS: TableDefinition<&str, &[u8]> = TableDefinition::new("attempts");

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "nhm.redb";

fn emb<E: Into<redb::Error>>(context: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Embedded {
        context,
        source: Box::new(e.into()),
    }
}

/// A redb database in a data directory. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.path).finish()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) `DIR/nhm.redb`; after a crash redb repairs the file to its last commit.
    pub fn open(dir: &Path) -> Result<EmbeddedStore> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path).map_err(emb("open database"))?;
        // Templates are protected, but still personal data: the file is the owner's alone.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
                Error::Io {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        let tx = db.begin_write().map_err(emb("begin write"))?;
        tx.open_table(SUBJECTS).map_err(emb("create table"))?;
        tx.open_table(META).map_err(emb("create table"))?;
        tx.open_table(ATTEMPTS).map_err(emb("create table"))?;
        tx.commit().map_err(emb("commit"))?;
        Ok(EmbeddedStore {
            db: Arc::new(db),
            path,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await?
    }
}

fn read_attempts(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<AttemptState>> {
    match t.get(key).map_err(emb("get"))? {
        Some(v) => AttemptState::from_bytes(v.value())
            .map(Some)
            .ok_or_else(|| Error::CorruptRecord {
                subject: key.to_owned(),
                reason: "attempt counter of the wrong length".into(),
            }),
        None => Ok(None),
    }
}

fn read_subject(db: &Database, subject: &str) -> Result<Option<StoredSubject>> {
    let tx = db.begin_read().map_err(emb("begin read"))?;
    let t = tx.open_table(SUBJECTS).map_err(emb("open table"))?;
    match t.get(subject).map_err(emb("get"))? {
        Some(v) => Ok(Some(decode_record(subject, v.value())?)),
        None => Ok(None),
    }
}

#[async_trait::async_trait]
impl TemplateStore for EmbeddedStore {
    async fn put_templates(
        &self,
        subject: &str,
        templates: Vec<Hashmap>,
        mode: WriteMode,
        now: u64,
    ) -> Result<StoredSubject> {
        let subject = subject.to_owned();
        self.blocking(move |db| {
            // One write transaction at a time (redb serialises them): read-modify-write is atomic.
            let tx = db.begin_write().map_err(emb("begin write"))?;
            let record = {
                let mut t = tx.open_table(SUBJECTS).map_err(emb("open table"))?;
                let existing = match t.get(subject.as_str()).map_err(emb("get"))? {
                    Some(v) => Some(decode_record(&subject, v.value())?),
                    None => None,
                };
                let record = merge(&subject, existing, templates, mode, now)?;
                let bytes = encode_record(&record.info, &record.templates);
                t.insert(subject.as_str(), bytes.as_slice())
                    .map_err(emb("insert"))?;
                record
            };
            tx.commit().map_err(emb("commit"))?;
            Ok(record)
        })
        .await
    }

    async fn delete_subject(&self, subject: &str) -> Result<bool> {
        let subject = subject.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(emb("begin write"))?;
            let existed = {
                let mut t = tx.open_table(SUBJECTS).map_err(emb("open table"))?;
                let old = t.remove(subject.as_str()).map_err(emb("remove"))?;
                old.is_some()
            };
            tx.commit().map_err(emb("commit"))?;
            Ok(existed)
        })
        .await
    }

    async fn get_subject(&self, subject: &str) -> Result<Option<StoredSubject>> {
        let subject = subject.to_owned();
        self.blocking(move |db| read_subject(db, &subject)).await
    }

    async fn list_subjects(&self, after: Option<&str>, limit: usize) -> Result<Vec<SubjectInfo>> {
        let after = after.map(str::to_owned);
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(emb("begin read"))?;
            let t = tx.open_table(SUBJECTS).map_err(emb("open table"))?;
            let lower = match &after {
                Some(a) => Bound::Excluded(a.as_str()),
                None => Bound::Unbounded,
            };
            let mut out = Vec::new();
            for item in t
                .range::<&str>((lower, Bound::Unbounded))
                .map_err(emb("range"))?
                .take(limit)
            {
                let (k, v) = item.map_err(emb("range"))?;
                out.push(decode_record(k.value(), v.value())?.info);
            }
            Ok(out)
        })
        .await
    }

    async fn load_all(&self) -> Result<Vec<StoredSubject>> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(emb("begin read"))?;
            let t = tx.open_table(SUBJECTS).map_err(emb("open table"))?;
            let mut out = Vec::with_capacity(t.len().map_err(emb("len"))? as usize);
            for item in t.iter().map_err(emb("iter"))? {
                let (k, v) = item.map_err(emb("iter"))?;
                out.push(decode_record(k.value(), v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn count(&self) -> Result<usize> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(emb("begin read"))?;
            let t = tx.open_table(SUBJECTS).map_err(emb("open table"))?;
            Ok(t.len().map_err(emb("len"))? as usize)
        })
        .await
    }

    async fn bulk_put(&self, subjects: Vec<StoredSubject>) -> Result<()> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(emb("begin write"))?;
            {
                let mut t = tx.open_table(SUBJECTS).map_err(emb("open table"))?;
                for s in &subjects {
                    let bytes = encode_record(&s.info, &s.templates);
                    t.insert(s.info.id.as_str(), bytes.as_slice())
                        .map_err(emb("insert"))?;
                }
            }
            tx.commit().map_err(emb("commit"))?;
            Ok(())
        })
        .await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(emb("begin read"))?;
            let t = tx.open_table(META).map_err(emb("open table"))?;
            Ok(t.get(key.as_str())
                .map_err(emb("get"))?
                .map(|v| v.value().to_owned()))
        })
        .await
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(emb("begin write"))?;
            {
                let mut t = tx.open_table(META).map_err(emb("open table"))?;
                t.insert(key.as_str(), value.as_str()).map_err(emb("insert"))?;
            }
            tx.commit().map_err(emb("commit"))?;
            Ok(())
        })
        .await
    }

    async fn record_failure(&self, key: &str, max: u32, lock_secs: u64, now: u64) -> Result<AttemptState> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(emb("begin write"))?;
            let state = {
                let mut t = tx.open_table(ATTEMPTS).map_err(emb("open table"))?;
                let state = read_attempts(&t, &key)?
                    .unwrap_or_default()
                    .after_failure(max, lock_secs, now);
                t.insert(key.as_str(), state.to_bytes().as_slice())
                    .map_err(emb("insert"))?;
                state
            };
            tx.commit().map_err(emb("commit"))?;
            Ok(state)
        })
        .await
    }

    async fn clear_attempts(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(emb("begin write"))?;
            tx.open_table(ATTEMPTS)
                .map_err(emb("open table"))?
                .remove(key.as_str())
                .map_err(emb("remove"))?;
            tx.commit().map_err(emb("commit"))?;
            Ok(())
        })
        .await
    }

    async fn attempt_state(&self, key: &str) -> Result<Option<AttemptState>> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(emb("begin read"))?;
            let t = tx.open_table(ATTEMPTS).map_err(emb("open table"))?;
            read_attempts(&t, &key)
        })
        .await
    }

    async fn load_attempts(&self, now: u64) -> Result<Vec<(String, AttemptState)>> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(emb("begin read"))?;
            let t = tx.open_table(ATTEMPTS).map_err(emb("open table"))?;
            let mut out = Vec::new();
            for item in t.iter().map_err(emb("iter"))? {
                let (k, v) = item.map_err(emb("iter"))?;
                let Some(state) = AttemptState::from_bytes(v.value()) else {
                    return Err(Error::CorruptRecord {
                        subject: k.value().to_owned(),
                        reason: "attempt counter of the wrong length".into(),
                    });
                };
                let expired = state.locked_until != 0 && state.locked_until <= now;
                if !expired {
                    out.push((k.value().to_owned(), state));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn prune(&self, now: u64, keep_secs: u64) -> Result<u64> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(emb("begin write"))?;
            let mut gone = 0;
            {
                let mut t = tx.open_table(ATTEMPTS).map_err(emb("open table"))?;
                let horizon = now.saturating_sub(keep_secs);
                let stale: Vec<String> = t
                    .iter()
                    .map_err(emb("iter"))?
                    .filter_map(|item| {
                        let (k, v) = item.ok()?;
                        let s = AttemptState::from_bytes(v.value())?;
                        (s.locked_until != 0 && s.locked_until <= horizon).then(|| k.value().to_owned())
                    })
                    .collect();
                for k in stale {
                    t.remove(k.as_str()).map_err(emb("remove"))?;
                    gone += 1;
                }
            }
            tx.commit().map_err(emb("commit"))?;
            Ok(gone)
        })
        .await
    }
}
