//! `nhm encode`: samples → encoder → key → hashmaps, as JSON lines. This is the client side of
//! DESIGN.md §1: what leaves the device is only what this command writes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nhm_data::loaders::{self, LoadOptions};
use nhm_model::ClientPipeline;
use nhm_template::{HashmapKind, Key};
use serde::Serialize;

/// Arguments of `nhm encode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint folder written by `nhm train` or `nhm demo`; default: the shipped fingerprint
    /// model (`models/fingerprint`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The client's secret key file (`nhm key new`).
    #[arg(long)]
    pub key: PathBuf,
    /// Derive the per-application key for this application name from the key file first.
    #[arg(long)]
    pub app: Option<String>,
    /// `binary` (the default, what a server stores) or `dense` (for research comparisons).
    #[arg(long, default_value = "binary")]
    pub kind: HashmapKind,
    /// Length of the hashmaps (binary: bits): the embedding dimension times 1 to 16 (stacked
    /// keyed rotations; the server's `dim` must match). Default: the embedding dimension.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub hashmap_dim: Option<u32>,
    /// The resolution (dpi) of images whose file states none (models that normalise scale; else
    /// it is estimated from the ridge period).
    #[arg(long, value_parser = crate::source::parse_dpi)]
    pub dpi: Option<f32>,
    /// Output file (JSON lines: source, subject, sample, kind, dim, key fingerprint, base64 template).
    #[arg(long)]
    pub out: PathBuf,
    /// Image files, or one dataset folder.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// One line of `nhm encode`'s output.
#[derive(Debug, Serialize)]
pub struct EncodedLine {
    /// The file the sample came from.
    pub source: String,
    /// The subject label, when the input was a dataset folder.
    pub subject: Option<String>,
    /// The sample index within its subject, when the input was a dataset folder.
    pub sample: Option<u32>,
    /// `binary` or `dense`.
    pub kind: HashmapKind,
    /// Template dimension.
    pub dim: usize,
    /// Public fingerprint of the key used (never the key).
    pub key_fingerprint: String,
    /// The hashmap in the versioned wire format, base64.
    pub template: String,
}

/// One sample to encode, with where it came from.
pub struct Input {
    /// The file it was read from.
    pub source: String,
    /// The subject label, when read from a dataset folder.
    pub subject: Option<String>,
    /// The sample index within its subject, when read from a dataset folder.
    pub sample: Option<u32>,
    /// The image, fitted to the model's input size.
    pub image: nhm_data::GrayImage,
}

/// Reads image files or one dataset folder, each brought to the model's input under its
/// checkpoint's contract.
pub fn read_inputs(inputs: &[PathBuf], pipeline: &ClientPipeline) -> Result<Vec<Input>> {
    if let [dir] = inputs {
        if dir.is_dir() {
            let opts = LoadOptions {
                input: pipeline.model().input().clone(),
                user_dpi: pipeline.user_dpi(),
                ..Default::default()
            };
            let ds =
                loaders::open(dir, &opts).with_context(|| format!("reading dataset {}", dir.display()))?;
            let ds = pipeline
                .model()
                .prepare_dataset(ds, 1)
                .context("finding and aligning faces")?;
            for p in &ds.problems {
                eprintln!("warning: skipped {}: {}", p.path.display(), p.message);
            }
            return Ok(ds
                .samples
                .into_iter()
                .map(|s| {
                    let source = s.source.map(|p| p.display().to_string()).unwrap_or_default();
                    Input {
                        source,
                        subject: Some(s.subject_label),
                        sample: Some(s.index),
                        image: s.image,
                    }
                })
                .collect());
        }
    }
    inputs
        .iter()
        .map(|p| {
            let prepared = pipeline
                .prepare_file(p)
                .with_context(|| format!("reading image {}", p.display()))?;
            Ok(Input {
                source: p.display().to_string(),
                subject: None,
                sample: None,
                image: prepared.image,
            })
        })
        .collect()
}

/// The checkpoint folder to use: the one given, else the shipped fingerprint model.
pub fn model_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    crate::models::default_fingerprint_model()
}

/// Loads a key file, derived for `app` when given.
pub fn load_key(path: &Path, app: Option<&str>) -> Result<Key> {
    let key = Key::load(path).with_context(|| format!("reading key {}", path.display()))?;
    Ok(match app {
        Some(a) => key.for_application(a),
        None => key,
    })
}

/// Writes `text` to `path` through a temporary file and a rename: never half a file.
pub fn write_atomically(path: &Path, text: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    ));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Runs `nhm encode`.
pub fn run(args: Args) -> Result<()> {
    let model = model_dir(args.model.as_deref())?;
    let key = load_key(&args.key, args.app.as_deref())?;
    let pipeline = ClientPipeline::load(&model, &key, args.hashmap_dim.map(|h| h as usize), args.kind)
        .with_context(|| format!("loading the encoder from {}", model.display()))?
        .with_user_dpi(args.dpi);
    let samples = read_inputs(&args.inputs, &pipeline)?;
    let pb = crate::progress::bar(samples.len() as u64, "encode");
    let mut out = Vec::new();
    for chunk in samples.chunks(64) {
        let images: Vec<_> = chunk.iter().map(|s| s.image.clone()).collect();
        for (input, h) in chunk.iter().zip(pipeline.hashmaps(&images)?) {
            let line = EncodedLine {
                source: input.source.clone(),
                subject: input.subject.clone(),
                sample: input.sample,
                kind: args.kind,
                dim: h.dim(),
                key_fingerprint: key.fingerprint(),
                template: h.to_base64(),
            };
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    write_atomically(&args.out, &out)?;
    println!(
        "{} hashmaps ({}) written to {}",
        samples.len(),
        args.kind,
        args.out.display()
    );
    Ok(())
}
