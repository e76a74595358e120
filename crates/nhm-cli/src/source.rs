//! Where samples come from, for every subcommand that reads a dataset: `--data synth` (the
//! embedded generator, the default) or `--data PATH` (a dataset folder in any layout that
//! `nhm dataset inspect` recognises).

use std::path::PathBuf;

use anyhow::{Context, Result};
use nhm_data::loaders::LoadOptions;
use nhm_data::synth::{SynthConfig, View};
use nhm_data::Dataset;

use crate::progress;

/// Dataset options shared by `train`, `eval`, `encode` and `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// `synth` for generated fingerprints, or a dataset folder (FVC, SOCOFing, ORL, one folder per identity).
    #[arg(long, default_value = "synth")]
    pub data: String,
    /// Synthetic data: number of fingers.
    #[arg(long, default_value_t = 100)]
    pub subjects: u32,
    /// Synthetic data: impressions per finger.
    #[arg(long, default_value_t = 8)]
    pub impressions: u32,
    /// Seed of the synthetic data (independent of the training seed).
    #[arg(long, default_value_t = 42)]
    pub data_seed: u64,
    /// Synthetic data: `whole` finger pads (the default) or the `centre` of realistically sized
    /// ones, as `--roi 144` shows of a 500-dpi scan (for models meant for real scans).
    #[arg(long, default_value = "whole")]
    pub synth_view: View,
    /// Synthetic data: skin texture in [0, 1] (dry-skin ridge breaks, creases); 0 draws none.
    #[arg(long, default_value_t = 0.0)]
    pub synth_texture: f32,
    /// Share of subjects (the last ones, in source order) kept for evaluation: never trained on.
    #[arg(long, default_value_t = 0.2)]
    pub eval_fraction: f64,
    /// Share of all subjects (the last ones before the evaluation subjects) used for validation
    /// during training (early stopping) and as the development split that fixes thresholds.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Dataset folders: crop a square of this many source pixels around the print before
    /// fitting to the model's input. Fingerprint scans at 500 dpi: 144 shows sixteen ridge
    /// periods, as the synthetic training prints do; without it the whole frame is fitted.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub roi: Option<u32>,
}

/// The three subject-disjoint parts of a dataset.
pub struct Splits {
    /// Subjects trained on.
    pub train: Dataset,
    /// Subjects for validation and thresholds (development split).
    pub val: Dataset,
    /// Subjects for evaluation only.
    pub test: Dataset,
}

impl DataArgs {
    /// Whether the data is generated rather than read.
    pub fn is_synthetic(&self) -> bool {
        self.data == "synth"
    }

    /// A short description for reports and checkpoints.
    pub fn describe(&self) -> String {
        if self.is_synthetic() {
            let mut view = match self.synth_view {
                View::Whole => String::new(),
                other => format!(":{}", other.name()),
            };
            if self.synth_texture > 0.0 {
                view.push_str(&format!(":texture{}", self.synth_texture));
            }
            format!(
                "synth:{}x{}:seed{}{view}",
                self.subjects, self.impressions, self.data_seed
            )
        } else {
            match self.roi {
                Some(side) => format!("{}:roi{side}", self.data),
                None => self.data.clone(),
            }
        }
    }

    /// Splits subjects in source order: train, then validation, then evaluation (DESIGN.md §4:
    /// evaluation subjects are the last ones and never seen in training).
    pub fn split(&self, ds: &Dataset) -> Result<Splits> {
        for (name, f) in [
            ("--eval-fraction", self.eval_fraction),
            ("--val-fraction", self.val_fraction),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&f),
                "{name} must be between 0 and 1, got {f}"
            );
        }
        anyhow::ensure!(
            self.eval_fraction + self.val_fraction <= 1.0,
            "--eval-fraction + --val-fraction must not exceed 1"
        );
        let n = ds.n_subjects() as f64;
        let n_test = (n * self.eval_fraction).round();
        let n_val = (n * self.val_fraction).round().min(n - n_test);
        let (rest, test) = ds.split_subjects((n - n_test) / n.max(1.0), None);
        let n_rest = rest.n_subjects() as f64;
        let (train, val) = rest.split_subjects((n_rest - n_val) / n_rest.max(1.0), None);
        Ok(Splits { train, val, test })
    }

    /// Generates or reads the samples at `size × size`.
    pub fn load(&self, size: u32) -> Result<Dataset> {
        if self.is_synthetic() {
            let cfg = SynthConfig {
                seed: self.data_seed,
                subjects: self.subjects,
                impressions: self.impressions,
                size,
                view: self.synth_view,
                variation: nhm_data::synth::Variation {
                    texture: self.synth_texture,
                    ..Default::default()
                },
            };
            let pb = progress::bar(u64::from(self.subjects) * u64::from(self.impressions), "synth");
            let ds = cfg
                .generate_with(&|n| pb.inc(u64::from(n)))
                .context("generating synthetic fingerprints")?;
            pb.finish_and_clear();
            Ok(ds)
        } else {
            let path = PathBuf::from(&self.data);
            let opts = LoadOptions {
                size,
                roi: self.roi,
                min_samples_per_subject: 2,
                ..Default::default()
            };
            let sp = progress::spinner("load");
            let ds = nhm_data::loaders::open(&path, &opts)
                .with_context(|| format!("reading dataset {}", path.display()))?;
            sp.finish_and_clear();
            for p in &ds.problems {
                tracing::warn!("skipped {}: {}", p.path.display(), p.message);
            }
            Ok(ds)
        }
    }
}
