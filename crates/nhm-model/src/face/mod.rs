//! The face pipeline: detection → landmarks → alignment → pretrained backbone → learned head.
//!
//! A face checkpoint folder (`checkpoint.json` with format `nhm-face/1`) names every part and
//! the contract between them, so a client given the folder prepares images exactly as the
//! model was evaluated:
//!
//! 1. **detection** ([`FaceDetector`], dlib's CNN face detector) on the grey image enlarged
//!    `upsample` times; of several faces the largest is kept; none, or one smaller than
//!    `min_face` pixels, is a [`FaceProblem`] unless the contract says the frame is the face
//!    (`no_face = "whole-frame"`, for sets that ship cropped faces);
//! 2. **landmarks** (`nhm_data::face::LandmarkModel`, dlib's 5-point shape predictor) in the
//!    face's box;
//! 3. **alignment**: the similarity transform that puts the landmarks on dlib's template,
//!    sampled to a 150×150 chip (`nhm_data::face::extract_chip_grey`);
//! 4. **backbone** ([`FaceBackbone`], dlib's ResNet-29 descriptor), normalised;
//! 5. **head** (optional, [`HeadConfig`]): the project's trained part, then the keyed transform.
//!
//! Faces are handled in grey levels (colour photos are converted on reading): the shipped face
//! sets are grey, and one contract for every input means that a colour photo and a grey scan of
//! the same person are compared alike.

mod backbone;
mod detector;
mod head;
mod weights;

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use nhm_data::face::{extract_chip_grey, face_chip_transform, ChipSpec, FaceBox, LandmarkModel, Point};
use nhm_data::input::{InputSpec, Modality};
use nhm_data::{Dataset, GrayImage, Problem};
use serde::{Deserialize, Serialize};

pub use backbone::{FaceBackbone, CHIP_SIZE, DESCRIPTOR_DIM};
pub use detector::{Detection, FaceDetector};
pub use head::{HeadConfig, HeadTrainConfig};

use crate::encoder::{read_f32, save_weights, write_json, CheckpointMeta, HEADER_FILE};
use crate::net::l2_normalize;
use crate::{compute_device, Error, Result};

/// Environment variable naming a folder where aligned chips are cached (see
/// [`FaceModel::prepare_file`]).
pub const FACE_CACHE_VAR: &str = "NHM_FACE_CACHE";

/// Format tag of a face checkpoint's header.
pub const FACE_FORMAT: &str = "nhm-face/1";
/// File names inside a face checkpoint folder.
pub const DETECTOR_FILE: &str = "detector.safetensors";
/// The 5-point landmark model.
pub const LANDMARKS_FILE: &str = "landmarks.safetensors";
/// The pretrained descriptor network.
pub const BACKBONE_FILE: &str = "backbone.safetensors";
/// The learned head, when there is one.
pub const HEAD_FILE: &str = "head.safetensors";

/// What to do with an image in which no face is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoFacePolicy {
    /// Refuse the image with a [`FaceProblem`] naming it (the default: a client should not
    /// enrol or verify a frame without a face).
    #[default]
    Error,
    /// Take the whole frame as the face's box (for sets of faces already cropped, where a face
    /// under extreme lighting may escape the detector).
    WholeFrame,
}

impl std::str::FromStr for NoFacePolicy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "error" => Ok(NoFacePolicy::Error),
            "whole-frame" => Ok(NoFacePolicy::WholeFrame),
            _ => Err(format!(
                "unknown no-face policy {s:?}: expected error or whole-frame"
            )),
        }
    }
}

/// How an image becomes the aligned chip the backbone reads (recorded in the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceContract {
    /// Times the image is doubled before detection (finds faces down to the detector's window
    /// side divided by `2^upsample`).
    pub upsample: u32,
    /// Detector score above which a position is a face (dlib's own operating point is 0).
    pub threshold: f32,
    /// Smallest face accepted, in pixels of the image's side (smaller ones are refused).
    pub min_face: f32,
    /// Side of the aligned chip (the backbone reads 150).
    pub chip_size: u32,
    /// Margin around the landmark template, as a share of the chip (dlib's 0.25).
    pub chip_padding: f32,
    /// What to do when no face is found.
    #[serde(default)]
    pub no_face: NoFacePolicy,
}

