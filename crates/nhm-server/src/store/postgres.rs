//! The PostgreSQL store, for several server replicas sharing one gallery.
//!
//! All tables live in one schema (configurable, created if missing), so deployments and tests can
//! share a database. Migrations are the numbered files in `migrations/`, compiled in and applied
//! at start inside a transaction holding an advisory lock, so replicas starting together apply
//! each migration once. Writes to one subject are serialised by a per-subject advisory lock, and
//! updates of one attempt counter by a per-key one.
//!
//! # The change log, in commit order
//!
//! Replicas keep the gallery in memory and poll [`TemplateStore::changes_since`] with the last
//! position they were given; they never look behind it again. So a position handed out must
//! never be passed by a change that commits later. A `BIGSERIAL` alone does not ensure that: the
//! number is taken at insert, and a transaction holding a lower number can commit after one
//! holding a higher number has been read — that change was never applied elsewhere (a revoked
//! subject kept verifying on the other replicas).
//!
//! Every writing transaction therefore inserts its change-log row as its *last* statement, after
//! taking a transaction-level advisory lock on one fixed key (per schema: [`change_log_lock`], so
//! deployments sharing a database do not wait for each other). PostgreSQL
//! releases transaction locks only after the commit is visible to new snapshots, so numbers are
//! drawn and committed in the same order: when a reader sees number `n` committed, every
//! transaction that drew a lower one has committed (it is visible too) or aborted (its number is
//! a gap that nothing will fill). Readers need no special care.
//!
//! The cost: writers' commits are serialised. The lock is held from the log insert to the end of
//! the commit, WAL flush included, so the store's write rate is at most about one commit per
//! fsync (group commit cannot batch them), whatever the number of replicas. Reads, and the
//! bodies of write transactions (reading, merging, writing the subject row), still run
//! concurrently. For an enrolment service, writes are rare next to verifications, so this is
//! accepted. (The alternative — reading only up to the oldest running transaction with
//! `pg_snapshot_xmin` and an `xid8` column — keeps writers parallel but holds every reader back
//! behind the oldest transaction with an id in the whole database, unrelated ones included (a
//! long migration, another schema's writer), and is harder to get right.)
//!
//! Rows carry a `kind`: `subject`, `meta` (a [`TemplateStore::put_meta`]), `attempts` (a failure
//! counted or cleared) and `reload`, the marker a [`TemplateStore::bulk_put`] writes instead of one
//! row per subject: bulk loads are large (the `seed-gallery` path), and a replica reloads the
//! whole gallery faster than it would re-read each subject.
//!
//! [`TemplateStore::prune`] deletes the oldest rows (by the database's clock, compared with the
//! caller's `now`) and records the highest number deleted in `meta` under
//! [`PRUNED_THROUGH`], in the same transaction; a reader asking from behind it is told to reload.
//!
//! # Connections
//!
//! TLS is rustls (ring), in libpq's modes: `disable`; `require` (encrypted, the certificate not
//! checked: no protection against an active man in the middle); `verify-full` (the chain checked
//! against `postgres_ca_file` or the webpki roots, and the host name). A connection string whose
//! `sslmode` contradicts the mode is refused. The password may come from `postgres_password_file`
//! instead of the connection string; like ssh with a private key, a file its group or others may
//! access is refused.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use nhm_template::Hashmap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres::{IsolationLevel, NoTls, Transaction};

use super::{
    decode_record, encode_record, merge, AttemptState, Change, ChangeBatch, StoredSubject, SubjectInfo,
    TemplateStore, WriteMode,
};
use crate::config::{check_postgres_tls, PostgresOptions, PostgresTls};
use crate::error::{Error, Result};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_change_kinds_attempts.sql")),
];

/// A fixed key for the migration advisory lock ("nhm-migr").
const MIGRATION_LOCK: i64 = 0x6e68_6d2d_6d69_6772;

/// The key of the change-log advisory lock of `schema`: held from a writer's log insert to its
/// commit, so log numbers commit in order (see the module documentation). Advisory locks are
/// per database; the schema in the key keeps stores in other schemas out of each other's way.
fn change_log_lock(schema: &str) -> i64 {
    let h = blake3::hash(format!("nhm change log\0{schema}").as_bytes());
    let mut k = [0u8; 8];
    k.copy_from_slice(&h.as_bytes()[..8]);
    i64::from_le_bytes(k)
}

