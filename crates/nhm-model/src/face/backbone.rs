//! The pretrained face descriptor: dlib's ResNet-29 (`dlib_face_recognition_resnet_model_v1`,
//! CC0, 128-d, 99.38% on LFW as published), re-implemented on burn so that it runs on the
//! project's CPU and CUDA backends alike. `scripts/convert-dlib-face.py` turns dlib's file into
//! `backbone.safetensors`; this module reproduces dlib's layer semantics exactly:
//!
//! - convolutions pad `k/2` at stride 1 and nothing at stride 2 (dlib's default), as does the
//!   3×3/2 max pool and the 2×2/2 average pool of the down-sampling skips;
//! - a residual sum of tensors of different channel counts or sizes zero-pads the smaller at
//!   its end (dlib's `add_prev`), which happens at every down-sampling block (e.g. a 3×3 branch
//!   onto a 4×4 skip at the fourth stage);
//! - the batch-norm layers are dlib's inference `affine` layers, folded into the convolution
//!   before them at load time;
//! - the input is RGB at 150×150, each channel `(v − mean_c) / 256`.

use std::path::Path;

use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};
use nhm_data::GrayImage;

use super::weights::TensorFile;
use crate::{compute_device, Error, Result};

/// Side of the aligned face chip the backbone reads.
pub const CHIP_SIZE: usize = 150;
/// Dimension of the backbone's descriptor.
pub const DESCRIPTOR_DIM: usize = 128;
/// Format tag in the converted file's metadata.
const FORMAT: &str = "nhm-dlib-resnet/1";
/// dlib's mean RGB of its training faces (`input_rgb_image_sized`), used when the file's
/// metadata does not state it.
const DLIB_MEANS: [f32; 3] = [122.782, 117.001, 104.298];

/// A convolution with the affine (inference batch-norm) layer after it folded in.
#[derive(Debug, Clone)]
pub(crate) struct FoldedConv {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
}

impl FoldedConv {
    /// Reads `{conv}.weight`, `{conv}.bias` (`[cout, cin, k, k]`, `[cout]`) and, when `affine`
    /// is given, `{affine}.gamma`/`.beta` (`[cout]`), folding `γ·(w∗x + b) + β` into one
    /// convolution. dlib pads `k/2` at stride 1 and nothing otherwise.
    pub(crate) fn read(
        file: &TensorFile,
        conv: &str,
        affine: Option<&str>,
        shape: [usize; 4],
        stride: usize,
        device: &Device,
    ) -> Result<Self> {
        let [cout, cin, k, kw] = shape;
        let mut w = file
            .values(&format!("{conv}.weight"), &[cout, cin, k, kw])?
            .to_vec();
        let mut b = file.values(&format!("{conv}.bias"), &[cout])?.to_vec();
        if let Some(a) = affine {
            let gamma = file.values(&format!("{a}.gamma"), &[cout])?;
            let beta = file.values(&format!("{a}.beta"), &[cout])?;
            let per_out = cin * k * kw;
            for o in 0..cout {
                for v in &mut w[o * per_out..(o + 1) * per_out] {
                    *v *= gamma[o];
                }
                b[o] = b[o] * gamma[o] + beta[o];
            }
        }
        Ok(FoldedConv {
            weight: Tensor::from_data(TensorData::new(w, shape), device),
            bias: Tensor::from_data(TensorData::new(b, [cout]), device),
            stride,
            padding: if stride == 1 { k / 2 } else { 0 },
        })
    }

    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1),
        )
    }
}

/// One residual block: conv 3×3 (stride 1 or 2) → affine → ReLU → conv 3×3 → affine, plus the
/// input (average-pooled 2×2/2 in a down-sampling block), then ReLU.
#[derive(Debug, Clone)]
struct ResBlock {
    conv1: FoldedConv,
    conv2: FoldedConv,
    down: bool,
}

impl ResBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv2.forward(relu(self.conv1.forward(x.clone())));
        let skip = if self.down {
            avg_pool2d(
                x,
                AvgPoolOptions::new([2, 2])
                    .with_stride([2, 2])
                    .with_count_include_pad(false),
            )
        } else {
            x
        };
        relu(add_zero_padded(y, skip))
    }
}

/// `a + b` where the smaller tensor is zero-padded at the end of each dimension (dlib's
/// `add_prev` on tensors of different channel counts or sizes).
fn add_zero_padded(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let (da, db) = (a.dims(), b.dims());
    if da == db {
        return a + b;
    }
    let pad = |t: Tensor<4>, d: [usize; 4]| {
        let pairs = [
            (0, da[1].max(db[1]) - d[1]),
            (0, da[2].max(db[2]) - d[2]),
            (0, da[3].max(db[3]) - d[3]),
        ];
        if pairs.iter().all(|p| p.1 == 0) {
            t
        } else {
            t.pad(pairs, PadMode::Constant(0.0))
        }
    };
    pad(a, da) + pad(b, db)
}

/// The stages after the stem: (channels, blocks, whether the first block down-samples), input
/// side first (dlib's `alevel4` … `alevel0`).
const STAGES: [(usize, usize, bool); 5] = [
    (32, 3, false),
    (64, 4, true),
    (128, 3, true),
    (256, 3, true),
    (256, 1, true),
];

/// dlib's ResNet-29 face descriptor on burn (see the module docs).
#[derive(Debug, Clone)]
pub struct FaceBackbone {
    stem: FoldedConv,
    blocks: Vec<ResBlock>,
    fc: Tensor<2>,
    means: [f32; 3],
    device: Device,
}