impl Default for FaceContract {
    fn default() -> Self {
        FaceContract {
            upsample: 1,
            threshold: 0.0,
            min_face: 24.0,
            chip_size: CHIP_SIZE as u32,
            chip_padding: 0.25,
            no_face: NoFacePolicy::Error,
        }
    }
}

/// Why an image gave no usable face.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaceProblem {
    /// The detector found nothing.
    #[error("no face found (detector enlarged the image {upsample} time(s); faces smaller than about {min_side:.0} px are missed)")]
    NoFace {
        /// The contract's enlargement.
        upsample: u32,
        /// The smallest face side the detector finds at that enlargement.
        min_side: f64,
    },
    /// The largest face is too small to align reliably.
    #[error("the face is {side:.0} px wide, below the {min:.0} px the face model accepts")]
    TooSmall {
        /// The face's side.
        side: f32,
        /// The contract's minimum.
        min: f32,
    },
}

/// A face found in an image and brought to the backbone's input.
#[derive(Debug, Clone)]
pub struct FoundFace {
    /// The aligned grey chip.
    pub chip: GrayImage,
    /// The detection used; `None` when the whole frame was taken as the face.
    pub detection: Option<Detection>,
    /// How many faces the detector found (the largest was used).
    pub faces: usize,
    /// The five landmarks, in image coordinates.
    pub landmarks: Vec<Point>,
}

/// The JSON header of a face checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaceHeader {
    format: String,
    contract: FaceContract,
    /// The learned head, when the checkpoint has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head: Option<HeadConfig>,
    /// The hashmap length the model is meant to be used at (clients and evaluation use it
    /// unless told otherwise; a server storing these hashmaps is configured with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hashmap_dim: Option<usize>,
    /// Where the pretrained parts came from and under which licence, in words.
    provenance: String,
    meta: CheckpointMeta,
}

/// The whole face pipeline of one checkpoint (see the module docs).
#[derive(Debug)]
pub struct FaceModel {
    detector: FaceDetector,
    landmarks: LandmarkModel,
    backbone: FaceBackbone,
    head: Option<(HeadConfig, head::HeadNet)>,
    contract: FaceContract,
    hashmap_dim: Option<usize>,
    provenance: String,
    /// The folder the pretrained files were read from (copied by [`FaceModel::save`]).
    source: PathBuf,
    input: InputSpec,
}

