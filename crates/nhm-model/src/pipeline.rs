//! The client pipeline, built from a checkpoint: image file → the model's input contract →
//! encoder → secret key → hashmap. `nhm encode`, the client commands and the demo all go through
//! it, so a model is always fed images the way it was trained on them.

use std::path::Path;

use nhm_data::input::Resolution;
use nhm_data::GrayImage;
use nhm_template::{Hashmap, HashmapKind, Key, Protector};

use crate::{Encoder, Result};

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
    encoder: Encoder,
    protector: Protector,
    kind: HashmapKind,
    user_dpi: Option<f32>,
}

impl ClientPipeline {
    /// A pipeline making `kind` hashmaps of `hashmap_dim` values (the embedding dimension when
    /// `None`) under `key`.
    ///
    /// # Errors
    /// [`crate::Error::Template`] when the length is not the embedding dimension times 1 to 16.
    pub fn new(encoder: Encoder, key: &Key, hashmap_dim: Option<usize>, kind: HashmapKind) -> Result<Self> {
        let d = encoder.config().embedding_dim;
        let protector = Protector::with_output_dim(key, d, hashmap_dim.unwrap_or(d))?;
        Ok(ClientPipeline {
            encoder,
            protector,
            kind,
            user_dpi: None,
        })
    }

    /// Loads the checkpoint folder `model` and builds the pipeline (see [`ClientPipeline::new`]).
    ///
    /// # Errors
    /// As [`Encoder::load`] and [`ClientPipeline::new`].
    pub fn load(model: &Path, key: &Key, hashmap_dim: Option<usize>, kind: HashmapKind) -> Result<Self> {
        Self::new(Encoder::load(model)?, key, hashmap_dim, kind)
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

    /// The encoder, with its input contract.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The kind of hashmap made.
    pub fn kind(&self) -> HashmapKind {
        self.kind
    }

    /// Reads one image file and brings it to the model's input under the checkpoint's contract.
    ///
    /// # Errors
    /// [`crate::Error::Data`] naming the file when it cannot be read or decoded.
    pub fn prepare_file(&self, path: &Path) -> Result<PreparedSample> {
        let (image, resolution) = self.encoder.input().prepare_file(path, self.user_dpi)?;
        Ok(PreparedSample { image, resolution })
    }

    /// Hashmaps of images already at the model's input (from [`ClientPipeline::prepare_file`] or
    /// a dataset read under the same contract).
    ///
    /// # Errors
    /// [`crate::Error::InputSize`] for an image of another size.
    pub fn hashmaps(&self, images: &[GrayImage]) -> Result<Vec<Hashmap>> {
        self.encoder
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
