//! The known-sample attack (Lai et al., IEEE TIFS 2021): the attacker holds a few
//! (sample, hashmap) pairs made under the victim's key (its own samples enrolled through the
//! victims' application, or a leak) and the white-box encoder, so it knows each pair's embedding
//! `e_i` and bits `b_i = sign(M e_i)`. `M` is the keyed transform, followed by the server pepper
//! when the pairs were read from the store: a pepper permutes bits and flips some, so `M` is
//! still a sign-linear map and the pepper does not stand in the way.
//!
//! Each bit is a linear classifier of the embedding: ridge regression of the bits on the
//! centred embeddings estimates `M` (see [`PairRegression`]), and a stolen template `b*` gives a
//! least-squares preimage. The attack succeeds when the hashmap the real client makes from that
//! preimage is accepted against the victim's enrolled template.

use nhm_template::BinaryHashmap;
use serde_json::json;

use crate::world::{cosine, normalized};
use crate::{AttackResult, Defences, Error, Result, Tally, World};

/// How the known-sample attack runs.
#[derive(Debug, Clone)]
pub struct KnownSampleConfig {
    /// Numbers of known pairs to try, each a row of the result.
    pub pairs: Vec<usize>,
    /// Stolen victim templates attacked at each count.
    pub targets: usize,
}

impl Default for KnownSampleConfig {
    fn default() -> Self {
        KnownSampleConfig {
            pairs: vec![4, 16, 64, 256, 1024, 4096],
            targets: 100,
        }
    }
}

/// The Cholesky factor `L` of a symmetric positive definite matrix (`A = L Lᵀ`).
struct Cholesky {
    l: Vec<f64>,
    n: usize,
}

impl Cholesky {
    /// Factors `a` (`n`×`n`, row-major).
    fn new(a: &[f64], n: usize) -> Result<Cholesky> {
        let mut l = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                let mut s = a[i * n + j];
                for k in 0..j {
                    s -= l[i * n + k] * l[j * n + k];
                }
                if i == j {
                    if s <= 0.0 {
                        return Err(Error::InvalidParameter {
                            name: "ridge",
                            reason: "the regression's normal matrix is not positive definite".into(),
                        });
                    }
                    l[i * n + i] = s.sqrt();
                } else {
                    l[i * n + j] = s / l[j * n + j];
                }
            }
        }
        Ok(Cholesky { l, n })
    }

    /// Solves `A x = b`.
    fn solve(&self, b: &[f64]) -> Vec<f64> {
        let (l, n) = (&self.l, self.n);
        let mut y = vec![0f64; n];
        for i in 0..n {
            let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
            y[i] = (b[i] - s) / l[i * n + i];
        }
        let mut x = vec![0f64; n];
        for i in (0..n).rev() {
            let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
            x[i] = (y[i] - s) / l[i * n + i];
        }
        x
    }
}

/// Ridges tried, relative to the mean diagonal of the centred `YᵀY`; the attacker keeps the one
/// that best recovers its own held-out pairs.
const RIDGES: [f64; 5] = [1e-3, 1e-2, 1e-1, 1.0, 10.0];

/// The attacker's regression over its known pairs: the preimage estimate of any template made
/// under the same transform.
///
/// Embeddings sit in a narrow cone around their mean `μ` and vary in few directions, so the
/// attacker regresses the centred embeddings on the centred bits, `e − μ ≈ Wᵀ (b − c)` (ridge,
/// `W = (YcᵀYc + λI)⁻¹ Ycᵀ Ec`): the best linear estimate of an embedding from its bits, which
/// stays inside the span the embeddings occupy. With an orthogonal `M` this is `Mᵀ` restricted
/// to that span, up to scale.
pub struct PairRegression {
    mean: Vec<f64>,
    intercept: Vec<f64>,
    /// `W`, bits × dim, row-major.
    w: Vec<f64>,
    dim: usize,
    bits: usize,
}

fn signs(h: &BinaryHashmap) -> Vec<f64> {
    (0..h.dim()).map(|i| if h.bit(i) { 1.0 } else { -1.0 }).collect()
}

