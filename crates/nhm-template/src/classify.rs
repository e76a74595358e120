//! Classifiers over hashmaps: the seed's server-side "discriminator", and the simpler
//! nearest-centroid matcher to compare it with (DESIGN.md §1). Plain Rust, no ML framework.
//!
//! Classes are subject label indices. Features are the hashmap's bits as ±1 (binary) or its
//! values rescaled to norm `sqrt(dim)` (dense), so both kinds have the same scale.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Hashmap, HashmapKind, Result};

/// A trained classifier over hashmaps.
pub trait Classifier {
    /// Every known class with its score (higher is more likely), best first.
    fn predict(&self, h: &Hashmap) -> Result<Vec<(usize, f64)>>;

    /// The best class and its score.
    fn predict_top(&self, h: &Hashmap) -> Result<Option<(usize, f64)>> {
        Ok(self.predict(h)?.into_iter().next())
    }
}

/// Feature vector of a hashmap (see the module docs).
fn features(h: &Hashmap) -> Vec<f32> {
    match h {
        Hashmap::Binary(b) => (0..b.dim()).map(|i| if b.bit(i) { 1.0 } else { -1.0 }).collect(),
        Hashmap::Dense(d) => {
            let v = d.values();
            let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
            let scale = if norm > 0.0 {
                (v.len() as f64).sqrt() / norm
            } else {
                0.0
            };
            v.iter().map(|&x| (f64::from(x) * scale) as f32).collect()
        }
    }
}

/// Training data as a flat feature matrix.
struct Data {
    kind: HashmapKind,
    dim: usize,
    classes: usize,
    x: Vec<f32>,
    y: Vec<usize>,
}

impl Data {
    fn new(samples: &[(usize, Hashmap)]) -> Result<Data> {
        let Some((_, first)) = samples.first() else {
            return Err(Error::NoSamples);
        };
        let (kind, dim) = (first.kind(), first.dim());
        let mut x = Vec::with_capacity(samples.len() * dim);
        let mut y = Vec::with_capacity(samples.len());
        for (label, h) in samples {
            check_input(kind, dim, h)?;
            x.extend(features(h));
            y.push(*label);
        }
        let classes = y.iter().max().map_or(0, |m| m + 1);
        Ok(Data {
            kind,
            dim,
            classes,
            x,
            y,
        })
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
}

fn check_input(kind: HashmapKind, dim: usize, h: &Hashmap) -> Result<()> {
    if h.kind() != kind {
        return Err(Error::KindMismatch {
            expected: kind,
            found: h.kind(),
        });
    }
    if h.dim() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            found: h.dim(),
        });
    }
    Ok(())
}

/// Sorts (class, score) best first, ties by class.
fn ranked(scores: impl Iterator<Item = (usize, f64)>) -> Vec<(usize, f64)> {
    let mut v: Vec<_> = scores.collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Softmax in place, numerically stable.
fn softmax(z: &mut [f32]) {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for v in z.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    z.iter_mut().for_each(|v| *v /= s);
}

/// Nearest centroid: each class is the mean of its feature vectors; the score is the cosine
/// between a probe's features and the centroid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NearestCentroid {
    kind: HashmapKind,
    dim: usize,
    /// (class, unit-norm centroid); classes without samples are absent.
    centroids: Vec<(usize, Vec<f32>)>,
}

impl NearestCentroid {
    /// Centroids of the samples, per label.
    pub fn fit(samples: &[(usize, Hashmap)]) -> Result<Self> {
        let data = Data::new(samples)?;
        let mut sums = vec![vec![0f64; data.dim]; data.classes];
        let mut counts = vec![0usize; data.classes];
        for (i, &c) in data.y.iter().enumerate() {
            counts[c] += 1;
            sums[c]
                .iter_mut()
                .zip(data.row(i))
                .for_each(|(s, &x)| *s += f64::from(x));
        }
        let centroids = sums
            .into_iter()
            .enumerate()
            .filter(|(c, _)| counts[*c] > 0)
            .map(|(c, s)| {
                let norm = s.iter().map(|v| v * v).sum::<f64>().sqrt();
                // A centroid of exactly opposite samples is zero: it then scores 0 for all.
                let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
                (c, s.iter().map(|v| (v * inv) as f32).collect())
            })
            .collect();
        Ok(NearestCentroid {
            kind: data.kind,
            dim: data.dim,
            centroids,
        })
    }
}

impl Classifier for NearestCentroid {
    fn predict(&self, h: &Hashmap) -> Result<Vec<(usize, f64)>> {
        check_input(self.kind, self.dim, h)?;
        let f = features(h);
        let inv = 1.0 / f64::from(dot(&f, &f)).sqrt().max(f64::MIN_POSITIVE);
        Ok(ranked(
            self.centroids
                .iter()
                .map(|(c, m)| (*c, f64::from(dot(&f, m)) * inv)),
        ))
    }
}

