//! An image decoder for embeddings: what an inversion attacker trains against the white-box
//! encoder (NbNet-style: transposed convolutions up to the encoder's input, trained with a pixel
//! loss plus an identity loss that re-encodes the reconstruction with the frozen encoder).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use nhm_data::GrayImage;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::encoder::{check_size, forward_net, read_f32, standardize};
use crate::net::{Materialize, INIT_LOCK};
use crate::{compute_device, Encoder, Error, Result};

/// The decoder's layout: a linear layer to a `start_channels`×k×k map, then one ×2 transposed
/// convolution (4×4, stride 2) + BatchNorm + ReLU per entry of `channels`, then a 3×3
/// convolution to one channel and a sigmoid: an `output_size`² image in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    /// Length of the input embeddings.
    pub embedding_dim: usize,
    /// Side of the output image (`k · 2^channels.len()`, with `k` ≥ 2).
    pub output_size: usize,
    /// Channels of the first (k×k) map.
    pub start_channels: usize,
    /// Output channels of each up-sampling stage.
    pub channels: Vec<usize>,
}

impl DecoderConfig {
    /// The default layout for an encoder: 128 channels at 4×4 (for a 64-pixel input), halving
    /// at each of four doublings.
    pub fn for_encoder(encoder: &Encoder) -> DecoderConfig {
        let size = encoder.config().input_size;
        let mut channels = vec![64, 32, 16, 8];
        while channels.len() > 1 && size >> channels.len() < 2 {
            channels.remove(0);
        }
        DecoderConfig {
            embedding_dim: encoder.config().embedding_dim,
            output_size: size,
            start_channels: 128,
            channels,
        }
    }

    /// Side of the first map.
    fn start(&self) -> usize {
        self.output_size >> self.channels.len()
    }

    /// Errors with [`Error::InvalidConfig`] for a layout that cannot produce `output_size`.
    pub fn validate(&self) -> Result<()> {
        if self.embedding_dim == 0 || self.start_channels == 0 || self.channels.contains(&0) {
            return Err(Error::invalid(
                "decoder",
                "dimensions and channels must be at least 1",
            ));
        }
        if self.channels.len() > 8
            || self.start() < 2
            || self.start() << self.channels.len() != self.output_size
        {
            return Err(Error::invalid(
                "decoder.output_size",
                format!(
                    "{} is not k·2^{} with k ≥ 2",
                    self.output_size,
                    self.channels.len()
                ),
            ));
        }
        Ok(())
    }
}

/// How [`Decoder::train`] fits the decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderTrainConfig {
    /// Passes over the training samples.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Weight of the identity loss `1 − cos(encoder(decoded), embedding)` beside the pixel loss
    /// (mean squared error of intensities in [0, 1]); 0 trains on pixels alone.
    pub identity_weight: f32,
    /// Seed of the initial weights, the sample order and the choice of inputs.
    pub seed: u64,
}

impl DecoderTrainConfig {
    /// Errors with [`Error::InvalidConfig`] for zero epochs or batch, or a learning rate or
    /// weight that is not a non-negative number (the rate must be positive).
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::invalid("learning_rate", "must be a positive number"));
        }
        if !(self.identity_weight.is_finite() && self.identity_weight >= 0.0) {
            return Err(Error::invalid("identity_weight", "must be a non-negative number"));
        }
        Ok(())
    }
}

/// One training sample of the decoder: an image, its true embedding (the identity loss's
/// target) and the embeddings the decoder is fed for it (one drawn per step: e.g. the true
/// embedding and estimates of it as an attacker will have them). No inputs: the true embedding.
#[derive(Debug, Clone)]
pub struct DecoderSample {
    /// The image to reconstruct (`output_size`², grayscale).
    pub image: GrayImage,
    /// Its embedding by the white-box encoder.
    pub embedding: Vec<f32>,
    /// What the decoder is fed for it.
    pub inputs: Vec<Vec<f32>>,
}

/// One ×2 up-sampling stage.
#[derive(Module, Debug)]
struct UpBlock {
    deconv: ConvTranspose2d,
    bn: BatchNorm,
}

/// The decoder network.
#[derive(Module, Debug)]
struct DecoderNet {
    fc: Linear,
    blocks: Vec<UpBlock>,
    out: Conv2d,
    start_channels: usize,
    start: usize,
}

