//! The PostgreSQL store, for several server replicas sharing one gallery.
//!
//! All tables live in one schema (configurable, created if missing), so deployments and tests can
//! share a database. Migrations are the numbered files in `migrations/`, compiled in and applied
//! at start inside a transaction holding an advisory lock, so replicas starting together apply
//! each migration once. Writes to one subject are serialised by a per-subject advisory lock.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use nhm_template::Hashmap;
use tokio_postgres::NoTls;

use super::{
    decode_record, encode_record, merge, AttemptState, ChangeBatch, StoredSubject, SubjectInfo,
    TemplateStore, WriteMode,
};
use crate::error::{Error, Result};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../../migrations/0001_init.sql"))];

/// A fixed key for the migration advisory lock ("nhm-migr").
const MIGRATION_LOCK: i64 = 0x6e68_6d2d_6d69_6772;

fn pg<E: std::error::Error + Send + Sync + 'static>(context: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Postgres {
        context: context.to_owned(),
        source: Box::new(e),
    }
}

/// A pool of connections to one schema of a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    schema: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish()
    }
}

/// Whether `s` is a plain SQL identifier (it is spliced into SQL and connection options).
fn valid_schema(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl PostgresStore {
    /// Connects (`conn`: a URL or `key=value` string), creates `schema` if needed and migrates it.
    pub async fn connect(conn: &str, schema: &str, pool_size: usize) -> Result<PostgresStore> {
        if !valid_schema(schema) {
            return Err(Error::Config(format!(
                "postgres schema {schema:?} must match [a-z_][a-z0-9_]*"
            )));
        }
        let mut cfg: tokio_postgres::Config = conn
            .parse()
            .map_err(|e| Error::Config(format!("postgres connection string: {e}")))?;
        cfg.options(format!("-c search_path={schema}"));
        cfg.connect_timeout(std::time::Duration::from_secs(5));
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| Error::Config(format!("postgres pool: {e}")))?;
        let store = PostgresStore {
            pool,
            schema: schema.to_owned(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The schema in use.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pg("connect"))
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("begin"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg("lock"))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.schema_migrations (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now());",
            s = self.schema
        ))
        .await
        .map_err(pg("create schema"))?;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version])
                .await
                .map_err(pg("read migrations"))?;
            if done.is_none() {
                tracing::info!(version, schema = %self.schema, "applying migration");
                tx.batch_execute(sql).await.map_err(pg("apply migration"))?;
                tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])
                    .await
                    .map_err(pg("record migration"))?;
            }
        }
        tx.commit().await.map_err(pg("commit migrations"))?;
        Ok(())
    }

    /// Drops the schema and everything in it (tests clean up with this).
    pub async fn drop_schema(&self) -> Result<()> {
        let c = self.client().await?;
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .map_err(pg("drop schema"))
    }
}

fn info_row(row: &tokio_postgres::Row) -> SubjectInfo {
    let n: i32 = row.get("n_templates");
    let created: i64 = row.get("created");
    let updated: i64 = row.get("updated");
    SubjectInfo {
        id: row.get("id"),
        templates: n.max(0) as usize,
        created: created.max(0) as u64,
        updated: updated.max(0) as u64,
    }
}

