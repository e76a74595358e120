//! The inference encoder (no autodiff): embed images, save and load checkpoints.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use burn::module::Module;
use burn::store::{ApplyError, ApplyResult, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};
use nhm_data::input::InputSpec;
use nhm_data::GrayImage;
use serde::{Deserialize, Serialize};

use crate::net::{l2_normalize, EncoderNet};
use crate::whitening::{Whitening, WhiteningSpec, WHITENING_FILE};
use crate::{EncoderConfig, Error, Result, TrainConfig};

/// File name of the weights inside a checkpoint folder.
pub const WEIGHTS_FILE: &str = "encoder.safetensors";
/// File name of the JSON header inside a checkpoint folder.
pub const HEADER_FILE: &str = "checkpoint.json";
/// Images per forward pass in [`Encoder::embed`].
pub const EMBED_BATCH: usize = 64;
const FORMAT: &str = "nhm-encoder/1";

/// The device the encoder computes on: CUDA with the `cuda` feature, else burn's `flex` CPU
/// backend.
pub fn compute_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Device::flex()
    }
}

/// What a checkpoint records about how its weights were made (the reproducibility header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The training settings, when the weights were trained.
    pub train: Option<TrainConfig>,
    /// The seed the weights were made with.
    pub seed: u64,
    /// The training data, in words (e.g. `synth subjects=80 impressions=8 seed=1`).
    pub data: String,
    /// `git rev-parse HEAD` of the source tree when saved, if it is a git checkout.
    pub git_revision: Option<String>,
    /// The epoch (1-based) these weights come from; 0 for untrained weights.
    pub epoch: usize,
    /// Validation EER of these weights (fraction), when measured.
    pub val_eer: Option<f64>,
    /// When the checkpoint was written, seconds since the Unix epoch.
    pub created_unix: u64,
    /// The nhm-model version that wrote it.
    pub nhm_version: String,
}

impl CheckpointMeta {
    /// A header stamped with the current time and git revision; a non-finite `val_eer` is
    /// recorded as unknown.
    pub fn new(
        train: Option<&TrainConfig>,
        data: impl Into<String>,
        epoch: usize,
        val_eer: Option<f64>,
    ) -> Self {
        CheckpointMeta {
            train: train.cloned(),
            seed: train.map_or(0, |t| t.seed),
            data: data.into(),
            git_revision: git_revision(),
            epoch,
            val_eer: val_eer.filter(|v| v.is_finite()),
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            nhm_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// `git rev-parse HEAD` in the current directory, when git and a repository are there.
fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!rev.is_empty()).then_some(rev)
}

/// The JSON header file: format tag, architecture, provenance.
#[derive(Debug, Serialize, Deserialize)]
struct HeaderFile {
    format: String,
    encoder: EncoderConfig,
    /// The input contract; absent in checkpoints written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<InputSpec>,
    /// The whitening after the network, when the checkpoint carries one (in [`WHITENING_FILE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    whitening: Option<WhiteningSpec>,
    meta: CheckpointMeta,
}

/// A trained (or freshly initialised) encoder for inference: images in, unit embeddings out.
#[derive(Debug, Clone)]
pub struct Encoder {
    cfg: EncoderConfig,
    input: InputSpec,
    net: EncoderNet,
    whitening: Option<Whitening>,
    device: Device,
}

impl Encoder {
    /// A randomly initialised encoder (seeded): for benchmarks and tests.
    pub fn new(cfg: &EncoderConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let device = compute_device();
        let net = EncoderNet::new(cfg, seed, &device);
        Ok(Encoder {
            cfg: cfg.clone(),
            input: InputSpec::plain(cfg.input_size as u32),
            net,
            whitening: None,
            device,
        })
    }

    /// Wraps a network (moved to the inference device by the caller).
    pub(crate) fn from_net(cfg: EncoderConfig, net: EncoderNet) -> Self {
        Encoder {
            input: InputSpec::plain(cfg.input_size as u32),
            cfg,
            net,
            whitening: None,
            device: compute_device(),
        }
    }

    /// The network (for the federated client's weight exchange).
    pub(crate) fn net(&self) -> &EncoderNet {
        &self.net
    }

