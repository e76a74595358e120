//! Metric-learning losses on a batch of unit-norm embeddings.
//!
//! Each takes `[B, d]` unit-norm embeddings and the batch's labels and returns a one-element
//! loss tensor that can be back-propagated.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};

use crate::net::l2_normalize;
use crate::LossKind;

/// `[n, n]` float masks from labels: same-label pairs and different-label pairs, diagonal
/// excluded; `upper` keeps only `i < j` (each unordered pair once).
fn pair_masks(labels: &[u32], upper: bool, device: &Device) -> (Tensor<2>, Tensor<2>, usize, usize) {
    let n = labels.len();
    let mut pos = vec![0f32; n * n];
    let mut neg = vec![0f32; n * n];
    let (mut np, mut nn) = (0, 0);
    for i in 0..n {
        for j in 0..n {
            if i == j || (upper && j < i) {
                continue;
            }
            if labels[i] == labels[j] {
                pos[i * n + j] = 1.0;
                np += 1;
            } else {
                neg[i * n + j] = 1.0;
                nn += 1;
            }
        }
    }
    (
        Tensor::from_data(TensorData::new(pos, [n, n]), device),
        Tensor::from_data(TensorData::new(neg, [n, n]), device),
        np,
        nn,
    )
}

/// Contrastive loss (Hadsell et al. 2006): over all unordered pairs of the batch,
/// mean over positive pairs of `d²` plus mean over negative pairs of `max(0, m − d)²`, with
/// `d = ‖eᵢ − eⱼ‖` (`d² = 2 − 2 eᵢ·eⱼ` for unit vectors). A batch without positive (or negative)
/// pairs contributes 0 for that term.
pub(crate) fn contrastive(emb: Tensor<2>, labels: &[u32], margin: f32) -> Tensor<1> {
    let device = emb.device();
    let (pos, neg, np, nn) = pair_masks(labels, true, &device);
    let gram = emb.clone().matmul(emb.transpose());
    let d2 = gram.mul_scalar(-2.0).add_scalar(2.0).clamp_min(0.0);
    let d = d2.clone().clamp_min(1e-9).sqrt();
    let hinge = d.neg().add_scalar(margin).clamp_min(0.0).powf_scalar(2.0);
    let pos_term = (d2 * pos).sum().div_scalar(np.max(1) as f32);
    let neg_term = (hinge * neg).sum().div_scalar(nn.max(1) as f32);
    pos_term + neg_term
}

/// Supervised contrastive loss (Khosla et al. 2020, the "L_out" form): for each anchor with at
/// least one positive, minus the mean over its positives of the log-softmax (over all other
/// samples) of `eᵢ·eⱼ / τ`; averaged over such anchors.
pub(crate) fn supcon(emb: Tensor<2>, labels: &[u32], temperature: f32) -> Tensor<1> {
    let device = emb.device();
    let n = labels.len();
    let (pos, _, _, _) = pair_masks(labels, false, &device);
    let sim = emb.clone().matmul(emb.transpose()).div_scalar(temperature);
    // Push self-similarity out of the softmax.
    let eye: Vec<f32> = (0..n * n)
        .map(|k| if k / n == k % n { -1e4 } else { 0.0 })
        .collect();
    let sim = sim + Tensor::<2>::from_data(TensorData::new(eye, [n, n]), &device);
    let log_prob = log_softmax(sim, 1);
    let per_anchor_pos: Vec<f32> = (0..n)
        .map(|i| {
            let c = labels
                .iter()
                .enumerate()
                .filter(|&(j, &l)| j != i && l == labels[i])
                .count();
            if c == 0 {
                0.0
            } else {
                1.0 / c as f32
            }
        })
        .collect();
    let anchors = per_anchor_pos.iter().filter(|&&w| w > 0.0).count().max(1);
    let w = Tensor::<2>::from_data(TensorData::new(per_anchor_pos, [n, 1]), &device);
    (log_prob * pos * w).sum().neg().div_scalar(anchors as f32)
}