#[async_trait::async_trait]
impl TemplateStore for PostgresStore {
    async fn put_templates(
        &self,
        subject: &str,
        templates: Vec<Hashmap>,
        mode: WriteMode,
        now: u64,
    ) -> Result<StoredSubject> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("begin"))?;
        // Serialise writers of this subject (also when the row does not exist yet).
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&subject],
        )
        .await
        .map_err(pg("lock subject"))?;
        let existing = match tx
            .query_opt("SELECT record FROM subjects WHERE id = $1", &[&subject])
            .await
            .map_err(pg("read subject"))?
        {
            Some(row) => Some(decode_record(subject, row.get::<_, &[u8]>(0))?),
            None => None,
        };
        let record = merge(subject, existing, templates, mode, now)?;
        let bytes = encode_record(&record.info, &record.templates);
        tx.execute(
            "INSERT INTO subjects (id, created, updated, n_templates, record) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET updated = EXCLUDED.updated, n_templates = EXCLUDED.n_templates,
             record = EXCLUDED.record",
            &[
                &subject,
                &(record.info.created as i64),
                &(record.info.updated as i64),
                &(record.info.templates as i32),
                &bytes,
            ],
        )
        .await
        .map_err(pg("write subject"))?;
        tx.execute("INSERT INTO subject_changes (subject) VALUES ($1)", &[&subject])
            .await
            .map_err(pg("log change"))?;
        tx.commit().await.map_err(pg("commit"))?;
        Ok(record)
    }

    async fn delete_subject(&self, subject: &str) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("begin"))?;
        let n = tx
            .execute("DELETE FROM subjects WHERE id = $1", &[&subject])
            .await
            .map_err(pg("delete"))?;
        if n > 0 {
            tx.execute("INSERT INTO subject_changes (subject) VALUES ($1)", &[&subject])
                .await
                .map_err(pg("log change"))?;
        }
        tx.commit().await.map_err(pg("commit"))?;
        Ok(n > 0)
    }

    async fn get_subject(&self, subject: &str) -> Result<Option<StoredSubject>> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT record FROM subjects WHERE id = $1", &[&subject])
            .await
            .map_err(pg("read subject"))?;
        row.map(|r| decode_record(subject, r.get::<_, &[u8]>(0)))
            .transpose()
    }

    async fn list_subjects(&self, after: Option<&str>, limit: usize) -> Result<Vec<SubjectInfo>> {
        let c = self.client().await?;
        let limit = limit as i64;
        let rows = match after {
            Some(a) => c
                .query(
                    "SELECT id, created, updated, n_templates FROM subjects WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&a, &limit],
                )
                .await,
            None => {
                c.query(
                    "SELECT id, created, updated, n_templates FROM subjects ORDER BY id LIMIT $1",
                    &[&limit],
                )
                .await
            }
        }
        .map_err(pg("list subjects"))?;
        Ok(rows.iter().map(info_row).collect())
    }

    async fn load_all(&self) -> Result<Vec<StoredSubject>> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT id, record FROM subjects", &[])
            .await
            .map_err(pg("load subjects"))?;
        rows.iter()
            .map(|r| decode_record(r.get::<_, &str>(0), r.get::<_, &[u8]>(1)))
            .collect()
    }

    async fn count(&self) -> Result<usize> {
        let c = self.client().await?;
        let row = c
            .query_one("SELECT count(*) FROM subjects", &[])
            .await
            .map_err(pg("count"))?;
        Ok(row.get::<_, i64>(0).max(0) as usize)
    }

    async fn bulk_put(&self, subjects: Vec<StoredSubject>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("begin"))?;
        let stmt = tx
            .prepare(
                "INSERT INTO subjects (id, created, updated, n_templates, record) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET updated = EXCLUDED.updated, n_templates = EXCLUDED.n_templates,
                 record = EXCLUDED.record",
            )
            .await
            .map_err(pg("prepare"))?;
        for s in &subjects {
            let bytes = encode_record(&s.info, &s.templates);
            tx.execute(
                &stmt,
                &[
                    &s.info.id,
                    &(s.info.created as i64),
                    &(s.info.updated as i64),
                    &(s.info.templates as i32),
                    &bytes,
                ],
            )
            .await
            .map_err(pg("bulk insert"))?;
        }
        tx.commit().await.map_err(pg("commit"))
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .await
            .map_err(pg("read meta"))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &value],
        )
        .await
        .map_err(pg("write meta"))?;
        Ok(())
    }

    async fn latest_change(&self) -> Result<u64> {
        let c = self.client().await?;
        let row = c
            .query_one("SELECT coalesce(max(seq), 0) FROM subject_changes", &[])
            .await
            .map_err(pg("read changes"))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn changes_since(&self, seq: u64) -> Result<ChangeBatch> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT seq, subject FROM subject_changes WHERE seq > $1 ORDER BY seq LIMIT 100000",
                &[&(seq as i64)],
            )
            .await
            .map_err(pg("read changes"))?;
        let mut batch = ChangeBatch {
            last: seq,
            ..ChangeBatch::default()
        };
        for r in &rows {
            batch.last = batch.last.max(r.get::<_, i64>(0).max(0) as u64);
            batch.changes.push(super::Change::Subject(r.get::<_, String>(1)));
        }
        Ok(batch)
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn record_failure(&self, key: &str, max: u32, lock_secs: u64, now: u64) -> Result<AttemptState> {
        let _ = (key, max, lock_secs, now);
        Err(Error::Config(
            "attempt counters are not implemented for PostgreSQL yet".into(),
        ))
    }

    async fn clear_attempts(&self, key: &str) -> Result<()> {
        let _ = key;
        Ok(())
    }

    async fn attempt_state(&self, key: &str) -> Result<Option<AttemptState>> {
        let _ = key;
        Ok(None)
    }

    async fn load_attempts(&self, now: u64) -> Result<Vec<(String, AttemptState)>> {
        let _ = now;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_names_are_checked() {
        assert!(super::valid_schema("nhm_test_1"));
        assert!(!super::valid_schema("x; DROP TABLE y"));
        assert!(!super::valid_schema("1abc"));
        assert!(!super::valid_schema(""));
    }
}