impl FaceBackbone {
    /// Loads `backbone.safetensors` as written by `scripts/convert-dlib-face.py`.
    ///
    /// Errors: [`Error::MissingFile`], [`Error::Weights`] for a file that is not safetensors or
    /// carries another format tag, [`Error::ConfigMismatch`] naming a missing or misshapen tensor.
    pub fn load(path: &Path) -> Result<Self> {
        let file = TensorFile::read(path)?;
        if file.meta("format") != Some(FORMAT) {
            return Err(Error::Weights {
                path: path.into(),
                reason: format!(
                    "format tag {:?}, expected {FORMAT:?} (convert dlib's model with scripts/convert-dlib-face.py)",
                    file.meta("format")
                ),
            });
        }
        let device = compute_device();
        let stem = FoldedConv::read(&file, "stem.conv", Some("stem.affine"), [32, 3, 7, 7], 2, &device)?;
        let mut blocks = Vec::new();
        let mut cin = 32;
        for (c, n, down) in STAGES {
            for j in 0..n {
                let i = blocks.len();
                let first_down = down && j == 0;
                let conv1 = FoldedConv::read(
                    &file,
                    &format!("block{i}.conv1"),
                    Some(&format!("block{i}.affine1")),
                    [c, cin, 3, 3],
                    if first_down { 2 } else { 1 },
                    &device,
                )?;
                let conv2 = FoldedConv::read(
                    &file,
                    &format!("block{i}.conv2"),
                    Some(&format!("block{i}.affine2")),
                    [c, c, 3, 3],
                    1,
                    &device,
                )?;
                blocks.push(ResBlock {
                    conv1,
                    conv2,
                    down: first_down,
                });
                cin = c;
            }
        }
        let fc = file.tensor("fc.weight", [cin, DESCRIPTOR_DIM], &device)?;
        let means = match file.meta("input_means") {
            Some(s) => parse_means(s).ok_or_else(|| Error::Weights {
                path: path.into(),
                reason: format!("metadata input_means {s:?} is not three numbers"),
            })?,
            None => DLIB_MEANS,
        };
        Ok(FaceBackbone {
            stem,
            blocks,
            fc,
            means,
            device,
        })
    }

    /// dlib's descriptors (not normalised: dlib compares them by Euclidean distance) of aligned
    /// 150×150 chips given as interleaved RGB bytes, `n·150·150·3` of them.
    pub fn describe_rgb(&self, rgb: &[u8], n: usize) -> Result<Vec<Vec<f32>>> {
        let s = CHIP_SIZE;
        if rgb.len() != n * s * s * 3 {
            return Err(Error::invalid(
                "rgb",
                format!("{} bytes for {n} chips of {s}×{s}×3", rgb.len()),
            ));
        }
        let mut planar = vec![0f32; n * 3 * s * s];
        for img in 0..n {
            for p in 0..s * s {
                for c in 0..3 {
                    let v = rgb[(img * s * s + p) * 3 + c] as f32;
                    planar[(img * 3 + c) * s * s + p] = (v - self.means[c]) / 256.0;
                }
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(planar, [n, 3, s, s]), &self.device);
        to_rows(self.forward(x), n)
    }

    /// Descriptors of grey 150×150 chips (each grey level used for all three channels, as dlib
    /// does for grey images), at most `batch` per forward pass.
    pub fn describe_grey(&self, chips: &[GrayImage]) -> Result<Vec<Vec<f32>>> {
        let s = CHIP_SIZE;
        let mut out = Vec::with_capacity(chips.len());
        for chunk in chips.chunks(32) {
            let mut planar = vec![0f32; chunk.len() * 3 * s * s];
            for (img, chip) in chunk.iter().enumerate() {
                if chip.width() as usize != s || chip.height() as usize != s {
                    return Err(Error::InputSize {
                        expected: s,
                        found: chip.dimensions(),
                    });
                }
                for (p, v) in chip.as_raw().iter().enumerate() {
                    for c in 0..3 {
                        planar[(img * 3 + c) * s * s + p] = (*v as f32 - self.means[c]) / 256.0;
                    }
                }
            }
            let x = Tensor::<4>::from_data(TensorData::new(planar, [chunk.len(), 3, s, s]), &self.device);
            out.extend(to_rows(self.forward(x), chunk.len())?);
        }
        Ok(out)
    }

    /// `[n, 3, 150, 150]` normalised input → `[n, 128]` descriptors.
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.stem.forward(x));
        let mut x = max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]));
        for b in &self.blocks {
            x = b.forward(x);
        }
        let [n, c, _, _] = x.dims();
        let pooled: Tensor<2> = x.mean_dim(3).mean_dim(2).reshape([n, c]);
        pooled.matmul(self.fc.clone())
    }
}

/// Three comma-separated numbers.
fn parse_means(s: &str) -> Option<[f32; 3]> {
    let v: Vec<f32> = s
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()?;
    <[f32; 3]>::try_from(v).ok()
}

/// A `[n, d]` tensor as `n` rows.
pub(crate) fn to_rows(t: Tensor<2>, n: usize) -> Result<Vec<Vec<f32>>> {
    let [_, d] = t.dims();
    let v = crate::encoder::read_f32(t)?;
    Ok((0..n).map(|i| v[i * d..(i + 1) * d].to_vec()).collect())
}
