//! The server side of a federated round: sampling, tasks, update checks, aggregation, state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::accountant;
use crate::{FedConfig, FedError, Result, Weights};

/// What a sampled client is asked to do in a round (the model itself is fetched separately).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The round the update must name.
    pub round: u64,
    /// Other clients' current training hashmaps (unit vectors), to push away from.
    pub negatives: Vec<Vec<f32>>,
    /// The client's own hashmap as the coordinator holds it (after any spreadout): the point
    /// its samples are pulled towards by proxy losses.
    pub own: Option<Vec<f32>>,
}

/// A client's answer to a [`Task`].
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    /// The round it answers.
    pub round: u64,
    /// New local weights minus the round's global weights.
    pub delta: Weights,
    /// Samples the client trained on (FedAvg's weight).
    pub samples: u32,
    /// The client's new training hashmap (the normalised mean of its embeddings).
    pub hashmap: Vec<f32>,
}

/// Why an update (or a registration) was refused. The round goes on without it; the count of
/// each kind is kept in [`EventCounts`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The update names a round that is not the open one.
    #[error("the update is for round {got}, the open round is {open:?}")]
    WrongRound {
        /// The round named.
        got: u64,
        /// The open round, if any.
        open: Option<u64>,
    },
    /// The client was not sampled in this round.
    #[error("client {0:?} was not sampled in this round")]
    NotSampled(String),
    /// The client already sent its update this round.
    #[error("client {0:?} already sent an update this round")]
    Duplicate(String),
    /// The update is not a model of the global model's layout.
    #[error("malformed update: {0}")]
    Malformed(String),
    /// The update holds NaN or infinite values.
    #[error("the update holds a non-finite value in tensor {0:?}")]
    NonFinite(String),
    /// The hashmap has the wrong length or non-finite or all-zero values.
    #[error("bad hashmap: {0}")]
    BadHashmap(String),
    /// The sample count is 0 or implausibly large.
    #[error("bad sample count {0} (1..=10000)")]
    BadSamples(u32),
}

/// How often each event happened since the coordinator was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    /// Updates aggregated.
    pub accepted: u64,
    /// Updates for a round other than the open one.
    pub wrong_round: u64,
    /// Updates from clients not sampled.
    pub not_sampled: u64,
    /// Second updates from one client in one round.
    pub duplicate: u64,
    /// Updates that are not safetensors of the model's layout.
    pub malformed: u64,
    /// Updates with NaN or infinite values.
    pub non_finite: u64,
    /// Updates refused as far larger than the round's others.
    pub outlier: u64,
    /// Bad hashmaps or sample counts.
    pub bad_fields: u64,
    /// Sampled clients that sent nothing before the round closed (disconnected).
    pub dropped: u64,
    /// Rounds that closed with too few updates and left the model unchanged.
    pub empty_rounds: u64,
}

/// Figures of one closed round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// The round.
    pub round: u64,
    /// Clients sampled.
    pub sampled: usize,
    /// Updates aggregated.
    pub accepted: usize,
    /// Sampled clients that sent nothing.
    pub dropped: usize,
    /// Updates refused as outliers at closing.
    pub outliers: usize,
    /// Whether the model changed (enough updates arrived).
    pub applied: bool,
    /// Mean L2 norm of the aggregated updates (before clipping).
    pub mean_update_norm: f64,
    /// Bytes each sampled client received (model and negatives, as sent on the wire).
    pub bytes_down_per_client: u64,
    /// Bytes each client sent (update and hashmap, as sent on the wire).
    pub bytes_up_per_client: u64,
}

/// A round between opening and closing.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenRound {
    round: u64,
    sampled: BTreeSet<String>,
    #[serde(skip)]
    received: BTreeMap<String, ClientUpdateKept>,
}

#[derive(Debug, Clone)]
struct ClientUpdateKept {
    delta: Weights,
    samples: u32,
    hashmap: Vec<f32>,
}

