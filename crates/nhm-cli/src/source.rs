//! Where samples come from, for every subcommand that reads a dataset: `--data synth` (the
//! embedded generator, the default) or `--data PATH` (a dataset folder in any layout that
//! `nhm dataset inspect` recognises).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nhm_data::input::InputSpec;
use nhm_data::loaders::{LoadOptions, NamingRule};
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
    /// Dataset folders: the resolution (dpi) of files whose header states none, for models that
    /// normalise scale; without it such a file's resolution is estimated from its ridge period.
    #[arg(long, value_parser = parse_dpi)]
    pub dpi: Option<f32>,
    /// Dataset folders: describe the file naming yourself (see `nhm dataset inspect --naming`)
    /// instead of recognising a known layout.
    #[arg(long, value_parser = crate::cmd::dataset::parse_naming)]
    pub naming: Option<NamingRule>,
}

/// Parses a sensor resolution: a number of dots per inch between 100 and 5000.
pub fn parse_dpi(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if nhm_data::input::is_sensor_resolution(v) {
        Ok(v)
    } else {
        Err(format!("{v} dpi is not a sensor resolution (100 to 5000)"))
    }
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
            match self.dpi {
                Some(dpi) => format!("{}:dpi{dpi}", self.data),
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

    /// Generates the samples (at the contract's size: synthetic prints are drawn at the model's
    /// scale) or reads them under the model's input contract.
    pub fn load(&self, input: &InputSpec) -> Result<Dataset> {
        let size = input.size;
        if self.is_synthetic() {
            // A front end runs on prints at full resolution: draw them at the side the model
            // views (the region of interest at the model's scale), then prepare them as scans.
            let side = if input.front_end.is_some() {
                input.view_side()
            } else {
                size
            };
            let cfg = SynthConfig {
                seed: self.data_seed,
                subjects: self.subjects,
                impressions: self.impressions,
                size: side,
                view: self.synth_view,
                variation: nhm_data::synth::Variation {
                    texture: self.synth_texture,
                    ..Default::default()
                },
            };
            let pb = progress::bar(u64::from(self.subjects) * u64::from(self.impressions), "synth");
            let mut ds = cfg
                .generate_with(&|n| pb.inc(u64::from(n)))
                .context("generating synthetic fingerprints")?;
            pb.finish_and_clear();
            if side != size {
                use rayon::prelude::*;
                ds.samples
                    .par_iter_mut()
                    .for_each(|s| s.image = input.prepare(&s.image, None));
            }
            Ok(ds)
        } else {
            read_folder(&PathBuf::from(&self.data), input, self.dpi, self.naming.clone())
        }
    }
}

/// Reads a dataset folder under a model's input contract (subjects with fewer than two samples
/// dropped: they form no mated pair), warning about each skipped file.
pub fn read_folder(
    path: &Path,
    input: &InputSpec,
    user_dpi: Option<f32>,
    naming: Option<NamingRule>,
) -> Result<Dataset> {
    let opts = LoadOptions {
        input: input.clone(),
        user_dpi,
        min_samples_per_subject: 2,
        naming,
    };
    let sp = progress::spinner("load");
    let ds = nhm_data::loaders::open(path, &opts)
        .with_context(|| format!("reading dataset {}", path.display()))?;
    sp.finish_and_clear();
    for p in &ds.problems {
        tracing::warn!("skipped {}: {}", p.path.display(), p.message);
    }
    Ok(ds)
}