    /// The architecture.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// The input contract: how a decoded image becomes what this encoder reads.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// The same encoder under another input contract (whose size must be the encoder's input
    /// size): set by training from [`TrainConfig::input`].
    pub fn with_input(mut self, input: InputSpec) -> Result<Self> {
        check_input(&self.cfg, &input)?;
        self.input = input;
        Ok(self)
    }

    /// Embeds images (each `input_size`×`input_size` grayscale, see `nhm_data::preprocess`),
    /// [`EMBED_BATCH`] at a time; returns one L2-normalised vector of `embedding_dim` per image.
    pub fn embed(&self, images: &[GrayImage]) -> Result<Vec<Vec<f32>>> {
        let s = self.cfg.input_size;
        for img in images {
            check_size(img, s)?;
        }
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(EMBED_BATCH) {
            let pixels: Vec<f32> = chunk.iter().flat_map(nhm_data::preprocess::to_f32).collect();
            out.extend(self.embed_pixels(pixels, chunk.len())?);
        }
        Ok(out)
    }

    /// The network's forward pass on a `[n, 1, s, s]` tensor.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head(forward_net(&self.net, self.cfg.mirror_average, x))
    }

    /// What follows the network: the whitening when there is one (the network's output is
    /// already unit length).
    pub(crate) fn head(&self, e: Tensor<2>) -> Tensor<2> {
        match &self.whitening {
            Some(w) => w.apply_tensor(e),
            None => e,
        }
    }

    /// The whitening after the network, if any.
    pub fn whitening(&self) -> Option<&Whitening> {
        self.whitening.as_ref()
    }

    /// The same encoder with `whitening` after its network (it is saved with the checkpoint).
    ///
    /// Errors: [`Error::InvalidParameter`] when the whitening maps another dimension.
    pub fn with_whitening(mut self, whitening: Whitening) -> Result<Self> {
        if whitening.dim() != self.cfg.embedding_dim {
            return Err(Error::invalid(
                "whitening",
                format!(
                    "it maps {} dimensions, the encoder embeds in {}",
                    whitening.dim(),
                    self.cfg.embedding_dim
                ),
            ));
        }
        self.whitening = Some(whitening);
        Ok(self)
    }

    /// The same encoder with the network's own embeddings (no whitening).
    pub fn without_whitening(mut self) -> Self {
        self.whitening = None;
        self
    }

    /// Fits a whitening ([`Whitening::fit`]) on the network's own embeddings of `images`
    /// (public data, never the subjects a figure is reported on).
    pub fn fit_whitening(
        &self,
        images: &[GrayImage],
        shrinkage: f64,
        fitted_on: impl Into<String>,
    ) -> Result<Whitening> {
        let raw = self.clone().without_whitening().embed(images)?;
        Whitening::fit(&raw, shrinkage, fitted_on)
    }

    /// The network with its training behaviour off (BatchNorm on running statistics), its
    /// weights constants: what a gradient through the frozen encoder runs on.
    pub(crate) fn frozen_net(&self) -> EncoderNet {
        self.net.valid()
    }