/// The persistent part of a coordinator (`coordinator.json`).
#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    format: String,
    config: FedConfig,
    dim: usize,
    round: u64,
    hashmaps: BTreeMap<String, Vec<f32>>,
    counts: EventCounts,
    history: Vec<RoundSummary>,
    dp_rounds: u64,
    dp_rates: Vec<f64>,
}

const STATE_FORMAT: &str = "nhm-fed-coordinator/1";
const STATE_FILE: &str = "coordinator.json";
const MODEL_FILE: &str = "model.safetensors";
const MOMENTUM_FILE: &str = "momentum.safetensors";
const ADAM_M_FILE: &str = "adam_m.safetensors";
const ADAM_V_FILE: &str = "adam_v.safetensors";

/// The server side of federated training: the global model, every registered client's current
/// training hashmap, and the open round.
///
/// One round: [`open_round`](Self::open_round) samples clients; each sampled client gets a
/// [`task`](Self::task) (relayed negatives) and the model bytes, trains locally and sends a
/// [`ClientUpdate`] to [`submit`](Self::submit), which checks it and keeps it or rejects it;
/// [`close_round`](Self::close_round) aggregates what arrived. Clients that never answer are
/// counted as dropped; the model only ever changes by an aggregate of checked updates.
#[derive(Debug)]
pub struct Coordinator {
    config: FedConfig,
    global: Weights,
    global_bytes: std::sync::Arc<Vec<u8>>,
    momentum: Option<Weights>,
    /// FedAdam's first and second moments.
    adam: Option<(Weights, Weights)>,
    dim: usize,
    round: u64,
    open: Option<OpenRound>,
    hashmaps: BTreeMap<String, Vec<f32>>,
    counts: EventCounts,
    history: Vec<RoundSummary>,
    /// Sampling rate of each round run under differential privacy (for the accountant).
    dp_rates: Vec<f64>,
}

impl Coordinator {
    /// A coordinator starting from `initial` weights, for training hashmaps of `dim` values.
    pub fn new(initial: Weights, dim: usize, config: FedConfig) -> Result<Coordinator> {
        config.validate()?;
        if dim == 0 {
            return Err(FedError::Config("the hashmap dimension must be positive".into()));
        }
        if let Some(name) = initial.first_non_finite() {
            return Err(FedError::Config(format!(
                "the initial model holds a non-finite value in {name:?}"
            )));
        }
        let global_bytes = std::sync::Arc::new(initial.to_safetensors());
        Ok(Coordinator {
            config,
            global: initial,
            global_bytes,
            momentum: None,
            adam: None,
            dim,
            round: 0,
            open: None,
            hashmaps: BTreeMap::new(),
            counts: EventCounts::default(),
            history: Vec::new(),
            dp_rates: Vec::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &FedConfig {
        &self.config
    }

    /// The current global weights.
    pub fn global(&self) -> &Weights {
        &self.global
    }

    /// The current global weights as the safetensors bytes clients download.
    pub fn global_bytes(&self) -> std::sync::Arc<Vec<u8>> {
        self.global_bytes.clone()
    }

    /// Rounds closed so far.
    pub fn rounds_closed(&self) -> u64 {
        self.round
    }

    /// The open round's number, if one is open.
    pub fn open_round_number(&self) -> Option<u64> {
        self.open.as_ref().map(|o| o.round)
    }

    /// Whether every client sampled in the open round has answered.
    pub fn all_answered(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.received.len() == o.sampled.len())
    }

    /// The training hashmap length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Registered clients.
    pub fn clients(&self) -> usize {
        self.hashmaps.len()
    }

    /// Event counts since creation.
    pub fn counts(&self) -> &EventCounts {
        &self.counts
    }

    /// Every closed round's figures.
    pub fn history(&self) -> &[RoundSummary] {
        &self.history
    }

    /// Registers a client (or replaces its hashmap) with its training hashmap under the current
    /// model. Only registered clients are sampled and relayed.
    pub fn register(&mut self, client: &str, hashmap: Vec<f32>) -> Result<(), Rejection> {
        let h = self
            .check_hashmap(hashmap)
            .inspect_err(|_| self.counts.bad_fields += 1)?;
        self.hashmaps.insert(client.to_string(), h);
        Ok(())
    }

    fn check_hashmap(&self, mut h: Vec<f32>) -> Result<Vec<f32>, Rejection> {
        if h.len() != self.dim {
            return Err(Rejection::BadHashmap(format!(
                "{} values where {} were expected",
                h.len(),
                self.dim
            )));
        }
        if h.iter().any(|v| !v.is_finite()) {
            return Err(Rejection::BadHashmap("non-finite value".into()));
        }
        let norm = h.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm < 1e-6 {
            return Err(Rejection::BadHashmap("all values are zero".into()));
        }
        h.iter_mut().for_each(|v| *v /= norm);
        Ok(h)
    }

    /// Opens the next round: samples clients (a fixed number, or each independently with
    /// probability `clients_per_round / registered` under differential privacy) from a
    /// generator seeded with `(seed, round)`. An open round is closed first.
    pub fn open_round(&mut self) -> Result<Vec<String>> {
        if self.open.is_some() {
            self.close_round();
        }
        let n = self.hashmaps.len();
        if n < self.config.min_updates.max(2) {
            return Err(FedError::TooFewClients {
                have: n,
                need: self.config.min_updates.max(2),
            });
        }
        let round = self.round + 1;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.config.seed, round, 0x5A3D));
        let ids: Vec<&String> = self.hashmaps.keys().collect();
        let sampled: BTreeSet<String> = if self.config.dp.is_some() {
            let q = self.sampling_rate();
            ids.into_iter()
                .filter(|_| rng.gen::<f64>() < q)
                .cloned()
                .collect()
        } else {
            ids.choose_multiple(&mut rng, self.config.clients_per_round.min(n))
                .map(|s| (*s).clone())
                .collect()
        };
        let list = sampled.iter().cloned().collect();
        self.open = Some(OpenRound {
            round,
            sampled,
            received: BTreeMap::new(),
        });
        Ok(list)
    }

