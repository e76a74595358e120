//! `nhm train`: train an encoder on synthetic or real data, with validation, early stopping,
//! per-epoch checkpoints and resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use nhm_data::input::{CropCentre, InputSpec, Modality};
use nhm_model::{Encoder, EncoderConfig, LossKind, TrainConfig, ENCODER_SMALL_TOML, LAST_DIR};

use crate::source::DataArgs;
use crate::training::{pct, train_with_progress};

/// Arguments of `nhm train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Seed of weight initialisation, batches and augmentation.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Encoder architecture (TOML); default: the built-in configs/encoder-small.toml.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Training settings (TOML, fields of TrainConfig); flags below override it.
    #[arg(long)]
    train_config: Option<PathBuf>,
    /// Loss: contrastive (the seed's) | arcface | supcon.
    #[arg(long)]
    loss: Option<String>,
    /// Maximum epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// P: subjects per batch.
    #[arg(long)]
    batch_subjects: Option<usize>,
    /// K: samples per subject in a batch.
    #[arg(long)]
    batch_samples: Option<usize>,
    /// Early stopping: epochs without a better validation EER (0 = never).
    #[arg(long)]
    patience: Option<usize>,
    /// Train without augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Train with augmentation (rotation, translation, elastic, noise, crop): for real datasets,
    /// whose few samples per subject vary less than synthetic impressions.
    #[arg(long, conflicts_with = "no_augment")]
    augment: bool,
    /// Augment with left-right mirror images too (implies --augment): for faces, whose mirror
    /// image is the same person; never for fingerprints, whose mirror image is another finger.
    #[arg(long, conflicts_with = "no_augment")]
    flip: bool,
    /// Output folder: best encoder (encoder.safetensors + checkpoint.json) and last/ for resume.
    #[arg(long, default_value = "artifacts/train")]
    out: PathBuf,
    /// Resume from a checkpoint folder (`OUT/last`, or OUT itself); same settings and data needed.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from the weights of a trained encoder (a folder `nhm train` wrote) instead of random
    /// ones, with a fresh schedule: fine-tuning on another dataset, or continuing a finished run.
    /// Its encoder configuration is used unless --model names one (which must then be the same).
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// What the model reads: `fingerprint` (the default) or `face`; recorded in the checkpoint.
    #[arg(long)]
    modality: Option<Modality>,
    /// The resolution (dpi) the model works at: every sample is resampled to it first (its own
    /// resolution from the file's header, `--dpi`, or its ridge period). Recorded in the
    /// checkpoint. Default: 500 with `--roi`, none without.
    #[arg(long, value_parser = crate::source::parse_dpi)]
    scale_dpi: Option<f32>,
    /// Fingerprint scans: cut a square of this many pixels (at the model's resolution) around
    /// the print before fitting it to the input; recorded in the checkpoint, so evaluation and
    /// clients cut the same. 144 at 500 dpi shows sixteen ridge periods, as the synthetic
    /// training prints (`--synth-view centre`) do.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    roi: Option<u32>,
    /// More training data: dataset folders whose subjects all join the training subjects (none
    /// is validated or evaluated on), read under the same input contract. Repeatable.
    #[arg(long = "train-extra")]
    train_extra: Vec<PathBuf>,
    /// Fingerprint front end: `enhance` (contextual Gabor enhancement at the model's scale, for
    /// scans and synthetic prints alike) or `none`; recorded in the checkpoint.
    #[arg(long, value_parser = ["none", "enhance"])]
    front_end: Option<String>,
    /// Where the region of interest of a scan is centred: `print` (the ridge area's centroid, the
    /// default) or `core` (the core point, else the centroid); recorded in the checkpoint.
    #[arg(long)]
    crop_centre: Option<CropCentre>,
}

/// The input contract of the model being trained: flags first, then the starting checkpoint's
/// (`inherited`), then the whole frame at the encoder's input size.
fn input_spec(args: &Args, enc: &EncoderConfig, inherited: Option<InputSpec>) -> anyhow::Result<InputSpec> {
    let size = enc.input_size as u32;
    let mut spec = match inherited {
        Some(s) if s.size == size => s,
        _ => InputSpec::plain(size),
    };
    if let Some(m) = args.modality {
        spec.modality = m;
    }
    if let Some(r) = args.roi {
        spec.roi = Some(r);
        spec.dpi = spec.dpi.or(Some(DEFAULT_SCAN_DPI));
    }
    if let Some(d) = args.scale_dpi {
        spec.dpi = Some(d);
    }
    if let Some(c) = args.crop_centre {
        spec.centre = c;
    }
    match args.front_end.as_deref() {
        Some("enhance") => spec.front_end = Some(nhm_data::fingerprint::FrontEnd::default()),
        Some(_) => spec.front_end = None,
        None => {}
    }
    Ok(spec)
}