impl DecoderNet {
    fn new(cfg: &DecoderConfig, seed: u64, device: &Device) -> Self {
        let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        device.seed(seed);
        let k = cfg.start();
        let mut cin = cfg.start_channels;
        let mut blocks = Vec::new();
        for &c in &cfg.channels {
            blocks.push(UpBlock {
                deconv: ConvTranspose2dConfig::new([cin, c], [4, 4])
                    .with_stride([2, 2])
                    .with_padding([1, 1])
                    .with_bias(false)
                    .init(device),
                bn: BatchNormConfig::new(c).init(device),
            });
            cin = c;
        }
        let net = DecoderNet {
            fc: LinearConfig::new(cfg.embedding_dim, cfg.start_channels * k * k).init(device),
            blocks,
            out: Conv2dConfig::new([cin, 1], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            start_channels: cfg.start_channels,
            start: k,
        };
        net.visit(&mut Materialize);
        net
    }

    /// `[n, d]` embeddings → `[n, 1, s, s]` intensities in [0, 1].
    fn forward(&self, e: Tensor<2>) -> Tensor<4> {
        let [n, _] = e.dims();
        let mut x: Tensor<4> =
            relu(self.fc.forward(e)).reshape([n, self.start_channels, self.start, self.start]);
        for b in &self.blocks {
            x = relu(b.bn.forward(b.deconv.forward(x)));
        }
        sigmoid(self.out.forward(x))
    }
}

/// A trained decoder: embeddings in, images out.
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: DecoderConfig,
    net: DecoderNet,
    device: Device,
}