/// Additive angular margin loss (ArcFace, Deng et al. 2019): logits `s·cos θⱼ` against the
/// L2-normalised class weights, with the true class's angle increased by `m`; softmax
/// cross-entropy. Where `θ + m` would pass π the usual linear fallback `cos θ − m·sin m` keeps
/// the logit monotonic.
pub(crate) fn arcface(
    emb: Tensor<2>,
    weights: Tensor<2>,
    classes: &[u32],
    scale: f32,
    margin: f32,
) -> Tensor<1> {
    let device = emb.device();
    let [n, _] = emb.dims();
    let [c, _] = weights.dims();
    let w = l2_normalize(weights);
    let cos = emb.matmul(w.transpose()).clamp(-1.0 + 1e-6, 1.0 - 1e-6);
    let sin = cos
        .clone()
        .powf_scalar(2.0)
        .neg()
        .add_scalar(1.0)
        .clamp_min(1e-9)
        .sqrt();
    let (cm, sm) = (margin.cos(), margin.sin());
    let phi = cos.clone().mul_scalar(cm) - sin.mul_scalar(sm);
    let threshold = (std::f32::consts::PI - margin).cos();
    let fallback = cos.clone().sub_scalar(margin * sm);
    let phi = phi.mask_where(cos.clone().lower_equal_elem(threshold), fallback);
    let mut onehot = vec![0f32; n * c];
    for (i, &k) in classes.iter().enumerate() {
        onehot[i * c + k as usize] = 1.0;
    }
    let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [n, c]), &device);
    let logits = (cos.clone() + (phi - cos) * onehot.clone()).mul_scalar(scale);
    (log_softmax(logits, 1) * onehot).sum().neg().div_scalar(n as f32)
}

/// The batch loss for `kind`; `class_weights` is needed (and only used) by ArcFace, whose
/// labels must be training-subject indices below its row count.
pub(crate) fn batch_loss(
    kind: &LossKind,
    emb: Tensor<2>,
    labels: &[u32],
    class_weights: Option<Tensor<2>>,
) -> Tensor<1> {
    match *kind {
        LossKind::Contrastive { margin } => contrastive(emb, labels, margin),
        LossKind::SupCon { temperature } => supcon(emb, labels, temperature),
        LossKind::ArcFace { scale, margin } => match class_weights {
            Some(w) => arcface(emb, w, labels, scale, margin),
            // Unreachable through the trainer, which builds the weights for ArcFace; fall back
            // to a loss that still trains rather than panicking.
            None => supcon(emb, labels, 0.1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: Vec<f32>, n: usize, d: usize) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, [n, d]), &Device::flex())
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn contrastive_matches_hand_computation() {
        // e0 = (1,0), e1 = (0.6,0.8), e2 = (0,1); labels 0,0,1.
        // Positive pair (0,1): d² = 2 − 2·0.6 = 0.8.
        // Negatives: (0,2): d = √2 ≈ 1.41421, hinge max(0, 1.5 − 1.41421)² = 0.0073593;
        //            (1,2): d² = 2 − 1.6 = 0.4, d = 0.632456, hinge (1.5 − 0.632456)² = 0.752633.
        let e = t2(vec![1.0, 0.0, 0.6, 0.8, 0.0, 1.0], 3, 2);
        let got = scalar(contrastive(e, &[0, 0, 1], 1.5));
        let want = 0.8 + (0.0073593 + 0.752633) / 2.0;
        assert!((got - want).abs() < 1e-4, "got {got}, want {want}");
    }

    #[test]
    fn contrastive_is_zero_when_perfect() {
        // Identical positives, opposite negatives beyond the margin.
        let e = t2(vec![1.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, 0.0], 4, 2);
        let got = scalar(contrastive(e, &[0, 0, 1, 1], 1.0));
        assert!(got.abs() < 1e-4, "{got}");
    }

    #[test]
    fn supcon_matches_hand_computation() {
        // Three unit vectors, labels 0,0,1, τ = 1. Anchor 0: positive 1; anchor 1: positive 0;
        // anchor 2: none (skipped).
        let e = t2(vec![1.0, 0.0, 0.6, 0.8, 0.0, 1.0], 3, 2);
        let got = scalar(supcon(e, &[0, 0, 1], 1.0));
        let l0 = -(0.6f32.exp() / (0.6f32.exp() + 0f32.exp())).ln();
        let l1 = -(0.6f32.exp() / (0.6f32.exp() + 0.8f32.exp())).ln();
        let want = (l0 + l1) / 2.0;
        assert!((got - want).abs() < 1e-4, "got {got}, want {want}");
    }

    #[test]
    fn arcface_matches_hand_computation() {
        // Two samples, two classes, symmetric: each row's loss is ln(1 + exp(s·(cos_other − cos(θ + m)))).
        let e = t2(vec![1.0, 0.0, 0.0, 1.0], 2, 2);
        let w = t2(vec![0.9, 0.1, 0.1, 0.9], 2, 2);
        let (s, norm) = (2.0f32, 0.82f32.sqrt());
        let (c_true, c_other) = (0.9 / norm, 0.1 / norm);
        let want = |m: f32| (1.0 + (s * (c_other - (c_true.acos() + m).cos())).exp()).ln();
        let none = scalar(arcface(e.clone(), w.clone(), &[0, 1], s, 0.0));
        let some = scalar(arcface(e, w, &[0, 1], s, 0.4));
        assert!((none - want(0.0)).abs() < 1e-4, "{none} vs {}", want(0.0));
        assert!((some - want(0.4)).abs() < 1e-4, "{some} vs {}", want(0.4));
        assert!(some > none);
    }
}
