//! The learned hashmap head: the project's own trained part of the face pipeline, a small
//! residual network on the backbone's unit descriptor,
//! `e' = normalise(z + W₂·relu(W₁·z))` with `z = e − μ`.
//!
//! dlib's descriptors of all faces lie in a narrow cone (two strangers' descriptors still have
//! a cosine near 0.8), so sign bits of random rotations of them are nearly the same for
//! everyone; `μ`, initialised to the mean descriptor of the training faces, moves the cone's
//! axis to the origin so that the keyed sign projections spend their bits on what tells faces
//! apart. `W₂` starts at zero, so an untrained head only centres, and training (supervised
//! contrastive loss on P×K batches of identities) moves away from that where the loss asks it
//! to. The keyed protection transform follows the head.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::net::{l2_normalize, Materialize, INIT_LOCK};
use crate::{compute_device, Error, Result};

/// The head's shape, recorded in the face checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// Dimension of the descriptor in and of the embedding out.
    pub dim: usize,
    /// Width of the hidden layer.
    pub hidden: usize,
}

/// How the head is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadTrainConfig {
    /// The head's shape.
    pub head: HeadConfig,
    /// Passes over the training descriptors.
    pub epochs: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// SupCon temperature.
    pub temperature: f32,
    /// Identities per batch.
    pub subjects_per_batch: usize,
    /// Samples per identity in a batch.
    pub samples_per_subject: usize,
    /// Seed of initialisation and batch sampling.
    pub seed: u64,
}

impl Default for HeadTrainConfig {
    fn default() -> Self {
        HeadTrainConfig {
            head: HeadConfig {
                dim: 128,
                hidden: 256,
            },
            epochs: 30,
            lr: 1e-3,
            weight_decay: 1e-4,
            temperature: 0.1,
            subjects_per_batch: 16,
            samples_per_subject: 4,
            seed: 7,
        }
    }
}

/// The burn module of the head.
#[derive(Module, Debug)]
pub(crate) struct HeadNet {
    centre: Param<Tensor<1>>,
    fc1: Linear,
    fc2: Linear,
}

impl HeadNet {
    /// A head centred on `centre` (zero when `None`) whose output layer is zero.
    pub(crate) fn new(cfg: &HeadConfig, seed: u64, centre: Option<&[f32]>, device: &Device) -> Self {
        let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        device.seed(seed);
        let fc1 = LinearConfig::new(cfg.dim, cfg.hidden).init(device);
        let mut fc2 = LinearConfig::new(cfg.hidden, cfg.dim).init(device);
        fc2.weight = Param::from_tensor(Tensor::zeros([cfg.hidden, cfg.dim], device));
        let c = centre.map_or_else(|| vec![0.0; cfg.dim], <[f32]>::to_vec);
        let net = HeadNet {
            centre: Param::from_tensor(Tensor::from_data(TensorData::new(c, [cfg.dim]), device)),
            fc1,
            fc2,
        };
        net.visit(&mut Materialize);
        net
    }

    /// `[n, dim]` unit descriptors → `[n, dim]` unit embeddings.
    pub(crate) fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [_, d] = x.dims();
        let z = x - self.centre.val().reshape([1, d]);
        let r = self.fc2.forward(relu(self.fc1.forward(z.clone())));
        l2_normalize(z + r)
    }
}

/// Trains a head on unit descriptors `x` of identities `labels` (dense 0..n), deterministic for
/// a seed: centred on the descriptors' mean, then `epochs` passes of SupCon (none: the head
/// only centres). Returns the head on the inference device and the mean loss of each epoch.
///
/// Errors: [`Error::InvalidConfig`] when the descriptors and labels disagree, a descriptor has
/// another dimension, or fewer than two identities have two samples each.
pub(crate) fn train_head(
    x: &[Vec<f32>],
    labels: &[u32],
    cfg: &HeadTrainConfig,
) -> Result<(HeadNet, Vec<f32>)> {
    let d = cfg.head.dim;
    if x.len() != labels.len() {
        return Err(Error::invalid(
            "descriptors",
            format!("{} descriptors for {} labels", x.len(), labels.len()),
        ));
    }
    if let Some(bad) = x.iter().find(|v| v.len() != d) {
        return Err(Error::invalid(
            "descriptors",
            format!("a descriptor of {} values, the head reads {d}", bad.len()),
        ));
    }
    let n_ids = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_id: Vec<Vec<usize>> = vec![Vec::new(); n_ids];
    for (i, &l) in labels.iter().enumerate() {
        by_id[l as usize].push(i);
    }
    let usable: Vec<usize> = (0..n_ids).filter(|&s| by_id[s].len() >= 2).collect();
    if usable.len() < 2 {
        return Err(Error::invalid(
            "descriptors",
            "the head needs at least two identities with two samples each",
        ));
    }
    let device = compute_device().autodiff();
    let mut mean = vec![0f32; d];
    for v in x {
        for (m, a) in mean.iter_mut().zip(v) {
            *m += a / x.len() as f32;
        }
    }
    let mut net = HeadNet::new(&cfg.head, cfg.seed, Some(&mean), &device);
    let mut optim: ModuleOptimizer = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .init();
    let p = cfg.subjects_per_batch.clamp(2, usable.len());
    let k = cfg.samples_per_subject.max(2);
    let steps = (x.len() / (p * k)).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x4845_4144);
    let mut losses = Vec::with_capacity(cfg.epochs);
    for _ in 0..cfg.epochs {
        let mut sum = 0f32;
        for _ in 0..steps {
            let ids: Vec<usize> = usable.choose_multiple(&mut rng, p).copied().collect();
            let (mut rows, mut lab) = (Vec::with_capacity(p * k * d), Vec::with_capacity(p * k));
            for (j, &s) in ids.iter().enumerate() {
                for _ in 0..k {
                    let i = *by_id[s].choose(&mut rng).unwrap_or(&by_id[s][0]);
                    rows.extend_from_slice(&x[i]);
                    lab.push(j as u32);
                }
            }
            let xb = Tensor::<2>::from_data(TensorData::new(rows, [lab.len(), d]), &device);
            let loss = crate::loss::supcon(net.forward(xb), &lab, cfg.temperature);
            let v: f32 = loss.clone().into_scalar();
            if !v.is_finite() {
                return Err(Error::invalid(
                    "head training",
                    format!("the loss diverged ({v})"),
                ));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.lr, net, grads);
            sum += v;
        }
        losses.push(sum / steps as f32);
    }
    Ok((net.valid(), losses))
}
