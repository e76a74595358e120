//! `nhm face`: build a face checkpoint from the pretrained parts (with or without a trained
//! head), and look at what the face pipeline finds in images.

use std::path::PathBuf;

use anyhow::{Context, Result};
use nhm_model::face::{FaceContract, FaceModel, HeadConfig, HeadTrainConfig, NoFacePolicy};
use nhm_model::CheckpointMeta;
use serde_json::json;

use crate::source::read_folder;

/// Where the pretrained parts came from (written into every face checkpoint).
pub const PROVENANCE: &str = "dlib's CNN face detector (mmod_human_face_detector), 5-point shape \
predictor (shape_predictor_5_face_landmarks) and ResNet-29 face descriptor \
(dlib_face_recognition_resnet_model_v1), all CC0 1.0 by Davis E. King, as shipped in the PyPI \
source package face_recognition_models 0.3.0, converted by scripts/convert-dlib-face.py";

/// Subcommands of `nhm face`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a face checkpoint: the pretrained parts of `--parts`, the face contract, and a
    /// head fitted to the identities of `--data` (every identity of every set is used;
    /// evaluate on other sets): centred on their mean descriptor, then `--epochs` of SupCon.
    /// Without `--data` the checkpoint has no head (the backbone's descriptor is protected
    /// directly).
    Build(BuildArgs),
    /// Find, align and describe the face in each image: prints what was found and writes the
    /// aligned chips as a contact sheet.
    Find(FindArgs),
}

/// Arguments of `nhm face build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Folder holding detector.safetensors, landmarks.safetensors and backbone.safetensors
    /// (from scripts/convert-dlib-face.py); default: the shipped models/face.
    #[arg(long)]
    pub parts: Option<PathBuf>,
    /// Face dataset folders to train the head on (one folder per identity, ORL, ...).
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Where to write the checkpoint.
    #[arg(long)]
    pub out: PathBuf,
    /// Passes of SupCon over the training descriptors; 0 leaves a head that only centres.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Width of the head's hidden layer.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// SupCon temperature.
    #[arg(long, default_value_t = 0.1)]
    pub temperature: f32,
    /// Seed of the head's initialisation and batches.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Times the image is doubled before detection.
    #[arg(long, default_value_t = 1)]
    pub upsample: u32,
    /// Smallest face accepted, pixels.
    #[arg(long, default_value_t = 24.0)]
    pub min_face: f32,
    /// The checkpoint's policy for images without a detected face: `error` or `whole-frame`.
    #[arg(long, default_value = "error")]
    pub no_face: NoFacePolicy,
    /// The hashmap length the model is meant to be used at (the descriptor's 128 values times
    /// 1 to 16 stacked keyed rotations): clients and evaluation use it unless told otherwise,
    /// and a server storing the hashmaps is configured with it.
    #[arg(long, default_value_t = 2048)]
    pub hashmap_dim: usize,
    /// The policy used while reading the training sets (cropped sets: `whole-frame`).
    #[arg(long, default_value = "whole-frame")]
    pub train_no_face: NoFacePolicy,
}

/// Arguments of `nhm face find`.
#[derive(Debug, clap::Args)]
pub struct FindArgs {
    /// A face checkpoint; default: the shipped models/face.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Contact sheet of the aligned chips (PNG).
    #[arg(long)]
    pub sheet: Option<PathBuf>,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// Runs `nhm face`.
pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Build(a) => build(a),
        Command::Find(a) => find(a),
    }
}

