//! The pretrained models shipped with the project (`models/` at the repository root), found
//! from wherever `nhm` runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Folder of the shipped fingerprint model, relative to a models folder.
pub const FINGERPRINT_MODEL: &str = "fingerprint";

/// The folders searched for shipped models, in order: `$NHM_MODELS`, `./models`, and the
/// `models/` of the source tree this binary was built from.
pub fn model_roots() -> Vec<PathBuf> {
    search_path("NHM_MODELS", "models", "../../models")
}

/// A folder looked for in order: the environment variable `var`, `from_cwd` relative to the
/// working directory, `from_source` relative to this crate's source folder.
fn search_path(var: &str, from_cwd: &str, from_source: &str) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::var_os(var).map(PathBuf::from).into_iter().collect();
    roots.push(PathBuf::from(from_cwd));
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(from_source));
    roots
}

/// The shipped fingerprint model's checkpoint folder: the first root that holds one.
///
/// # Errors
/// When no root holds it, naming every folder looked in.
pub fn default_fingerprint_model() -> Result<PathBuf> {
    shipped_model(FINGERPRINT_MODEL, nhm_model::HEADER_FILE).map_err(|looked| {
        anyhow::anyhow!(
            "no --model given and no shipped fingerprint model found (looked in {looked}); set \
             NHM_MODELS to the repository's models/ folder or pass --model DIR"
        )
    })
}

/// Loads the encoder checkpoint a command derives a new one from (`model`, or the shipped
/// fingerprint model) with its header, refusing an output folder that is the model's own (the
/// derived checkpoint would overwrite the one it came from).
pub fn load_for_derivation(
    model: Option<&Path>,
    out: &Path,
) -> Result<(PathBuf, nhm_model::Encoder, nhm_model::CheckpointMeta)> {
    let model = match model {
        Some(m) => m.to_path_buf(),
        None => default_fingerprint_model()?,
    };
    anyhow::ensure!(
        std::fs::canonicalize(out).ok() != std::fs::canonicalize(&model).ok(),
        "--out {} is the model's own folder; write the new checkpoint elsewhere",
        out.display()
    );
    let (encoder, meta) =
        nhm_model::Encoder::load_with_meta(&model).with_context(|| format!("loading {}", model.display()))?;
    Ok((model, encoder, meta))
}

/// The first `name` folder among [`model_roots`] that holds `marker`, or the folders looked in.
fn shipped_model(name: &str, marker: &str) -> std::result::Result<PathBuf, String> {
    let roots = model_roots();
    roots
        .iter()
        .map(|r| r.join(name))
        .find(|dir| dir.join(marker).is_file())
        .ok_or_else(|| {
            roots
                .iter()
                .map(|r| r.join(name).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
}

/// Folder of the shipped face model (or, before it is built, the converted pretrained parts).
pub const FACE_MODEL: &str = "face";

/// The shipped face model's folder: the first root that holds the converted backbone.
///
/// # Errors
/// When no root holds it, naming every folder looked in and the command that makes it.
pub fn default_face_model() -> Result<PathBuf> {
    shipped_model(FACE_MODEL, nhm_model::face::BACKBONE_FILE).map_err(|looked| {
        anyhow::anyhow!(
            "no face model found (looked in {looked}); convert dlib's models with `python3 \
             scripts/convert-dlib-face.py --out models/face` or pass --model DIR"
        )
    })
}

/// The folder of the shared real datasets the reports use when they are there: `$NHM_DATA`,
/// else `../shared/data` from the working directory, else beside the source tree this binary was
/// built from. `None` when none exists.
pub fn shared_data_root() -> Option<PathBuf> {
    search_path("NHM_DATA", "../shared/data", "../../../shared/data")
        .into_iter()
        .find(|r| r.is_dir())
}