    /// The Poisson sampling rate under differential privacy.
    fn sampling_rate(&self) -> f64 {
        (self.config.clients_per_round as f64 / self.hashmaps.len().max(1) as f64).min(1.0)
    }

    /// The open round's task for `client`: `None` when no round is open, the client was not
    /// sampled, or it has already answered.
    pub fn task(&self, client: &str) -> Option<Task> {
        let open = self.open.as_ref()?;
        if !open.sampled.contains(client) || open.received.contains_key(client) {
            return None;
        }
        Some(Task {
            round: open.round,
            negatives: self.negatives_for(client, open.round),
            own: self.hashmaps.get(client).cloned(),
        })
    }

    /// Other clients' hashmaps for `client`: a seeded uniform sample, or the nearest ones.
    fn negatives_for(&self, client: &str, round: u64) -> Vec<Vec<f32>> {
        let k = self.config.negatives;
        if k == 0 {
            return Vec::new();
        }
        let others: Vec<&Vec<f32>> = self
            .hashmaps
            .iter()
            .filter(|(id, _)| id.as_str() != client)
            .map(|(_, h)| h)
            .collect();
        match (self.config.hard_negatives, self.hashmaps.get(client)) {
            (true, Some(own)) => {
                let mut scored: Vec<(f32, &Vec<f32>)> = others
                    .into_iter()
                    .map(|h| (h.iter().zip(own).map(|(a, b)| a * b).sum::<f32>(), h))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                scored.into_iter().take(k).map(|(_, h)| h.clone()).collect()
            }
            _ => {
                let tag = u64::from_le_bytes(
                    blake3::hash(client.as_bytes()).as_bytes()[..8]
                        .try_into()
                        .unwrap_or([0; 8]),
                );
                let mut rng = ChaCha8Rng::seed_from_u64(mix(self.config.seed, round, tag));
                others
                    .choose_multiple(&mut rng, k.min(others.len()))
                    .map(|h| (*h).clone())
                    .collect()
            }
        }
    }