impl PairRegression {
    /// Fits the regression on `embeddings` and their `hashmaps` (same length, at least one); with
    /// ten pairs or more the ridge is chosen on a fifth of them held out.
    pub fn fit(embeddings: &[Vec<f32>], hashmaps: &[BinaryHashmap]) -> Result<PairRegression> {
        if embeddings.is_empty() || embeddings.len() != hashmaps.len() {
            return Err(Error::InvalidParameter {
                name: "pairs",
                reason: format!(
                    "{} embeddings and {} hashmaps: need the same positive number",
                    embeddings.len(),
                    hashmaps.len()
                ),
            });
        }
        let n = embeddings.len();
        if n < 10 {
            return PairRegression::fit_with(embeddings, hashmaps, RIDGES[2]);
        }
        let held = n / 5;
        let (test_e, train_e) = embeddings.split_at(held);
        let (test_h, train_h) = hashmaps.split_at(held);
        let mut best = (f64::NEG_INFINITY, RIDGES[2]);
        for &r in &RIDGES {
            let fit = PairRegression::fit_with(train_e, train_h, r)?;
            let mut c = 0.0;
            for (e, h) in test_e.iter().zip(test_h) {
                c += cosine(&fit.preimage(h)?, e);
            }
            if c > best.0 {
                best = (c, r);
            }
        }
        PairRegression::fit_with(embeddings, hashmaps, best.1)
    }

    /// Fits with a given ridge, relative to the mean diagonal of `YcᵀYc`.
    fn fit_with(embeddings: &[Vec<f32>], hashmaps: &[BinaryHashmap], ridge: f64) -> Result<PairRegression> {
        let n = embeddings.len();
        let dim = embeddings[0].len();
        let bits = hashmaps[0].dim();
        let mut mean = vec![0f64; dim];
        for e in embeddings {
            mean.iter_mut()
                .zip(e)
                .for_each(|(m, &x)| *m += f64::from(x) / n as f64);
        }
        let y: Vec<Vec<f64>> = hashmaps.iter().map(signs).collect();
        if let Some(bad) = y.iter().position(|r| r.len() != bits) {
            return Err(Error::InvalidParameter {
                name: "pairs",
                reason: format!("hashmap {bad} has {} bits, the first has {bits}", y[bad].len()),
            });
        }
        let mut intercept = vec![0f64; bits];
        for row in &y {
            intercept
                .iter_mut()
                .zip(row)
                .for_each(|(c, v)| *c += v / n as f64);
        }
        // YcᵀYc (bits × bits, lower triangle) and YcᵀEc (bits × dim).
        let mut gram = vec![0f64; bits * bits];
        let mut rhs = vec![0f64; bits * dim];
        for (row, e) in y.iter().zip(embeddings) {
            let yc: Vec<f64> = row.iter().zip(&intercept).map(|(v, c)| v - c).collect();
            let ec: Vec<f64> = e.iter().zip(&mean).map(|(&x, m)| f64::from(x) - m).collect();
            for k in 0..bits {
                let yk = yc[k];
                for l in 0..=k {
                    gram[k * bits + l] += yk * yc[l];
                }
                rhs[k * dim..(k + 1) * dim]
                    .iter_mut()
                    .zip(&ec)
                    .for_each(|(r, x)| *r += yk * x);
            }
        }
        let trace: f64 = (0..bits).map(|k| gram[k * bits + k]).sum();
        let lambda = ridge * (trace / bits as f64).max(1e-9);
        for k in 0..bits {
            gram[k * bits + k] += lambda;
            for l in 0..k {
                gram[l * bits + k] = gram[k * bits + l];
            }
        }
        let chol = Cholesky::new(&gram, bits)?;
        let mut w = vec![0f64; bits * dim];
        for i in 0..dim {
            let col: Vec<f64> = (0..bits).map(|k| rhs[k * dim + i]).collect();
            for (k, v) in chol.solve(&col).into_iter().enumerate() {
                w[k * dim + i] = v;
            }
        }
        Ok(PairRegression {
            mean,
            intercept,
            w,
            dim,
            bits,
        })
    }

    /// The unit preimage estimate of a template made under the pairs' transform.
    pub fn preimage(&self, target: &BinaryHashmap) -> Result<Vec<f32>> {
        if target.dim() != self.bits {
            return Err(Error::Template(nhm_template::Error::DimensionMismatch {
                expected: self.bits,
                found: target.dim(),
            }));
        }
        let b = signs(target);
        let mut e = self.mean.clone();
        for ((bk, ck), row) in b.iter().zip(&self.intercept).zip(self.w.chunks_exact(self.dim)) {
            let r = bk - ck;
            e.iter_mut().zip(row).for_each(|(ei, wk)| *ei += wk * r);
        }
        Ok(normalized(e.into_iter().map(|v| v as f32).collect()))
    }
}

