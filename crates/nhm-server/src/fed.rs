//! Federated training served over HTTP: one [`Coordinator`] behind a lock, its rounds driven by
//! [`Fed::tick`], its state under `state_dir`.
//!
//! - **start**: a `state_dir` holding `coordinator.json` is resumed ([`Coordinator::load`]: the
//!   model, the registered clients' hashmaps, the counts, the round number); otherwise the
//!   coordinator starts from `initial_model` and is saved at once.
//! - **rounds**: [`Fed::tick`] (run at the start of every `/v1/fed` request and by the
//!   server's ticker every [`TICK_INTERVAL`]) opens a round once `min_clients` are registered
//!   and fewer than `max_rounds` have closed, and closes the open round when every sampled
//!   client answered or `round_timeout_secs` passed (the silent ones count as dropped).
//! - **durability**: after every closed round the state is saved (each file written to a
//!   temporary name and renamed); new registrations are saved by a later tick, at most once
//!   per [`TICK_INTERVAL`]. An open round is not saved: after a restart the same round is
//!   opened again (same seed, same sample) and its sampled clients send their updates again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nhm_fed::wire::{StatusResponse, TaskResponse, UpdateRequest};
use nhm_fed::{Coordinator, EventCounts, Rejection, Weights};

use crate::config::FedSettings;
use crate::error::{Error, Result};

/// How often the server's ticker drives the rounds.
pub const TICK_INTERVAL: Duration = Duration::from_millis(500);

/// The file whose presence in `state_dir` means "resume".
const STATE_FILE: &str = "coordinator.json";

/// The coordinator and what the rounds need beside it.
struct Inner {
    coordinator: Coordinator,
    /// When the open round opened.
    opened_at: Option<Instant>,
    /// Registrations changed since the last save.
    dirty: bool,
    /// The last save (registrations are saved at most once per [`TICK_INTERVAL`]).
    saved_at: Instant,
}

/// Figures of federated training for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FedSnapshot {
    /// The coordinator's event counts (`malformed` includes updates that did not decode).
    pub counts: EventCounts,
    /// Rounds closed so far.
    pub rounds_closed: u64,
    /// Registered clients.
    pub clients: usize,
    /// The open round, if any.
    pub open_round: Option<u64>,
}

/// Federated training: the coordinator, its settings and its state directory.
pub struct Fed {
    settings: FedSettings,
    state_dir: PathBuf,
    inner: Arc<tokio::sync::Mutex<Inner>>,
    /// Updates refused before they reached the coordinator (not base64, not safetensors).
    undecodable: AtomicU64,
}

impl std::fmt::Debug for Fed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fed")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// The short name of a rejection (audit details, logs).
pub fn rejection_code(r: &Rejection) -> &'static str {
    match r {
        Rejection::WrongRound { .. } => "wrong_round",
        Rejection::NotSampled(_) => "not_sampled",
        Rejection::Duplicate(_) => "duplicate",
        Rejection::Malformed(_) => "malformed",
        Rejection::NonFinite(_) => "non_finite",
        Rejection::BadHashmap(_) => "bad_hashmap",
        Rejection::BadSamples(_) => "bad_samples",
    }
}