    /// Checks and keeps `client`'s update for the open round. A rejected update changes
    /// nothing but the event counts, and is logged.
    pub fn submit(&mut self, client: &str, update: ClientUpdate) -> Result<(), Rejection> {
        let result = self.check_update(client, update);
        match &result {
            Ok(kept) => {
                let kept = kept.clone();
                if let Some(open) = self.open.as_mut() {
                    open.received.insert(client.to_string(), kept);
                }
            }
            Err(why) => {
                let c = &mut self.counts;
                match why {
                    Rejection::WrongRound { .. } => c.wrong_round += 1,
                    Rejection::NotSampled(_) => c.not_sampled += 1,
                    Rejection::Duplicate(_) => c.duplicate += 1,
                    Rejection::Malformed(_) => c.malformed += 1,
                    Rejection::NonFinite(_) => c.non_finite += 1,
                    Rejection::BadHashmap(_) | Rejection::BadSamples(_) => c.bad_fields += 1,
                }
                tracing::warn!(client, reason = %why, "federated update rejected");
            }
        }
        result.map(|_| ())
    }

    fn check_update(&self, client: &str, u: ClientUpdate) -> Result<ClientUpdateKept, Rejection> {
        let open = self.open.as_ref();
        let open = match open {
            Some(o) if o.round == u.round => o,
            _ => {
                return Err(Rejection::WrongRound {
                    got: u.round,
                    open: open.map(|o| o.round),
                })
            }
        };
        if !open.sampled.contains(client) {
            return Err(Rejection::NotSampled(client.to_string()));
        }
        if open.received.contains_key(client) {
            return Err(Rejection::Duplicate(client.to_string()));
        }
        if let Some(why) = self.global.layout_difference(&u.delta) {
            return Err(Rejection::Malformed(why));
        }
        if let Some(name) = u.delta.first_non_finite() {
            return Err(Rejection::NonFinite(name.to_string()));
        }
        if u.samples == 0 || u.samples > 10_000 {
            return Err(Rejection::BadSamples(u.samples));
        }
        let hashmap = self.check_hashmap(u.hashmap)?;
        Ok(ClientUpdateKept {
            delta: u.delta,
            samples: u.samples,
            hashmap,
        })
    }

    /// Closes the open round: drops outliers (or clips and noises, under differential privacy),
    /// aggregates, applies the server step, stores the answering clients' new hashmaps, and
    /// returns the round's figures. With fewer than `min_updates` updates the model is left
    /// unchanged. Without an open round, returns `None`.
    pub fn close_round(&mut self) -> Option<RoundSummary> {
        let open = self.open.take()?;
        let sampled = open.sampled.len();
        let dropped = sampled - open.received.len();
        self.counts.dropped += dropped as u64;
        if dropped > 0 {
            tracing::warn!(round = open.round, dropped, "sampled clients sent no update");
        }
        let mut updates: Vec<(String, ClientUpdateKept, f64)> = open
            .received
            .into_iter()
            .map(|(id, u)| {
                let n = u.delta.norm();
                (id, u, n)
            })
            .collect();
        let mut outliers = 0;
        if self.config.dp.is_none() && self.config.max_norm_ratio > 0.0 && updates.len() >= 3 {
            let mut norms: Vec<f64> = updates.iter().map(|u| u.2).collect();
            norms.sort_by(f64::total_cmp);
            let median = norms[norms.len() / 2];
            let limit = median * self.config.max_norm_ratio as f64;
            updates.retain(|(id, _, n)| {
                let keep = *n <= limit;
                if !keep {
                    tracing::warn!(client = %id, norm = n, limit, "update rejected as an outlier");
                }
                keep
            });
            outliers = norms.len() - updates.len();
            self.counts.outlier += outliers as u64;
        }
        let mean_update_norm = if updates.is_empty() {
            0.0
        } else {
            updates.iter().map(|u| u.2).sum::<f64>() / updates.len() as f64
        };
        let applied = updates.len() >= self.config.min_updates;
        if applied {
            let step = self.aggregate(&updates, open.round);
            let m = self.config.server_momentum;
            let step = match &mut self.momentum {
                _ if m == 0.0 => step,
                Some(v) => {
                    v.scale(m);
                    v.add_scaled(&step, 1.0);
                    v.clone()
                }
                None => {
                    self.momentum = Some(step.clone());
                    step
                }
            };
            if self.config.server_adam {
                let (m, v) = self
                    .adam
                    .get_or_insert_with(|| (step.zeros_like(), step.zeros_like()));
                self.global
                    .adam_step(m, v, &step, self.config.server_lr, 0.9, 0.99, 1e-3);
            } else {
                self.global.add_scaled(&step, self.config.server_lr);
            }
            self.global_bytes = std::sync::Arc::new(self.global.to_safetensors());
            self.counts.accepted += updates.len() as u64;
            for (id, u, _) in &updates {
                self.hashmaps.insert(id.clone(), u.hashmap.clone());
            }
            if self.config.spreadout > 0.0 {
                self.spread_out();
            }
        } else {
            self.counts.empty_rounds += 1;
            tracing::warn!(
                round = open.round,
                accepted = updates.len(),
                "too few updates: the model is unchanged"
            );
        }
        let model_bytes = self.global_bytes.len() as u64;
        let hashmap_bytes = (self.dim * 4) as u64;
        let summary = RoundSummary {
            round: open.round,
            sampled,
            accepted: if applied { updates.len() } else { 0 },
            dropped,
            outliers,
            applied,
            mean_update_norm,
            bytes_down_per_client: model_bytes + self.config.negatives as u64 * hashmap_bytes,
            bytes_up_per_client: model_bytes + hashmap_bytes,
        };
        self.round = open.round;
        self.history.push(summary.clone());
        Some(summary)
    }