/// Whether `dir` holds a face checkpoint (its header's format is [`FACE_FORMAT`]).
pub fn is_face_checkpoint(dir: &Path) -> bool {
    std::fs::read(dir.join(HEADER_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["format"] == FACE_FORMAT)
}

impl FaceModel {
    /// Loads a face checkpoint folder.
    ///
    /// Errors: [`Error::MissingFile`] for an absent file, [`Error::Json`] for a bad header (or
    /// one of another format), and each part's own loading errors.
    pub fn load(dir: &Path) -> Result<(Self, CheckpointMeta)> {
        let path = dir.join(HEADER_FILE);
        let bytes = crate::encoder::read_file(&path)?;
        let header: FaceHeader = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        if header.format != FACE_FORMAT {
            return Err(Error::invalid(
                "format",
                format!(
                    "{} has format {:?}, not a face model ({FACE_FORMAT})",
                    path.display(),
                    header.format
                ),
            ));
        }
        let mut model =
            Self::from_parts(dir, header.contract, header.provenance)?.with_hashmap_dim(header.hashmap_dim);
        if let Some(cfg) = header.head {
            let mut net = head::HeadNet::new(&cfg, 0, None, &compute_device());
            crate::encoder::load_safetensors(&mut net, &dir.join(HEAD_FILE))?;
            model.head = Some((cfg, net));
        }
        Ok((model, header.meta))
    }

    /// A model without a head from the three converted dlib files in `dir`.
    pub fn from_parts(dir: &Path, contract: FaceContract, provenance: String) -> Result<Self> {
        if contract.chip_size as usize != CHIP_SIZE {
            return Err(Error::invalid(
                "chip_size",
                format!("{} px; the backbone reads {CHIP_SIZE}", contract.chip_size),
            ));
        }
        if !((0.0..=2.0).contains(&contract.chip_padding) && contract.min_face.is_finite()) {
            return Err(Error::invalid(
                "contract",
                format!("implausible face contract {contract:?}"),
            ));
        }
        let landmarks_path = dir.join(LANDMARKS_FILE);
        let landmarks = LandmarkModel::load(&landmarks_path).map_err(|e| Error::Weights {
            path: landmarks_path.clone(),
            reason: e.to_string(),
        })?;
        Ok(FaceModel {
            detector: FaceDetector::load(&dir.join(DETECTOR_FILE))?,
            landmarks,
            backbone: FaceBackbone::load(&dir.join(BACKBONE_FILE))?,
            head: None,
            input: InputSpec {
                modality: Modality::Face,
                ..InputSpec::plain(contract.chip_size)
            },
            contract,
            hashmap_dim: None,
            provenance,
            source: dir.to_path_buf(),
        })
    }

    /// Writes the checkpoint to `dir`: the header, the head, and copies of the pretrained
    /// files (so the folder alone describes the whole pipeline).
    pub fn save(&self, dir: &Path, meta: &CheckpointMeta) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for f in [DETECTOR_FILE, LANDMARKS_FILE, BACKBONE_FILE] {
            let (from, to) = (self.source.join(f), dir.join(f));
            let same = from
                .canonicalize()
                .ok()
                .zip(to.canonicalize().ok())
                .is_some_and(|(a, b)| a == b);
            if !same {
                std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        if let Some((_, net)) = &self.head {
            save_weights(net, &dir.join(HEAD_FILE))?;
        } else {
            let _ = std::fs::remove_file(dir.join(HEAD_FILE));
        }
        let header = FaceHeader {
            format: FACE_FORMAT.into(),
            contract: self.contract.clone(),
            head: self.head.as_ref().map(|(c, _)| *c),
            hashmap_dim: self.hashmap_dim,
            provenance: self.provenance.clone(),
            meta: meta.clone(),
        };
        write_json(&dir.join(HEADER_FILE), &header)
    }

    /// The hashmap length this model is meant to be used at, when its checkpoint names one.
    pub fn hashmap_dim(&self) -> Option<usize> {
        self.hashmap_dim
    }

    /// The same model meant to be used at hashmaps of `dim` values (or the embedding dimension).
    pub fn with_hashmap_dim(mut self, dim: Option<usize>) -> Self {
        self.hashmap_dim = dim;
        self
    }

    /// The contract images are prepared under.
    pub fn contract(&self) -> &FaceContract {
        &self.contract
    }

    /// The same model under another no-face policy (a set of cropped faces).
    pub fn with_no_face(mut self, policy: NoFacePolicy) -> Self {
        self.contract.no_face = policy;
        self
    }

    /// The input contract seen by dataset code: grey chips of the chip size.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// Where the pretrained parts came from, in words.
    pub fn provenance(&self) -> &str {
        &self.provenance
    }

    /// The head's shape, when the model has a learned head.
    pub fn head(&self) -> Option<HeadConfig> {
        self.head.as_ref().map(|(c, _)| *c)
    }

    /// Dimension of the embeddings [`FaceModel::embed`] returns.
    pub fn embedding_dim(&self) -> usize {
        self.head.as_ref().map_or(DESCRIPTOR_DIM, |(c, _)| c.dim)
    }

    /// Finds the face in `img` and aligns it (see the module docs for the policy).
    pub fn find(&self, img: &GrayImage) -> Result<std::result::Result<FoundFace, FaceProblem>> {
        let c = &self.contract;
        let found = self.detector.detect(img, c.upsample, c.threshold)?;
        let faces = found.len();
        let largest = found
            .into_iter()
            .max_by(|a, b| area(&a.rect).total_cmp(&area(&b.rect)));
        let (rect, detection) = match largest {
            Some(d) => {
                let side = (d.rect.right - d.rect.left).min(d.rect.bottom - d.rect.top);
                if side < c.min_face {
                    return Ok(Err(FaceProblem::TooSmall {
                        side,
                        min: c.min_face,
                    }));
                }
                (d.rect, Some(d))
            }
            None => match c.no_face {
                NoFacePolicy::Error => {
                    return Ok(Err(FaceProblem::NoFace {
                        upsample: c.upsample,
                        min_side: self.detector.min_face(c.upsample),
                    }))
                }
                NoFacePolicy::WholeFrame => (
                    FaceBox {
                        left: 0.0,
                        top: 0.0,
                        right: img.width() as f32 - 1.0,
                        bottom: img.height() as f32 - 1.0,
                    },
                    None,
                ),
            },
        };
        let landmarks = self
            .landmarks
            .predict(img, &rect)
            .map_err(|e| Error::invalid("landmarks", e.to_string()))?;
        let spec = ChipSpec {
            size: c.chip_size,
            padding: c.chip_padding,
        };
        let t =
            face_chip_transform(&landmarks, &spec).map_err(|e| Error::invalid("alignment", e.to_string()))?;
        Ok(Ok(FoundFace {
            chip: extract_chip_grey(img, &t, c.chip_size),
            detection,
            faces,
            landmarks,
        }))
    }

    /// Reads an image file and returns its aligned chip.
    ///
    /// When the environment variable [`FACE_CACHE_VAR`] names a folder, chips are kept there,
    /// keyed by the file's path, size and modification time and by the face contract, so that
    /// evaluating several heads on one set detects and aligns each face once.
    ///
    /// Errors: [`Error::Data`] naming the file when it cannot be read, [`Error::NoUsableFace`]
    /// naming it when no usable face is in it.
    pub fn prepare_file(&self, path: &Path) -> Result<GrayImage> {
        let cache = std::env::var_os(FACE_CACHE_VAR).map(PathBuf::from);
        // A detected face's chip does not depend on the no-face policy; a whole frame's does.
        let entry = |whole: bool| cache.as_ref().and_then(|dir| self.cache_entry(dir, path, whole));
        let mut looks = vec![entry(false)];
        if self.contract.no_face == NoFacePolicy::WholeFrame {
            looks.push(entry(true));
        }
        for e in looks.iter().flatten() {
            if let Ok(chip) = image::open(e) {
                let chip = chip.to_luma8();
                if chip.dimensions() == (self.contract.chip_size, self.contract.chip_size) {
                    return Ok(chip);
                }
            }
        }
        let img = nhm_data::loaders::load_image(path)?;
        match self.find(&img)? {
            Ok(f) => {
                if let Some(entry) = entry(f.detection.is_none()) {
                    // A cache that cannot be written only costs time.
                    let tmp = entry.with_extension("tmp.png");
                    if f.chip.save(&tmp).is_ok() {
                        let _ = std::fs::rename(&tmp, &entry);
                    }
                }
                Ok(f.chip)
            }
            Err(problem) => Err(Error::NoUsableFace {
                path: path.to_path_buf(),
                problem,
            }),
        }
    }

    /// The cache file of `path`'s chip under this contract (found by the detector, or the whole
    /// frame taken as the face), if the file can be looked at.
    fn cache_entry(&self, dir: &Path, path: &Path, whole_frame: bool) -> Option<PathBuf> {
        use std::hash::{Hash, Hasher};
        let meta = std::fs::metadata(path).ok()?;
        let mut h = std::hash::DefaultHasher::new();
        path.canonicalize().ok()?.hash(&mut h);
        meta.len().hash(&mut h);
        meta.modified().ok()?.hash(&mut h);
        let contract = FaceContract {
            no_face: NoFacePolicy::Error,
            ..self.contract.clone()
        };
        serde_json::to_string(&contract).ok()?.hash(&mut h);
        whole_frame.hash(&mut h);
        std::fs::create_dir_all(dir).ok()?;
        Some(dir.join(format!("{:016x}.png", h.finish())))
    }

    /// A dataset read under [`FaceModel::input`] made ready for [`FaceModel::embed`]: each sample
    /// is read again from its file, its face found and aligned, and a sample without a usable
    /// face is dropped and recorded among the dataset's problems (a failure to acquire, counted
    /// in reports). Then subjects left with fewer than `min_samples` samples are dropped too.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an in-memory sample (a face model reads files), and the
    /// model's own errors.
    pub fn prepare_dataset(&self, mut ds: Dataset, min_samples: usize) -> Result<Dataset> {
        use rayon::prelude::*;
        let results: Vec<Result<std::result::Result<GrayImage, String>>> = ds
            .samples
            .par_iter()
            .map(|s| {
                let path = s.source.as_ref().ok_or_else(|| {
                    Error::invalid(
                        "dataset",
                        "a face model reads samples from their files; this one has none",
                    )
                })?;
                match self.prepare_file(path) {
                    Ok(chip) => Ok(Ok(chip)),
                    Err(Error::NoUsableFace { problem, .. }) => Ok(Err(problem.to_string())),
                    Err(e) => Err(e),
                }
            })
            .collect();
        let mut kept = Vec::with_capacity(ds.samples.len());
        for (mut s, r) in ds.samples.drain(..).zip(results) {
            match r? {
                Ok(chip) => {
                    s.image = chip;
                    kept.push(s);
                }
                Err(message) => ds.problems.push(Problem {
                    path: s.source.clone().unwrap_or_default(),
                    message: format!("{}: {message}", crate::FAILURE_TO_ACQUIRE),
                }),
            }
        }
        ds.samples = kept;
        let counts = ds.samples_per_subject();
        let keep: Vec<u32> = (0..ds.n_subjects() as u32)
            .filter(|&s| counts[s as usize] >= min_samples.max(1))
            .collect();
        Ok(ds.select_subjects(&keep))
    }

    /// Unit descriptors of the backbone (before the head) of aligned chips.
    pub fn descriptors(&self, chips: &[GrayImage]) -> Result<Vec<Vec<f32>>> {
        Ok(self
            .backbone
            .describe_grey(chips)?
            .into_iter()
            .map(unit)
            .collect())
    }

    /// Unit embeddings of aligned chips: the backbone, then the head when there is one.
    pub fn embed(&self, chips: &[GrayImage]) -> Result<Vec<Vec<f32>>> {
        let d = self.descriptors(chips)?;
        self.apply_head(&d)
    }

    /// The head applied to unit descriptors (the identity without a head).
    pub fn apply_head(&self, descriptors: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let Some((cfg, net)) = &self.head else {
            return Ok(descriptors.to_vec());
        };
        if descriptors.is_empty() {
            return Ok(Vec::new());
        }
        let flat: Vec<f32> = descriptors.iter().flatten().copied().collect();
        let n = descriptors.len();
        let x = Tensor::<2>::from_data(TensorData::new(flat, [n, cfg.dim]), &compute_device());
        let y = read_f32(l2_normalize(net.forward(x)))?;
        Ok(y.chunks(cfg.dim).map(<[f32]>::to_vec).collect())
    }

    /// dlib's raw descriptors of aligned RGB chips (for checking the port against dlib).
    pub fn backbone(&self) -> &FaceBackbone {
        &self.backbone
    }

    /// Trains a head on the unit descriptors of training identities and installs it; returns
    /// the mean loss of each epoch.
    pub fn train_head(
        &mut self,
        descriptors: &[Vec<f32>],
        labels: &[u32],
        cfg: &HeadTrainConfig,
    ) -> Result<Vec<f32>> {
        let (net, losses) = head::train_head(descriptors, labels, cfg)?;
        self.head = Some((cfg.head, net));
        Ok(losses)
    }
}

fn area(r: &FaceBox) -> f32 {
    (r.right - r.left) * (r.bottom - r.top)
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}