    /// Cosine of each image's embedding with its target direction, and the gradient of that
    /// cosine with respect to the image's pixels (the white-box attacker's view of the encoder).
    ///
    /// `pixels` holds `targets.len()` images of `input_size`×`input_size` raw intensities in
    /// [0, 1] (row-major, one after the other: the `u8` image divided by 255); they are
    /// standardised inside the differentiated graph exactly as [`Encoder::embed`] does. Each
    /// target (of `embedding_dim` values, any nonzero length) is normalised. Returns `n` cosines
    /// and `n·s·s` gradient values, on the autodiff backend.
    ///
    /// Errors: [`Error::InvalidParameter`] for a pixel buffer of the wrong length, a target of
    /// the wrong dimension, or a non-finite or zero target.
    pub fn cosine_gradient(&self, pixels: &[f32], targets: &[Vec<f32>]) -> Result<(Vec<f32>, Vec<f32>)> {
        let (s, d, n) = (self.cfg.input_size, self.cfg.embedding_dim, targets.len());
        if pixels.len() != n * s * s {
            return Err(Error::invalid(
                "pixels",
                format!("{} values for {n} images of {s}×{s}", pixels.len()),
            ));
        }
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        if pixels.iter().any(|p| !p.is_finite()) {
            return Err(Error::invalid("pixels", "a pixel is not finite"));
        }
        let mut flat = Vec::with_capacity(n * d);
        for (i, t) in targets.iter().enumerate() {
            if t.len() != d {
                return Err(Error::invalid(
                    "targets",
                    format!("target {i} has {} values, the embedding {d}", t.len()),
                ));
            }
            let norm = t.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
            if !(norm.is_finite() && norm > 0.0) {
                return Err(Error::invalid(
                    "targets",
                    format!("target {i} is zero or not finite"),
                ));
            }
            flat.extend(t.iter().map(|v| (f64::from(*v) / norm) as f32));
        }
        let device = self.device.clone().autodiff();
        let net = self.frozen_net();
        let x =
            Tensor::<4>::from_data(TensorData::new(pixels.to_vec(), [n, 1, s, s]), &device).require_grad();
        let e = self.head(forward_net(&net, self.cfg.mirror_average, standardize(x.clone())));
        let t = Tensor::<2>::from_data(TensorData::new(flat, [n, d]), &self.device);
        let cos = (e * t).sum_dim(1);
        let grads = cos.clone().sum().backward();
        let g = x.grad(&grads).ok_or_else(|| Error::Backend {
            reason: "no gradient reached the input pixels".into(),
        })?;
        Ok((read_f32(cos.without_autodiff())?, read_f32(g)?))
    }

    /// Embeds `n` preprocessed images given as one row-major `[n, 1, s, s]` buffer.
    pub(crate) fn embed_pixels(&self, pixels: Vec<f32>, n: usize) -> Result<Vec<Vec<f32>>> {
        let s = self.cfg.input_size;
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [n, 1, s, s]), &self.device);
        let e = self.forward(x);
        let v = read_f32(e)?;
        let d = self.cfg.embedding_dim;
        Ok(v.chunks(d).map(<[f32]>::to_vec).collect())
    }

    /// Writes `dir/encoder.safetensors` and `dir/checkpoint.json` (creating `dir`); each file is
    /// written under a temporary name and renamed, so a crash leaves no half-written file.
    pub fn save(&self, dir: &Path, meta: &CheckpointMeta) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        save_weights(&self.net, &dir.join(WEIGHTS_FILE))?;
        let header = HeaderFile {
            format: FORMAT.into(),
            encoder: self.cfg.clone(),
            input: Some(self.input.clone()),
            whitening: self.whitening.as_ref().map(|w| w.spec().clone()),
            meta: meta.clone(),
        };
        let whitening_path = dir.join(WHITENING_FILE);
        match &self.whitening {
            Some(w) => w.save(&whitening_path)?,
            // A whitening left by an earlier checkpoint in this folder is not this encoder's.
            None => match std::fs::remove_file(&whitening_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&whitening_path, e))
                }
                _ => {}
            },
        }
        write_json(&dir.join(HEADER_FILE), &header)
    }

    /// Loads a checkpoint folder written by [`Encoder::save`].
    ///
    /// Errors: [`Error::MissingFile`] when a file is absent, [`Error::Json`] for a bad header,
    /// [`Error::ConfigMismatch`] naming the first tensor whose shape or presence disagrees with
    /// the header's configuration (for example the weights of another configuration).
    pub fn load(dir: &Path) -> Result<Encoder> {
        Ok(Self::load_with_meta(dir)?.0)
    }

    /// Like [`Encoder::load`], also returning the checkpoint's header.
    pub fn load_with_meta(dir: &Path) -> Result<(Encoder, CheckpointMeta)> {
        let header = read_header(dir)?;
        header.encoder.validate()?;
        let device = compute_device();
        let mut net = EncoderNet::new(&header.encoder, 0, &device);
        load_safetensors(&mut net, &dir.join(WEIGHTS_FILE))?;
        let input = header
            .input
            .unwrap_or_else(|| InputSpec::plain(header.encoder.input_size as u32));
        check_input(&header.encoder, &input)?;
        let whitening = match header.whitening {
            Some(spec) => Some(Whitening::load(
                &dir.join(WHITENING_FILE),
                header.encoder.embedding_dim,
                spec,
            )?),
            None => None,
        };
        Ok((
            Encoder {
                cfg: header.encoder,
                input,
                net,
                whitening,
                device,
            },
            header.meta,
        ))
    }
}

