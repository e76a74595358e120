//! The service: every rule of enrolment, replacement, revocation, verification, identification,
//! the negatives relay and the decision threshold, independent of HTTP. The handlers in
//! [`crate::http`] parse a request, call one method here and write its answer.
//!
//! The rules, in one place:
//! - **durable, then visible**: a write goes to the store and returns after its commit; only
//!   then does the in-memory index see it. Writes are serialised so the index sees them in the
//!   store's order.
//! - **attempt limits** ([`crate::attempts`]): verifications are limited per subject and
//!   identifications per token; an unknown subject is answered and counted like a non-match;
//!   identify never returns a locked subject.
//! - **pepper**: every template is peppered before it is stored or matched, so a template read
//!   from the store (or relayed) does not match when replayed.
//! - **threshold**: stored with the gallery and shared by replicas; the configuration's only
//!   seeds a store that has none.
//! - **audit** ([`crate::audit`]): every change and every refusal that matters is recorded.
//! - **federated training** ([`crate::fed`]): enrol (or admin) tokens are the clients, each
//!   known by its token's name; every `/v1/fed` request first drives the rounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use nhm_fed::wire::{JoinRequest, StatusResponse, TaskResponse, UpdateRequest};
use nhm_template::{Hashmap, Key, Pepper, Threshold};
use rand::SeedableRng as _;

use crate::attempts::{identify_key, subject_key, AttemptLimits, Limit, Outcome};
use crate::audit::{self, Action, AuditLog};
use crate::auth::{Principal, Role};
use crate::config::Config;
use crate::error::{ApiError, Error, Result};
use crate::fed::{rejection_code, Fed};
use crate::index::Index;
use crate::protocol::{
    CandidateResponse, IdentifyResponse, ListResponse, RelayQuery, RelayResponse, SubjectResponse,
    ThresholdBody, VerifyResponse,
};
use crate::store::{Change, SubjectInfo, TemplateStore, WriteMode};
use crate::unix_now;

/// Meta key of the gallery's template kind and dimension.
pub const META_GALLERY: &str = "gallery";
/// Meta key of the pepper's fingerprint ("none" without a pepper).
pub const META_PEPPER: &str = "pepper";
/// Meta key of the decision threshold (JSON).
pub const META_THRESHOLD: &str = "threshold";

/// The service over one store. Share it behind an `Arc`.
pub struct Service {
    config: Config,
    store: Arc<dyn TemplateStore>,
    index: RwLock<Index>,
    /// Serialises writes so the index sees them in the store's order.
    write_lock: tokio::sync::Mutex<()>,
    pepper: Option<Pepper>,
    threshold: RwLock<Option<Threshold>>,
    attempts: AttemptLimits,
    audit: AuditLog,
    change_seq: AtomicU64,
    fed: Option<Fed>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("subjects", &self.subjects())
            .finish_non_exhaustive()
    }
}

/// Whether `id` may name a subject: 1-128 characters of `[A-Za-z0-9._:@-]`, not `.` or `..`
/// (path segments, not names: as ids they would make URLs that mean something else).
pub fn check_subject_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "subject id {id:?} must be 1-128 characters of [A-Za-z0-9._:@-], and not `.` or `..`"
        )))
    }
}

/// Refuses a caller whose role does not allow `role`.
pub(crate) fn require(who: &Principal, role: Role) -> Result<(), ApiError> {
    if who.role.allows(role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "token {:?} lacks the {role:?} role",
            who.name
        )))
    }
}

