//! The client pipeline, built from a checkpoint: image file → the model's input contract →
//! encoder → secret key → hashmap. `nhm encode`, the client commands and the demo all go through
//! it, so a model is always fed images the way it was trained on them.

use std::path::Path;

use nhm_data::input::{InputSpec, Resolution};
use nhm_data::{Dataset, GrayImage};
use nhm_template::{Hashmap, HashmapKind, Key, Protector};

use crate::face::{is_face_checkpoint, FaceModel};
use crate::{CheckpointMeta, Encoder, Result};

/// How a dataset problem that is a failure to acquire (no usable face) starts.
pub const FAILURE_TO_ACQUIRE: &str = "failure to acquire";

/// Anything that turns images prepared under its input contract into unit embeddings: what the
/// evaluation pipeline needs of a model, whatever its modality.
pub trait Embedder {
    /// Dimension of the embeddings.
    fn embedding_dim(&self) -> usize;
    /// Unit embeddings of prepared images, in order.
    fn embed_images(&self, images: &[GrayImage]) -> Result<Vec<Vec<f32>>>;
}

impl Embedder for Encoder {
    fn embedding_dim(&self) -> usize {
        self.config().embedding_dim
    }

    fn embed_images(&self, images: &[GrayImage]) -> Result<Vec<Vec<f32>>> {
        self.embed(images)
    }
}

impl Embedder for FaceModel {
    fn embedding_dim(&self) -> usize {
        FaceModel::embedding_dim(self)
    }

    fn embed_images(&self, images: &[GrayImage]) -> Result<Vec<Vec<f32>>> {
        self.embed(images)
    }
}

/// A checkpoint of either kind: an image encoder (fingerprints, small face sets) or the face
/// pipeline (detector, aligner, backbone, head). The checkpoint's header says which, so the
/// modality is a property of the model, never a flag the user must remember.
#[derive(Debug)]
pub enum ClientModel {
    /// A CNN encoder reading grey images under its input contract.
    Image(Box<Encoder>),
    /// The face pipeline.
    Face(Box<FaceModel>),
}

impl ClientModel {
    /// Loads the checkpoint folder `dir`, whichever kind it holds.
    ///
    /// # Errors
    /// As [`Encoder::load_with_meta`] or [`FaceModel::load`].
    pub fn load(dir: &Path) -> Result<(Self, CheckpointMeta)> {
        if is_face_checkpoint(dir) {
            let (m, meta) = FaceModel::load(dir)?;
            Ok((ClientModel::Face(Box::new(m)), meta))
        } else {
            let (e, meta) = Encoder::load_with_meta(dir)?;
            Ok((ClientModel::Image(Box::new(e)), meta))
        }
    }

    /// The input contract of the images [`ClientModel::embed`] reads.
    pub fn input(&self) -> &InputSpec {
        match self {
            ClientModel::Image(e) => e.input(),
            ClientModel::Face(f) => f.input(),
        }
    }

    /// The hashmap length the checkpoint says the model is meant to be used at, if any (face
    /// models whose 128-d descriptors need longer binary codes).
    pub fn default_hashmap_dim(&self) -> Option<usize> {
        match self {
            ClientModel::Image(_) => None,
            ClientModel::Face(f) => f.hashmap_dim(),
        }
    }

    /// The model as an [`Embedder`].
    pub fn embedder(&self) -> &dyn Embedder {
        match self {
            ClientModel::Image(e) => e.as_ref(),
            ClientModel::Face(f) => f.as_ref(),
        }
    }

    /// Reads one image file and brings it to the model's input.
    ///
    /// # Errors
    /// [`Error::Data`] naming the file when it cannot be read or decoded;
    /// [`Error::NoUsableFace`] naming it when a face model finds no usable face.
    pub fn prepare_file(&self, path: &Path, user_dpi: Option<f32>) -> Result<PreparedSample> {
        match self {
            ClientModel::Image(e) => {
                let (image, resolution) = e.input().prepare_file(path, user_dpi)?;
                Ok(PreparedSample { image, resolution })
            }
            ClientModel::Face(f) => Ok(PreparedSample {
                image: f.prepare_file(path)?,
                resolution: None,
            }),
        }
    }

