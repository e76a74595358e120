//! `nhm eval`: recognition and protection figures of a trained encoder on unseen subjects.

use std::path::PathBuf;

use anyhow::{Context, Result};
use nhm_data::input::CropCentre;
use serde_json::json;

use crate::pipeline::{self, EvalOptions};
use crate::source::DataArgs;

/// Arguments of `nhm eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint folder written by `nhm train` or `nhm demo`; default: the shipped fingerprint
    /// model (`models/fingerprint`).
    #[arg(long)]
    pub model: Option<PathBuf>,
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
    /// Override the checkpoint's region of interest (pixels at its resolution; at 500 dpi when
    /// it states none): for models made before checkpoints recorded their input contract.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub roi: Option<u32>,
    /// Override where the checkpoint's region of interest is centred: `print` (the ridge area's
    /// centroid) or `core` (the core point, else the centroid).
    #[arg(long)]
    pub crop_centre: Option<CropCentre>,
    /// Cross-capture evaluation: enrol every sample of `--data`, probe with every sample of this
    /// dataset folder, subjects matched by label (the same fingers on another sensor). Writes
    /// `cross.json`; `--eval-fraction` and the FVC protocol do not apply.
    #[arg(long)]
    pub probe_data: Option<PathBuf>,
    /// Face models: what to do with an image in which no face is found: `error` (the
    /// checkpoint's default; the sample is left out and counted as a failure to acquire) or
    /// `whole-frame` (take the frame as the face's box, for sets of cropped faces).
    #[arg(long)]
    pub no_face: Option<nhm_model::face::NoFacePolicy>,
}

/// The evaluation settings of a run of `nhm eval`: its seed, target FMR and hashmap length.
fn eval_options(args: &Args, fvc_protocol: bool, config: serde_json::Value, title: String) -> EvalOptions {
    EvalOptions {
        seed: args.seed,
        protocol: nhm_eval::protocol::Protocol {
            seed: args.seed,
            ..Default::default()
        },
        target_fmr: args.target_fmr,
        fvc_protocol,
        config,
        title,
        hashmap_dim: args.hashmap_dim.map(|d| d as usize),
    }
}

/// A checkpoint's input contract, with the region of interest and its centre overridden when
/// given (fingerprint contracts; a face model's contract has neither).
pub fn input_with_overrides(
    model: &nhm_model::ClientModel,
    roi: Option<u32>,
    centre: Option<CropCentre>,
) -> nhm_data::input::InputSpec {
    let mut spec = model.input().clone();
    if matches!(model, nhm_model::ClientModel::Face(_)) {
        return spec;
    }
    if let Some(side) = roi {
        spec.roi = Some(side);
    }
    if let Some(c) = centre {
        spec.centre = c;
    }
    spec
}

