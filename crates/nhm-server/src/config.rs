//! Server configuration: a TOML file, every field optional.
//!
//! ```toml
//! # Where templates live: "embedded" (a redb file in --data DIR, the default) or a PostgreSQL
//! # connection string (URL `postgres://user:pass@host/db` or `host=... user=... dbname=...`).
//! store = "embedded"
//! postgres_schema = "public"     # schema holding the tables (PostgreSQL only)
//! postgres_pool_size = 16
//! postgres_tls = "disable"       # "disable", "require" (encrypted, certificate not checked) or
//!                                # "verify-full" (certificate chain and host name checked)
//! postgres_ca_file = "ca.pem"    # verify-full only: PEM roots to trust (default: the webpki roots)
//! postgres_password_file = "/run/secrets/pg"  # the password, kept out of the connection string;
//!                                # refused unless only its owner may read it (chmod 600)
//! tokens = "tokens.toml"         # bearer tokens (hashes only); see `nhm serve token new`
//! pepper = true                 # pepper templates; without pepper_key one is generated on
//!                                # first start as DATA/pepper.key (0600)
//! pepper_key = "/etc/nhm/pepper.key"  # server pepper: best kept outside the data dir and its backups
//! threshold_file = "threshold.json"   # a `Threshold` as written by `nhm eval`
//! # or inline: [threshold] score = 0.73, target_fmr = 0.001, measured_fmr = 0.0009, impostor_comparisons = 100000
//! kind = "binary"                # or "dense"
//! dim = 256
//! fusion = "best"                # how a subject's templates are fused: "best" or "mean"
//! return_scores = false          # send similarity scores to clients (helps hill-climbing: off by default)
//! relay_enabled = false          # GET /v1/relay/negatives (federated training)
//! relay_max_n = 256
//! max_failed_attempts = 5        # consecutive failed verifications of a subject before a lockout
//! lockout_secs = 900
//! identify_max_failed_attempts = 100  # consecutive identifications finding nobody, per token
//! identify_lockout_secs = 900
//! audit_log = "audit.jsonl"      # the audit trail (default DATA/audit.jsonl)
//! change_log_keep_secs = 86400   # replicas: change-log entries older than this are pruned
//! sync_interval_ms = 1000        # replicas: how often each reads the others' changes
//! max_uri_bytes = 8192           # longer request URIs get 414
//! max_templates_per_subject = 32
//! max_identify_k = 100
//! body_limit_bytes = 1048576
//! request_timeout_ms = 10000
//! header_read_timeout_ms = 5000  # a request head must arrive within this (slow clients are cut off)
//! max_connections = 8192         # open connections at once; more are closed on accept
//! metrics_public = false         # true: /metrics needs no token
//! [tls]                          # optional: serve HTTPS with rustls
//! cert = "cert.pem"
//! key = "key.pem"
//! [fed]                          # optional: federated training (/v1/fed/...); absent = off
//! initial_model = "init.safetensors"  # the starting global model (F32 safetensors)
//! dim = 128                      # training-hashmap length
//! state_dir = "fed"              # coordinator state, resumed after a restart (default DATA/fed)
//! max_rounds = 100               # no round opens after this many have closed
//! min_clients = 10               # registered clients before the first round opens (>= 2)
//! round_timeout_secs = 300       # a round closes when every sampled client answered or after this
//! update_limit_bytes = 67108864  # body limit of POST /v1/fed/update only
//! clients_per_round = 50         # the expected number under differential privacy
//! min_updates = 1                # fewer accepted updates leave the model unchanged
//! negatives = 64                 # other clients' hashmaps relayed to each sampled client
//! hard_negatives = false         # relay the nearest hashmaps instead of a uniform sample
//! server_lr = 1.0
//! server_momentum = 0.0
//! server_adam = false           # FedAdam: apply the mean update with Adam at server_lr
//! spreadout = 0.0               # FedAwS spreadout step on the stored hashmaps after each round
//! max_norm_ratio = 5.0           # updates above this multiple of the median norm are outliers (0: off)
//! seed = 0                       # sampling and noise seed
//! [fed.dp]                       # optional: clipped, noised updates (user-level differential privacy)
//! clip_norm = 1.0
//! noise_multiplier = 1.0
//! ```
//!
//! Relative paths are resolved against the directory of the configuration file.