impl Decoder {
    /// The layout.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Trains a decoder on `samples` against the frozen `encoder` (whose weights are constants
    /// of the graph: only the decoder learns). `on_epoch(epoch, mean loss)` reports progress.
    /// The same samples and settings give the same weights.
    ///
    /// Errors: [`Error::InvalidConfig`] for bad settings, an empty sample list, an input or
    /// embedding of the wrong length, or an encoder whose input or embedding does not fit the
    /// layout; [`Error::InputSize`] for an image of the wrong size; [`Error::Diverged`] for a
    /// non-finite loss.
    pub fn train(
        encoder: &Encoder,
        samples: &[DecoderSample],
        cfg: &DecoderConfig,
        train: &DecoderTrainConfig,
        on_epoch: &mut dyn FnMut(usize, f32),
    ) -> Result<Decoder> {
        cfg.validate()?;
        train.validate()?;
        let (s, d) = (cfg.output_size, cfg.embedding_dim);
        if encoder.config().input_size != s || encoder.config().embedding_dim != d {
            return Err(Error::invalid(
                "decoder",
                format!(
                    "the layout makes {s}² images from {d} values; the encoder reads {}² and \
                     embeds to {}",
                    encoder.config().input_size,
                    encoder.config().embedding_dim
                ),
            ));
        }
        if samples.is_empty() {
            return Err(Error::invalid("samples", "no training samples"));
        }
        for (i, x) in samples.iter().enumerate() {
            check_size(&x.image, s)?;
            if x.embedding.len() != d || x.inputs.iter().any(|v| v.len() != d) {
                return Err(Error::invalid(
                    "samples",
                    format!("sample {i} has a vector of another length than {d}"),
                ));
            }
        }
        let targets: Vec<Vec<f32>> = samples
            .iter()
            .map(|x| x.image.as_raw().iter().map(|&p| f32::from(p) / 255.0).collect())
            .collect();
        let device = compute_device().autodiff();
        let mut net = DecoderNet::new(cfg, train.seed, &device);
        let frozen = encoder.frozen_net();
        let mirror = encoder.config().mirror_average;
        let mut optim: ModuleOptimizer = AdamConfig::new().init();
        let b = train.batch_size.min(samples.len());
        let mut order: Vec<usize> = (0..samples.len()).collect();
        for epoch in 1..=train.epochs {
            let mut rng =
                ChaCha8Rng::seed_from_u64(train.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            order.shuffle(&mut rng);
            let (mut sum, mut steps) = (0f64, 0usize);
            for (step, batch) in order.chunks(b).enumerate() {
                let n = batch.len();
                let mut inputs = Vec::with_capacity(n * d);
                let mut truth = Vec::with_capacity(n * d);
                let mut pixels = Vec::with_capacity(n * s * s);
                for &i in batch {
                    let x = &samples[i];
                    let input = if x.inputs.is_empty() {
                        &x.embedding
                    } else {
                        &x.inputs[rng.gen_range(0..x.inputs.len())]
                    };
                    inputs.extend_from_slice(input);
                    truth.extend_from_slice(&x.embedding);
                    pixels.extend_from_slice(&targets[i]);
                }
                let e_in = Tensor::<2>::from_data(TensorData::new(inputs, [n, d]), &device);
                let target = Tensor::<4>::from_data(TensorData::new(pixels, [n, 1, s, s]), &device);
                let recon = net.forward(e_in);
                let mut loss = (recon.clone() - target).powf_scalar(2.0).mean();
                if train.identity_weight > 0.0 {
                    let t = Tensor::<2>::from_data(TensorData::new(truth, [n, d]), &device);
                    let e = encoder.head(forward_net(&frozen, mirror, standardize(recon)));
                    let cos = (e * t).sum_dim(1).mean();
                    loss = loss + cos.neg().add_scalar(1.0).mul_scalar(train.identity_weight);
                }
                let value: f32 = loss.clone().into_scalar();
                if !value.is_finite() {
                    return Err(Error::Diverged {
                        epoch,
                        step,
                        loss: value,
                    });
                }
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(train.learning_rate, net, grads);
                sum += f64::from(value);
                steps += 1;
            }
            on_epoch(epoch, (sum / steps.max(1) as f64) as f32);
        }
        Ok(Decoder {
            cfg: cfg.clone(),
            net: net.valid(),
            device: compute_device(),
        })
    }

    /// Decodes embeddings (each of `embedding_dim` values) into `output_size`² images.
    pub fn decode(&self, embeddings: &[Vec<f32>]) -> Result<Vec<GrayImage>> {
        let (s, d) = (self.cfg.output_size, self.cfg.embedding_dim);
        if let Some(i) = embeddings.iter().position(|e| e.len() != d) {
            return Err(Error::invalid(
                "embeddings",
                format!("embedding {i} does not have {d} values"),
            ));
        }
        let mut out = Vec::with_capacity(embeddings.len());
        for chunk in embeddings.chunks(crate::EMBED_BATCH) {
            let x = Tensor::<2>::from_data(TensorData::new(chunk.concat(), [chunk.len(), d]), &self.device);
            let v = read_f32(self.net.forward(x))?;
            for img in v.chunks(s * s) {
                let raw: Vec<u8> = img
                    .iter()
                    .map(|&p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
                    .collect();
                out.push(
                    GrayImage::from_raw(s as u32, s as u32, raw).ok_or_else(|| Error::Backend {
                        reason: "decoded buffer of the wrong size".into(),
                    })?,
                );
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncoderConfig;

    fn samples(n: usize, s: u32, enc: &Encoder) -> Vec<DecoderSample> {
        let images: Vec<GrayImage> = (0..n)
            .map(|k| {
                GrayImage::from_fn(s, s, |x, y| {
                    image::Luma([((x * 5 + y * 3 + k as u32 * 40) % 256) as u8])
                })
            })
            .collect();
        let emb = enc.embed(&images).unwrap();
        images
            .into_iter()
            .zip(emb)
            .map(|(image, embedding)| DecoderSample {
                image,
                inputs: vec![embedding.clone()],
                embedding,
            })
            .collect()
    }

    #[test]
    fn trains_decodes_and_checks_its_settings() {
        let enc = Encoder::new(&EncoderConfig::tiny_for_tests(), 1).unwrap();
        let cfg = DecoderConfig::for_encoder(&enc);
        assert_eq!(cfg.output_size, 32);
        cfg.validate().unwrap();
        let train = DecoderTrainConfig {
            epochs: 2,
            batch_size: 4,
            learning_rate: 1e-3,
            identity_weight: 1.0,
            seed: 3,
        };
        let data = samples(8, 32, &enc);
        let mut losses = Vec::new();
        let d = Decoder::train(&enc, &data, &cfg, &train, &mut |_, l| losses.push(l)).unwrap();
        assert_eq!(losses.len(), 2);
        assert!(losses.iter().all(|l| l.is_finite()));
        let out = d.decode(&[data[0].embedding.clone()]).unwrap();
        assert_eq!(out[0].dimensions(), (32, 32));
        assert!(d.decode(&[vec![0.0; 3]]).is_err());

        let bad = |t: DecoderTrainConfig| Decoder::train(&enc, &data, &cfg, &t, &mut |_, _| {}).unwrap_err();
        assert!(matches!(
            bad(DecoderTrainConfig {
                epochs: 0,
                ..train.clone()
            }),
            Error::InvalidConfig { .. }
        ));
        assert!(matches!(
            bad(DecoderTrainConfig {
                batch_size: 0,
                ..train.clone()
            }),
            Error::InvalidConfig { .. }
        ));
        let odd = DecoderConfig {
            output_size: 30,
            ..cfg.clone()
        };
        assert!(odd.validate().is_err());
        let err = Decoder::train(&enc, &[], &cfg, &train, &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    }
}