/// Runs `nhm eval`.
pub fn run(mut args: Args) -> Result<()> {
    let fvc = match args.protocol.as_str() {
        "all" => false,
        "fvc" => true,
        other => anyhow::bail!("--protocol must be `all` or `fvc`, not `{other}`"),
    };
    let model = super::encode::model_dir(args.model.as_deref())?;
    let (encoder, meta) = nhm_model::ClientModel::load(&model)
        .with_context(|| format!("loading the model from {}", model.display()))?;
    let encoder = match (encoder, args.no_face) {
        (nhm_model::ClientModel::Face(f), Some(p)) => {
            nhm_model::ClientModel::Face(Box::new(f.with_no_face(p)))
        }
        (m, _) => m,
    };
    if args.hashmap_dim.is_none() {
        // The length the checkpoint names (face models), else the embedding dimension.
        args.hashmap_dim = encoder.default_hashmap_dim().and_then(|d| u32::try_from(d).ok());
    }
    if matches!(encoder, nhm_model::ClientModel::Face(_)) && args.data.is_synthetic() {
        anyhow::bail!("a face model needs a face dataset folder (--data PATH), not synthetic fingerprints");
    }
    let progress = nhm_model::training_progress(&model);
    if let Some(p) = progress.filter(|p| !p.finished) {
        eprintln!(
            "warning: the run that writes {} has not finished (epoch {} of {}; still running, or \
             stopped): these are the best weights so far, not the run's result",
            model.display(),
            p.epochs_done,
            p.epochs_planned
        );
    }
    let input = input_with_overrides(&encoder, args.roi, args.crop_centre);
    let ds = prepare(&encoder, args.data.load(&input)?)?;
    let failures_to_acquire = count_fta(&ds);
    if let Some(probe_path) = &args.probe_data {
        let probes = prepare(
            &encoder,
            crate::source::read_folder(probe_path, &input, args.data.dpi, args.data.naming.clone())?,
        )?;
        let opts = eval_options(
            &args,
            false,
            json!({
                "command": "nhm eval --probe-data",
                "model": model,
                "checkpoint": meta,
                "references": args.data.describe(),
                "probes": probe_path,
                "input": input,
                "hashmap_dim": args.hashmap_dim,
                "git_revision": pipeline::git_revision(),
            }),
            format!(
                "cross-capture: {} against {}",
                probe_path.display(),
                args.data.describe()
            ),
        );
        let systems = pipeline::evaluate_cross(encoder.embedder(), &ds, &probes, &opts, &args.out)?;
        for s in &systems {
            let f = &s.figures;
            println!(
                "{:<26} EER {:>6.2}%  FNMR@FMR1% {:>6.2}%  rank-1 {:>6.2}%  ({} genuine / {} impostor pairs, {} probes)",
                s.name,
                100.0 * f.verification.eer,
                100.0 * f.verification.fnmr_at_fmr.first().map_or(f64::NAN, |x| x.fnmr),
                100.0 * f.rank1,
                f.genuine_pairs,
                f.impostor_pairs,
                f.probes
            );
        }
        println!("figures: {}", args.out.join("cross.json").display());
        return Ok(());
    }
    let splits = args.data.split(&ds)?;
    anyhow::ensure!(
        splits.test.n_subjects() >= 2,
        "fewer than two evaluation subjects: raise --eval-fraction"
    );
    let dev = (splits.val.n_subjects() >= 2).then_some(&splits.val);
    let opts = eval_options(
        &args,
        fvc,
        json!({
            "command": "nhm eval",
            "model": model,
            "checkpoint": meta,
            "training": progress,
            "data": args.data.describe(),
            "input": input,
            "eval_subjects": splits.test.n_subjects(),
            "dev_subjects": dev.map(|d| d.n_subjects()),
            "protocol": args.protocol,
            "hashmap_dim": args.hashmap_dim,
            "failures_to_acquire": failures_to_acquire,
            "face_contract": match &encoder {
                nhm_model::ClientModel::Face(f) => Some(f.contract().clone()),
                nhm_model::ClientModel::Image(_) => None,
            },
            "git_revision": pipeline::git_revision(),
        }),
        format!("Neural Hashmaps evaluation: {}", args.data.describe()),
    );
    if failures_to_acquire > 0 {
        println!(
            "failures to acquire: {failures_to_acquire} of {} samples (no usable face; left out)",
            failures_to_acquire + ds.samples.len()
        );
    }
    let report = pipeline::evaluate_encoder(encoder.embedder(), &splits.test, dev, &opts, &args.out)?;
    pipeline::print_summary(&report, "");
    println!("report: {}", args.out.join("report.html").display());
    Ok(())
}

/// A dataset read under a model's contract, made ready for it (faces found and aligned; see
/// [`nhm_model::ClientModel::prepare_dataset`]), each failure to acquire reported.
pub fn prepare(model: &nhm_model::ClientModel, ds: nhm_data::Dataset) -> Result<nhm_data::Dataset> {
    prepare_with(ds, |ds| model.prepare_dataset(ds, 2))
}

/// A dataset through `prepare` (a model's [`nhm_model::ClientModel::prepare_dataset`]) under a
/// spinner, each new problem (failure to acquire) reported.
pub fn prepare_with(
    ds: nhm_data::Dataset,
    prepare: impl FnOnce(nhm_data::Dataset) -> nhm_model::Result<nhm_data::Dataset>,
) -> Result<nhm_data::Dataset> {
    let before = ds.problems.len();
    let sp = crate::progress::spinner("faces");
    let ds = prepare(ds).context("finding and aligning faces")?;
    sp.finish_and_clear();
    for p in &ds.problems[before..] {
        tracing::warn!("{}: {}", p.path.display(), p.message);
    }
    Ok(ds)
}

/// Samples left out because no usable face was found in them.
pub fn count_fta(ds: &nhm_data::Dataset) -> usize {
    ds.problems
        .iter()
        .filter(|p| p.message.starts_with(nhm_model::FAILURE_TO_ACQUIRE))
        .count()
}