/// The encoder's forward pass through `net` (mirror-averaged when `mirror`).
pub(crate) fn forward_net(net: &EncoderNet, mirror: bool, x: Tensor<4>) -> Tensor<2> {
    if mirror {
        let mirrored = net.forward(x.clone().flip([3]));
        l2_normalize(net.forward(x) + mirrored)
    } else {
        net.forward(x)
    }
}

/// `[n, 1, s, s]` intensities in [0, 1] → the standardised pixels the encoder reads
/// (`nhm_data::preprocess::to_f32` of the `u8` image, differentiably; a flat image's zero
/// variance is nudged so that its gradient stays finite).
pub(crate) fn standardize(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let flat: Tensor<2> = x.reshape([n, c * h * w]).mul_scalar(255.0);
    let mean = flat.clone().mean_dim(1);
    let centred = flat - mean;
    let var = centred.clone().powf_scalar(2.0).mean_dim(1);
    let inv = var.add_scalar(1e-6).sqrt().add_scalar(1e-3).recip();
    (centred * inv).reshape([n, c, h, w])
}

/// Loads the weights of the checkpoint folder `dir` into `net` (the start of a fine-tuning run),
/// refusing a checkpoint whose encoder configuration differs from `cfg`: equal tensor shapes are
/// not enough (another input size has the same shapes and would silently mean something else).
pub(crate) fn load_init(dir: &Path, cfg: &EncoderConfig, net: &mut EncoderNet) -> Result<()> {
    let header = read_header(dir)?;
    if header.encoder != *cfg {
        return Err(Error::invalid(
            "init",
            format!(
                "checkpoint {} was trained with encoder {:?}, this run uses {:?}; train with the \
                 checkpoint's own configuration",
                dir.display(),
                header.encoder,
                cfg
            ),
        ));
    }
    load_safetensors(net, &dir.join(WEIGHTS_FILE))
}

/// Reads and parses a checkpoint folder's header file.
fn read_header(dir: &Path) -> Result<HeaderFile> {
    let path = dir.join(HEADER_FILE);
    let text = read_file(&path)?;
    if crate::face::is_face_checkpoint(dir) {
        return Err(Error::invalid(
            "model",
            format!(
                "{} is a face model (detector, aligner, backbone, head); this command needs an image \
                 encoder checkpoint such as models/fingerprint",
                dir.display()
            ),
        ));
    }
    serde_json::from_slice(&text).map_err(|source| Error::Json { path, source })
}

/// Checks that an input contract produces images of the encoder's input size.
fn check_input(cfg: &EncoderConfig, input: &InputSpec) -> Result<()> {
    if input.size as usize != cfg.input_size {
        return Err(Error::invalid(
            "input",
            format!(
                "the input contract makes {0}×{0} images, the encoder reads {1}×{1}",
                input.size, cfg.input_size
            ),
        ));
    }
    if input.roi == Some(0) {
        return Err(Error::invalid("input.roi", "must be at least 1 pixel"));
    }
    if input.dpi.is_some_and(|d| !(d.is_finite() && d > 0.0)) {
        return Err(Error::invalid("input.dpi", "must be a positive number"));
    }
    Ok(())
}

/// Checks one image's size against the encoder's input.
pub(crate) fn check_size(img: &GrayImage, s: usize) -> Result<()> {
    if img.width() as usize != s || img.height() as usize != s {
        return Err(Error::InputSize {
            expected: s,
            found: img.dimensions(),
        });
    }
    Ok(())
}

/// Reads a tensor's values back to the host.
pub(crate) fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t.try_into_data().map_err(|e| Error::Backend {
        reason: format!("{e:?}"),
    })?;
    data.try_to_vec::<f32>().map_err(|e| Error::Backend {
        reason: format!("{e:?}"),
    })
}