    /// The server-side spreadout of FedAwS (Yu et al. 2020), on the stored hashmaps: one step
    /// that moves each hashmap away from those it has a positive cosine with,
    /// `hᵢ ← normalise(hᵢ − η Σⱼ max(0, hᵢ·hⱼ) hⱼ / n)`. Clients then pull their samples
    /// towards their spread-out hashmap, so identities separate although no client sees another.
    fn spread_out(&mut self) {
        let ids: Vec<String> = self.hashmaps.keys().cloned().collect();
        let h: Vec<Vec<f32>> = ids.iter().map(|id| self.hashmaps[id].clone()).collect();
        let n = h.len();
        let eta = self.config.spreadout / n.max(1) as f32;
        for (i, id) in ids.iter().enumerate() {
            let mut g = vec![0f32; self.dim];
            for (j, hj) in h.iter().enumerate() {
                if i == j {
                    continue;
                }
                let c: f32 = h[i].iter().zip(hj).map(|(a, b)| a * b).sum();
                if c > 0.0 {
                    g.iter_mut().zip(hj).for_each(|(gv, b)| *gv += c * b);
                }
            }
            let mut new: Vec<f32> = h[i].iter().zip(&g).map(|(a, b)| a - eta * b).collect();
            let norm = new.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            new.iter_mut().for_each(|v| *v /= norm);
            self.hashmaps.insert(id.clone(), new);
        }
    }

    /// The round's aggregate update: sample-weighted mean (FedAvg), or under differential
    /// privacy the clipped sum plus Gaussian noise over the expected client count.
    fn aggregate(&mut self, updates: &[(String, ClientUpdateKept, f64)], round: u64) -> Weights {
        let mut sum = self.global.zeros_like();
        match self.config.dp {
            None => {
                let total: f64 = updates.iter().map(|u| u.1.samples as f64).sum();
                for (_, u, _) in updates {
                    sum.add_scaled(&u.delta, (u.samples as f64 / total) as f32);
                }
            }
            Some(dp) => {
                let q = self.sampling_rate();
                self.dp_rates.push(q);
                for (_, u, n) in updates {
                    let factor = if *n > dp.clip_norm as f64 {
                        (dp.clip_norm as f64 / n) as f32
                    } else {
                        1.0
                    };
                    sum.add_scaled(&u.delta, factor);
                }
                let sd = dp.noise_multiplier * dp.clip_norm as f64;
                let mut rng = ChaCha8Rng::seed_from_u64(mix(self.config.seed, round, 0xD1FF));
                sum.add_each(|| (sd * standard_normal(&mut rng)) as f32);
                let expected = (q * self.hashmaps.len() as f64).max(1.0);
                sum.scale((1.0 / expected) as f32);
            }
        }
        sum
    }