/// Training settings of [`LogisticClassifier`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Adam step size.
    pub learning_rate: f32,
    /// L2 weight decay.
    pub l2: f32,
    /// Samples per gradient step.
    pub batch_size: usize,
    /// Seed of the initialisation and of the shuffling.
    pub seed: u64,
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig {
            epochs: 40,
            learning_rate: 0.01,
            l2: 1e-4,
            batch_size: 32,
            seed: 0,
        }
    }
}

/// Checks the settings shared by both trained classifiers.
fn check_training(epochs: usize, learning_rate: f32, l2: f32, batch_size: usize) -> Result<()> {
    if epochs == 0 {
        return Err(Error::InvalidConfig {
            field: "epochs",
            reason: "must be at least 1",
        });
    }
    if !(learning_rate.is_finite() && learning_rate > 0.0) {
        return Err(Error::InvalidConfig {
            field: "learning_rate",
            reason: "must be positive and finite",
        });
    }
    if !(l2.is_finite() && l2 >= 0.0) {
        return Err(Error::InvalidConfig {
            field: "l2",
            reason: "must be non-negative and finite",
        });
    }
    if batch_size == 0 {
        return Err(Error::InvalidConfig {
            field: "batch_size",
            reason: "must be at least 1",
        });
    }
    Ok(())
}

/// Adam optimiser state for one parameter buffer.
#[derive(Debug, Clone)]
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One step at time `t` (from 1); `grad` already includes weight decay.
    fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f32, t: i32) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for i in 0..params.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * grad[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * grad[i] * grad[i];
            params[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + eps);
        }
    }
}

/// Multinomial logistic regression (softmax) over hashmap features, trained with Adam on
/// cross-entropy plus L2; scores are class probabilities.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogisticClassifier {
    kind: HashmapKind,
    dim: usize,
    classes: usize,
    /// Row-major `classes × dim`.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

/// Another name for [`LogisticClassifier`].
pub type Softmax = LogisticClassifier;

impl LogisticClassifier {
    /// Trains on labelled hashmaps (all of one kind and dimension).
    pub fn fit(samples: &[(usize, Hashmap)], cfg: &LinearConfig) -> Result<Self> {
        check_training(cfg.epochs, cfg.learning_rate, cfg.l2, cfg.batch_size)?;
        let data = Data::new(samples)?;
        let (c, d) = (data.classes, data.dim);
        let mut model = LogisticClassifier {
            kind: data.kind,
            dim: d,
            classes: c,
            weights: vec![0.0; c * d],
            bias: vec![0.0; c],
        };
        let (mut opt_w, mut opt_b) = (Adam::new(c * d), Adam::new(c));
        let (mut gw, mut gb) = (vec![0f32; c * d], vec![0f32; c]);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut order: Vec<usize> = (0..data.y.len()).collect();
        let mut t = 0;
        let mut z = vec![0f32; c];
        for _ in 0..cfg.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(cfg.batch_size) {
                gw.iter_mut().for_each(|g| *g = 0.0);
                gb.iter_mut().for_each(|g| *g = 0.0);
                let scale = 1.0 / batch.len() as f32;
                for &i in batch {
                    let x = data.row(i);
                    model.logits(x, &mut z);
                    softmax(&mut z);
                    z[data.y[i]] -= 1.0;
                    for (k, &g) in z.iter().enumerate() {
                        let g = g * scale;
                        gb[k] += g;
                        gw[k * d..(k + 1) * d]
                            .iter_mut()
                            .zip(x)
                            .for_each(|(w, &xi)| *w += g * xi);
                    }
                }
                gw.iter_mut()
                    .zip(&model.weights)
                    .for_each(|(g, &w)| *g += cfg.l2 * w);
                t += 1;
                opt_w.step(&mut model.weights, &gw, cfg.learning_rate, t);
                opt_b.step(&mut model.bias, &gb, cfg.learning_rate, t);
            }
        }
        Ok(model)
    }

    fn logits(&self, x: &[f32], z: &mut [f32]) {
        for (k, zk) in z.iter_mut().enumerate() {
            *zk = self.bias[k] + dot(&self.weights[k * self.dim..(k + 1) * self.dim], x);
        }
    }
}

impl Classifier for LogisticClassifier {
    fn predict(&self, h: &Hashmap) -> Result<Vec<(usize, f64)>> {
        check_input(self.kind, self.dim, h)?;
        let mut z = vec![0f32; self.classes];
        self.logits(&features(h), &mut z);
        softmax(&mut z);
        Ok(ranked(z.iter().enumerate().map(|(k, &p)| (k, f64::from(p)))))
    }
}

/// Training settings of [`Mlp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Width of the hidden layer.
    pub hidden: usize,
    /// Passes over the training data.
    pub epochs: usize,
    /// Adam step size.
    pub learning_rate: f32,
    /// L2 weight decay.
    pub l2: f32,
    /// Samples per gradient step.
    pub batch_size: usize,
    /// Seed of the initialisation and of the shuffling.
    pub seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            hidden: 256,
            epochs: 60,
            learning_rate: 0.01,
            l2: 1e-4,
            batch_size: 32,
            seed: 0,
        }
    }
}

