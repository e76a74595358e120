//! The pretrained models shipped with the project (`models/` at the repository root), found
//! from wherever `nhm` runs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

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
    let roots = model_roots();
    for r in &roots {
        let dir = r.join(FINGERPRINT_MODEL);
        if dir.join(nhm_model::HEADER_FILE).is_file() {
            return Ok(dir);
        }
    }
    let looked: Vec<String> = roots
        .iter()
        .map(|r| r.join(FINGERPRINT_MODEL).display().to_string())
        .collect();
    bail!(
        "no --model given and no shipped fingerprint model found (looked in {}); set NHM_MODELS \
         to the repository's models/ folder or pass --model DIR",
        looked.join(", ")
    )
}

/// Folder of the shipped face model (or, before it is built, the converted pretrained parts).
pub const FACE_MODEL: &str = "face";

/// The shipped face model's folder: the first root that holds the converted backbone.
///
/// # Errors
/// When no root holds it, naming every folder looked in and the command that makes it.
pub fn default_face_model() -> Result<PathBuf> {
    let roots = model_roots();
    for r in &roots {
        let dir = r.join(FACE_MODEL);
        if dir.join(nhm_model::face::BACKBONE_FILE).is_file() {
            return Ok(dir);
        }
    }
    let looked: Vec<String> = roots
        .iter()
        .map(|r| r.join(FACE_MODEL).display().to_string())
        .collect();
    bail!(
        "no face model found (looked in {}); convert dlib's models with `python3 \
         scripts/convert-dlib-face.py --out models/face` or pass --model DIR",
        looked.join(", ")
    )
}

/// The folder of the shared real datasets the reports use when they are there: `$NHM_DATA`,
/// else `../shared/data` from the working directory, else beside the source tree this binary was
/// built from. `None` when none exists.
pub fn shared_data_root() -> Option<PathBuf> {
    search_path("NHM_DATA", "../shared/data", "../../../shared/data")
        .into_iter()
        .find(|r| r.is_dir())
}
