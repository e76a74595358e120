//! A learned defence against inversion: the encoder is fine-tuned against a decoder.
//!
//! The inversion attacker trains a decoder (embedding → image) with a pixel loss and an identity
//! loss through the white-box encoder, and wins when the encoder accepts the decoded image as
//! the victim. Hardening alternates the two sides of that game on the defender's own training
//! data: a decoder is trained exactly as the attacker would (identity loss included) against the
//! current encoder; then the encoder takes steps that keep recognising genuine samples
//! (supervised contrastive loss on P×K batches) while pushing the embedding of each decoded
//! image away from the embedding it was decoded from (an adversarial cosine term). Whether it
//! works is not decided here: `nhm attack` trains a fresh decoder against the hardened encoder
//! and reports what it achieves, and what the hardening costs in EER.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Tensor, TensorData};
use nhm_data::augment::AugmentConfig;
use nhm_data::Dataset;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::encoder::{forward_net, read_f32};
use crate::fed::{encoder_weights, net_from_weights};
use crate::loss::supcon;
use crate::train::{augmented, Sampler};
use crate::{
    compute_device, Decoder, DecoderConfig, DecoderSample, DecoderTrainConfig, Encoder, Error, Result,
};

/// Settings of [`harden_against_inversion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardeningConfig {
    /// Alternations of decoder training and encoder steps.
    pub rounds: usize,
    /// The decoder of each round (trained from scratch, as an attacker would).
    pub decoder: DecoderTrainConfig,
    /// Samples of the data the decoder of each round trains on (a seeded choice; 0: all).
    pub decoder_samples: usize,
    /// Encoder steps per round.
    pub encoder_steps: usize,
    /// Subjects per encoder batch.
    pub subjects_per_batch: usize,
    /// Samples per subject in an encoder batch.
    pub samples_per_subject: usize,
    /// Encoder learning rate (Adam).
    pub learning_rate: f64,
    /// Temperature of the supervised contrastive loss.
    pub temperature: f32,
    /// Weight of the adversarial term (the mean cosine between a decoded image's embedding and
    /// the embedding it was decoded from).
    pub adversarial_weight: f32,
    /// Seed of batches, augmentation and the decoders.
    pub seed: u64,
}

impl Default for HardeningConfig {
    /// Sized for the shipped fingerprint model on 2 CPU cores: about 3 minutes a round.
    fn default() -> Self {
        HardeningConfig {
            rounds: 4,
            decoder: DecoderTrainConfig {
                epochs: 3,
                batch_size: 32,
                learning_rate: 2e-3,
                identity_weight: 2.0,
                seed: 0,
            },
            decoder_samples: 1000,
            encoder_steps: 60,
            subjects_per_batch: 16,
            samples_per_subject: 4,
            learning_rate: 1e-4,
            temperature: 0.1,
            adversarial_weight: 1.0,
            seed: 0,
        }
    }
}

impl HardeningConfig {
    /// Errors with [`Error::InvalidConfig`] naming the first setting out of range.
    pub fn validate(&self) -> Result<()> {
        self.decoder.validate()?;
        let positive = [
            ("rounds", self.rounds),
            ("encoder_steps", self.encoder_steps),
            ("subjects_per_batch", self.subjects_per_batch),
            ("samples_per_subject", self.samples_per_subject),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::invalid(name, "must be at least 1"));
            }
        }
        if self.subjects_per_batch < 2 {
            return Err(Error::invalid(
                "subjects_per_batch",
                "must be at least 2 (a contrastive batch needs other subjects)",
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::invalid("learning_rate", "must be a positive number"));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::invalid("temperature", "must be a positive number"));
        }
        if !(self.adversarial_weight.is_finite() && self.adversarial_weight >= 0.0) {
            return Err(Error::invalid(
                "adversarial_weight",
                "must be a non-negative number",
            ));
        }
        Ok(())
    }
}

/// Progress of a hardening run.
#[derive(Debug, Clone, PartialEq)]
pub enum HardeningEvent {
    /// One epoch of a round's decoder.
    DecoderEpoch {
        /// Round (from 1).
        round: usize,
        /// Epoch (from 1).
        epoch: usize,
        /// Mean decoder loss.
        loss: f32,
    },
    /// The encoder steps of a round.
    EncoderSteps {
        /// Round (from 1).
        round: usize,
        /// Mean supervised contrastive loss.
        recognition_loss: f32,
        /// Mean cosine between decoded images' embeddings and their sources' before the steps
        /// (how well this round's decoder inverts).
        inversion_cosine_before: f32,
        /// The same over the last steps of the round.
        inversion_cosine_after: f32,
    },
}

