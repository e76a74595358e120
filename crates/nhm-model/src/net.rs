//! The burn modules: the encoder CNN and the training wrapper that adds per-class weights.

use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::EncoderConfig;

/// The backend's random generator (used by burn's weight initialisers) is process-global: hold
/// this lock from seeding to the end of initialisation so that two models built at once on
/// different threads (tests, a server) cannot interleave their draws.
pub(crate) static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Touches every float parameter so that its lazy initialiser runs now.
pub(crate) struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// One 3×3 conv (no bias: BatchNorm follows) → BatchNorm → ReLU.
#[derive(Module, Debug)]
pub(crate) struct ConvBlock {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBlock {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        ConvBlock {
            conv: Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(cout).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}

/// The encoder CNN (see [`EncoderConfig`] for the layout).
#[derive(Module, Debug)]
pub(crate) struct EncoderNet {
    blocks: Vec<ConvBlock>,
    pool: MaxPool2d,
    head_pool: AdaptiveAvgPool2d,
    proj: Linear,
    convs_per_stage: usize,
    space_to_depth: usize,
}

impl EncoderNet {
    /// Builds the network with weights drawn from the backend's generator seeded with `seed`.
    pub(crate) fn new(cfg: &EncoderConfig, seed: u64, device: &Device) -> Self {
        let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        device.seed(seed);
        let mut blocks = Vec::new();
        let mut cin = cfg.space_to_depth * cfg.space_to_depth;
        for &c in &cfg.channels {
            for _ in 0..cfg.convs_per_stage {
                blocks.push(ConvBlock::new(cin, c, device));
                cin = c;
            }
        }
        let g = cfg.pool_grid;
        let net = EncoderNet {
            blocks,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            head_pool: AdaptiveAvgPool2dConfig::new([g, g]).init(),
            proj: LinearConfig::new(cin * g * g, cfg.embedding_dim).init(device),
            convs_per_stage: cfg.convs_per_stage,
            space_to_depth: cfg.space_to_depth,
        };
        // burn initialises parameters lazily, on first use: draw them now, under the lock.
        net.visit(&mut Materialize);
        net
    }

    /// The same network with every BatchNorm on its running statistics even while training
    /// (scale and shift stay trainable): for batches that hold one person only, as a federated
    /// client's do, where batch statistics would subtract exactly what identifies the person.
    pub(crate) fn with_frozen_norms(self) -> Self {
        use burn::module::ParamGroup;
        let blocks = self
            .blocks
            .into_iter()
            .map(|b| {
                let bn = b.bn.freeze();
                let group = ParamGroup::ids_from_module(bn.clone());
                ConvBlock {
                    conv: b.conv,
                    bn: bn.set_require_grad_group(group, true),
                }
            })
            .collect();
        EncoderNet { blocks, ..self }
    }

    /// `[batch, 1, s, s]` images → `[batch, d]` unit-norm embeddings.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = space_to_depth(x, self.space_to_depth);
        let n = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if (i + 1) % self.convs_per_stage == 0 && i + 1 < n {
                x = self.pool.forward(x);
            }
        }
        let x: Tensor<2> = self.head_pool.forward(x).flatten(1, 3);
        l2_normalize(self.proj.forward(x))
    }
}

/// `[b, c, h, w]` → `[b, c·f², h/f, w/f]`: channel `c·f² + i·f + j` holds the pixels at offset
/// `(i, j)` of every `f`×`f` block (PyTorch's `pixel_unshuffle`). `f` = 1 returns `x`.
pub(crate) fn space_to_depth(x: Tensor<4>, f: usize) -> Tensor<4> {
    if f <= 1 {
        return x;
    }
    let [b, c, h, w] = x.dims();
    let blocks: Tensor<6> = x.reshape([b, c, h / f, f, w / f, f]);
    blocks
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, c * f * f, h / f, w / f])
}

/// Rows scaled to unit Euclidean norm (a zero row stays near zero instead of dividing by 0).
pub(crate) fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// What is trained: the encoder, plus one weight vector per training subject for ArcFace.
#[derive(Module, Debug)]
pub(crate) struct TrainNet {
    pub(crate) enc: EncoderNet,
    pub(crate) class_weights: Option<Param<Tensor<2>>>,
}

impl TrainNet {
    /// The encoder and, when `classes` is given, a `[classes, d]` weight matrix drawn from a
    /// seeded normal distribution.
    pub(crate) fn new(cfg: &EncoderConfig, classes: Option<usize>, seed: u64, device: &Device) -> Self {
        let enc = EncoderNet::new(cfg, seed, device);
        let class_weights = classes.map(|c| {
            use rand_distr_normal::sample_normal;
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xA5C3_0000_0000_0001);
            let d = cfg.embedding_dim;
            let v: Vec<f32> = (0..c * d).map(|_| sample_normal(&mut rng)).collect();
            Param::from_tensor(Tensor::<2>::from_data(TensorData::new(v, [c, d]), device))
        });
        TrainNet { enc, class_weights }
    }
}

/// A standard normal draw without another dependency (Box–Muller over the seeded generator).
mod rand_distr_normal {
    use rand::Rng;

    pub(crate) fn sample_normal<R: Rng>(rng: &mut R) -> f32 {
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_to_depth_folds_each_block_offset_into_its_own_channel() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new((0..32).map(|v| v as f32).collect(), [1, 2, 4, 4]),
            &device,
        );
        let y = space_to_depth(x.clone(), 2);
        assert_eq!(y.dims(), [1, 8, 2, 2]);
        let v = y.into_data().try_to_vec::<f32>().unwrap();
        // Channel 0 of the input, block offset (0, 1): pixels (0,1), (0,3), (2,1), (2,3).
        assert_eq!(&v[4..8], &[1.0, 3.0, 9.0, 11.0]);
        // Channel 1, offset (1, 0): 16 + pixels (1,0), (1,2), (3,0), (3,2).
        assert_eq!(&v[24..28], &[20.0, 22.0, 28.0, 30.0]);
        let same = space_to_depth(x.clone(), 1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(same, x.into_data().try_to_vec::<f32>().unwrap());
    }
}