fn build(a: BuildArgs) -> Result<()> {
    nhm_template::Protector::with_output_dim(
        &nhm_template::Key::from_seed(0),
        nhm_model::face::DESCRIPTOR_DIM,
        a.hashmap_dim,
    )
    .context("--hashmap-dim")?;
    let parts = match a.parts {
        Some(p) => p,
        None => crate::models::default_face_model()?,
    };
    let contract = FaceContract {
        upsample: a.upsample,
        min_face: a.min_face,
        no_face: a.train_no_face,
        ..FaceContract::default()
    };
    let mut model = FaceModel::from_parts(&parts, contract, PROVENANCE.into())
        .with_context(|| format!("loading the face parts from {}", parts.display()))?;
    let mut data_desc = Vec::new();
    let mut losses = Vec::new();
    if !a.data.is_empty() {
        let (mut x, mut labels) = (Vec::new(), Vec::new());
        for dir in &a.data {
            let ds = read_folder(dir, model.input(), None, None)?;
            let ds = super::eval::prepare_with(ds, |ds| model.prepare_dataset(ds, 2))?;
            let fta = super::eval::count_fta(&ds);
            let chips: Vec<_> = ds.samples.iter().map(|s| s.image.clone()).collect();
            let pb = crate::progress::bar(chips.len() as u64, "describe");
            for chunk in chips.chunks(32) {
                x.extend(model.descriptors(chunk)?);
                pb.inc(chunk.len() as u64);
            }
            pb.finish_and_clear();
            let base = labels.iter().map(|&l| l + 1).max().unwrap_or(0);
            labels.extend(ds.samples.iter().map(|s| base + s.subject));
            println!(
                "{}: {} identities, {} samples ({} failures to acquire)",
                dir.display(),
                ds.n_subjects(),
                ds.samples.len(),
                fta
            );
            data_desc.push(format!("{} ({} identities)", dir.display(), ds.n_subjects()));
        }
        let cfg = HeadTrainConfig {
            head: HeadConfig {
                dim: nhm_model::face::DESCRIPTOR_DIM,
                hidden: a.hidden,
            },
            epochs: a.epochs,
            lr: a.lr,
            temperature: a.temperature,
            seed: a.seed,
            ..HeadTrainConfig::default()
        };
        losses = model.train_head(&x, &labels, &cfg).context("training the head")?;
        println!(
            "head trained: {} epochs, loss {:.4} → {:.4}",
            a.epochs,
            losses.first().copied().unwrap_or(f32::NAN),
            losses.last().copied().unwrap_or(f32::NAN)
        );
    }
    let model = model
        .with_no_face(a.no_face)
        .with_hashmap_dim(Some(a.hashmap_dim));
    let meta = CheckpointMeta::new(
        None,
        json!({
            "command": "nhm face build",
            "head_trained_on": data_desc,
            "epochs": a.epochs,
            "hidden": a.hidden,
            "lr": a.lr,
            "temperature": a.temperature,
            "seed": a.seed,
            "losses": losses,
        })
        .to_string(),
        a.epochs,
        None,
    );
    model
        .save(&a.out, &meta)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!("face checkpoint: {}", a.out.display());
    Ok(())
}

fn find(a: FindArgs) -> Result<()> {
    let dir = match a.model {
        Some(p) => p,
        None => crate::models::default_face_model()?,
    };
    let (model, _) =
        FaceModel::load(&dir).with_context(|| format!("loading the face model from {}", dir.display()))?;
    let mut chips = Vec::new();
    let mut failed = 0usize;
    for p in &a.images {
        let img =
            nhm_data::loaders::load_image(p).with_context(|| format!("reading image {}", p.display()))?;
        match model.find(&img)? {
            Ok(f) => {
                let what = match &f.detection {
                    Some(d) => format!(
                        "face at ({:.0}, {:.0})–({:.0}, {:.0}), score {:.2}",
                        d.rect.left, d.rect.top, d.rect.right, d.rect.bottom, d.confidence
                    ),
                    None => "no face detected; the whole frame taken as the face".into(),
                };
                let marks: Vec<String> = f
                    .landmarks
                    .iter()
                    .map(|q| format!("({:.0}, {:.0})", q.x, q.y))
                    .collect();
                println!(
                    "{}: {what}; {} face(s) found, the largest used; landmarks {}",
                    p.display(),
                    f.faces,
                    marks.join(" ")
                );
                chips.push(f.chip);
            }
            Err(problem) => {
                failed += 1;
                println!("{}: {problem}", p.display());
            }
        }
    }
    if let Some(sheet) = &a.sheet {
        if !chips.is_empty() {
            let cols = chips.len().min(8) as u32;
            let rows = chips.len().div_ceil(8) as u32;
            let s = nhm_model::face::CHIP_SIZE as u32;
            let mut canvas = image::GrayImage::from_pixel(cols * s, rows * s, image::Luma([0]));
            for (i, c) in chips.iter().enumerate() {
                let (x, y) = ((i as u32 % 8) * s, (i as u32 / 8) * s);
                image::imageops::replace(&mut canvas, c, i64::from(x), i64::from(y));
            }
            canvas
                .save(sheet)
                .with_context(|| format!("writing {}", sheet.display()))?;
            println!("aligned chips: {}", sheet.display());
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} image(s) had no usable face",
        a.images.len()
    );
    Ok(())
}