    /// A dataset read under [`ClientModel::input`] made ready for [`Embedder::embed_images`]:
    /// unchanged for an image encoder; for a face model see [`FaceModel::prepare_dataset`].
    ///
    /// # Errors
    /// As [`FaceModel::prepare_dataset`].
    pub fn prepare_dataset(&self, ds: Dataset, min_samples: usize) -> Result<Dataset> {
        match self {
            ClientModel::Image(_) => Ok(ds),
            ClientModel::Face(f) => f.prepare_dataset(ds, min_samples),
        }
    }

    /// Unit embeddings of prepared images.
    pub fn embed(&self, images: &[GrayImage]) -> Result<Vec<Vec<f32>>> {
        self.embedder().embed_images(images)
    }
}

/// One image file brought to the model's input, with the resolution it was read at.
#[derive(Debug, Clone)]
pub struct PreparedSample {
    /// The image at the encoder's input size.
    pub image: GrayImage,
    /// The sample's resolution and where it came from, when the contract asked for one and one
    /// was found; `None` means it was taken to be at the model's resolution.
    pub resolution: Option<Resolution>,
}

/// Everything a client needs to turn images into hashmaps: the encoder with its input contract,
/// and the keyed protection transform.
#[derive(Debug)]
pub struct ClientPipeline {
    model: ClientModel,
    protector: Protector,
    kind: HashmapKind,
    user_dpi: Option<f32>,
}

impl ClientPipeline {
    /// A pipeline making `kind` hashmaps of `hashmap_dim` values (when `None`: the length the
    /// checkpoint names, else the embedding dimension) under `key`.
    ///
    /// # Errors
    /// [`crate::Error::Template`] when the length is not the embedding dimension times 1 to 16.
    pub fn new(model: ClientModel, key: &Key, hashmap_dim: Option<usize>, kind: HashmapKind) -> Result<Self> {
        let d = model.embedder().embedding_dim();
        let dim = hashmap_dim.or(model.default_hashmap_dim()).unwrap_or(d);
        let protector = Protector::with_output_dim(key, d, dim)?;
        Ok(ClientPipeline {
            model,
            protector,
            kind,
            user_dpi: None,
        })
    }

    /// Loads the checkpoint folder `model` and builds the pipeline (see [`ClientPipeline::new`]).
    ///
    /// # Errors
    /// As [`ClientModel::load`] and [`ClientPipeline::new`].
    pub fn load(model: &Path, key: &Key, hashmap_dim: Option<usize>, kind: HashmapKind) -> Result<Self> {
        Self::new(ClientModel::load(model)?.0, key, hashmap_dim, kind)
    }

    /// The resolution to assume for files whose header carries none (the user's `--dpi`).
    pub fn with_user_dpi(mut self, dpi: Option<f32>) -> Self {
        self.user_dpi = dpi;
        self
    }

    /// The resolution assumed for files whose header carries none, if the user gave one.
    pub fn user_dpi(&self) -> Option<f32> {
        self.user_dpi
    }

    /// The model, with its input contract.
    pub fn model(&self) -> &ClientModel {
        &self.model
    }

    /// The kind of hashmap made.
    pub fn kind(&self) -> HashmapKind {
        self.kind
    }

    /// Reads one image file and brings it to the model's input under the checkpoint's contract.
    ///
    /// # Errors
    /// [`crate::Error::Data`] naming the file when it cannot be read or decoded,
    /// [`crate::Error::NoUsableFace`] naming it when a face model finds no usable face.
    pub fn prepare_file(&self, path: &Path) -> Result<PreparedSample> {
        self.model.prepare_file(path, self.user_dpi)
    }

    /// Hashmaps of images already at the model's input (from [`ClientPipeline::prepare_file`] or
    /// a dataset read under the same contract).
    ///
    /// # Errors
    /// [`crate::Error::InputSize`] for an image of another size.
    pub fn hashmaps(&self, images: &[GrayImage]) -> Result<Vec<Hashmap>> {
        self.model
            .embed(images)?
            .iter()
            .map(|e| Ok(self.protector.protect(e, self.kind)?))
            .collect()
    }

    /// Hashmaps of image files, in order.
    ///
    /// # Errors
    /// The first file that cannot be read, named.
    pub fn hashmaps_of_files(&self, paths: &[impl AsRef<Path>]) -> Result<Vec<Hashmap>> {
        let images = paths
            .iter()
            .map(|p| Ok(self.prepare_file(p.as_ref())?.image))
            .collect::<Result<Vec<_>>>()?;
        self.hashmaps(&images)
    }
}