impl Service {
    /// Opens the service over `store`: checks the stored gallery configuration (kind, dimension,
    /// pepper) against `config`, settles the threshold (the stored one; the configuration's
    /// seeds a store without one), loads the attempt counters and rebuilds the index.
    pub async fn open(
        config: Config,
        store: Arc<dyn TemplateStore>,
        pepper_key: Option<&Key>,
        audit: AuditLog,
    ) -> Result<Service> {
        config.validate()?;
        if config.relay_enabled && pepper_key.is_none() {
            return Err(Error::Config(
                "relay_enabled needs a pepper: without one a relayed hashmap replays as its owner \
                 (set pepper_key, or leave pepper on for a generated one)"
                    .into(),
            ));
        }
        let pepper = pepper_key.map(|k| Pepper::new(k, config.dim));
        check_meta(&*store, &config, pepper_key).await?;
        let threshold = settle_threshold(&*store, &config).await?;
        let seq = store.latest_change().await?;
        let mut index = Index::new(config.kind, config.dim);
        for s in store.load_all().await? {
            index.set(&s.info.id, &s.templates)?;
        }
        let attempts = AttemptLimits::new(store.clone());
        attempts.load(unix_now()).await?;
        let fed = match config.fed.clone() {
            Some(settings) => Some(tokio::task::spawn_blocking(move || Fed::open(&settings)).await??),
            None => None,
        };
        Ok(Service {
            config,
            store,
            index: RwLock::new(index),
            write_lock: tokio::sync::Mutex::new(()),
            pepper,
            threshold: RwLock::new(threshold),
            attempts,
            audit,
            change_seq: AtomicU64::new(seq),
            fed,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The audit trail.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The attempt counters.
    pub fn attempts(&self) -> &AttemptLimits {
        &self.attempts
    }

    /// Number of enrolled subjects in the index.
    pub fn subjects(&self) -> usize {
        self.index.read().unwrap_or_else(|p| p.into_inner()).subjects()
    }

    /// The decision threshold, if one is set.
    pub fn threshold(&self) -> Option<Threshold> {
        *self.threshold.read().unwrap_or_else(|p| p.into_inner())
    }

    fn require_threshold(&self) -> Result<Threshold, ApiError> {
        self.threshold().ok_or(ApiError::NoThreshold)
    }

    fn subject_limit(&self) -> Limit {
        Limit {
            max: self.config.max_failed_attempts,
            lock: std::time::Duration::from_secs(self.config.lockout_secs),
        }
    }

    fn identify_limit(&self) -> Limit {
        Limit {
            max: self.config.identify_max_failed_attempts,
            lock: std::time::Duration::from_secs(self.config.identify_lockout_secs),
        }
    }

    /// Applies the server pepper (identity without one).
    pub fn pepper(&self, h: Hashmap) -> Result<Hashmap> {
        match &self.pepper {
            Some(p) => Ok(p.apply_hashmap(&h)?),
            None => Ok(h),
        }
    }

    /// Decodes one base64 template and checks it against the gallery's kind and dimension.
    pub fn decode_template(&self, b64: &str) -> Result<Hashmap, ApiError> {
        let h = Hashmap::from_base64(b64.trim()).map_err(|e| ApiError::BadTemplate(e.to_string()))?;
        let cfg = &self.config;
        if h.kind() != cfg.kind || h.dim() != cfg.dim {
            return Err(ApiError::WrongTemplate(format!(
                "template is {} of dim {}; this gallery takes {} of dim {}",
                h.kind(),
                h.dim(),
                cfg.kind,
                cfg.dim
            )));
        }
        Ok(h)
    }

    /// Decodes, checks and peppers a list of templates for a write.
    fn prepare_templates(&self, list: &[String]) -> Result<Vec<Hashmap>, ApiError> {
        if list.is_empty() {
            return Err(ApiError::BadRequest("at least one template is required".into()));
        }
        let max = self.config.max_templates_per_subject;
        if list.len() > max {
            return Err(ApiError::BadRequest(format!(
                "at most {max} templates per subject"
            )));
        }
        list.iter()
            .map(|b| Ok(self.pepper(self.decode_template(b)?)?))
            .collect()
    }

    /// Records an authentication failure on `route` (no valid token).
    pub fn auth_failed(&self, route: &str) {
        self.audit.record(
            "-",
            Action::AuthFailure,
            None,
            audit::Outcome::Refused,
            Some(route),
        );
    }

    /// Records the outcome of a change to `id` in the audit trail.
    fn record_result<T>(&self, who: &Principal, action: Action, id: &str, result: &Result<T, ApiError>) {
        let outcome = match result {
            Ok(_) => audit::Outcome::Ok,
            Err(ApiError::Internal(_)) => audit::Outcome::Error,
            Err(_) => audit::Outcome::Refused,
        };
        let detail = result.as_ref().err().map(ApiError::code);
        self.audit.record(&who.name, action, Some(id), outcome, detail);
    }

    fn checked(&self, who: &Principal, role: Role, subject: Option<&str>) -> Result<(), ApiError> {
        require(who, role).inspect_err(|_| {
            self.audit.record(
                &who.name,
                Action::Forbidden,
                subject,
                audit::Outcome::Refused,
                Some(role_name(role)),
            );
        })
    }

    /// Writes templates (enrol, append or replace per `mode`); returns the subject after the
    /// write and whether it was created.
    pub async fn write(
        &self,
        who: &Principal,
        id: &str,
        templates: &[String],
        mode: WriteMode,
    ) -> Result<(SubjectInfo, bool), ApiError> {
        self.checked(who, Role::Enrol, Some(id))?;
        check_subject_id(id)?;
        let templates = self.prepare_templates(templates)?;
        let action = match mode {
            WriteMode::Create => Action::Enrol,
            WriteMode::Append => Action::Append,
            WriteMode::Replace => Action::Replace,
        };
        let result = self.write_locked(id, templates, mode).await;
        self.record_result(who, action, id, &result);
        let info = result?;
        let created = info.created == info.updated && mode == WriteMode::Create;
        Ok((info, created))
    }

    async fn write_locked(
        &self,
        id: &str,
        templates: Vec<Hashmap>,
        mode: WriteMode,
    ) -> Result<SubjectInfo, ApiError> {
        let _w = self.write_lock.lock().await;
        if mode == WriteMode::Append {
            let have = self.store.get_subject(id).await?.map_or(0, |s| s.templates.len());
            let max = self.config.max_templates_per_subject;
            if have + templates.len() > max {
                return Err(ApiError::Conflict(format!(
                    "subject would exceed {max} templates"
                )));
            }
        }
        // Durable first, then visible: the store write returns after its commit.
        let rec = self.store.put_templates(id, templates, mode, unix_now()).await?;
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .set(id, &rec.templates)?;
        self.attempts.forget(&subject_key(id)).await?;
        Ok(rec.info)
    }

    /// Revokes a subject: deletes all its templates (durable before it returns).
    pub async fn delete(&self, who: &Principal, id: &str) -> Result<(), ApiError> {
        self.checked(who, Role::Enrol, Some(id))?;
        check_subject_id(id)?;
        let result = async {
            let _w = self.write_lock.lock().await;
            if !self.store.delete_subject(id).await? {
                return Err(ApiError::NotFound(format!("subject {id:?} is not enrolled")));
            }
            self.index.write().unwrap_or_else(|p| p.into_inner()).remove(id);
            self.attempts.forget(&subject_key(id)).await?;
            Ok(())
        }
        .await;
        self.record_result(who, Action::Delete, id, &result);
        result
    }

    /// A subject's metadata; its stored (peppered) templates too for an admin who asks.
    pub async fn subject(
        &self,
        who: &Principal,
        id: &str,
        include_templates: bool,
    ) -> Result<SubjectResponse, ApiError> {
        self.checked(who, Role::Enrol, Some(id))?;
        if include_templates {
            self.checked(who, Role::Admin, Some(id))?;
        }
        check_subject_id(id)?;
        let rec = self
            .store
            .get_subject(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("subject {id:?} is not enrolled")))?;
        let hashmaps = include_templates.then(|| {
            self.audit.record(
                &who.name,
                Action::ExportTemplates,
                Some(id),
                audit::Outcome::Ok,
                None,
            );
            rec.templates.iter().map(Hashmap::to_base64).collect()
        });
        Ok(SubjectResponse {
            hashmaps,
            ..rec.info.into()
        })
    }

    /// A page of subjects in id order.
    pub async fn list(
        &self,
        who: &Principal,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResponse, ApiError> {
        self.checked(who, Role::Enrol, None)?;
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > 1000 {
            return Err(ApiError::BadRequest("limit must be in 1..=1000".into()));
        }
        let page = self.store.list_subjects(after, limit).await?;
        let next = if page.len() == limit {
            page.last().map(|s| s.id.clone())
        } else {
            None
        };
        Ok(ListResponse {
            subjects: page.into_iter().map(Into::into).collect(),
            next,
        })
    }

    /// 1:1 verification. An unknown subject is answered like a non-match and counted against
    /// the same limit, so a verify token cannot tell who is enrolled.
    pub async fn verify(
        &self,
        who: &Principal,
        id: &str,
        template: &str,
    ) -> Result<VerifyResponse, ApiError> {
        self.checked(who, Role::Verify, Some(id))?;
        check_subject_id(id)?;
        let probe = self.pepper(self.decode_template(template)?)?;
        let thr = self.require_threshold()?;
        let key = subject_key(id);
        let attempt = self
            .attempts
            .begin(&key, self.subject_limit(), unix_now())
            .await?;
        let score = self.index.read().unwrap_or_else(|p| p.into_inner()).verify(
            id,
            &probe,
            self.config.fusion.into(),
        )?;
        let matched = score.is_some_and(|s| thr.accepts(s));
        if let Outcome::LockedUntil(until) = self.attempts.finish(attempt, matched, unix_now()).await? {
            tracing::warn!(subject = %id, caller = %who.name, until, "subject locked after failed verifications");
            self.audit.record(
                &who.name,
                Action::SubjectLocked,
                Some(id),
                audit::Outcome::Ok,
                None,
            );
        }
        let score = score.filter(|_| self.config.return_scores);
        Ok(VerifyResponse { matched, score })
    }

    /// 1:N identification: the top-`k` subjects above the threshold, never a locked one. A
    /// search that finds nobody counts against the calling token's limit.
    pub async fn identify(
        &self,
        who: &Principal,
        template: &str,
        k: usize,
    ) -> Result<IdentifyResponse, ApiError> {
        self.checked(who, Role::Verify, None)?;
        let max_k = self.config.max_identify_k;
        if k == 0 || k > max_k {
            return Err(ApiError::BadRequest(format!("k must be in 1..={max_k}")));
        }
        let probe = self.pepper(self.decode_template(template)?)?;
        let thr = self.require_threshold()?;
        let now = unix_now();
        let attempt = self
            .attempts
            .begin(&identify_key(&who.name), self.identify_limit(), now)
            .await?;
        let locked = self.attempts.locked_subjects(now);
        let found = self.index.read().unwrap_or_else(|p| p.into_inner()).identify(
            &probe,
            k + locked.len(),
            self.config.fusion.into(),
        )?;
        let return_scores = self.config.return_scores;
        let candidates: Vec<CandidateResponse> = found
            .into_iter()
            .filter(|c| thr.accepts(c.score) && !locked.contains(&c.subject))
            .take(k)
            .map(|c| CandidateResponse {
                subject: c.subject,
                score: return_scores.then_some(c.score),
            })
            .collect();
        let outcome = self
            .attempts
            .finish(attempt, !candidates.is_empty(), unix_now())
            .await?;
        if let Outcome::LockedUntil(until) = outcome {
            tracing::warn!(caller = %who.name, until, "token locked after failed identifications");
            self.audit
                .record(&who.name, Action::IdentifyLocked, None, audit::Outcome::Ok, None);
        }
        Ok(IdentifyResponse { candidates })
    }

    /// The negatives relay (federated training): other subjects' stored hashmaps, one per
    /// sampled subject, without their ids.
    pub async fn relay(&self, who: &Principal, q: &RelayQuery) -> Result<RelayResponse, ApiError> {
        self.checked(who, Role::Enrol, None)?;
        let cfg = &self.config;
        if !cfg.relay_enabled {
            return Err(ApiError::NotFound(
                "the negatives relay is disabled on this server".into(),
            ));
        }
        if q.n == 0 || q.n > cfg.relay_max_n {
            return Err(ApiError::BadRequest(format!(
                "n must be in 1..={}",
                cfg.relay_max_n
            )));
        }
        let mut rng = match q.seed {
            Some(s) => rand_chacha::ChaCha8Rng::seed_from_u64(s),
            None => rand_chacha::ChaCha8Rng::from_entropy(),
        };
        let ids = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .sample_subjects(&mut rng, q.n, q.exclude.as_deref());
        let mut hashmaps = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(rec) = self.store.get_subject(&id).await? {
                if let Some(t) = rec.templates.first() {
                    hashmaps.push(t.to_base64());
                }
            }
        }
        Ok(RelayResponse { hashmaps })
    }

    /// Federated training, when `[fed]` is configured.
    pub fn fed(&self) -> Option<&Fed> {
        self.fed.as_ref()
    }

    /// Drives the federated rounds (see [`Fed::tick`]); a failure (saving the state) is logged:
    /// the next tick saves again.
    pub async fn fed_tick(&self) {
        if let Some(fed) = &self.fed {
            if let Err(e) = fed.tick().await {
                tracing::error!(error = %e, "federated round bookkeeping failed");
            }
        }
    }

    /// Checks the caller (enrol or admin), that federated training is on, and drives the rounds.
    async fn fed_for(&self, who: &Principal) -> Result<&Fed, ApiError> {
        self.checked(who, Role::Enrol, None)?;
        let fed = self.fed.as_ref().ok_or_else(|| {
            ApiError::NotFound(
                "federated training is not enabled on this server (its configuration has no [fed] table)"
                    .into(),
            )
        })?;
        self.fed_tick().await;
        Ok(fed)
    }

    fn record_fed(&self, who: &Principal, action: Action, result: &Result<(), nhm_fed::Rejection>) {
        let (outcome, detail) = match result {
            Ok(()) => (audit::Outcome::Ok, None),
            Err(r) => (audit::Outcome::Refused, Some(rejection_code(r))),
        };
        self.audit.record(&who.name, action, None, outcome, detail);
    }

    /// Registers (or re-registers) the caller as a federated client with its training hashmap.
    pub async fn fed_join(&self, who: &Principal, req: JoinRequest) -> Result<StatusResponse, ApiError> {
        let fed = self.fed_for(who).await?;
        let result = fed.join(&who.name, req.hashmap).await;
        self.record_fed(
            who,
            Action::FedJoin,
            &result.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        Ok(result?)
    }

    /// Where federated training stands, for the caller.
    pub async fn fed_status(&self, who: &Principal) -> Result<StatusResponse, ApiError> {
        Ok(self.fed_for(who).await?.status(&who.name).await)
    }

    /// The global model (safetensors bytes) and its version (rounds closed).
    pub async fn fed_model(&self, who: &Principal) -> Result<(u64, std::sync::Arc<Vec<u8>>), ApiError> {
        Ok(self.fed_for(who).await?.model().await)
    }

    /// The caller's task in the open round (`None`: nothing to do now).
    pub async fn fed_task(&self, who: &Principal) -> Result<Option<TaskResponse>, ApiError> {
        Ok(self.fed_for(who).await?.task(&who.name).await)
    }

    /// Takes the caller's update for the open round; a refused one leaves the round going.
    pub async fn fed_update(&self, who: &Principal, req: UpdateRequest) -> Result<(), ApiError> {
        let fed = self.fed_for(who).await?;
        let result = fed.submit(&who.name, req).await?;
        self.record_fed(who, Action::FedUpdate, &result);
        Ok(result?)
    }

    /// The threshold in force (admin).
    pub fn get_threshold(&self, who: &Principal) -> Result<ThresholdBody, ApiError> {
        self.checked(who, Role::Admin, None)?;
        Ok(self.require_threshold()?.into())
    }

    /// Sets the decision threshold: stored with the gallery (replicas pick it up from the
    /// store's change log), then in force here.
    pub async fn set_threshold(
        &self,
        who: &Principal,
        body: ThresholdBody,
    ) -> Result<ThresholdBody, ApiError> {
        self.checked(who, Role::Admin, None)?;
        let sane = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        if !body.score.is_finite() || !sane(body.target_fmr) || !sane(body.measured_fmr) {
            return Err(ApiError::BadRequest(
                "score must be finite; FMRs must be in [0, 1]".into(),
            ));
        }
        let t = Threshold::from(body);
        self.config
            .check_threshold(&t)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let json = serde_json::to_string(&t).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        {
            let _w = self.write_lock.lock().await;
            self.store.put_meta(META_THRESHOLD, &json).await?;
            *self.threshold.write().unwrap_or_else(|p| p.into_inner()) = Some(t);
        }
        let detail = format!("score {}", t.score);
        self.audit.record(
            &who.name,
            Action::SetThreshold,
            None,
            audit::Outcome::Ok,
            Some(&detail),
        );
        Ok(t.into())
    }

    /// Applies what other replicas wrote to the store since the last call (subjects, the
    /// threshold, attempt counters); reloads everything when the change log was pruned past
    /// this replica's position. Returns how many changes it applied.
    pub async fn sync_from_store(&self) -> Result<usize> {
        let since = self.change_seq.load(Ordering::Acquire);
        let batch = self.store.changes_since(since).await?;
        if batch.reload {
            tracing::warn!(
                since,
                "change log pruned past this replica's position: reloading the gallery"
            );
            self.reload().await?;
            self.change_seq.store(batch.last, Ordering::Release);
            return Ok(self.subjects());
        }
        if batch.changes.is_empty() {
            self.change_seq.store(batch.last, Ordering::Release);
            return Ok(0);
        }
        let _w = self.write_lock.lock().await;
        let mut seen = std::collections::HashSet::new();
        let now = unix_now();
        for change in &batch.changes {
            if !seen.insert(change) {
                continue;
            }
            match change {
                Change::Subject(s) => {
                    let rec = self.store.get_subject(s).await?;
                    let mut idx = self.index.write().unwrap_or_else(|p| p.into_inner());
                    match rec {
                        Some(r) => idx.set(s, &r.templates)?,
                        None => {
                            idx.remove(s);
                        }
                    }
                }
                Change::Meta(key) if key == META_THRESHOLD => {
                    let t = read_threshold(&*self.store).await?;
                    *self.threshold.write().unwrap_or_else(|p| p.into_inner()) = t;
                }
                Change::Meta(_) => {}
                Change::Attempts(key) => self.attempts.refresh(key, now).await?,
            }
        }
        self.change_seq.store(batch.last, Ordering::Release);
        Ok(seen.len())
    }

    /// Rebuilds the index, the threshold and the attempt counters from the store.
    async fn reload(&self) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let mut index = Index::new(self.config.kind, self.config.dim);
        for s in self.store.load_all().await? {
            index.set(&s.info.id, &s.templates)?;
        }
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
        let t = read_threshold(&*self.store).await?;
        *self.threshold.write().unwrap_or_else(|p| p.into_inner()) = t;
        self.attempts.load(unix_now()).await?;
        Ok(())
    }

    /// Prunes the store's change log and expired attempt rows older than the configured keep.
    pub async fn prune(&self) -> Result<u64> {
        self.store
            .prune(unix_now(), self.config.change_log_keep_secs)
            .await
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Enrol => "needs enrol",
        Role::Verify => "needs verify",
        Role::Admin => "needs admin",
    }
}

async fn read_threshold(store: &dyn TemplateStore) -> Result<Option<Threshold>> {
    match store.get_meta(META_THRESHOLD).await? {
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| Error::Config(format!("stored threshold does not parse: {e}"))),
        None => Ok(None),
    }
}

/// The stored threshold wins (the admin API changes it for every replica); the configuration's
/// is written only to a store without one, and a different one is reported.
async fn settle_threshold(store: &dyn TemplateStore, config: &Config) -> Result<Option<Threshold>> {
    let configured = config.load_threshold()?;
    let stored = read_threshold(store).await?;
    let threshold = match (stored, configured) {
        (Some(s), Some(c)) => {
            if s != c {
                tracing::warn!(
                    stored = s.score,
                    configured = c.score,
                    "the store's threshold differs from the configuration's; the store's is used \
                     (change it with PUT /v1/admin/threshold)"
                );
            }
            Some(s)
        }
        (Some(s), None) => Some(s),
        (None, Some(c)) => {
            config.check_threshold(&c)?;
            let json = serde_json::to_string(&c).map_err(|e| Error::Config(e.to_string()))?;
            store.put_meta(META_THRESHOLD, &json).await?;
            Some(c)
        }
        (None, None) => None,
    };
    if let Some(t) = &threshold {
        config.check_threshold(t)?;
    }
    Ok(threshold)
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct GalleryMeta {
    kind: nhm_template::HashmapKind,
    dim: usize,
}

/// The pepper fingerprint a store was written with: `None` for a new store, `Some("none")` for
/// one written without a pepper.
pub async fn stored_pepper(store: &dyn TemplateStore) -> Result<Option<String>> {
    store.get_meta(META_PEPPER).await
}

/// Refuses to serve a gallery with another template kind, dimension or pepper than the
/// configuration's: its templates would silently never match. Records them on first start.
async fn check_meta(store: &dyn TemplateStore, config: &Config, pepper_key: Option<&Key>) -> Result<()> {
    let want = GalleryMeta {
        kind: config.kind,
        dim: config.dim,
    };
    match store.get_meta(META_GALLERY).await? {
        Some(json) => {
            let have: GalleryMeta = serde_json::from_str(&json).map_err(|e| Error::CorruptRecord {
                subject: META_GALLERY.into(),
                reason: format!("stored gallery configuration does not parse: {e}"),
            })?;
            if have != want {
                return Err(Error::GalleryMismatch(format!(
                    "the store holds {} templates of dim {}, the configuration says {} of dim {}",
                    have.kind, have.dim, want.kind, want.dim
                )));
            }
        }
        None => {
            let json = serde_json::to_string(&want).map_err(|e| Error::Config(e.to_string()))?;
            store.put_meta(META_GALLERY, &json).await?;
        }
    }
    let fp = pepper_key.map_or_else(|| "none".to_owned(), Key::fingerprint);
    match store.get_meta(META_PEPPER).await? {
        Some(have) if have != fp => Err(Error::GalleryMismatch(format!(
            "the store was written with pepper {have}, the configured pepper is {fp}"
        ))),
        Some(_) => Ok(()),
        None => store.put_meta(META_PEPPER, &fp).await,
    }
}