/// The `meta` key holding the highest change-log number pruned away.
const PRUNED_THROUGH: &str = "changes_pruned_through";

/// Most change-log rows one [`TemplateStore::changes_since`] returns.
const CHANGES_PAGE: i64 = 100_000;

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
    /// [`change_log_lock`] of `schema`.
    log_lock: i64,
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

/// Reads a password file, refusing one that its group or others may access (as ssh refuses a
/// private key): the password would be as good as public on a shared host. One trailing line
/// ending is dropped.
fn read_password_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    // Check the mode of the file that is read (one handle), not of whatever the path names later.
    let mut file = std::fs::File::open(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Config(format!(
                "postgres_password_file {}: permissions {mode:04o} are too open (its group or others may \
                 access it); it must be readable by its owner only (chmod 600)",
                path.display()
            )));
        }
    }
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(io)?;
    if text.ends_with(b"\n") {
        text.pop();
        if text.ends_with(b"\r") {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(Error::Config(format!(
            "postgres_password_file {} is empty",
            path.display()
        )));
    }
    Ok(text)
}

/// Accepts any server certificate but still checks the handshake signatures: `postgres_tls =
/// "require"`, libpq's meaning (encryption against eavesdroppers, no authentication of the server).
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls client configuration for `tls` (not called for [`PostgresTls::Disable`]).
fn rustls_config(tls: PostgresTls, ca_file: Option<&Path>) -> Result<rustls::ClientConfig> {
    // The server's provider, named explicitly: no process-wide default needs installing first.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("postgres TLS: {e}")))?;
    if tls != PostgresTls::VerifyFull {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider)))
            .with_no_client_auth());
    }
    let roots = match ca_file {
        None => rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let bad = |what: String| Error::Config(format!("postgres_ca_file {}: {what}", path.display()));
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("no PEM certificate in it".into()));
            }
            roots
        }
    };
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

impl PostgresStore {
    /// Connects over plain TCP (`conn`: a URL or `key=value` string, with its password if any),
    /// creates `schema` if needed and migrates it. See [`PostgresStore::connect_with`] for TLS and
    /// a password file.
    pub async fn connect(conn: &str, schema: &str, pool_size: usize) -> Result<PostgresStore> {
        PostgresStore::connect_with(&PostgresOptions::new(conn, schema, pool_size)).await
    }

