//! Face landmarks and aligned face chips, reproducing dlib's pipeline in pure Rust.
//!
//! The face front end of the face pipeline is dlib's: a face box (from a detector, or the whole
//! frame for pre-cropped sets), the 5-point regression-tree shape predictor
//! ([`LandmarkModel`], dlib `shape_predictor`), then a similarity-aligned chip cut out around the
//! landmarks ([`face_chip_transform`] and [`extract_chip`], dlib `get_face_chip_details` and
//! `extract_image_chips`). The pretrained recognition network was trained on chips made exactly
//! this way, so this module follows dlib 20.0.1 step by step, down to its rounding: landmarks are
//! rounded to whole pixels as dlib returns them, chips are sampled with dlib's bilinear rule
//! (truncated, zero outside the image) and, for faces more than about twice the chip's size,
//! from dlib's 2:1 image pyramid.
//!
//! Nothing here depends on an ML framework: the landmark model is a few megabytes of trees read
//! from safetensors (`models/face/landmarks.safetensors`, written by
//! `scripts/convert-dlib-face.py`), and chips are plain `image` buffers.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use nhm_data::face::{extract_chip, face_chip_transform, to_grey, ChipSpec, FaceBox, LandmarkModel};
//! let model = LandmarkModel::load(std::path::Path::new("models/face/landmarks.safetensors"))?;
//! let rgb = image::open("face.png")?.to_rgb8();
//! let face = FaceBox::whole_image(rgb.width(), rgb.height());
//! let landmarks = model.predict(&to_grey(&rgb), &face)?;
//! let spec = ChipSpec::default();
//! let chip = extract_chip(&rgb, &face_chip_transform(&landmarks, &spec)?, spec.size);
//! # let _ = chip; Ok(()) }
//! ```

mod align;
mod landmarks;

pub use align::{
    extract_chip, extract_chip_grey, face_chip_transform, ChipSpec, Similarity, FIVE_POINT_TEMPLATE,
};
pub use landmarks::{to_grey, LandmarkModel, LANDMARK_FORMAT};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A point in image coordinates (pixels; x to the right, y down, pixel centres at integers).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Column, in pixels.
    pub x: f32,
    /// Row, in pixels.
    pub y: f32,
}

impl Point {
    /// The point at column `x`, row `y`.
    pub fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
}

/// A face box in image coordinates, with dlib's convention: `right` and `bottom` are the last
/// column and row inside the box (inclusive), so a box `w` pixels wide starting at column `x`
/// has `left = x`, `right = x + w - 1`.
///
/// dlib's boxes are whole pixels (`dlib.rectangle`); to reproduce dlib exactly, give whole
/// numbers. Fractional boxes are accepted and used as they are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    /// First column inside the box.
    pub left: f32,
    /// First row inside the box.
    pub top: f32,
    /// Last column inside the box (inclusive, as in dlib).
    pub right: f32,
    /// Last row inside the box (inclusive, as in dlib).
    pub bottom: f32,
}

impl FaceBox {
    /// The box from its four sides (`right`, `bottom` inclusive).
    pub fn new(left: f32, top: f32, right: f32, bottom: f32) -> Self {
        Self {
            left,
            top,
            right,
            bottom,
        }
    }

    /// The whole frame of a `width` × `height` image, `dlib.rectangle(0, 0, width-1, height-1)`:
    /// the box to use for sets of pre-cropped faces (AT&T/ORL, Yale) that have no detector.
    pub fn whole_image(width: u32, height: u32) -> Self {
        Self::new(0.0, 0.0, width as f32 - 1.0, height as f32 - 1.0)
    }

    /// Whether the sides are finite and the box spans more than one column and one row
    /// (`right > left`, `bottom > top`); landmarks need such a box.
    pub fn is_proper(&self) -> bool {
        [self.left, self.top, self.right, self.bottom]
            .iter()
            .all(|v| v.is_finite())
            && self.right > self.left
            && self.bottom > self.top
    }
}