/// A one-hidden-layer perceptron (ReLU, softmax output) over hashmap features, trained with
/// Adam on cross-entropy plus L2; scores are class probabilities.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mlp {
    kind: HashmapKind,
    dim: usize,
    hidden: usize,
    classes: usize,
    /// `hidden × dim`.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// `classes × hidden`.
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl Mlp {
    /// Trains on labelled hashmaps (all of one kind and dimension).
    pub fn fit(samples: &[(usize, Hashmap)], cfg: &MlpConfig) -> Result<Self> {
        check_training(cfg.epochs, cfg.learning_rate, cfg.l2, cfg.batch_size)?;
        if cfg.hidden == 0 {
            return Err(Error::InvalidConfig {
                field: "hidden",
                reason: "must be at least 1",
            });
        }
        let data = Data::new(samples)?;
        let (c, d, hd) = (data.classes, data.dim, cfg.hidden);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        // He-style uniform initialisation.
        let mut init = |n: usize, fan_in: usize| -> Vec<f32> {
            let a = (6.0 / fan_in as f32).sqrt();
            (0..n).map(|_| rng.gen_range(-a..a)).collect()
        };
        let mut m = Mlp {
            kind: data.kind,
            dim: d,
            hidden: hd,
            classes: c,
            w1: init(hd * d, d),
            b1: vec![0.0; hd],
            w2: init(c * hd, hd),
            b2: vec![0.0; c],
        };
        let mut opt = [Adam::new(hd * d), Adam::new(hd), Adam::new(c * hd), Adam::new(c)];
        let (mut g1, mut gb1, mut g2, mut gb2) = (
            vec![0f32; hd * d],
            vec![0f32; hd],
            vec![0f32; c * hd],
            vec![0f32; c],
        );
        let (mut a, mut z, mut ga) = (vec![0f32; hd], vec![0f32; c], vec![0f32; hd]);
        let mut order: Vec<usize> = (0..data.y.len()).collect();
        let mut t = 0;
        for _ in 0..cfg.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(cfg.batch_size) {
                for g in [&mut g1, &mut gb1, &mut g2, &mut gb2] {
                    g.iter_mut().for_each(|v| *v = 0.0);
                }
                let scale = 1.0 / batch.len() as f32;
                for &i in batch {
                    let x = data.row(i);
                    m.forward(x, &mut a, &mut z);
                    softmax(&mut z);
                    z[data.y[i]] -= 1.0;
                    ga.iter_mut().for_each(|v| *v = 0.0);
                    for (k, &g) in z.iter().enumerate() {
                        let g = g * scale;
                        gb2[k] += g;
                        let w2k = &m.w2[k * hd..(k + 1) * hd];
                        for j in 0..hd {
                            g2[k * hd + j] += g * a[j];
                            ga[j] += g * w2k[j];
                        }
                    }
                    for j in 0..hd {
                        if a[j] > 0.0 {
                            gb1[j] += ga[j];
                            g1[j * d..(j + 1) * d]
                                .iter_mut()
                                .zip(x)
                                .for_each(|(w, &xi)| *w += ga[j] * xi);
                        }
                    }
                }
                g1.iter_mut().zip(&m.w1).for_each(|(g, &w)| *g += cfg.l2 * w);
                g2.iter_mut().zip(&m.w2).for_each(|(g, &w)| *g += cfg.l2 * w);
                t += 1;
                let lr = cfg.learning_rate;
                opt[0].step(&mut m.w1, &g1, lr, t);
                opt[1].step(&mut m.b1, &gb1, lr, t);
                opt[2].step(&mut m.w2, &g2, lr, t);
                opt[3].step(&mut m.b2, &gb2, lr, t);
            }
        }
        Ok(m)
    }

    /// Hidden activations into `a`, logits into `z`.
    fn forward(&self, x: &[f32], a: &mut [f32], z: &mut [f32]) {
        let (d, hd) = (self.dim, self.hidden);
        for (j, aj) in a.iter_mut().enumerate() {
            *aj = (self.b1[j] + dot(&self.w1[j * d..(j + 1) * d], x)).max(0.0);
        }
        for (k, zk) in z.iter_mut().enumerate() {
            *zk = self.b2[k] + dot(&self.w2[k * hd..(k + 1) * hd], a);
        }
    }
}

impl Classifier for Mlp {
    fn predict(&self, h: &Hashmap) -> Result<Vec<(usize, f64)>> {
        check_input(self.kind, self.dim, h)?;
        let (mut a, mut z) = (vec![0f32; self.hidden], vec![0f32; self.classes]);
        self.forward(&features(h), &mut a, &mut z);
        softmax(&mut z);
        Ok(ranked(z.iter().enumerate().map(|(k, &p)| (k, f64::from(p)))))
    }
}
