//! `nhm eval`: recognition and protection figures of a trained encoder on unseen subjects.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use crate::pipeline::{self, EvalOptions};
use crate::source::DataArgs;

/// Arguments of `nhm eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint folder written by `nhm train` or `nhm demo`.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Verification protocol: `all` (every mated pair, every or a seeded sample of 200 000
    /// non-mated pairs) or `fvc` (FVC2002: impostors are first against first impressions).
    #[arg(long, default_value = "all")]
    pub protocol: String,
    /// Target FMR of the operating threshold, chosen on the development (validation) subjects.
    #[arg(long, default_value_t = 1e-3)]
    pub target_fmr: f64,
    /// Length of the hashmaps (binary: bits): the embedding dimension times 1 to 16, made by
    /// stacking keyed rotations; longer binary codes lose less of the embedding's accuracy.
    /// Default: the embedding dimension.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub hashmap_dim: Option<u32>,
    /// Seed of keys and sampling.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Folder for score files, plots and the report.
    #[arg(long, default_value = "artifacts/eval")]
    pub out: PathBuf,
}

/// Runs `nhm eval`.
pub fn run(args: Args) -> Result<()> {
    let fvc = match args.protocol.as_str() {
        "all" => false,
        "fvc" => true,
        other => anyhow::bail!("--protocol must be `all` or `fvc`, not `{other}`"),
    };
    let (encoder, meta) = nhm_model::Encoder::load_with_meta(&args.model)
        .with_context(|| format!("loading the encoder from {}", args.model.display()))?;
    let progress = nhm_model::training_progress(&args.model);
    if let Some(p) = progress.filter(|p| !p.finished) {
        eprintln!(
            "warning: the run that writes {} has not finished (epoch {} of {}; still running, or \
             stopped): these are the best weights so far, not the run's result",
            args.model.display(),
            p.epochs_done,
            p.epochs_planned
        );
    }
    let ds = args.data.load(encoder.config().input_size as u32)?;
    let splits = args.data.split(&ds)?;
    anyhow::ensure!(
        splits.test.n_subjects() >= 2,
        "fewer than two evaluation subjects: raise --eval-fraction"
    );
    let dev = (splits.val.n_subjects() >= 2).then_some(&splits.val);
    let opts = EvalOptions {
        seed: args.seed,
        protocol: nhm_eval::protocol::Protocol {
            seed: args.seed,
            ..Default::default()
        },
        target_fmr: args.target_fmr,
        fvc_protocol: fvc,
        config: json!({
            "command": "nhm eval",
            "model": args.model,
            "checkpoint": meta,
            "training": progress,
            "data": args.data.describe(),
            "eval_subjects": splits.test.n_subjects(),
            "dev_subjects": dev.map(|d| d.n_subjects()),
            "protocol": args.protocol,
            "hashmap_dim": args.hashmap_dim,
            "git_revision": pipeline::git_revision(),
        }),
        title: format!("Neural Hashmaps evaluation: {}", args.data.describe()),
        hashmap_dim: args.hashmap_dim.map(|d| d as usize),
    };
    let report = pipeline::evaluate_encoder(&encoder, &splits.test, dev, &opts, &args.out)?;
    pipeline::print_summary(&report, "");
    println!("report: {}", args.out.join("report.html").display());
    Ok(())
}