impl Fed {
    /// Resumes the coordinator saved in `state_dir`, or creates it from `initial_model` and saves
    /// it. Reads files: call it at start-up (or from a blocking task).
    pub fn open(settings: &FedSettings) -> Result<Fed> {
        settings.validate()?;
        let state_dir = settings.state_dir.clone().ok_or_else(|| {
            Error::Config("[fed] state_dir is not set (`nhm serve` defaults it to DATA/fed)".into())
        })?;
        let coordinator = if state_dir.join(STATE_FILE).exists() {
            let c = Coordinator::load(&state_dir)?;
            if c.dim() != settings.dim {
                return Err(Error::Config(format!(
                    "[fed] dim is {}, but the coordinator saved in {} trains hashmaps of {}",
                    settings.dim,
                    state_dir.display(),
                    c.dim()
                )));
            }
            if *c.config() != settings.protocol() {
                tracing::warn!(
                    state_dir = %state_dir.display(),
                    "the saved coordinator's settings differ from [fed]; the saved ones are used"
                );
            }
            tracing::info!(
                rounds_closed = c.rounds_closed(),
                clients = c.clients(),
                "federated training resumed"
            );
            c
        } else {
            let path = &settings.initial_model;
            let bytes = std::fs::read(path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            let initial = Weights::from_safetensors(&bytes)
                .map_err(|e| Error::Config(format!("[fed] initial_model {}: {e}", path.display())))?;
            let c = Coordinator::new(initial, settings.dim, settings.protocol())?;
            c.save(&state_dir)?;
            tracing::info!(state_dir = %state_dir.display(), "federated training started from the initial model");
            c
        };
        Ok(Fed {
            settings: settings.clone(),
            state_dir,
            inner: Arc::new(tokio::sync::Mutex::new(Inner {
                coordinator,
                opened_at: None,
                dirty: false,
                saved_at: Instant::now(),
            })),
            undecodable: AtomicU64::new(0),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &FedSettings {
        &self.settings
    }

    /// Runs `f` on the coordinator in a blocking task (aggregation, checks and saving scale with
    /// the model), holding the lock throughout.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner, &FedSettings, &std::path::Path) -> T + Send + 'static,
    ) -> Result<T> {
        let mut guard = self.inner.clone().lock_owned().await;
        let settings = self.settings.clone();
        let dir = self.state_dir.clone();
        Ok(tokio::task::spawn_blocking(move || f(&mut guard, &settings, &dir)).await?)
    }

    /// Drives the rounds: closes the open round when every sampled client answered or the
    /// timeout passed (then saves), opens the next when enough clients are registered and
    /// `max_rounds` is not reached, and saves new registrations.
    pub async fn tick(&self) -> Result<()> {
        self.blocking(tick_locked).await?
    }

    /// Registers (or re-registers) `client` with its training hashmap.
    pub async fn join(&self, client: &str, hashmap: Vec<f32>) -> Result<StatusResponse, Rejection> {
        let mut inner = self.inner.lock().await;
        inner.coordinator.register(client, hashmap)?;
        inner.dirty = true;
        Ok(self.status_of(&inner, client))
    }

    /// Where training stands, for `client`.
    pub async fn status(&self, client: &str) -> StatusResponse {
        let inner = self.inner.lock().await;
        self.status_of(&inner, client)
    }

    fn status_of(&self, inner: &Inner, client: &str) -> StatusResponse {
        let c = &inner.coordinator;
        StatusResponse {
            rounds_closed: c.rounds_closed(),
            open_round: c.open_round_number(),
            max_rounds: self.settings.max_rounds,
            clients: c.clients(),
            dim: c.dim(),
            has_task: c.task(client).is_some(),
        }
    }

    /// The global model as safetensors bytes, with the number of rounds closed (its version).
    pub async fn model(&self) -> (u64, Arc<Vec<u8>>) {
        let inner = self.inner.lock().await;
        (
            inner.coordinator.rounds_closed(),
            inner.coordinator.global_bytes(),
        )
    }

    /// `client`'s task in the open round, if it has one.
    pub async fn task(&self, client: &str) -> Option<TaskResponse> {
        let inner = self.inner.lock().await;
        inner.coordinator.task(client).map(|t| TaskResponse {
            round: t.round,
            negatives: t.negatives,
            own: t.own,
        })
    }

    /// Decodes and submits `client`'s update; the inner result is the coordinator's verdict.
    /// A round whose last sampled client just answered is closed at once.
    pub async fn submit(&self, client: &str, req: UpdateRequest) -> Result<Result<(), Rejection>> {
        let update = match tokio::task::spawn_blocking(move || req.into_update()).await? {
            Ok(u) => u,
            Err(why) => {
                self.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(client, reason = %why, "federated update rejected");
                return Ok(Err(why));
            }
        };
        let client = client.to_owned();
        let verdict = self
            .blocking(move |inner, _, _| inner.coordinator.submit(&client, update))
            .await?;
        if verdict.is_ok() {
            self.tick().await?;
        }
        Ok(verdict)
    }

    /// The counts and figures for `/metrics`.
    pub async fn snapshot(&self) -> FedSnapshot {
        let inner = self.inner.lock().await;
        let c = &inner.coordinator;
        let mut counts = c.counts().clone();
        counts.malformed += self.undecodable.load(Ordering::Relaxed);
        FedSnapshot {
            counts,
            rounds_closed: c.rounds_closed(),
            clients: c.clients(),
            open_round: c.open_round_number(),
        }
    }
}

/// One tick under the lock (see [`Fed::tick`]).
fn tick_locked(inner: &mut Inner, settings: &FedSettings, dir: &std::path::Path) -> Result<()> {
    let timeout = Duration::from_secs(settings.round_timeout_secs);
    let c = &mut inner.coordinator;
    if c.open_round_number().is_some() {
        let answered = c.all_answered();
        let timed_out = inner.opened_at.is_none_or(|t| t.elapsed() >= timeout);
        if !(answered || timed_out) {
            return save_if_dirty(inner, dir);
        }
        if let Some(s) = c.close_round() {
            inner.opened_at = None;
            tracing::info!(
                round = s.round,
                sampled = s.sampled,
                accepted = s.accepted,
                dropped = s.dropped,
                outliers = s.outliers,
                applied = s.applied,
                mean_update_norm = s.mean_update_norm,
                bytes_down_per_client = s.bytes_down_per_client,
                bytes_up_per_client = s.bytes_up_per_client,
                timed_out = !answered,
                "federated round closed"
            );
            c.save(dir)?;
            inner.dirty = false;
            inner.saved_at = Instant::now();
        }
    }
    let c = &mut inner.coordinator;
    if c.rounds_closed() < settings.max_rounds && c.clients() >= settings.min_clients {
        let sampled = c.open_round()?;
        inner.opened_at = Some(Instant::now());
        tracing::info!(
            round = c.open_round_number(),
            sampled = sampled.len(),
            clients = c.clients(),
            "federated round opened"
        );
    }
    save_if_dirty(inner, dir)
}

/// Saves new registrations, at most once per [`TICK_INTERVAL`] (joins arrive in bursts and
/// every save writes the model too).
fn save_if_dirty(inner: &mut Inner, dir: &std::path::Path) -> Result<()> {
    if inner.dirty && inner.saved_at.elapsed() >= TICK_INTERVAL {
        inner.coordinator.save(dir)?;
        inner.dirty = false;
        inner.saved_at = Instant::now();
    }
    Ok(())
}