use std::path::{Path, PathBuf};

use nhm_template::{HashmapKind, Threshold};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a subject's several enrolled templates are fused into one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FusionRule {
    /// The best score over the subject's templates.
    #[default]
    Best,
    /// The mean score.
    Mean,
}

impl From<FusionRule> for nhm_template::Fusion {
    fn from(f: FusionRule) -> Self {
        match f {
            FusionRule::Best => nhm_template::Fusion::Best,
            FusionRule::Mean => nhm_template::Fusion::Mean,
        }
    }
}

/// TLS on the connections to PostgreSQL (the names and meanings of libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PostgresTls {
    /// Plain TCP (a connection string asking for `sslmode=require` is refused rather than downgraded).
    #[default]
    Disable,
    /// Encrypted, but the server's certificate is not checked: protects against eavesdropping,
    /// not against an active man in the middle.
    Require,
    /// Encrypted, the certificate chain checked against the trusted roots and the host name
    /// against the certificate.
    VerifyFull,
}

impl std::fmt::Display for PostgresTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PostgresTls::Disable => "disable",
            PostgresTls::Require => "require",
            PostgresTls::VerifyFull => "verify-full",
        })
    }
}

/// Everything [`crate::PostgresStore::connect_with`] needs.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connection string: a URL or `key=value` pairs (without a password when `password_file` is set).
    pub conn: String,
    /// Schema holding the tables (created if missing).
    pub schema: String,
    /// Most connections in the pool.
    pub pool_size: usize,
    /// TLS mode.
    pub tls: PostgresTls,
    /// Trusted roots (PEM) for [`PostgresTls::VerifyFull`]; `None`: the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// The password, read from this file (which only its owner may read or write).
    pub password_file: Option<PathBuf>,
}

impl PostgresOptions {
    /// Plain-TCP options with the password (if any) in `conn`.
    pub fn new(conn: &str, schema: &str, pool_size: usize) -> PostgresOptions {
        PostgresOptions {
            conn: conn.to_owned(),
            schema: schema.to_owned(),
            pool_size,
            tls: PostgresTls::Disable,
            ca_file: None,
            password_file: None,
        }
    }
}

/// A CA file only means something when certificates are verified: refusing it elsewhere keeps
/// "require" from looking safer than it is.
pub(crate) fn check_postgres_tls(tls: PostgresTls, ca_file: Option<&Path>) -> Result<()> {
    if let (Some(ca), false) = (ca_file, tls == PostgresTls::VerifyFull) {
        return Err(Error::Config(format!(
            "postgres_ca_file {} is only used with postgres_tls = \"verify-full\" (it is \"{tls}\")",
            ca.display()
        )));
    }
    Ok(())
}

