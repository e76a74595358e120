//! `nhm train`: train an encoder on synthetic or real data, with validation, early stopping,
//! per-epoch checkpoints and resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use nhm_data::loaders::{open, LoadOptions};
use nhm_data::synth::SynthConfig;
use nhm_data::Dataset;
use nhm_model::{EncoderConfig, LossKind, TrainConfig, TrainEvent, ENCODER_SMALL_TOML, LAST_DIR};

/// Arguments of `nhm train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `synth` (generate fingerprints in memory) or a dataset folder (FVC, SOCOFing, ORL, one folder per identity).
    #[arg(long, default_value = "synth")]
    data: String,
    /// Synthetic data: number of fingers (default 80; 32 with --quick).
    #[arg(long)]
    subjects: Option<u32>,
    /// Synthetic data: impressions per finger (default 8; 6 with --quick).
    #[arg(long)]
    impressions: Option<u32>,
    /// Seed of the synthetic data, the subject split and training.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Encoder architecture (TOML); default: the built-in configs/encoder-small.toml.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Training settings (TOML, fields of TrainConfig); flags below override it.
    #[arg(long)]
    train_config: Option<PathBuf>,
    /// Loss: contrastive | arcface | supcon.
    #[arg(long)]
    loss: Option<String>,
    /// Maximum epochs (default 12; 3 with --quick).
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
    /// Share of subjects kept out of training AND validation for evaluation (DESIGN.md §4: the
    /// last 20%); `nhm eval` measures on them.
    #[arg(long, default_value_t = 0.2)]
    holdout: f64,
    /// Share of the remaining subjects used for validation (early stopping, best epoch).
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Output folder: best encoder (encoder.safetensors + checkpoint.json) and last/ for resume.
    #[arg(long, default_value = "artifacts/train")]
    out: PathBuf,
    /// Resume from a checkpoint folder (`OUT/last`, or OUT itself); same settings and data needed.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// A fast run (fewer subjects and epochs) for smoke tests and demos.
    #[arg(long)]
    quick: bool,
}

/// Runs `nhm train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let enc = match &args.model {
        Some(p) => EncoderConfig::from_toml_file(p)
            .with_context(|| format!("reading model config {}", p.display()))?,
        None => EncoderConfig::from_toml_str(ENCODER_SMALL_TOML, Path::new("configs/encoder-small.toml"))?,
    };
    let cfg = train_config(&args)?;
    anyhow::ensure!((0.0..1.0).contains(&args.holdout), "--holdout must be in [0, 1)");
    anyhow::ensure!(
        (0.0..1.0).contains(&args.val_fraction),
        "--val-fraction must be in [0, 1)"
    );

    let (all, data_desc) = load_data(&args, &enc)?;
    // DESIGN.md §4: evaluation subjects are the last `holdout` share, in source order.
    let (dev, held) = all.split_subjects(1.0 - args.holdout, None);
    let (train_set, val_set) = dev.split_subjects(1.0 - args.val_fraction, Some(args.seed));
    eprintln!(
        "data: {data_desc}; train {} subjects / {} samples, validation {} / {}, held out for eval {} subjects",
        train_set.n_subjects(),
        train_set.samples.len(),
        val_set.n_subjects(),
        val_set.samples.len(),
        held.n_subjects()
    );
    eprintln!(
        "model: input {}, channels {:?}, d {}; loss {:?}, {} epochs, P×K {}×{}, lr {}, augment {}",
        enc.input_size,
        enc.channels,
        enc.embedding_dim,
        cfg.loss,
        cfg.epochs,
        cfg.subjects_per_batch,
        cfg.samples_per_subject,
        cfg.learning_rate,
        cfg.augment
    );

    let resume = args.resume.as_ref().map(|r| {
        if r.join(LAST_DIR).is_dir() {
            r.join(LAST_DIR)
        } else {
            r.clone()
        }
    });
    let pb = crate::progress::bar(cfg.epochs as u64, "train");
    let mut last_eer = f64::NAN;
    let mut on_event = |e: &TrainEvent| match e {
        TrainEvent::Step {
            epoch,
            step,
            steps_per_epoch,
            loss,
        } => {
            pb.set_length((cfg.epochs * steps_per_epoch) as u64);
            pb.set_position(((epoch - 1) * steps_per_epoch + step + 1) as u64);
            let eer = if last_eer.is_nan() {
                "-".to_string()
            } else {
                format!("{:.2}%", last_eer * 100.0)
            };
            pb.set_message(format!("epoch {epoch} loss {loss:.4} val EER {eer}"));
        }
        TrainEvent::Epoch(s) => {
            last_eer = s.val_eer;
            say(
                &pb,
                format!(
                    "epoch {:>3}: loss {:.4}  val EER {}  {:.0} img/s  lr {:.2e}  {:.1}s",
                    s.epoch,
                    s.train_loss,
                    fmt_eer(s.val_eer),
                    s.images_per_sec,
                    s.lr,
                    s.seconds
                ),
            );
        }
        TrainEvent::Checkpoint(p) => tracing::info!("checkpoint {}", p.display()),
        TrainEvent::EarlyStop { epoch } => pb.println(format!(
            "early stop after epoch {epoch}: no better validation EER for {} epochs",
            cfg.patience
        )),
    };
    let outcome = nhm_model::train(
        &train_set,
        &val_set,
        &enc,
        &cfg,
        Some(&args.out),
        resume.as_deref(),
        &mut on_event,
    )
    .context("training")?;
    pb.finish_and_clear();

    let best = outcome.history.iter().find(|h| h.epoch == outcome.best_epoch);
    let mean_ips =
        outcome.history.iter().map(|h| h.images_per_sec).sum::<f64>() / outcome.history.len().max(1) as f64;
    println!(
        "trained {} epochs in {:.1}s ({:.0} train img/s); best epoch {} with validation EER {}",
        outcome.history.len(),
        t0.elapsed().as_secs_f64(),
        mean_ips,
        outcome.best_epoch,
        best.map_or("-".into(), |b| fmt_eer(b.val_eer))
    );
    println!(
        "encoder written to {} (resume from {})",
        args.out.display(),
        args.out.join(LAST_DIR).display()
    );
    Ok(())
}

