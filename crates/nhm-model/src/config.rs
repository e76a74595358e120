//! Encoder architecture and training settings (serde; TOML files under `configs/`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use nhm_data::input::InputSpec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The default encoder's TOML (`configs/encoder-small.toml`), compiled in so that tools work
/// from any directory.
pub const ENCODER_SMALL_TOML: &str = include_str!("../../../configs/encoder-small.toml");
/// The larger encoder's TOML (`configs/encoder-base.toml`), compiled in.
pub const ENCODER_BASE_TOML: &str = include_str!("../../../configs/encoder-base.toml");

/// The encoder network's shape: a stack of conv stages, a pooled head and a linear projection to
/// an L2-normalised embedding.
///
/// Stage `i` is `convs_per_stage` × (3×3 conv → BatchNorm → ReLU) with `channels[i]` outputs,
/// followed by a 2×2 max-pool except after the last stage. The last feature map is average-pooled
/// to a `pool_grid`×`pool_grid` grid (1 = global average pooling), flattened, and projected to
/// `embedding_dim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Side of the square grayscale input, in pixels (images must already be this size).
    pub input_size: usize,
    /// Output channels of each stage; the number of stages is `channels.len()`.
    pub channels: Vec<usize>,
    /// Dimension `d` of the embedding (a power of two, for the hashmap transforms).
    pub embedding_dim: usize,
    /// Conv layers per stage (1 or more).
    #[serde(default = "one")]
    pub convs_per_stage: usize,
    /// Side of the average-pooled grid before the projection (1 = global average pooling);
    /// a grid above 1 keeps coarse spatial layout, which fingerprints need.
    #[serde(default = "one")]
    pub pool_grid: usize,
    /// Embed each image as the normalised mean of its own and its left-right mirror image's
    /// embeddings (at inference and validation, not in training steps): for faces, whose mirror
    /// image is the same person; never for fingerprints. Doubles the encoding cost.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror_average: bool,
    /// Fold each `f`×`f` block of input pixels into `f`² channels before the first stage
    /// (space-to-depth; 1 = off). Lossless, and the first stage then runs on a map `f` times
    /// smaller per side: at full resolution its memory-bound BatchNorm, ReLU and pooling and the
    /// one-channel weight gradient took more than half of the training time on a CPU.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub space_to_depth: usize,
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

fn one() -> usize {
    1
}

impl Default for EncoderConfig {
    /// The values of `configs/encoder-small.toml` (a test checks they agree).
    fn default() -> Self {
        EncoderConfig {
            input_size: 64,
            channels: vec![16, 32, 64, 128, 256],
            embedding_dim: 256,
            convs_per_stage: 1,
            pool_grid: 2,
            mirror_average: false,
            space_to_depth: 1,
        }
    }
}

impl EncoderConfig {
    /// The larger reference encoder (`configs/encoder-base.toml`).
    pub fn base() -> Result<Self> {
        Self::from_toml_str(ENCODER_BASE_TOML, Path::new("configs/encoder-base.toml"))
    }

    /// Reads and validates a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self> {
        let cfg: EncoderConfig = toml::from_str(text).map_err(|source| Error::Toml {
            path: origin.to_path_buf(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The configuration as TOML text.
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|source| Error::TomlWrite { source })
    }

    /// Writes the configuration as a TOML file.
    pub fn save_toml(&self, path: &Path) -> Result<()> {
        let text = self.to_toml_string()?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }

    /// A 32-px, two-stage encoder that trains in milliseconds: the unit tests' model.
    #[cfg(test)]
    pub(crate) fn tiny_for_tests() -> Self {
        EncoderConfig {
            input_size: 32,
            channels: vec![4, 8],
            embedding_dim: 16,
            convs_per_stage: 1,
            pool_grid: 2,
            mirror_average: false,
            space_to_depth: 1,
        }
    }

    /// Side of the last stage's feature map.
    pub fn final_map_size(&self) -> usize {
        (self.input_size / self.space_to_depth.max(1)) >> self.channels.len().saturating_sub(1)
    }

    /// Checks every field's range: a network that cannot be built is refused here, not in burn.
    pub fn validate(&self) -> Result<()> {
        if self.input_size < 32 || self.input_size > 1024 {
            return Err(Error::invalid(
                "input_size",
                format!("{} is outside 32..=1024", self.input_size),
            ));
        }
        if self.channels.is_empty() || self.channels.len() > 8 {
            return Err(Error::invalid(
                "channels",
                format!("{} stages, need 1..=8", self.channels.len()),
            ));
        }
        if let Some(c) = self.channels.iter().find(|&&c| c == 0 || c > 2048) {
            return Err(Error::invalid(
                "channels",
                format!("{c} channels is outside 1..=2048"),
            ));
        }
        if !self.embedding_dim.is_power_of_two() || !(8..=4096).contains(&self.embedding_dim) {
            return Err(Error::invalid(
                "embedding_dim",
                format!("{} is not a power of two in 8..=4096", self.embedding_dim),
            ));
        }
        if !(1..=4).contains(&self.convs_per_stage) {
            return Err(Error::invalid(
                "convs_per_stage",
                format!("{} is outside 1..=4", self.convs_per_stage),
            ));
        }
        if !(1..=4).contains(&self.space_to_depth) || !self.input_size.is_multiple_of(self.space_to_depth) {
            return Err(Error::invalid(
                "space_to_depth",
                format!(
                    "{} must be in 1..=4 and divide the input size {}",
                    self.space_to_depth, self.input_size
                ),
            ));
        }
        if self.pool_grid == 0 || self.pool_grid > self.final_map_size() {
            return Err(Error::invalid(
                "pool_grid",
                format!(
                    "{} must be in 1..={} (the last feature map of a {}-pixel input after {} poolings)",
                    self.pool_grid,
                    self.final_map_size(),
                    self.input_size / self.space_to_depth,
                    self.channels.len().saturating_sub(1)
                ),
            ));
        }
        Ok(())
    }
}

/// The metric-learning objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LossKind {
    /// The seed's contrastive loss (Hadsell et al. 2006) over all pairs of a batch:
    /// `y·d² + (1−y)·max(0, m−d)²`, `d` the Euclidean distance between unit embeddings.
    /// Positive and negative pair terms are each averaged, then added (batches hold far more
    /// negatives than positives).
    Contrastive {
        /// Margin `m` on the distance (unit vectors: 0..=2; √2 is orthogonal).
        margin: f32,
    },
    /// Additive angular margin (ArcFace, Deng et al. 2019) over a learned weight vector per
    /// training subject: softmax cross-entropy on `s·cos(θ_y + m)` for the true class.
    #[serde(rename = "arcface")]
    ArcFace {
        /// Logit scale `s`.
        scale: f32,
        /// Additive angular margin `m`, radians.
        margin: f32,
    },
    /// Supervised contrastive loss (Khosla et al. 2020) over P×K batches.
    #[serde(rename = "supcon")]
    SupCon {
        /// Softmax temperature τ.
        temperature: f32,
    },
}