    /// Connects as `opts` says (TLS mode and roots, password file), creates the schema if needed
    /// and migrates it. Fails when the first connection cannot be made.
    pub async fn connect_with(opts: &PostgresOptions) -> Result<PostgresStore> {
        let schema = opts.schema.as_str();
        if !valid_schema(schema) {
            return Err(Error::Config(format!(
                "postgres schema {schema:?} must match [a-z_][a-z0-9_]*"
            )));
        }
        check_postgres_tls(opts.tls, opts.ca_file.as_deref())?;
        let mut cfg: tokio_postgres::Config = opts
            .conn
            .parse()
            .map_err(|e| Error::Config(format!("postgres connection string: {e}")))?;
        cfg.options(format!("-c search_path={schema}"));
        cfg.connect_timeout(Duration::from_secs(5));
        if let Some(path) = &opts.password_file {
            if cfg.get_password().is_some() {
                return Err(Error::Config(format!(
                    "the postgres connection string has a password and postgres_password_file {} gives \
                     another: keep one",
                    path.display()
                )));
            }
            cfg.password(read_password_file(path)?);
        }
        // The configured mode governs; a connection string saying otherwise is refused, never
        // silently downgraded (nor silently upgraded, which would hide a mistake).
        match (opts.tls, cfg.get_ssl_mode()) {
            (PostgresTls::Disable, SslMode::Require)
            | (PostgresTls::Require | PostgresTls::VerifyFull, SslMode::Disable) => {
                return Err(Error::Config(format!(
                    "the postgres connection string's sslmode contradicts postgres_tls = \"{}\"",
                    opts.tls
                )));
            }
            _ => {}
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let mgr = if opts.tls == PostgresTls::Disable {
            cfg.ssl_mode(SslMode::Disable);
            Manager::from_config(cfg, NoTls, manager_config)
        } else {
            cfg.ssl_mode(SslMode::Require);
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(rustls_config(
                opts.tls,
                opts.ca_file.as_deref(),
            )?);
            Manager::from_config(cfg, tls, manager_config)
        };
        let pool = Pool::builder(mgr)
            .max_size(opts.pool_size.max(1))
            .build()
            .map_err(|e| Error::Config(format!("postgres pool: {e}")))?;
        // The first connection, with a context naming the TLS mode: a TLS or authentication
        // failure then reads as such instead of as a failed migration.
        drop(
            pool.get()
                .await
                .map_err(pg(&format!("connect (postgres_tls = \"{}\")", opts.tls)))?,
        );
        let store = PostgresStore {
            pool,
            schema: schema.to_owned(),
            log_lock: change_log_lock(schema),
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

    /// Test hook: [`TemplateStore::put_templates`] that waits `delay` between its change-log insert
    /// and its commit (the worst moment for commit order: a number drawn, not yet committed).
    #[doc(hidden)]
    pub async fn put_templates_with_commit_delay(
        &self,
        subject: &str,
        templates: Vec<Hashmap>,
        mode: WriteMode,
        now: u64,
        delay: Duration,
    ) -> Result<StoredSubject> {
        self.put(subject, templates, mode, now, delay).await
    }

    /// Test hook: [`TemplateStore::delete_subject`] that waits `delay` between its change-log
    /// insert and its commit.
    #[doc(hidden)]
    pub async fn delete_subject_with_commit_delay(&self, subject: &str, delay: Duration) -> Result<bool> {
        self.delete(subject, delay).await
    }

    /// Appends a change-log row. It must be the transaction's LAST statement before its commit:
    /// it takes the change-log lock, which then stays held until the commit is visible, so log
    /// numbers commit in the order they are drawn (module documentation).
    async fn log_change(&self, tx: &Transaction<'_>, kind: &str, key: &str) -> Result<()> {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&self.log_lock])
            .await
            .map_err(pg("lock change log"))?;
        tx.execute(
            "INSERT INTO subject_changes (kind, subject) VALUES ($1, $2)",
            &[&kind, &key],
        )
        .await
        .map_err(pg("log change"))?;
        Ok(())
    }

    async fn put(
        &self,
        subject: &str,
        templates: Vec<Hashmap>,
        mode: WriteMode,
        now: u64,
        delay: Duration,
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
                &to_i64(record.info.created),
                &to_i64(record.info.updated),
                &(record.info.templates.min(i32::MAX as usize) as i32),
                &bytes,
            ],
        )
        .await
        .map_err(pg("write subject"))?;
        self.log_change(&tx, "subject", subject).await?;
        commit_after(tx, delay).await?;
        Ok(record)
    }

    async fn delete(&self, subject: &str, delay: Duration) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("begin"))?;
        let n = tx
            .execute("DELETE FROM subjects WHERE id = $1", &[&subject])
            .await
            .map_err(pg("delete"))?;
        if n > 0 {
            self.log_change(&tx, "subject", subject).await?;
        }
        commit_after(tx, delay).await?;
        Ok(n > 0)
    }
}

/// Unix seconds (or a count) as a BIGINT, saturating.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A BIGINT read back as Unix seconds (a negative value, never written, reads as 0).
fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Commits, after `delay` when it is not zero (the test hooks' late commit).
async fn commit_after(tx: deadpool_postgres::Transaction<'_>, delay: Duration) -> Result<()> {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    tx.commit().await.map_err(pg("commit"))
}

/// The latest change-log position, in the transaction's snapshot: the newest row, or the newest
/// pruned one when pruning left the log empty (a position never goes back).
async fn latest_in(tx: &Transaction<'_>) -> Result<u64> {
    let row = tx
        .query_one(
            "SELECT greatest((SELECT coalesce(max(seq), 0) FROM subject_changes),
                             (SELECT coalesce(max(value::bigint), 0) FROM meta WHERE key = $1))",
            &[&PRUNED_THROUGH],
        )
        .await
        .map_err(pg("read changes"))?;
    Ok(to_u64(row.get(0)))
}

fn info_row(row: &tokio_postgres::Row) -> SubjectInfo {
    let n: i32 = row.get("n_templates");
    let created: i64 = row.get("created");
    let updated: i64 = row.get("updated");
    SubjectInfo {
        id: row.get("id"),
        templates: n.max(0) as usize,
        created: to_u64(created),
        updated: to_u64(updated),
    }
}

