//! Throughput measurement of an encoder configuration on this machine (for `nhm bench` and the
//! `throughput` bench program).

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::encoder::read_f32;
use crate::loss::batch_loss;
use crate::net::TrainNet;
use crate::{compute_device, Encoder, EncoderConfig, Error, LossKind, Result};

/// Measured speed of one encoder configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Images per training / encoding batch.
    pub batch: usize,
    /// Timed steps of each kind (after one untimed warm-up step).
    pub steps: usize,
    /// Trainable parameters of the encoder.
    pub parameters: usize,
    /// Training images per second (forward, contrastive loss, backward, AdamW update).
    pub train_images_per_sec: f64,
    /// Inference images per second at `batch` images per forward pass.
    pub encode_images_per_sec: f64,
    /// Median latency of embedding one image alone, milliseconds.
    pub latency_b1_ms: f64,
}

/// Times `steps` training steps and `steps` inference batches of `batch` random images, and the
/// batch-1 latency, on [`compute_device`]. Figures depend on the machine and its load.
pub fn benchmark(enc: &EncoderConfig, batch: usize, steps: usize, seed: u64) -> Result<Throughput> {
    enc.validate()?;
    if batch < 2 || steps == 0 {
        return Err(Error::invalid(
            "benchmark",
            format!("need batch >= 2 and steps >= 1, got {batch}, {steps}"),
        ));
    }
    let s = enc.input_size;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pixels: Vec<f32> = (0..batch * s * s).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    // Subjects of 4 samples each, as in a P×K batch.
    let labels: Vec<u32> = (0..batch as u32).map(|i| i / 4).collect();
    let loss = LossKind::Contrastive { margin: 1.0 };

    let device = compute_device().autodiff();
    let mut net = TrainNet::new(enc, None, seed, &device);
    let parameters = net.num_params();
    let mut optim = AdamWConfig::new().init();
    let mut train_secs = 0.0;
    for step in 0..=steps {
        let t = Instant::now();
        let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [batch, 1, s, s]), &device);
        let l = batch_loss(&loss, net.enc.forward(x), &labels, None);
        let _: f32 = l.clone().into_scalar();
        let grads = GradientsParams::from_grads(l.backward(), &net);
        net = optim.step(1e-3, net, grads);
        if step > 0 {
            train_secs += t.elapsed().as_secs_f64();
        }
    }

    let encoder = Encoder::from_net(enc.clone(), net.enc.valid());
    let mut encode_secs = 0.0;
    for step in 0..=steps {
        let t = Instant::now();
        let e = encoder.embed_pixels(pixels.clone(), batch)?;
        std::hint::black_box(e);
        if step > 0 {
            encode_secs += t.elapsed().as_secs_f64();
        }
    }
    let one = pixels[..s * s].to_vec();
    let mut lat = Vec::new();
    for i in 0..=(steps * 4).max(10) {
        let t = Instant::now();
        let x = Tensor::<4>::from_data(TensorData::new(one.clone(), [1, 1, s, s]), &compute_device());
        let _ = read_f32(encoder.forward(x))?;
        if i > 0 {
            lat.push(t.elapsed().as_secs_f64());
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(Throughput {
        batch,
        steps,
        parameters,
        train_images_per_sec: (batch * steps) as f64 / train_secs.max(1e-9),
        encode_images_per_sec: (batch * steps) as f64 / encode_secs.max(1e-9),
        latency_b1_ms: lat[lat.len() / 2] * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_reports_positive_figures_and_refuses_bad_input() {
        let cfg = EncoderConfig {
            input_size: 32,
            channels: vec![4, 8],
            embedding_dim: 16,
            ..Default::default()
        };
        let t = benchmark(&cfg, 8, 1, 0).unwrap();
        assert!(t.train_images_per_sec > 0.0 && t.encode_images_per_sec > 0.0 && t.latency_b1_ms > 0.0);
        assert!(t.parameters > 0);
        assert!(benchmark(&cfg, 1, 1, 0).is_err());
    }
}