/// TLS certificate chain and private key (PEM files).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The whole configuration (see the module documentation for the file format).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// "embedded" or a PostgreSQL connection string.
    pub store: String,
    /// PostgreSQL schema for the tables (created if missing).
    pub postgres_schema: String,
    /// PostgreSQL connection pool size.
    pub postgres_pool_size: usize,
    /// TLS to PostgreSQL.
    pub postgres_tls: PostgresTls,
    /// PEM certificates trusted for `postgres_tls = "verify-full"` (default: the webpki roots).
    pub postgres_ca_file: Option<PathBuf>,
    /// File holding the PostgreSQL password (owner-only permissions).
    pub postgres_password_file: Option<PathBuf>,
    /// Tokens file; without one every request but /healthz is refused.
    pub tokens: Option<PathBuf>,
    /// Whether templates are peppered. With `pepper_key` unset, a pepper is generated on the
    /// first start of an empty store (`DATA/pepper.key`, mode 0600).
    pub pepper: bool,
    /// Key file of the server pepper.
    pub pepper_key: Option<PathBuf>,
    /// Decision threshold, inline.
    pub threshold: Option<Threshold>,
    /// Decision threshold, from a JSON or TOML file (as `nhm eval` writes it).
    pub threshold_file: Option<PathBuf>,
    /// Template kind accepted.
    pub kind: HashmapKind,
    /// Template dimension accepted.
    pub dim: usize,
    /// Score fusion over a subject's templates.
    pub fusion: FusionRule,
    /// Whether verify/identify answers carry scores.
    pub return_scores: bool,
    /// Whether the negatives relay is served.
    pub relay_enabled: bool,
    /// Most hashmaps one relay request may return.
    pub relay_max_n: usize,
    /// Consecutive failed verifications of one subject before a lockout.
    pub max_failed_attempts: u32,
    /// Lockout length in seconds.
    pub lockout_secs: u64,
    /// Consecutive identifications by one token that found nobody before the token is locked
    /// (NIST SP 800-63B §5.2.2 allows at most 100 consecutive failures on one account).
    pub identify_max_failed_attempts: u32,
    /// Identify lockout length in seconds.
    pub identify_lockout_secs: u64,
    /// The audit trail file (JSON lines, 0600); `nhm serve` defaults it to `DATA/audit.jsonl`.
    pub audit_log: Option<PathBuf>,
    /// Change-log entries (replicas) and expired lockouts older than this are pruned; a replica
    /// that was away longer reloads its gallery.
    pub change_log_keep_secs: u64,
    /// How often a replica applies the other replicas' changes, in milliseconds.
    pub sync_interval_ms: u64,
    /// Longest request URI (path and query) accepted, in bytes (414 above).
    pub max_uri_bytes: usize,
    /// Most templates one subject may hold.
    pub max_templates_per_subject: usize,
    /// Largest `k` accepted by identify.
    pub max_identify_k: usize,
    /// Request body limit in bytes (413 above).
    pub body_limit_bytes: usize,
    /// Request timeout in milliseconds (408 after).
    pub request_timeout_ms: u64,
    /// A connection must deliver a request's head (request line and headers) within this many
    /// milliseconds, or it is closed: half-sent requests cannot hold connections open (plain HTTP).
    pub header_read_timeout_ms: u64,
    /// Most connections open at once; a connection accepted above it is closed at once, so slow
    /// or idle clients cannot exhaust file descriptors (plain HTTP).
    pub max_connections: usize,
    /// Serve /metrics without a token.
    pub metrics_public: bool,
    /// HTTPS.
    pub tls: Option<TlsConfig>,
    /// Federated training (`/v1/fed/...`); `None`: off.
    pub fed: Option<FedSettings>,
}

/// Default `round_timeout_secs` of `[fed]`.
pub const DEFAULT_ROUND_TIMEOUT_SECS: u64 = 300;
/// Default `update_limit_bytes` of `[fed]`.
pub const DEFAULT_UPDATE_LIMIT_BYTES: usize = 64 << 20;

/// The `[fed]` table: federated training served by this server (see the module documentation).
/// The coordinator's own settings ([`nhm_fed::FedConfig`]) sit in the same table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FedSettings {
    /// The starting global model (safetensors, every tensor F32); read when `state_dir` holds no
    /// saved coordinator.
    pub initial_model: PathBuf,
    /// Training-hashmap length.
    pub dim: usize,
    /// Where the coordinator's state lives (`nhm serve` defaults it to `DATA/fed`).
    pub state_dir: Option<PathBuf>,
    /// No round opens once this many have closed.
    pub max_rounds: u64,
    /// Registered clients needed before a round opens (at least 2).
    pub min_clients: usize,
    /// A round closes when every sampled client answered or after this many seconds.
    pub round_timeout_secs: u64,
    /// Body limit of `POST /v1/fed/update` in bytes (the other routes keep `body_limit_bytes`).
    pub update_limit_bytes: usize,
    /// Clients sampled per round (the expected number under differential privacy).
    pub clients_per_round: usize,
    /// Fewest accepted updates that change the model.
    pub min_updates: usize,
    /// Other clients' hashmaps relayed to each sampled client as negatives.
    pub negatives: usize,
    /// Relay the nearest hashmaps (hard negatives) instead of a uniform sample.
    pub hard_negatives: bool,
    /// Server learning rate (1 = FedAvg).
    pub server_lr: f32,
    /// Server momentum (0 = none).
    pub server_momentum: f32,
    /// Apply the aggregated update with Adam on the server (FedAdam) at `server_lr`.
    pub server_adam: bool,
    /// Server-side spreadout step on the stored hashmaps after each round (0 = off).
    pub spreadout: f32,
    /// Updates whose norm exceeds this multiple of the round's median are outliers (0 = off).
    pub max_norm_ratio: f32,
    /// User-level differential privacy (`[fed.dp]`).
    pub dp: Option<nhm_fed::DpConfig>,
    /// Seed of sampling and noise.
    pub seed: u64,
}