/// An attempts row (failures INTEGER, locked_until BIGINT) as a state.
fn attempt_row(failures: i32, locked_until: i64) -> AttemptState {
    AttemptState {
        failures: u32::try_from(failures).unwrap_or(0),
        locked_until: to_u64(locked_until),
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
        self.put(subject, templates, mode, now, Duration::ZERO).await
    }

    async fn delete_subject(&self, subject: &str) -> Result<bool> {
        self.delete(subject, Duration::ZERO).await
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
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
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// Writes the records and one `reload` marker (not a row per subject): replicas reload the
    /// whole gallery once rather than re-read every subject of a large bulk load.
    async fn bulk_put(&self, subjects: Vec<StoredSubject>) -> Result<()> {
        if subjects.is_empty() {
            return Ok(());
        }
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
                    &to_i64(s.info.created),
                    &to_i64(s.info.updated),
                    &(s.info.templates.min(i32::MAX as usize) as i32),
                    &bytes,
                ],
            )
            .await
            .map_err(pg("bulk insert"))?;
        }
        self.log_change(&tx, "reload", "").await?;
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
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("begin"))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &value],
        )
        .await
        .map_err(pg("write meta"))?;
        self.log_change(&tx, "meta", key).await?;
        tx.commit().await.map_err(pg("commit"))
    }

    async fn latest_change(&self) -> Result<u64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("begin"))?;
        let latest = latest_in(&tx).await?;
        tx.commit().await.map_err(pg("commit"))?;
        Ok(latest)
    }

    async fn changes_since(&self, seq: u64) -> Result<ChangeBatch> {
        let mut c = self.client().await?;
        // One snapshot for the pruning mark and the rows: a prune committing in between could
        // otherwise delete rows after the mark was read as "not pruned".
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg("begin"))?;
        let reload = |last| ChangeBatch {
            last,
            changes: Vec::new(),
            reload: true,
        };
        let pruned = tx
            .query_opt(
                "SELECT value::bigint FROM meta WHERE key = $1",
                &[&PRUNED_THROUGH],
            )
            .await
            .map_err(pg("read changes"))?
            .map_or(0, |r| to_u64(r.get(0)));
        if seq < pruned {
            let last = latest_in(&tx).await?;
            tx.commit().await.map_err(pg("commit"))?;
            return Ok(reload(last));
        }
        let rows = tx
            .query(
                "SELECT seq, kind, subject FROM subject_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&to_i64(seq), &CHANGES_PAGE],
            )
            .await
            .map_err(pg("read changes"))?;
        let mut batch = ChangeBatch {
            last: seq,
            ..ChangeBatch::default()
        };
        for r in &rows {
            let (n, kind, key): (i64, &str, String) = (r.get(0), r.get(1), r.get(2));
            // Rows are in order: `last` is the last row returned, so a full page resumes after it.
            batch.last = to_u64(n);
            batch.changes.push(match kind {
                "subject" => Change::Subject(key),
                "meta" => Change::Meta(key),
                "attempts" => Change::Attempts(key),
                "reload" => {
                    let last = latest_in(&tx).await?;
                    tx.commit().await.map_err(pg("commit"))?;
                    return Ok(reload(last));
                }
                other => {
                    return Err(Error::CorruptRecord {
                        subject: key,
                        reason: format!("change-log row {n} of unknown kind {other:?}"),
                    })
                }
            });
        }
        tx.commit().await.map_err(pg("commit"))?;
        Ok(batch)
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn record_failure(&self, key: &str, max: u32, lock_secs: u64, now: u64) -> Result<AttemptState> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("begin"))?;
        // One updater of this key at a time, on every replica (also when the row does not exist
        // yet); released after the commit is visible, so the next one reads this one's result.
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", &[&key])
            .await
            .map_err(pg("lock attempts"))?;
        let old = tx
            .query_opt(
                "SELECT failures, locked_until FROM attempts WHERE key = $1",
                &[&key],
            )
            .await
            .map_err(pg("read attempts"))?
            .map(|r| attempt_row(r.get(0), r.get(1)))
            .unwrap_or_default();
        let state = old.after_failure(max, lock_secs, now);
        tx.execute(
            "INSERT INTO attempts (key, failures, locked_until, updated) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO UPDATE SET failures = EXCLUDED.failures,
             locked_until = EXCLUDED.locked_until, updated = EXCLUDED.updated",
            &[
                &key,
                &i32::try_from(state.failures).unwrap_or(i32::MAX),
                &to_i64(state.locked_until),
                &to_i64(now),
            ],
        )
        .await
        .map_err(pg("write attempts"))?;
        self.log_change(&tx, "attempts", key).await?;
        tx.commit().await.map_err(pg("commit"))?;
        Ok(state)
    }

    async fn clear_attempts(&self, key: &str) -> Result<()> {
        let mut c = self.client().await?;
        // The common case (a success with no failures before) is one read, and no write at all.
        // A failure committing right after this read is simply ordered after the clear.
        let exists = c
            .query_opt("SELECT 1 FROM attempts WHERE key = $1", &[&key])
            .await
            .map_err(pg("read attempts"))?
            .is_some();
        if !exists {
            return Ok(());
        }
        let tx = c.transaction().await.map_err(pg("begin"))?;
        // Under the key's lock, so a concurrent record_failure cannot write back a count it read
        // before this delete.
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", &[&key])
            .await
            .map_err(pg("lock attempts"))?;
        let n = tx
            .execute("DELETE FROM attempts WHERE key = $1", &[&key])
            .await
            .map_err(pg("clear attempts"))?;
        if n > 0 {
            self.log_change(&tx, "attempts", key).await?;
        }
        tx.commit().await.map_err(pg("commit"))
    }

    async fn attempt_state(&self, key: &str) -> Result<Option<AttemptState>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT failures, locked_until FROM attempts WHERE key = $1",
                &[&key],
            )
            .await
            .map_err(pg("read attempts"))?;
        Ok(row
            .map(|r| attempt_row(r.get(0), r.get(1)))
            .filter(|s| *s != AttemptState::default()))
    }

    async fn load_attempts(&self, now: u64) -> Result<Vec<(String, AttemptState)>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT key, failures, locked_until FROM attempts
                 WHERE (locked_until = 0 AND failures > 0) OR locked_until > $1",
                &[&to_i64(now)],
            )
            .await
            .map_err(pg("load attempts"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), attempt_row(r.get(1), r.get(2))))
            .collect())
    }

    async fn prune(&self, now: u64, keep_secs: u64) -> Result<u64> {
        let horizon = to_i64(now.saturating_sub(keep_secs));
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg("begin"))?;
        // Prune a prefix of the log: everything up to the newest row older than the horizon.
        // (`at` is each writer's start time, so it is not quite in `seq` order; deleting a prefix
        // keeps "every row above the mark is still there" true.)
        let through: Option<i64> = tx
            .query_one(
                "SELECT max(seq) FROM subject_changes WHERE at < to_timestamp($1::bigint)",
                &[&horizon],
            )
            .await
            .map_err(pg("find old changes"))?
            .get(0);
        let mut gone = 0;
        if let Some(through) = through {
            gone += tx
                .execute("DELETE FROM subject_changes WHERE seq <= $1", &[&through])
                .await
                .map_err(pg("prune changes"))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE
                 SET value = greatest(meta.value::bigint, EXCLUDED.value::bigint)::text",
                &[&PRUNED_THROUGH, &through.to_string()],
            )
            .await
            .map_err(pg("record pruning"))?;
        }
        // As the embedded store: a counter without a lock stays until a success clears it.
        gone += tx
            .execute(
                "DELETE FROM attempts WHERE locked_until <> 0 AND locked_until <= $1",
                &[&horizon],
            )
            .await
            .map_err(pg("prune attempts"))?;
        tx.commit().await.map_err(pg("commit"))?;
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(valid_schema("nhm_test_1"));
        assert!(!valid_schema("x; DROP TABLE y"));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema(""));
    }

    #[test]
    fn change_log_locks_are_per_schema_and_stable() {
        assert_eq!(change_log_lock("public"), change_log_lock("public"));
        assert_ne!(change_log_lock("public"), change_log_lock("nhm_t_a"));
        assert_ne!(change_log_lock("public"), MIGRATION_LOCK);
    }

    #[cfg(unix)]
    #[test]
    fn password_files_must_be_private_and_lose_one_line_ending() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\r\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_password_file(&p).unwrap_err().to_string();
        assert!(
            err.contains(&p.display().to_string()) && err.contains("0640"),
            "{err}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password_file(&p).unwrap(), b"s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(read_password_file(&p), Err(Error::Config(_))));
        assert!(matches!(
            read_password_file(&dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let err = rustls_config(PostgresTls::VerifyFull, Some(&p))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ca.pem"), "{err}");
        assert!(rustls_config(PostgresTls::VerifyFull, None).is_ok());
        assert!(rustls_config(PostgresTls::Require, None).is_ok());
    }
}
