//! `nhm dataset`: look at a dataset folder before training on it.
//!
//! `inspect` recognises the layout (FVC, SOCOFing, ORL, folder per identity), decodes every image
//! and reports subjects, samples per subject, original image sizes and every file it had to
//! skip; `preview` writes a contact sheet of the samples as the model will see them (after
//! grey conversion and fitting to the input size).

use std::path::PathBuf;

use anyhow::Context;
use nhm_data::input::InputSpec;
use nhm_data::loaders::{self, LoadOptions, NamingRule};
use nhm_data::preprocess::Fit;
use nhm_data::Layout;

/// Subcommands of `nhm dataset`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Recognise a dataset folder and report its layout, subjects, samples, image sizes and problems.
    Inspect(InspectArgs),
    /// Write a contact sheet of preprocessed samples: one row per subject, one column per sample.
    Preview(PreviewArgs),
    /// Resample a dataset to another resolution (PNG files stating it in their header): the same
    /// fingers as another sensor would show them, to test that a model's scale normalisation works.
    Resample(ResampleArgs),
}

/// Arguments of `nhm dataset resample`.
#[derive(Debug, clap::Args)]
pub struct ResampleArgs {
    /// The dataset folder (any recognised layout, or `--naming`).
    pub path: PathBuf,
    /// The resolution the files were scanned at, in dpi.
    #[arg(long, value_parser = crate::source::parse_dpi)]
    pub from_dpi: f32,
    /// The resolution to resample to, in dpi (written into each PNG's header).
    #[arg(long, value_parser = crate::source::parse_dpi)]
    pub to_dpi: f32,
    /// Output folder: the same file names (relative paths kept), as PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Describe the file naming yourself (see `nhm dataset inspect --naming`).
    #[arg(long, value_parser = parse_naming)]
    pub naming: Option<NamingRule>,
}

/// Arguments of `nhm dataset inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The dataset folder.
    pub path: PathBuf,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Force a layout instead of recognising it: fvc, socofing, orl, person-finger-scan,
    /// folder-per-identity.
    #[arg(long, value_parser = parse_layout, conflicts_with = "naming")]
    pub layout: Option<Layout>,
    /// Describe the file naming yourself: a template such as `{subject}_{finger}_{sample}` (any
    /// other `{name}` joins the identity, `{_}` is ignored) or a regex with named groups
    /// (`re:^(?P<subject>\d+)_(?P<sample>\d+)`); `inspect` shows what it read from example files.
    #[arg(long, value_parser = parse_naming)]
    pub naming: Option<NamingRule>,
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
    /// Show the samples as this checkpoint's input contract prepares them (its size, scale and
    /// region of interest; `--size`, `--fit` and `--roi` are then ignored).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The resolution (dpi) of files whose header states none (with a model that normalises scale).
    #[arg(long, value_parser = crate::source::parse_dpi)]
    pub dpi: Option<f32>,
    /// Force a layout instead of recognising it: fvc, socofing, orl, person-finger-scan,
    /// folder-per-identity.
    #[arg(long, value_parser = parse_layout, conflicts_with = "naming")]
    pub layout: Option<Layout>,
    /// Describe the file naming yourself (see `nhm dataset inspect --naming`).
    #[arg(long, value_parser = parse_naming)]
    pub naming: Option<NamingRule>,
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

/// Parses a naming rule for clap (the error names what is wrong with the rule).
pub fn parse_naming(s: &str) -> Result<NamingRule, String> {
    NamingRule::parse(s).map_err(|e| e.to_string())
}

/// Runs `nhm dataset`.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Inspect(a) => inspect(a),
        Command::Preview(a) => preview(a),
        Command::Resample(a) => resample(a),
    }
}

fn resample(a: ResampleArgs) -> anyhow::Result<()> {
    let opts = LoadOptions {
        naming: a.naming.clone(),
        ..LoadOptions::at_size(8)
    };
    let ds = loaders::open(&a.path, &opts).with_context(|| format!("reading {}", a.path.display()))?;
    let factor = a.to_dpi / a.from_dpi;
    let mut written = 0usize;
    for sample in &ds.samples {
        let Some(src) = &sample.source else { continue };
        let rel = src.strip_prefix(&a.path).unwrap_or(src.as_path());
        let dst = a.out.join(rel).with_extension("png");
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let img = loaders::load_image(src)?;
        loaders::save_png_with_dpi(&nhm_data::input::rescale(&img, factor), a.to_dpi, &dst)?;
        written += 1;
    }
    println!(
        "{written} images of {} resampled from {} to {} dpi (x{factor:.4}) into {}",
        a.path.display(),
        a.from_dpi,
        a.to_dpi,
        a.out.display()
    );
    Ok(())
}

fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let sp = crate::progress::spinner("inspect");
    sp.set_message(a.path.display().to_string());
    let result = match (&a.naming, a.layout) {
        (Some(rule), _) => loaders::inspect_named(&a.path, rule),
        (None, Some(l)) => loaders::inspect_as(&a.path, l),
        (None, None) => loaders::inspect(&a.path),
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
    let model = match &a.model {
        Some(dir) => Some(
            nhm_model::ClientModel::load(dir)
                .with_context(|| format!("loading the model from {}", dir.display()))?
                .0,
        ),
        None => None,
    };
    let input = match &model {
        Some(m) => m.input().clone(),
        None => InputSpec {
            fit: a.fit,
            roi: a.roi,
            ..InputSpec::plain(a.size)
        },
    };
    let size = input.size;
    let opts = LoadOptions {
        input,
        user_dpi: a.dpi,
        min_samples_per_subject: 1,
        naming: a.naming.clone(),
    };
    let sp = crate::progress::spinner("load");
    sp.set_message(a.path.display().to_string());
    let result = match (a.layout, &a.naming) {
        (Some(l), None) => loaders::open_as(&a.path, l, &opts),
        _ => loaders::open(&a.path, &opts),
    };
    sp.finish_and_clear();
    let mut ds = result.with_context(|| format!("reading {}", a.path.display()))?;
    if let Some(m) = &model {
        // A face model's samples are shown as it aligns them.
        ds = super::eval::prepare(m, ds)?;
    }
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
        size,
        size,
        opts.input.fit,
        ds.problems.len()
    );
    Ok(())
}
