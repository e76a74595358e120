//! `nhm dataset`: look at a dataset folder before training on it.
//!
//! `inspect` recognises the layout (FVC, SOCOFing, ORL, folder per identity), decodes every image
//! and reports subjects, samples per subject, original image sizes and every file it had to
//! skip; `preview` writes a contact sheet of the samples as the model will see them (after
//! grey conversion and fitting to the input size).

use std::path::PathBuf;

use anyhow::Context;
use nhm_data::loaders::{self, LoadOptions};
use nhm_data::preprocess::Fit;
use nhm_data::Layout;

/// Subcommands of `nhm dataset`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Recognise a dataset folder and report its layout, subjects, samples, image sizes and problems.
    Inspect(InspectArgs),
    /// Write a contact sheet of preprocessed samples: one row per subject, one column per sample.
    Preview(PreviewArgs),
}

/// Arguments of `nhm dataset inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The dataset folder.
    pub path: PathBuf,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Force a layout instead of recognising it: fvc, socofing, orl, folder-per-identity.
    #[arg(long, value_parser = parse_layout)]
    pub layout: Option<Layout>,
}

/// Arguments of `nhm dataset preview`.
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The dataset folder.
    pub path: PathBuf,
    /// Where to write the contact sheet (PNG).
    #[arg(long)]
    pub out: PathBuf,
    /// Side of each preprocessed sample, in pixels (the model's input size).
    #[arg(long, default_value_t = 96)]
    pub size: u32,
    /// How samples are brought to a square: center-crop-resize, pad or stretch.
    #[arg(long, default_value_t = Fit::CenterCropResize)]
    pub fit: Fit,
    /// Crop a square of this many source pixels around the print before fitting.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub roi: Option<u32>,
    /// Force a layout instead of recognising it: fvc, socofing, orl, folder-per-identity.
    #[arg(long, value_parser = parse_layout)]
    pub layout: Option<Layout>,
    /// At most this many subjects (rows).
    #[arg(long, default_value_t = 10)]
    pub max_subjects: usize,
    /// At most this many samples per subject (columns).
    #[arg(long, default_value_t = 8)]
    pub max_samples: usize,
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    loaders::parse_layout(s).map_err(|e| e.to_string())
}

/// Runs `nhm dataset`.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Inspect(a) => inspect(a),
        Command::Preview(a) => preview(a),
    }
}

fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let sp = crate::progress::spinner("inspect");
    sp.set_message(a.path.display().to_string());
    let result = match a.layout {
        Some(l) => loaders::inspect_as(&a.path, l),
        None => loaders::inspect(&a.path),
    };
    sp.finish_and_clear();
    let report = result.with_context(|| format!("inspecting {}", a.path.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

fn preview(a: PreviewArgs) -> anyhow::Result<()> {
    if a.max_subjects == 0 || a.max_samples == 0 {
        anyhow::bail!("--max-subjects and --max-samples must be at least 1");
    }
    let opts = LoadOptions {
        size: a.size,
        fit: a.fit,
        roi: a.roi,
        min_samples_per_subject: 1,
    };
    let sp = crate::progress::spinner("load");
    sp.set_message(a.path.display().to_string());
    let result = match a.layout {
        Some(l) => loaders::open_as(&a.path, l, &opts),
        None => loaders::open(&a.path, &opts),
    };
    sp.finish_and_clear();
    let ds = result.with_context(|| format!("reading {}", a.path.display()))?;
    let sheet = nhm_data::synth::contact_sheet(&ds, a.max_subjects, a.max_samples);
    sheet
        .save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let rows = ds.n_subjects().min(a.max_subjects);
    println!(
        "{}: {} subjects x up to {} samples of {} ({} layout, {}x{} px, fit {}), {} problem(s) while reading",
        a.out.display(),
        rows,
        a.max_samples,
        a.path.display(),
        loaders::layout_name(ds.layout),
        a.size,
        a.size,
        a.fit,
        ds.problems.len()
    );
    Ok(())
}