impl LossKind {
    /// The loss's short name, as accepted by [`FromStr`].
    pub fn name(&self) -> &'static str {
        match self {
            LossKind::Contrastive { .. } => "contrastive",
            LossKind::ArcFace { .. } => "arcface",
            LossKind::SupCon { .. } => "supcon",
        }
    }

    /// Checks the hyper-parameters' ranges.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            LossKind::Contrastive { margin } => margin.is_finite() && margin > 0.0 && margin <= 2.0,
            LossKind::ArcFace { scale, margin } => {
                scale.is_finite() && scale > 0.0 && margin.is_finite() && (0.0..1.5).contains(&margin)
            }
            LossKind::SupCon { temperature } => temperature.is_finite() && temperature > 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "loss",
                format!("{self:?} has a parameter out of range"),
            ))
        }
    }
}

impl Default for LossKind {
    fn default() -> Self {
        LossKind::SupCon { temperature: 0.1 }
    }
}

impl FromStr for LossKind {
    type Err = Error;

    /// `contrastive`, `arcface` or `supcon`, each with its default hyper-parameters.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "contrastive" => Ok(LossKind::Contrastive { margin: 1.0 }),
            "arcface" | "aam" => Ok(LossKind::ArcFace {
                scale: 30.0,
                margin: 0.3,
            }),
            "supcon" => Ok(LossKind::SupCon { temperature: 0.1 }),
            other => Err(Error::invalid(
                "loss",
                format!("unknown loss {other:?}; expected contrastive, arcface or supcon"),
            )),
        }
    }
}

impl std::fmt::Display for LossKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to train: objective, batches, optimiser, schedule, early stopping, seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The objective.
    pub loss: LossKind,
    /// Maximum number of epochs (an epoch is about one pass over the training samples).
    pub epochs: usize,
    /// P: subjects per batch.
    pub subjects_per_batch: usize,
    /// K: samples per subject in a batch (drawn with repetition when a subject has fewer).
    pub samples_per_subject: usize,
    /// Peak learning rate (AdamW).
    pub learning_rate: f64,
    /// Epochs of linear warm-up from 0 to the peak, then cosine decay to 0 over the rest (per step).
    pub warmup_epochs: f64,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f64,
    /// Augment training images (rotation, translation, elastic, noise, crop).
    pub augment: bool,
    /// With `augment`, mirror half the training images left-right: for faces (a mirrored face is
    /// the same person), never for fingerprints (a mirrored print is another finger).
    pub flip: bool,
    /// Stop after this many epochs without a better validation EER (0 = never stop early).
    pub patience: usize,
    /// Seed of weights, batches and augmentation: same seed, same weights.
    pub seed: u64,
    /// Most non-mated pairs scored for the validation EER (seeded sample above this).
    pub max_val_impostor_pairs: usize,
    /// Start from the weights of this encoder checkpoint folder (same encoder configuration)
    /// instead of a random initialisation: fine-tuning a model pre-trained on synthetic prints,
    /// or continuing a finished run with a new schedule. Recorded in the checkpoint's header.
    pub init: Option<PathBuf>,
    /// The input contract the training images were prepared under (scale, region, fit): recorded
    /// in every checkpoint so that evaluation and clients prepare images alike. `None`: the whole
    /// frame fitted to the encoder's input size.
    pub input: Option<InputSpec>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            loss: LossKind::default(),
            epochs: 14,
            subjects_per_batch: 16,
            samples_per_subject: 4,
            learning_rate: 2e-3,
            warmup_epochs: 1.0,
            weight_decay: 1e-4,
            // Off: the synthetic generator already varies impressions strongly (rotation,
            // translation, distortion, partial contact), and on top of it augmentation slowed
            // learning (500 fingers, 5 epochs, supcon: validation EER 16.8% without, 18.6% with).
            augment: false,
            flip: false,
            patience: 4,
            seed: 0,
            max_val_impostor_pairs: 100_000,
            init: None,
            input: None,
        }
    }
}