    /// The (ε, δ) user-level privacy spent so far, from the rounds run under differential
    /// privacy (`None` without it). Rounds are accounted at the largest sampling rate used.
    pub fn epsilon(&self, delta: f64) -> Result<Option<accountant::Epsilon>> {
        let Some(dp) = self.config.dp else {
            return Ok(None);
        };
        let q = self.dp_rates.iter().copied().fold(0.0, f64::max);
        let steps = self.dp_rates.len() as u64;
        if steps == 0 {
            return Ok(Some(accountant::Epsilon {
                epsilon: 0.0,
                order: 0.0,
            }));
        }
        Ok(Some(accountant::epsilon(q, dp.noise_multiplier, steps, delta)?))
    }

    /// Writes the model and state to `dir` (each file atomically: a crash leaves the previous
    /// complete state). An open round is not saved: after a restart it is opened again.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| state_err(dir, e))?;
        write_atomic(&dir.join(MODEL_FILE), &self.global_bytes)?;
        if let Some(m) = &self.momentum {
            write_atomic(&dir.join(MOMENTUM_FILE), &m.to_safetensors())?;
        }
        if let Some((m, v)) = &self.adam {
            write_atomic(&dir.join(ADAM_M_FILE), &m.to_safetensors())?;
            write_atomic(&dir.join(ADAM_V_FILE), &v.to_safetensors())?;
        }
        let state = SavedState {
            format: STATE_FORMAT.into(),
            config: self.config.clone(),
            dim: self.dim,
            round: self.round,
            hashmaps: self.hashmaps.clone(),
            counts: self.counts.clone(),
            history: self.history.clone(),
            dp_rounds: self.dp_rates.len() as u64,
            dp_rates: self.dp_rates.clone(),
        };
        let json = serde_json::to_vec(&state).map_err(|e| state_err(dir, e))?;
        write_atomic(&dir.join(STATE_FILE), &json)
    }

    /// Reads a state written by [`save`](Self::save).
    pub fn load(dir: &Path) -> Result<Coordinator> {
        let path = dir.join(STATE_FILE);
        let bytes = std::fs::read(&path).map_err(|e| state_err(&path, e))?;
        let s: SavedState = serde_json::from_slice(&bytes).map_err(|e| state_err(&path, e))?;
        if s.format != STATE_FORMAT {
            return Err(state_err(
                &path,
                format!("format {:?}, expected {STATE_FORMAT:?}", s.format),
            ));
        }
        let model_path = dir.join(MODEL_FILE);
        let model = std::fs::read(&model_path).map_err(|e| state_err(&model_path, e))?;
        let global = Weights::from_safetensors(&model)?;
        let mut c = Coordinator::new(global, s.dim, s.config)?;
        let mpath = dir.join(MOMENTUM_FILE);
        if mpath.exists() {
            let m = std::fs::read(&mpath).map_err(|e| state_err(&mpath, e))?;
            c.momentum = Some(Weights::from_safetensors(&m)?);
        }
        let (am, av) = (dir.join(ADAM_M_FILE), dir.join(ADAM_V_FILE));
        if am.exists() && av.exists() {
            let read = |p: &Path| -> Result<Weights> {
                Weights::from_safetensors(&std::fs::read(p).map_err(|e| state_err(p, e))?)
            };
            c.adam = Some((read(&am)?, read(&av)?));
        }
        c.round = s.round;
        c.hashmaps = s.hashmaps;
        c.counts = s.counts;
        c.history = s.history;
        c.dp_rates = s.dp_rates;
        Ok(c)
    }
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> FedError {
    FedError::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| state_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| state_err(path, e))
}

/// A seed from a base seed, a round and a tag (SplitMix64 finaliser over their mix).
fn mix(seed: u64, round: u64, tag: u64) -> u64 {
    let mut z = seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tag.rotate_left(29);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A standard normal draw (Box–Muller).
fn standard_normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