impl Default for FedSettings {
    fn default() -> Self {
        let c = nhm_fed::FedConfig::default();
        FedSettings {
            initial_model: PathBuf::new(),
            dim: 0,
            state_dir: None,
            max_rounds: 100,
            min_clients: 2,
            round_timeout_secs: DEFAULT_ROUND_TIMEOUT_SECS,
            update_limit_bytes: DEFAULT_UPDATE_LIMIT_BYTES,
            clients_per_round: c.clients_per_round,
            min_updates: c.min_updates,
            negatives: c.negatives,
            hard_negatives: c.hard_negatives,
            server_lr: c.server_lr,
            server_momentum: c.server_momentum,
            server_adam: c.server_adam,
            spreadout: c.spreadout,
            max_norm_ratio: c.max_norm_ratio,
            dp: c.dp,
            seed: c.seed,
        }
    }
}

impl FedSettings {
    /// The coordinator's settings.
    pub fn protocol(&self) -> nhm_fed::FedConfig {
        nhm_fed::FedConfig {
            clients_per_round: self.clients_per_round,
            min_updates: self.min_updates,
            negatives: self.negatives,
            hard_negatives: self.hard_negatives,
            server_lr: self.server_lr,
            server_momentum: self.server_momentum,
            server_adam: self.server_adam,
            spreadout: self.spreadout,
            max_norm_ratio: self.max_norm_ratio,
            dp: self.dp,
            seed: self.seed,
        }
    }

    /// Checks value ranges; each error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("[fed] {m}")));
        if self.initial_model.as_os_str().is_empty() {
            return bad("initial_model must name the starting model (a safetensors file)".into());
        }
        if self.dim == 0 || self.dim > 1 << 16 {
            return bad(format!("dim {} out of range 1..=65536", self.dim));
        }
        if self.max_rounds == 0 {
            return bad("max_rounds must be at least 1".into());
        }
        if self.min_clients < 2 {
            return bad(format!(
                "min_clients must be at least 2, not {}",
                self.min_clients
            ));
        }
        if self.round_timeout_secs == 0 {
            return bad("round_timeout_secs must be positive".into());
        }
        if self.update_limit_bytes == 0 {
            return bad("update_limit_bytes must be positive".into());
        }
        if self.min_clients < self.min_updates {
            return bad(format!(
                "min_clients ({}) must be at least min_updates ({}): rounds could never apply",
                self.min_clients, self.min_updates
            ));
        }
        if self.clients_per_round < self.min_updates {
            return bad(format!(
                "clients_per_round ({}) must be at least min_updates ({}): rounds could never apply",
                self.clients_per_round, self.min_updates
            ));
        }
        self.protocol().validate().or_else(|e| {
            bad(e
                .to_string()
                .trim_start_matches("invalid federated setting: ")
                .to_owned())
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: "embedded".into(),
            postgres_schema: "public".into(),
            postgres_pool_size: 16,
            postgres_tls: PostgresTls::Disable,
            postgres_ca_file: None,
            postgres_password_file: None,
            tokens: None,
            pepper: true,
            pepper_key: None,
            threshold: None,
            threshold_file: None,
            kind: HashmapKind::Binary,
            dim: 256,
            fusion: FusionRule::Best,
            return_scores: false,
            relay_enabled: false,
            relay_max_n: 256,
            max_failed_attempts: 5,
            lockout_secs: 900,
            identify_max_failed_attempts: 100,
            identify_lockout_secs: 900,
            audit_log: None,
            change_log_keep_secs: 86_400,
            sync_interval_ms: 1_000,
            max_uri_bytes: 8_192,
            max_templates_per_subject: 32,
            max_identify_k: 100,
            body_limit_bytes: 1 << 20,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 5_000,
            max_connections: 8192,
            metrics_public: false,
            tls: None,
            fed: None,
        }
    }
}