/// The resolution of the scans the synthetic centre view imitates (FVC2002 DB1, the
/// Neurotechnology samples): what `--roi` assumes when `--scale-dpi` is not given.
const DEFAULT_SCAN_DPI: f32 = 500.0;

/// Runs `nhm train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    // The starting checkpoint, read once: its architecture and input contract are the defaults.
    let init = match &args.init {
        Some(dir) => Some(
            Encoder::load(dir)
                .with_context(|| format!("reading the starting checkpoint {}", dir.display()))?,
        ),
        None => None,
    };
    let enc = match (&args.model, &init) {
        (Some(p), _) => EncoderConfig::from_toml_file(p)
            .with_context(|| format!("reading model config {}", p.display()))?,
        // Fine-tuning without --model: the architecture the starting weights were trained with.
        (None, Some(e)) => e.config().clone(),
        (None, None) => {
            EncoderConfig::from_toml_str(ENCODER_SMALL_TOML, Path::new("configs/encoder-small.toml"))?
        }
    };
    let mut cfg = train_config(&args)?;
    let spec = input_spec(&args, &enc, init.map(|e| e.input().clone()))?;
    cfg.input = Some(spec.clone());
    let all = args.data.load(&spec)?;
    let mut splits = args.data.split(&all)?;
    for path in &args.train_extra {
        let extra = crate::source::read_folder(path, &spec, args.data.dpi, None)?;
        eprintln!(
            "extra training data {}: {} subjects / {} samples",
            path.display(),
            extra.n_subjects(),
            extra.samples.len()
        );
        splits.train.append_subjects(&extra, &path.display().to_string());
    }
    anyhow::ensure!(splits.train.n_subjects() >= 2, "fewer than two training subjects");
    eprintln!(
        "data: {}; input {}; train {} subjects / {} samples, validation {} / {}, kept for evaluation {} subjects",
        args.data.describe(),
        serde_json::to_string(&spec)?,
        splits.train.n_subjects(),
        splits.train.samples.len(),
        splits.val.n_subjects(),
        splits.val.samples.len(),
        splits.test.n_subjects()
    );
    eprintln!(
        "model: input {}, channels {:?}, d {}; loss {}, {} epochs, P×K {}×{}, lr {}, augment {}{}{}",
        enc.input_size,
        enc.channels,
        enc.embedding_dim,
        cfg.loss,
        cfg.epochs,
        cfg.subjects_per_batch,
        cfg.samples_per_subject,
        cfg.learning_rate,
        cfg.augment,
        if cfg.flip { " (with mirror images)" } else { "" },
        cfg.init
            .as_ref()
            .map_or(String::new(), |d| format!("; starting from {}", d.display()))
    );
    let resume = args.resume.as_ref().map(|r| {
        if r.join(LAST_DIR).is_dir() {
            r.join(LAST_DIR)
        } else {
            r.clone()
        }
    });
    let outcome = train_with_progress(
        &splits.train,
        &splits.val,
        &enc,
        &cfg,
        Some(&args.out),
        resume.as_deref(),
    )?;
    let best = outcome.history.iter().find(|h| h.epoch == outcome.best_epoch);
    let mean_ips =
        outcome.history.iter().map(|h| h.images_per_sec).sum::<f64>() / outcome.history.len().max(1) as f64;
    println!(
        "trained {} epochs in {:.1}s ({:.0} train img/s); best epoch {} with validation EER {}",
        outcome.history.len(),
        t0.elapsed().as_secs_f64(),
        mean_ips,
        outcome.best_epoch,
        best.map_or("-".into(), |b| pct(b.val_eer))
    );
    println!(
        "encoder written to {} (resume from {})",
        args.out.display(),
        args.out.join(LAST_DIR).display()
    );
    Ok(())
}

/// The training settings: defaults (or the TOML file), then explicit flags.
fn train_config(args: &Args) -> anyhow::Result<TrainConfig> {
    let mut cfg = match &args.train_config {
        Some(p) => TrainConfig::from_toml_file(p)?,
        None => TrainConfig::default(),
    };
    cfg.seed = args.seed;
    if let Some(l) = &args.loss {
        cfg.loss = l.parse::<LossKind>()?;
    }
    if let Some(v) = args.epochs {
        cfg.epochs = v;
    }
    if let Some(v) = args.lr {
        cfg.learning_rate = v;
    }
    if let Some(v) = args.batch_subjects {
        cfg.subjects_per_batch = v;
    }
    if let Some(v) = args.batch_samples {
        cfg.samples_per_subject = v;
    }
    if let Some(v) = args.patience {
        cfg.patience = v;
    }
    if args.no_augment {
        cfg.augment = false;
    }
    if args.augment || args.flip {
        cfg.augment = true;
    }
    if args.flip {
        cfg.flip = true;
    }
    if let Some(dir) = &args.init {
        cfg.init = Some(dir.clone());
    }
    cfg.validate()?;
    Ok(cfg)
}