/// Everything that can go wrong while loading the landmark model, predicting landmarks or
/// placing a face chip.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaceError {
    /// The model file could not be read.
    #[error("cannot read face landmark model {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The model file was read but its content is malformed (the cause says how).
    #[error("face landmark model {path}: {source}")]
    InFile {
        /// The file that was read.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        source: Box<FaceError>,
    },
    /// The bytes are not a readable safetensors file (truncated, corrupt header, offsets that
    /// do not cover the data).
    #[error("landmark model is not a readable safetensors file (truncated or corrupt): {source}")]
    Corrupt {
        /// The safetensors parser's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// The file's `__metadata__` lacks a key the format needs.
    #[error("landmark model metadata has no `{key}` entry")]
    MissingMetadata {
        /// The missing key.
        key: &'static str,
    },
    /// The file's `format` tag is not the one this reader understands.
    #[error("landmark model has format tag `{found}`, expected `{expected}`")]
    WrongFormat {
        /// The tag this reader understands.
        expected: &'static str,
        /// The tag found in the file.
        found: String,
    },
    /// A metadata entry cannot be parsed or contradicts the tensors.
    #[error("landmark model metadata `{key}` = `{value}`: {reason}")]
    BadMetadata {
        /// The key.
        key: &'static str,
        /// Its value in the file.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the model needs is not in the file.
    #[error("landmark model has no tensor `{name}`")]
    MissingTensor {
        /// The tensor's name.
        name: &'static str,
    },
    /// A tensor has the wrong element type.
    #[error("landmark model tensor `{name}` is {actual}, expected {expected}")]
    WrongDtype {
        /// The tensor's name.
        name: &'static str,
        /// The element type the format prescribes.
        expected: &'static str,
        /// The element type found.
        actual: String,
    },
    /// A tensor has the wrong number of dimensions.
    #[error("landmark model tensor `{name}` has shape {actual:?}, expected {expected} dimensions")]
    WrongRank {
        /// The tensor's name.
        name: &'static str,
        /// The number of dimensions the format prescribes.
        expected: usize,
        /// The shape found.
        actual: Vec<usize>,
    },
    /// A tensor's shape disagrees with the sizes set by the other tensors (or is empty where
    /// that makes no sense).
    #[error("landmark model tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    WrongShape {
        /// The tensor's name.
        name: &'static str,
        /// The shape implied by the other tensors.
        expected: Vec<usize>,
        /// The shape found.
        actual: Vec<usize>,
    },
    /// An index stored in a tensor points outside what it indexes (a landmark, a feature pixel).
    #[error("landmark model tensor `{name}` element {at} is {index}, outside 0..{bound}")]
    IndexOutOfRange {
        /// The tensor's name.
        name: &'static str,
        /// Flat (row-major) position of the element.
        at: usize,
        /// The stored index.
        index: i64,
        /// The exclusive upper bound it must respect.
        bound: usize,
    },
    /// A tensor holds NaN or an infinity.
    #[error("landmark model tensor `{name}` element {at} is not finite")]
    NonFinite {
        /// The tensor's name.
        name: &'static str,
        /// Flat (row-major) position of the element.
        at: usize,
    },
    /// The face box is empty, inverted or not finite.
    #[error("face box {face:?} is empty or degenerate (need finite sides, right > left, bottom > top)")]
    DegenerateBox {
        /// The box given.
        face: FaceBox,
    },
    /// The landmarks are not the five of dlib's 5-point model.
    #[error("face chip placement needs {expected} landmarks, got {actual}")]
    WrongLandmarkCount {
        /// The number needed.
        expected: usize,
        /// The number given.
        actual: usize,
    },
    /// The landmarks are not finite or all coincide, so no chip can be placed.
    #[error("landmarks are not finite or all coincide; cannot place a face chip")]
    DegenerateLandmarks,
    /// The chip size or padding is unusable.
    #[error("face chip size {size} (need at least 2) or padding {padding} (need finite, >= 0) is invalid")]
    BadChipSpec {
        /// The chip side in pixels.
        size: u32,
        /// The padding, as a fraction of the template's extent.
        padding: f32,
    },
}