impl Config {
    /// Reads a TOML configuration; relative paths in it become relative to its directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg: Config =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(q) = p.as_mut() {
                if q.is_relative() {
                    *q = base.join(&*q);
                }
            }
        };
        fix(&mut cfg.tokens);
        fix(&mut cfg.pepper_key);
        fix(&mut cfg.threshold_file);
        fix(&mut cfg.audit_log);
        fix(&mut cfg.postgres_ca_file);
        fix(&mut cfg.postgres_password_file);
        if let Some(tls) = cfg.tls.as_mut() {
            if tls.cert.is_relative() {
                tls.cert = base.join(&tls.cert);
            }
            if tls.key.is_relative() {
                tls.key = base.join(&tls.key);
            }
        }
        if let Some(fed) = cfg.fed.as_mut() {
            if fed.initial_model.is_relative() && !fed.initial_model.as_os_str().is_empty() {
                fed.initial_model = base.join(&fed.initial_model);
            }
            fix(&mut fed.state_dir);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks value ranges.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > 1 << 16 {
            return Err(Error::Config(format!("dim {} out of range 1..=65536", self.dim)));
        }
        if self.max_failed_attempts == 0 || self.identify_max_failed_attempts == 0 {
            return Err(Error::Config(
                "max_failed_attempts and identify_max_failed_attempts must be at least 1".into(),
            ));
        }
        if self.sync_interval_ms == 0 || self.max_uri_bytes < 64 {
            return Err(Error::Config(
                "sync_interval_ms must be positive and max_uri_bytes at least 64".into(),
            ));
        }
        if !self.pepper && self.pepper_key.is_some() {
            return Err(Error::Config("pepper = false contradicts pepper_key".into()));
        }
        if self.max_templates_per_subject == 0 || self.max_identify_k == 0 || self.body_limit_bytes == 0 {
            return Err(Error::Config(
                "max_templates_per_subject, max_identify_k and body_limit_bytes must be positive".into(),
            ));
        }
        if self.header_read_timeout_ms == 0 || self.max_connections == 0 {
            return Err(Error::Config(
                "header_read_timeout_ms and max_connections must be positive".into(),
            ));
        }
        check_postgres_tls(self.postgres_tls, self.postgres_ca_file.as_deref())?;
        if let Some(fed) = &self.fed {
            fed.validate()?;
        }
        if self.threshold.is_some() && self.threshold_file.is_some() {
            return Err(Error::Config(
                "set either threshold or threshold_file, not both".into(),
            ));
        }
        Ok(())
    }

    /// Whether the store is PostgreSQL (anything but "embedded").
    pub fn is_postgres(&self) -> bool {
        self.store != "embedded"
    }

    /// How to connect to PostgreSQL under this configuration (meaningful when [`Config::is_postgres`]).
    pub fn postgres_options(&self) -> PostgresOptions {
        PostgresOptions {
            conn: self.store.clone(),
            schema: self.postgres_schema.clone(),
            pool_size: self.postgres_pool_size,
            tls: self.postgres_tls,
            ca_file: self.postgres_ca_file.clone(),
            password_file: self.postgres_password_file.clone(),
        }
    }

    /// Checks that a decision threshold can tell anyone apart under this configuration's
    /// hashmap kind: a score that unrelated templates reach about half the time (0.5 for binary
    /// hashmaps, half of the bits agreeing; 0 for the cosine of dense ones) or less accepts
    /// impostors wholesale, and a score above 1 accepts nobody.
    pub fn check_threshold(&self, t: &Threshold) -> Result<()> {
        let chance = match self.kind {
            HashmapKind::Binary => 0.5,
            HashmapKind::Dense => 0.0,
        };
        if !(t.score.is_finite() && t.score > chance && t.score <= 1.0) {
            return Err(Error::Config(format!(
                "threshold score {} is outside ({chance}, 1]: at or below {chance} unrelated {} hashmaps match \
                 (about half of them or more), above 1 nothing does",
                t.score, self.kind
            )));
        }
        Ok(())
    }

    /// The threshold given by the configuration (inline or from its file), if any.
    pub fn load_threshold(&self) -> Result<Option<Threshold>> {
        if let Some(t) = &self.threshold {
            return Ok(Some(*t));
        }
        let Some(path) = &self.threshold_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let parsed = serde_json::from_str::<Threshold>(&text)
            .map_err(|e| e.to_string())
            .or_else(|je| toml::from_str::<Threshold>(&text).map_err(|te| format!("JSON: {je}; TOML: {te}")))
            .map_err(|e| Error::Config(format!("{}: not a threshold: {e}", path.display())))?;
        Ok(Some(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_conservative() {
        let c = Config::default();
        assert!(!c.return_scores);
        assert!(!c.relay_enabled);
        assert_eq!(c.max_failed_attempts, 5);
        assert!(!c.is_postgres());
    }

    #[test]
    fn parses_file_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "tokens = \"t.toml\"\ndim = 128\nkind = \"dense\"\nreturn_scores = true\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.dim, 128);
        assert_eq!(c.kind, HashmapKind::Dense);
        assert_eq!(c.tokens.unwrap(), dir.path().join("t.toml"));
    }

    #[test]
    fn postgres_tls_options_parse_and_a_ca_file_needs_verify_full() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "postgres_tls = \"verify-full\"\npostgres_ca_file = \"ca.pem\"\npostgres_password_file = \"pw\"\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        let o = c.postgres_options();
        assert_eq!(o.tls, PostgresTls::VerifyFull);
        assert_eq!(o.ca_file.unwrap(), dir.path().join("ca.pem"));
        assert_eq!(o.password_file.unwrap(), dir.path().join("pw"));
        assert_eq!(Config::default().postgres_tls, PostgresTls::Disable);
        std::fs::write(&p, "postgres_tls = \"require\"\npostgres_ca_file = \"ca.pem\"\n").unwrap();
        let err = Config::load(&p).unwrap_err().to_string();
        assert!(err.contains("verify-full"), "{err}");
        std::fs::write(&p, "postgres_tls = \"prefer\"\n").unwrap();
        assert!(matches!(Config::load(&p), Err(Error::Config(_))));
    }

    #[test]
    fn fed_table_parses_resolves_paths_and_names_bad_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[fed]\ninitial_model = \"m.safetensors\"\ndim = 4\nmax_rounds = 3\nmin_clients = 2\n\
             clients_per_round = 2\nmax_norm_ratio = 0.0\n[fed.dp]\nclip_norm = 1.0\nnoise_multiplier = 0.5\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        let fed = c.fed.unwrap();
        assert_eq!(fed.initial_model, dir.path().join("m.safetensors"));
        assert_eq!(fed.state_dir, None);
        assert_eq!(fed.round_timeout_secs, DEFAULT_ROUND_TIMEOUT_SECS);
        assert_eq!(fed.update_limit_bytes, DEFAULT_UPDATE_LIMIT_BYTES);
        let proto = fed.protocol();
        assert_eq!((proto.clients_per_round, proto.max_norm_ratio), (2, 0.0));
        assert_eq!(proto.dp.unwrap().noise_multiplier, 0.5);
        assert!(Config::default().fed.is_none());
        for (toml, field) in [
            ("dim = 4\n", "initial_model"),
            ("initial_model = \"m\"\ndim = 0\n", "dim"),
            ("initial_model = \"m\"\ndim = 4\nmin_clients = 1\n", "min_clients"),
            (
                "initial_model = \"m\"\ndim = 4\nround_timeout_secs = 0\n",
                "round_timeout_secs",
            ),
            ("initial_model = \"m\"\ndim = 4\nserver_lr = -1.0\n", "server_lr"),
            ("initial_model = \"m\"\ndim = 4\nclip_norm = 1.0\n", "clip_norm"),
        ] {
            std::fs::write(&p, format!("[fed]\n{toml}")).unwrap();
            let err = Config::load(&p).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "tokenz = \"t.toml\"\n").unwrap();
        assert!(matches!(Config::load(&p), Err(Error::Config(_))));
        std::fs::write(&p, "max_failed_attempts = 0\n").unwrap();
        assert!(matches!(Config::load(&p), Err(Error::Config(_))));
        assert!(matches!(
            Config::load(&dir.path().join("missing.toml")),
            Err(Error::Io { .. })
        ));
    }
}