/// Writes a module's weights to `path` as safetensors, atomically.
pub(crate) fn save_weights<M: ModuleSnapshot>(net: &M, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_bytes(None);
    net.save_into(&mut store).map_err(|e| Error::Weights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let bytes = store.get_bytes().map_err(|e| Error::Weights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Writes `value` to `path` as pretty JSON, atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &json)
}

/// Reads a whole file; a missing file is [`Error::MissingFile`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            Error::io(path, e)
        }
    })
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Loads safetensors weights into `net`, turning any disagreement into [`Error::ConfigMismatch`].
pub(crate) fn load_safetensors<M: ModuleSnapshot>(net: &mut M, path: &Path) -> Result<()> {
    let bytes = read_file(path)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .validate(false)
        .allow_partial(true);
    let result = net.load_from(&mut store).map_err(|e| Error::Weights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_apply(&result)
}

/// The first problem in a weight application, as [`Error::ConfigMismatch`].
pub(crate) fn check_apply(result: &ApplyResult) -> Result<()> {
    if let Some(e) = result.errors.first() {
        let (tensor, detail) = match e {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => (
                path.clone(),
                format!(
                    "the configuration needs shape {:?}, the file holds {:?}",
                    expected, found
                ),
            ),
            ApplyError::DTypeMismatch {
                path,
                expected,
                found,
            } => (
                path.clone(),
                format!("dtype {expected:?} expected, {found:?} found"),
            ),
            ApplyError::AdapterError { path, message } | ApplyError::LoadError { path, message } => {
                (path.clone(), message.clone())
            }
        };
        return Err(Error::ConfigMismatch { tensor, detail });
    }
    if let Some((path, _)) = result.missing.first() {
        return Err(Error::ConfigMismatch {
            tensor: path.clone(),
            detail: "the configuration needs it, the weights file lacks it".into(),
        });
    }
    if let Some(path) = result.unused.first() {
        return Err(Error::ConfigMismatch {
            tensor: path.clone(),
            detail: "the weights file holds it, the configuration has no such tensor".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> EncoderConfig {
        EncoderConfig::tiny_for_tests()
    }

    fn images(n: usize, s: u32) -> Vec<GrayImage> {
        (0..n)
            .map(|k| {
                GrayImage::from_fn(s, s, |x, y| {
                    image::Luma([((x * 7 + y * 13 + k as u32 * 31) % 256) as u8])
                })
            })
            .collect()
    }

    #[test]
    fn embed_shapes_and_unit_norm() {
        let enc = Encoder::new(&tiny(), 1).unwrap();
        let e = enc.embed(&images(70, 32)).unwrap();
        assert_eq!(e.len(), 70);
        for v in &e {
            assert_eq!(v.len(), 16);
            let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-4, "norm {n}");
        }
        // Batching must not change results: the 65th image alone equals its batched embedding.
        let one = enc.embed(&images(70, 32)[64..65]).unwrap();
        for (a, b) in one[0].iter().zip(&e[64]) {
            assert!((a - b).abs() < 1e-5);
        }
        assert!(enc.embed(&[]).unwrap().is_empty());
    }

    #[test]
    fn mirror_average_makes_an_image_and_its_mirror_one_embedding() {
        let imgs = images(3, 32);
        let mirrored: Vec<GrayImage> = imgs.iter().map(image::imageops::flip_horizontal).collect();
        let diff = |cfg: &EncoderConfig| -> f32 {
            let enc = Encoder::new(cfg, 1).unwrap();
            let (a, b) = (enc.embed(&imgs).unwrap(), enc.embed(&mirrored).unwrap());
            a.iter()
                .flatten()
                .zip(b.iter().flatten())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        let on = EncoderConfig {
            mirror_average: true,
            ..tiny()
        };
        assert!(
            diff(&on) < 1e-5,
            "mirror-averaged embeddings differ by {}",
            diff(&on)
        );
        assert!(
            diff(&tiny()) > 1e-3,
            "the plain encoder is mirror-invariant by accident"
        );
    }

    #[test]
    fn cosine_gradient_matches_embed_and_finite_differences() {
        let enc = Encoder::new(&tiny(), 1).unwrap();
        let imgs = images(2, 32);
        let e = enc.embed(&imgs).unwrap();
        let targets = vec![e[1].clone(), e[1].iter().map(|v| -v).collect::<Vec<f32>>()];
        let pixels: Vec<f32> = imgs
            .iter()
            .flat_map(|i| i.as_raw().iter().map(|&p| p as f32 / 255.0))
            .collect();
        let (cos, grad) = enc.cosine_gradient(&pixels, &targets).unwrap();
        assert_eq!((cos.len(), grad.len()), (2, 2 * 32 * 32));
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!(
            (cos[0] - dot(&e[0], &e[1])).abs() < 1e-3,
            "{} vs {}",
            cos[0],
            dot(&e[0], &e[1])
        );
        assert!((cos[1] + 1.0).abs() < 1e-3, "{}", cos[1]);
        // A step along the gradient raises the cosine by about |g|²·step.
        let g0 = &grad[..32 * 32];
        let n2: f32 = g0.iter().map(|g| g * g).sum();
        assert!(n2 > 0.0);
        let step = 1e-3 / n2.sqrt();
        let moved: Vec<f32> = pixels[..32 * 32]
            .iter()
            .zip(g0)
            .map(|(p, g)| p + step * g)
            .collect();
        let (c2, _) = enc.cosine_gradient(&moved, &targets[..1]).unwrap();
        let predicted = step * n2;
        let got = c2[0] - cos[0];
        assert!(
            (got - predicted).abs() < 0.3 * predicted.abs() + 1e-6,
            "finite difference {got}, gradient predicts {predicted}"
        );
        // The encoder itself is untouched (no BatchNorm statistics updated).
        assert_eq!(enc.embed(&imgs).unwrap(), e);
        assert!(enc.cosine_gradient(&pixels[1..], &targets).is_err());
        assert!(enc
            .cosine_gradient(&pixels, &[vec![0.0; 16], vec![1.0; 16]])
            .is_err());
        assert!(enc.cosine_gradient(&pixels[..32 * 32], &[vec![1.0; 15]]).is_err());
    }

    #[test]
    fn wrong_input_size_is_refused() {
        let enc = Encoder::new(&tiny(), 1).unwrap();
        let err = enc.embed(&images(1, 40)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InputSize {
                    expected: 32,
                    found: (40, 40)
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn save_load_round_trip_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let enc = Encoder::new(&tiny(), 3).unwrap();
        let meta = CheckpointMeta::new(None, "test", 0, Some(f64::NAN));
        enc.save(dir.path(), &meta).unwrap();
        let (back, meta2) = Encoder::load_with_meta(dir.path()).unwrap();
        assert_eq!(back.config(), enc.config());
        assert_eq!(meta2, meta);
        assert_eq!(meta2.val_eer, None);
        let imgs = images(5, 32);
        assert_eq!(back.embed(&imgs).unwrap(), enc.embed(&imgs).unwrap());

        // Weights of another configuration under this header.
        let other = Encoder::new(
            &EncoderConfig {
                channels: vec![4, 12],
                ..tiny()
            },
            3,
        )
        .unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        other.save(dir2.path(), &meta).unwrap();
        std::fs::copy(dir2.path().join(WEIGHTS_FILE), dir.path().join(WEIGHTS_FILE)).unwrap();
        let err = Encoder::load(dir.path()).unwrap_err();
        match err {
            Error::ConfigMismatch { tensor, detail } => {
                assert!(
                    tensor.starts_with("blocks.1") || tensor.starts_with("proj"),
                    "{tensor}: {detail}"
                )
            }
            other => panic!("expected ConfigMismatch, got {other}"),
        }

        // Missing files.
        std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
        assert!(matches!(
            Encoder::load(dir.path()),
            Err(Error::MissingFile { .. })
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Encoder::load(empty.path()),
            Err(Error::MissingFile { .. })
        ));
        std::fs::write(empty.path().join(HEADER_FILE), b"{not json").unwrap();
        assert!(matches!(Encoder::load(empty.path()), Err(Error::Json { .. })));
    }
}
