//! Settings of the server side of federated training.

use serde::{Deserialize, Serialize};

use crate::{FedError, Result};

/// User-level differential privacy: each client's update is clipped to `clip_norm` (L2, over
/// the whole model), all clients count equally, and Gaussian noise of standard deviation
/// `noise_multiplier × clip_norm` is added to the sum before it is divided by the expected
/// number of clients (DP-FedAvg, McMahan et al. 2018). Clients are sampled independently with
/// probability `clients_per_round / registered` (Poisson sampling, as the accountant assumes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpConfig {
    /// Largest L2 norm of one client's update; larger ones are scaled down to it.
    pub clip_norm: f32,
    /// Noise standard deviation in units of `clip_norm`.
    pub noise_multiplier: f64,
}

/// How the coordinator runs rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FedConfig {
    /// Clients sampled per round (the expected number under differential privacy).
    pub clients_per_round: usize,
    /// Fewest accepted updates that change the model; a round with fewer leaves it as it was.
    pub min_updates: usize,
    /// Other clients' hashmaps relayed to each sampled client as negatives (0: positives only).
    pub negatives: usize,
    /// Relay the registered hashmaps nearest to the client's own (hard negatives) instead of a
    /// uniform sample.
    #[serde(default)]
    pub hard_negatives: bool,
    /// Server learning rate: the aggregated update is scaled by it (1 = FedAvg).
    pub server_lr: f32,
    /// Server momentum on the aggregated update (0 = none; FedAvgM, Hsu et al. 2019).
    #[serde(default)]
    pub server_momentum: f32,
    /// Apply the aggregated update with Adam on the server (FedAdam, Reddi et al. 2021:
    /// β₁ 0.9, β₂ 0.99, τ 1e-3) at `server_lr`, instead of adding it (FedAvg).
    #[serde(default)]
    pub server_adam: bool,
    /// Step size of the server-side spreadout on the stored hashmaps after each round
    /// (0 = off; FedAwS).
    #[serde(default)]
    pub spreadout: f32,
    /// Without differential privacy, an update whose norm exceeds this multiple of the round's
    /// median norm is rejected as an outlier (0 = off; needs 3 or more updates).
    pub max_norm_ratio: f32,
    /// Clipped, noised updates (user-level differential privacy).
    #[serde(default)]
    pub dp: Option<DpConfig>,
    /// Seed of client sampling, negatives sampling and the privacy noise.
    pub seed: u64,
}

impl Default for FedConfig {
    fn default() -> Self {
        FedConfig {
            clients_per_round: 50,
            min_updates: 1,
            negatives: 64,
            hard_negatives: false,
            server_lr: 1.0,
            server_momentum: 0.0,
            server_adam: false,
            spreadout: 0.0,
            max_norm_ratio: 5.0,
            dp: None,
            seed: 0,
        }
    }
}

impl FedConfig {
    /// Checks every setting's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(FedError::Config(m));
        if self.clients_per_round == 0 {
            return bad("clients_per_round must be at least 1".into());
        }
        if self.min_updates == 0 {
            return bad("min_updates must be at least 1".into());
        }
        if !(self.server_lr.is_finite() && self.server_lr > 0.0) {
            return bad(format!("server_lr must be positive, not {}", self.server_lr));
        }
        if !(0.0..1.0).contains(&self.server_momentum) {
            return bad(format!(
                "server_momentum must be in [0, 1), not {}",
                self.server_momentum
            ));
        }
        if !(self.spreadout.is_finite() && self.spreadout >= 0.0) {
            return bad(format!(
                "spreadout must be 0 (off) or positive, not {}",
                self.spreadout
            ));
        }
        if !(self.max_norm_ratio.is_finite() && self.max_norm_ratio >= 0.0) {
            return bad(format!(
                "max_norm_ratio must be 0 (off) or positive, not {}",
                self.max_norm_ratio
            ));
        }
        if let Some(dp) = self.dp {
            if !(dp.clip_norm.is_finite() && dp.clip_norm > 0.0) {
                return bad(format!("dp.clip_norm must be positive, not {}", dp.clip_norm));
            }
            if !(dp.noise_multiplier.is_finite() && dp.noise_multiplier >= 0.0) {
                return bad(format!(
                    "dp.noise_multiplier must be 0 or positive, not {}",
                    dp.noise_multiplier
                ));
            }
        }
        Ok(())
    }
}