impl TrainConfig {
    /// Reads and validates a TOML file (missing fields take their defaults).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: TrainConfig = toml::from_str(&text).map_err(|source| Error::Toml {
            path: path.to_path_buf(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        self.loss.validate()?;
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", "must be at least 1"));
        }
        if self.subjects_per_batch < 2 {
            return Err(Error::invalid(
                "subjects_per_batch",
                "need at least 2 subjects per batch (negatives)",
            ));
        }
        if self.samples_per_subject < 2 {
            return Err(Error::invalid(
                "samples_per_subject",
                "need at least 2 samples per subject (positives)",
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate < 10.0) {
            return Err(Error::invalid(
                "learning_rate",
                format!("{} is outside (0, 10)", self.learning_rate),
            ));
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return Err(Error::invalid("warmup_epochs", "must be a finite number >= 0"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid("weight_decay", "must be a finite number >= 0"));
        }
        if self.max_val_impostor_pairs == 0 {
            return Err(Error::invalid("max_val_impostor_pairs", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_toml_is_the_default_and_base_parses() {
        let small = EncoderConfig::from_toml_str(ENCODER_SMALL_TOML, Path::new("small")).unwrap();
        assert_eq!(small, EncoderConfig::default());
        let base = EncoderConfig::base().unwrap();
        assert!(base.channels.iter().sum::<usize>() > small.channels.iter().sum::<usize>());
        let face = include_str!("../../../configs/encoder-face.toml");
        let face = EncoderConfig::from_toml_str(face, Path::new("face")).unwrap();
        assert!(face.channels.len() < small.channels.len());
    }

    #[test]
    fn toml_round_trip() {
        let c = EncoderConfig {
            input_size: 48,
            channels: vec![8, 16],
            ..Default::default()
        };
        let text = c.to_toml_string().unwrap();
        assert_eq!(EncoderConfig::from_toml_str(&text, Path::new("x")).unwrap(), c);
    }

    #[test]
    fn bad_encoder_configs_are_refused() {
        let bad = [
            EncoderConfig {
                input_size: 16,
                ..Default::default()
            },
            EncoderConfig {
                embedding_dim: 100,
                ..Default::default()
            },
            EncoderConfig {
                channels: vec![],
                ..Default::default()
            },
            EncoderConfig {
                channels: vec![8, 0],
                ..Default::default()
            },
            EncoderConfig {
                convs_per_stage: 0,
                ..Default::default()
            },
            EncoderConfig {
                pool_grid: 9,
                ..Default::default()
            },
            EncoderConfig {
                space_to_depth: 0,
                ..Default::default()
            },
            EncoderConfig {
                space_to_depth: 3,
                ..Default::default()
            },
            // 64 / 2 = 32 after folding, four poolings: a 2×2 map cannot feed a 4×4 grid.
            EncoderConfig {
                space_to_depth: 2,
                pool_grid: 4,
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(Error::InvalidConfig { .. })), "{c:?}");
        }
        let unknown = "input_size = 64\nchannels = [8]\nembedding_dim = 16\nfoo = 1\n";
        assert!(matches!(
            EncoderConfig::from_toml_str(unknown, Path::new("x")),
            Err(Error::Toml { .. })
        ));
        let missing = std::path::PathBuf::from("/nonexistent/enc.toml");
        assert!(matches!(
            EncoderConfig::from_toml_file(&missing),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn loss_names_parse() {
        for name in ["contrastive", "arcface", "supcon"] {
            let l: LossKind = name.parse().unwrap();
            assert_eq!(l.name(), name);
            l.validate().unwrap();
        }
        assert!("triplet-ish".parse::<LossKind>().is_err());
        assert!(LossKind::Contrastive { margin: -1.0 }.validate().is_err());
    }

    #[test]
    fn train_config_toml_and_validation() {
        let t = TrainConfig {
            loss: LossKind::ArcFace {
                scale: 16.0,
                margin: 0.2,
            },
            ..Default::default()
        };
        let text = toml::to_string(&t).unwrap();
        let back: TrainConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, t);
        assert!(TrainConfig {
            samples_per_subject: 1,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(TrainConfig {
            learning_rate: f64::NAN,
            ..Default::default()
        }
        .validate()
        .is_err());
        TrainConfig::default().validate().unwrap();
    }
}