/// Runs the attack at each pair count of `cfg`: pairs are public samples under the victims'
/// application key (peppered when the defences pepper the store, as are the stolen templates).
pub fn known_sample(
    world: &World,
    defences: &Defences,
    cfg: &KnownSampleConfig,
) -> Result<Vec<AttackResult>> {
    if cfg.targets == 0 || cfg.pairs.is_empty() || cfg.pairs.contains(&0) {
        return Err(Error::InvalidParameter {
            name: "known-sample",
            reason: "needs at least one target and pair counts of at least 1".into(),
        });
    }
    let key = world.victim_key(defences, "app-a");
    let p = world.protector(&key, defences)?;
    let op = world.operating_point(&p)?;
    let templates = World::hashmaps(&p, &world.victims.embeddings)?;
    let stored = world.at_rest(defences, &templates)?;
    let public_bits = world.at_rest(defences, &World::hashmaps(&p, &world.public.embeddings)?)?;
    let targets = world.targets(cfg.targets);
    let mut out = Vec::new();
    for &n in &cfg.pairs {
        let n = n.min(world.public.len());
        // The first n public samples: a seeded choice would not change the statistics.
        let fit = PairRegression::fit(&world.public.embeddings[..n], &public_bits[..n])?;
        let mut accepted = Tally::default();
        let mut type_ii = Tally::default();
        let mut cos = 0.0;
        for &t in &targets {
            let e = fit.preimage(&stored[t])?;
            cos += cosine(&e, &world.victims.embeddings[t]);
            // The real client protects the preimage; the server peppers it and compares with
            // the peppered template: the pepper is an isometry, so compare unpeppered.
            let probe = p.binary(&e)?;
            let (i, ii) = world.judge(&op, &templates, t, &probe)?;
            accepted.record(i);
            type_ii = type_ii.merged(ii);
        }
        out.push(AttackResult {
            attack: "known-sample".into(),
            scenario: format!("{n} known pairs"),
            defences: defences.label(),
            success: accepted,
            type_i: Some(accepted),
            threshold: op.threshold.score,
            details: json!({
                "pairs": n,
                "success_is": "the preimage's hashmap is accepted against the victim's enrolled template (type I)",
                "type_ii": type_ii,
                "type_ii_rate": type_ii.rate(),
                "mean_preimage_cosine": cos / targets.len() as f64,
            }),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        // [[4, 2], [2, 3]] x = [2, 1] → x = [0.5, 0].
        let x = Cholesky::new(&[4.0, 2.0, 2.0, 3.0], 2)
            .unwrap()
            .solve(&[2.0, 1.0]);
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        assert!(Cholesky::new(&[-1.0], 1).is_err());
    }

    #[test]
    fn enough_pairs_recover_a_preimage_of_a_keyed_template() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let dim = 32;
        let mut unit = || normalized((0..dim).map(|_| rng.gen::<f32>() - 0.5).collect());
        let p = nhm_template::Protector::new(&nhm_template::Key::from_seed(1), dim).unwrap();
        let pairs: Vec<Vec<f32>> = (0..400).map(|_| unit()).collect();
        let bits = World::hashmaps(&p, &pairs).unwrap();
        let secret = unit();
        let stolen = p.binary(&secret).unwrap();
        let few = PairRegression::fit(&pairs[..2], &bits[..2]).unwrap();
        let many = PairRegression::fit(&pairs, &bits).unwrap();
        let c_few = cosine(&few.preimage(&stolen).unwrap(), &secret);
        let c_many = cosine(&many.preimage(&stolen).unwrap(), &secret);
        assert!(c_many > 0.8, "400 pairs: cosine {c_many}");
        assert!(c_many > c_few + 0.2, "2 pairs {c_few}, 400 pairs {c_many}");
        assert!(PairRegression::fit(&pairs[..2], &bits[..1]).is_err());
        assert!(PairRegression::fit(&[], &[]).is_err());
    }
}
