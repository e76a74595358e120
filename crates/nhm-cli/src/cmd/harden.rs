//! `nhm harden`: the learned defence against inversion. Fine-tunes an encoder against inversion
//! decoders on the defender's training data (`nhm_model::harden_against_inversion`) and writes
//! the hardened checkpoint; `nhm attack --hardened-model` measures what it resists and costs.

use std::path::PathBuf;

use anyhow::Context;
use nhm_model::{harden_against_inversion, CheckpointMeta, HardeningConfig, HardeningEvent};

use crate::source::DataArgs;

/// Arguments of `nhm harden`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The encoder checkpoint (default: the shipped fingerprint model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The defender's training data (never the subjects a figure is reported on).
    #[command(flatten)]
    data: DataArgs,
    /// Alternations of decoder training and encoder steps.
    #[arg(long, default_value_t = HardeningConfig::default().rounds)]
    rounds: usize,
    /// Decoder epochs per round.
    #[arg(long, default_value_t = HardeningConfig::default().decoder.epochs)]
    decoder_epochs: usize,
    /// Samples the decoder of each round trains on (0: all).
    #[arg(long, default_value_t = HardeningConfig::default().decoder_samples)]
    decoder_samples: usize,
    /// Encoder steps per round.
    #[arg(long, default_value_t = HardeningConfig::default().encoder_steps)]
    encoder_steps: usize,
    /// Encoder learning rate (Adam).
    #[arg(long, default_value_t = HardeningConfig::default().learning_rate)]
    learning_rate: f64,
    /// Weight of the adversarial term against the recognition loss.
    #[arg(long, default_value_t = HardeningConfig::default().adversarial_weight)]
    adversarial_weight: f32,
    /// Seed of batches, augmentation and decoders.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output folder of the hardened checkpoint.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `nhm harden`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, encoder, meta) = crate::models::load_for_derivation(args.model.as_deref(), &args.out)?;
    let defaults = HardeningConfig::default();
    let cfg = HardeningConfig {
        rounds: args.rounds,
        decoder: nhm_model::DecoderTrainConfig {
            epochs: args.decoder_epochs,
            seed: args.seed,
            ..defaults.decoder.clone()
        },
        decoder_samples: args.decoder_samples,
        encoder_steps: args.encoder_steps,
        learning_rate: args.learning_rate,
        adversarial_weight: args.adversarial_weight,
        seed: args.seed,
        ..defaults
    };
    cfg.validate()?;
    let data = args
        .data
        .load(encoder.input())
        .context("loading the training data")?;
    let hardened = harden_against_inversion(&encoder, &data, &cfg, &mut |e| match e {
        HardeningEvent::DecoderEpoch { round, epoch, loss } => {
            tracing::info!("round {round}: decoder epoch {epoch}, loss {loss:.4}")
        }
        HardeningEvent::EncoderSteps {
            round,
            recognition_loss,
            inversion_cosine_before,
            inversion_cosine_after,
        } => println!(
            "round {round}: recognition loss {recognition_loss:.4}; decoded images' cosine with \
             their sources {inversion_cosine_before:.3} → {inversion_cosine_after:.3}"
        ),
    })?;
    let described = format!(
        "{}; hardened against inversion on {} ({} rounds, {} encoder steps each, weight {}, seed {})",
        meta.data,
        args.data.describe(),
        cfg.rounds,
        cfg.encoder_steps,
        cfg.adversarial_weight,
        cfg.seed
    );
    let meta = CheckpointMeta {
        data: described,
        ..meta
    };
    hardened
        .save(&args.out, &meta)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("Hardened {} → {}", model.display(), args.out.display());
    Ok(())
}