/// A line above the progress bar, or on stderr when the bar is hidden (quiet, or no terminal).
fn say(pb: &indicatif::ProgressBar, line: String) {
    if pb.is_hidden() {
        eprintln!("{line}");
    } else {
        pb.println(line);
    }
}

fn fmt_eer(e: f64) -> String {
    if e.is_finite() {
        format!("{:.2}%", e * 100.0)
    } else {
        "n/a".into()
    }
}

/// The training settings: defaults (or the TOML file), then --quick, then explicit flags.
fn train_config(args: &Args) -> anyhow::Result<TrainConfig> {
    let mut cfg = match &args.train_config {
        Some(p) => TrainConfig::from_toml_file(p)?,
        None => TrainConfig::default(),
    };
    cfg.seed = args.seed;
    if args.quick {
        cfg.epochs = 3;
        cfg.warmup_epochs = 0.5;
    }
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
    cfg.validate()?;
    Ok(cfg)
}

/// Generates or reads the dataset at the encoder's input size; returns it with a description.
fn load_data(args: &Args, enc: &EncoderConfig) -> anyhow::Result<(Dataset, String)> {
    let size = enc.input_size as u32;
    if args.data == "synth" {
        let subjects = args.subjects.unwrap_or(if args.quick { 32 } else { 80 });
        let impressions = args.impressions.unwrap_or(if args.quick { 6 } else { 8 });
        let synth = SynthConfig {
            seed: args.seed,
            subjects,
            impressions,
            size,
            ..Default::default()
        };
        let pb = crate::progress::bar(subjects as u64 * impressions as u64, "generate");
        let ds = synth
            .generate_with(&|n| pb.inc(n as u64))
            .context("generating synthetic fingerprints")?;
        pb.finish_and_clear();
        Ok((
            ds,
            format!(
                "synth subjects={subjects} impressions={impressions} size={size} seed={}",
                args.seed
            ),
        ))
    } else {
        let path = PathBuf::from(&args.data);
        let opts = LoadOptions {
            size,
            min_samples_per_subject: 2,
            ..Default::default()
        };
        let ds = open(&path, &opts).with_context(|| format!("reading dataset {}", path.display()))?;
        if !ds.problems.is_empty() {
            eprintln!(
                "warning: {} file(s) skipped while reading {}",
                ds.problems.len(),
                path.display()
            );
        }
        let desc = format!(
            "{:?} {} ({} subjects, {} samples)",
            ds.layout,
            path.display(),
            ds.n_subjects(),
            ds.samples.len()
        );
        Ok((ds, desc))
    }
}