/// Fine-tunes `encoder` against inversion decoders on `data` (the defender's training data,
/// at the encoder's input size; never the subjects a figure is reported on). BatchNorm stays on
/// the encoder's running statistics, so decoded images in a batch do not shift them.
///
/// Errors: [`Error::InvalidConfig`] for bad settings or an encoder that whitens (the whitening
/// is fitted to a network; refit it on the hardened one); [`Error::Dataset`] for data with fewer
/// than 2 subjects; [`Error::InputSize`] for images of the wrong size; [`Error::Diverged`].
pub fn harden_against_inversion(
    encoder: &Encoder,
    data: &Dataset,
    cfg: &HardeningConfig,
    on_event: &mut dyn FnMut(HardeningEvent),
) -> Result<Encoder> {
    cfg.validate()?;
    if encoder.whitening().is_some() {
        return Err(Error::invalid(
            "encoder",
            "it whitens its embeddings; harden the network alone and refit the whitening after",
        ));
    }
    let enc_cfg = encoder.config().clone();
    let (s, d) = (enc_cfg.input_size, enc_cfg.embedding_dim);
    let sampler = Sampler::new(data, s)?;
    let images: Vec<_> = data.samples.iter().map(|x| x.image.clone()).collect();
    let device = compute_device().autodiff();
    let mut net = net_from_weights(&enc_cfg, &encoder_weights(encoder)?, &device)?.with_frozen_norms();
    let mut optim: ModuleOptimizer = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let aug = AugmentConfig::default();
    let current = |net: &crate::net::EncoderNet| -> Result<Encoder> {
        Encoder::from_net(enc_cfg.clone(), net.valid()).with_input(encoder.input().clone())
    };
    for round in 1..=cfg.rounds {
        // The attacker's decoder against the encoder as it is now.
        let enc = current(&net)?;
        let mut chosen: Vec<usize> = (0..images.len()).collect();
        if cfg.decoder_samples > 0 && cfg.decoder_samples < chosen.len() {
            rand::seq::SliceRandom::shuffle(&mut chosen[..], &mut rng);
            chosen.truncate(cfg.decoder_samples);
        }
        let picked: Vec<_> = chosen.iter().map(|&i| images[i].clone()).collect();
        let embeddings = enc.embed(&picked)?;
        let samples: Vec<DecoderSample> = picked
            .into_iter()
            .zip(embeddings)
            .map(|(image, embedding)| DecoderSample {
                image,
                embedding,
                inputs: Vec::new(),
            })
            .collect();
        let train = DecoderTrainConfig {
            seed: cfg.seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ..cfg.decoder.clone()
        };
        let decoder = Decoder::train(
            &enc,
            &samples,
            &DecoderConfig::for_encoder(&enc),
            &train,
            &mut |epoch, loss| on_event(HardeningEvent::DecoderEpoch { round, epoch, loss }),
        )?;
        // Encoder steps: recognise genuine samples, reject what the decoder makes of them.
        let (mut rec_sum, mut first, mut last) = (0f64, None, Vec::new());
        for step in 0..cfg.encoder_steps {
            let (idx, labels) = sampler.batch(cfg.subjects_per_batch, cfg.samples_per_subject, &mut rng);
            let n = idx.len();
            let pixels: Vec<f32> = idx
                .iter()
                .flat_map(|&i| augmented(&images[i], &aug, &mut rng))
                .collect();
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [n, 1, s, s]), &device);
            let e = forward_net(&net, enc_cfg.mirror_average, x);
            let recognition = supcon(e.clone(), &labels, cfg.temperature);
            let sources: Vec<f32> = read_f32(e.clone().detach())?;
            let rows: Vec<Vec<f32>> = sources.chunks(d).map(<[f32]>::to_vec).collect();
            let decoded = decoder.decode(&rows)?;
            let recon: Vec<f32> = decoded.iter().flat_map(nhm_data::preprocess::to_f32).collect();
            let xr = Tensor::<4>::from_data(TensorData::new(recon, [n, 1, s, s]), &device);
            let er = forward_net(&net, enc_cfg.mirror_average, xr);
            let target = Tensor::<2>::from_data(TensorData::new(sources, [n, d]), &device);
            let cosine = (er * target).sum_dim(1).mean();
            let cos_value: f32 = cosine.clone().into_scalar();
            let loss = recognition.clone() + cosine.reshape([1]).mul_scalar(cfg.adversarial_weight);
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                return Err(Error::Diverged {
                    epoch: round,
                    step,
                    loss: value,
                });
            }
            let rec_value: f32 = recognition.into_scalar();
            rec_sum += f64::from(rec_value);
            first.get_or_insert(cos_value);
            last.push(cos_value);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.learning_rate, net, grads);
        }
        let tail = &last[last.len().saturating_sub(10)..];
        on_event(HardeningEvent::EncoderSteps {
            round,
            recognition_loss: (rec_sum / cfg.encoder_steps as f64) as f32,
            inversion_cosine_before: first.unwrap_or(f32::NAN),
            inversion_cosine_after: tail.iter().sum::<f32>() / tail.len().max(1) as f32,
        });
    }
    current(&net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::blobs;

    fn small() -> (Encoder, Dataset) {
        let cfg = crate::EncoderConfig {
            input_size: 32,
            channels: vec![4, 8],
            embedding_dim: 16,
            ..Default::default()
        };
        (Encoder::new(&cfg, 5).unwrap(), blobs(6, 4, 32, 3))
    }

    fn quick() -> HardeningConfig {
        HardeningConfig {
            rounds: 2,
            decoder: DecoderTrainConfig {
                epochs: 1,
                batch_size: 8,
                ..HardeningConfig::default().decoder
            },
            decoder_samples: 16,
            encoder_steps: 3,
            subjects_per_batch: 3,
            samples_per_subject: 2,
            learning_rate: 1e-3,
            ..HardeningConfig::default()
        }
    }

    #[test]
    fn hardening_is_seeded_changes_the_encoder_and_reports_each_round() {
        let (enc, data) = small();
        let mut events = Vec::new();
        let a = harden_against_inversion(&enc, &data, &quick(), &mut |e| events.push(e)).unwrap();
        let b = harden_against_inversion(&enc, &data, &quick(), &mut |_| {}).unwrap();
        let img = [data.samples[0].image.clone()];
        let (ea, eb, e0) = (
            a.embed(&img).unwrap(),
            b.embed(&img).unwrap(),
            enc.embed(&img).unwrap(),
        );
        assert_eq!(ea, eb, "same seed, same encoder");
        assert_ne!(ea, e0, "the encoder moved");
        let steps = events
            .iter()
            .filter(|e| matches!(e, HardeningEvent::EncoderSteps { .. }))
            .count();
        assert_eq!(steps, 2);
        assert!(events.iter().all(|e| match e {
            HardeningEvent::EncoderSteps {
                inversion_cosine_before,
                ..
            } => inversion_cosine_before.is_finite(),
            HardeningEvent::DecoderEpoch { loss, .. } => loss.is_finite(),
        }));
    }

    #[test]
    fn bad_settings_and_inputs_are_refused() {
        let (enc, data) = small();
        let run = |cfg: HardeningConfig| {
            harden_against_inversion(&enc, &data, &cfg, &mut |_| {})
                .unwrap_err()
                .to_string()
        };
        assert!(run(HardeningConfig { rounds: 0, ..quick() }).contains("rounds"));
        assert!(run(HardeningConfig {
            subjects_per_batch: 1,
            ..quick()
        })
        .contains("subjects_per_batch"));
        assert!(run(HardeningConfig {
            learning_rate: -1.0,
            ..quick()
        })
        .contains("learning_rate"));
        assert!(run(HardeningConfig {
            adversarial_weight: f32::NAN,
            ..quick()
        })
        .contains("adversarial_weight"));
        let one = blobs(1, 4, 32, 3);
        let err = harden_against_inversion(&enc, &one, &quick(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("need at least 2"), "{err}");
        let wrong = blobs(3, 2, 40, 3);
        assert!(harden_against_inversion(&enc, &wrong, &quick(), &mut |_| {}).is_err());
        let imgs: Vec<_> = data.samples.iter().map(|s| s.image.clone()).collect();
        let w = enc.fit_whitening(&imgs, 0.5, "t").unwrap();
        let whitened = enc.clone().with_whitening(w).unwrap();
        let err = harden_against_inversion(&whitened, &data, &quick(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("whitens"), "{err}");
    }
}
