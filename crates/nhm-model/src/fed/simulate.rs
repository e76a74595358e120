//! Many federated clients in one process, through the same coordinator the service runs.

use std::time::Instant;

use nhm_data::Dataset;
use nhm_fed::{Coordinator, EventCounts, FedConfig, RoundSummary};
use serde::{Deserialize, Serialize};

use super::{encoder_from_weights, encoder_weights, FedClient, LocalConfig};
use crate::train::Validator;
use crate::{Encoder, Result};

/// What a simulation runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// The coordinator's settings (sampling, negatives, aggregation, privacy).
    pub fed: FedConfig,
    /// Each client's local training.
    pub local: LocalConfig,
    /// Rounds to run.
    pub rounds: usize,
    /// Validate every this many rounds (and after the last).
    pub eval_every: usize,
    /// δ of the reported (ε, δ) under differential privacy.
    pub delta: f64,
    /// Most non-mated validation pairs.
    pub max_val_impostor_pairs: usize,
}

/// Figures after one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimRound {
    /// The coordinator's summary.
    pub summary: RoundSummary,
    /// Validation EER after the round, when validated.
    pub val_eer: Option<f64>,
    /// User-level ε spent so far, under differential privacy.
    pub epsilon: Option<f64>,
    /// Wall time of the round, seconds.
    pub seconds: f64,
}

/// What [`simulate`] returns.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    /// The final global encoder.
    pub encoder: Encoder,
    /// Every round's figures.
    pub rounds: Vec<SimRound>,
    /// The coordinator's event counts.
    pub counts: EventCounts,
    /// Validation EER of the starting model.
    pub initial_val_eer: Option<f64>,
}

/// Runs `cfg.rounds` federated rounds: every client registers its hashmap under `init`, then
/// each round the coordinator samples clients, each sampled client trains on its own samples
/// against the relayed negatives and submits, and the coordinator aggregates. `val` (prepared
/// images of subjects no client holds) gives the EER. Local randomness comes from `fed.seed`.
pub fn simulate(
    init: &Encoder,
    clients: &[FedClient],
    val: &Dataset,
    cfg: &SimConfig,
    on_round: &mut dyn FnMut(&SimRound),
) -> Result<SimOutcome> {
    cfg.local.validate()?;
    let enc_cfg = init.config().clone();
    let input = init.input().clone();
    let validator = Validator::new(val, enc_cfg.input_size, cfg.max_val_impostor_pairs, cfg.fed.seed)?;
    let mut coord = Coordinator::new(encoder_weights(init)?, enc_cfg.embedding_dim, cfg.fed.clone())?;
    for c in clients {
        coord
            .register(c.id(), c.hashmap(init)?)
            .map_err(|e| crate::Error::invalid("client hashmap", e.to_string()))?;
    }
    let initial_val_eer = validator.as_ref().map(|v| v.eer(init)).transpose()?;
    let by_id: std::collections::HashMap<&str, &FedClient> = clients.iter().map(|c| (c.id(), c)).collect();
    let mut rounds = Vec::with_capacity(cfg.rounds);
    let mut encoder = init.clone();
    for r in 0..cfg.rounds {
        let t = Instant::now();
        let sampled = coord.open_round()?;
        let global = coord.global().clone();
        for id in &sampled {
            let (Some(client), Some(task)) = (by_id.get(id.as_str()), coord.task(id)) else {
                continue;
            };
            let update = client.train(&enc_cfg, &global, &task, &cfg.local, cfg.fed.seed)?;
            if let Err(why) = coord.submit(id, update) {
                tracing::warn!(client = %id, %why, "simulated update rejected");
            }
        }
        let summary = coord.close_round().ok_or(nhm_fed::FedError::NoOpenRound)?;
        let last = r + 1 == cfg.rounds;
        encoder = encoder_from_weights(&enc_cfg, input.clone(), coord.global())?;
        let val_eer = match &validator {
            Some(v) if last || (cfg.eval_every > 0 && (r + 1) % cfg.eval_every == 0) => {
                Some(v.eer(&encoder)?)
            }
            _ => None,
        };
        let epsilon = coord.epsilon(cfg.delta)?.map(|e| e.epsilon);
        let round = SimRound {
            summary,
            val_eer,
            epsilon,
            seconds: t.elapsed().as_secs_f64(),
        };
        on_round(&round);
        rounds.push(round);
    }
    Ok(SimOutcome {
        encoder,
        rounds,
        counts: coord.counts().clone(),
        initial_val_eer,
    })
}
