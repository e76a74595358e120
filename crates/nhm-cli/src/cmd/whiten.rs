//! `nhm whiten`: add the whitening defence to an encoder checkpoint. The whitening is fitted on
//! public data and written into a copy of the checkpoint, so every client that loads the copy
//! whitens its embeddings before protecting them (see `nhm_model::Whitening` for why it lowers
//! the linkage of one person across services, and `nhm attack` for what it costs).

use std::path::PathBuf;

use anyhow::Context;

use crate::source::DataArgs;

/// Arguments of `nhm whiten`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The encoder checkpoint (default: the shipped fingerprint model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The public data the whitening is fitted on: never the subjects a figure is reported on.
    #[command(flatten)]
    data: DataArgs,
    /// Shrinkage towards the isotropic covariance: 0 whitens fully, 1 only centres.
    #[arg(long, default_value_t = nhm_attack::WHITENING_SHRINKAGE)]
    shrinkage: f64,
    /// Output folder of the whitened checkpoint (must differ from the model's).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `nhm whiten`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, encoder, meta) = crate::models::load_for_derivation(args.model.as_deref(), &args.out)?;
    let data = args
        .data
        .load(encoder.input())
        .context("loading the public data")?;
    anyhow::ensure!(!data.samples.is_empty(), "the public data holds no samples");
    let images: Vec<_> = data.samples.iter().map(|s| s.image.clone()).collect();
    let described = format!("{} ({} samples)", args.data.describe(), images.len());
    let whitening = encoder.fit_whitening(&images, args.shrinkage, described)?;
    let encoder = encoder.without_whitening().with_whitening(whitening)?;
    encoder
        .save(&args.out, &meta)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "Whitened {} (shrinkage {}, fitted on {} samples) → {}",
        model.display(),
        args.shrinkage,
        images.len(),
        args.out.display()
    );
    Ok(())
}
