//! Unlinkability of protected templates (ISO/IEC 30136; Gomez-Barrero et al., "General framework
//! to evaluate unlinkability in biometric template protection systems", IEEE TIFS 2018).
//!
//! Mated scores compare templates of the same subject made with different keys; non-mated
//! scores compare templates of different subjects made with different keys. If an attacker can
//! tell the two apart from the score, templates can be linked across applications.
//!
//! With the likelihood ratio LR(s) = p(s | mated) / p(s | non-mated) and the prior ratio ω = 1,
//! the local measure is D↔(s) = max(0, 2·ω·LR(s)/(1 + ω·LR(s)) − 1) and the global one
//! D↔sys = ∫ p(s | mated) · D↔(s) ds, in [0, 1]: 0 is fully unlinkable, 1 fully linkable.
//! Densities are estimated by histograms over a common set of equal-width bins spanning all
//! scores, as in the authors' reference implementation: a bin with mated but no non-mated
//! scores has D↔ = 1.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The unlinkability figures of one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unlinkability {
    /// Global linkability D↔sys in [0, 1] (0 = fully unlinkable).
    pub d_sys: f64,
    /// Per bin: the bin's centre score and D↔ there.
    pub local: Vec<(f64, f64)>,
    /// Estimated density of mated scores in each bin (integrates to 1).
    pub mated_density: Vec<f64>,
    /// Estimated density of non-mated scores in each bin (integrates to 1).
    pub non_mated_density: Vec<f64>,
}

/// Computes D↔(s) and D↔sys from mated and non-mated scores with `bins` histogram bins.
pub fn unlinkability(mated: &[f64], non_mated: &[f64], bins: usize) -> Result<Unlinkability> {
    if mated.is_empty() {
        return Err(Error::NoScores { which: "mated" });
    }
    if non_mated.is_empty() {
        return Err(Error::NoScores { which: "non-mated" });
    }
    if bins == 0 {
        return Err(Error::InvalidParameter {
            name: "bins",
            reason: "must be at least 1".into(),
        });
    }
    for (index, &value) in mated.iter().chain(non_mated).enumerate() {
        if !value.is_finite() {
            return Err(Error::NonFiniteScore { index, value });
        }
    }
    let (lo, hi) = mated
        .iter()
        .chain(non_mated)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    // All scores equal: one bin holds everything, so the two distributions are identical.
    let bins = if hi > lo { bins } else { 1 };
    let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
    let histogram = |xs: &[f64]| {
        let mut h = vec![0usize; bins];
        for &x in xs {
            let b = (((x - lo) / width) as usize).min(bins - 1);
            h[b] += 1;
        }
        h
    };
    let (hm, hn) = (histogram(mated), histogram(non_mated));
    let mut d_sys = 0.0;
    let mut local = Vec::with_capacity(bins);
    let mut mated_density = Vec::with_capacity(bins);
    let mut non_mated_density = Vec::with_capacity(bins);
    for b in 0..bins {
        let pm = hm[b] as f64 / mated.len() as f64; // probability mass of the bin
        let pn = hn[b] as f64 / non_mated.len() as f64;
        let d = if pm == 0.0 {
            0.0
        } else if pn == 0.0 {
            1.0
        } else {
            let lr = pm / pn; // the bin width cancels
            (2.0 * lr / (1.0 + lr) - 1.0).max(0.0)
        };
        d_sys += pm * d;
        local.push((lo + (b as f64 + 0.5) * width, d));
        mated_density.push(pm / width);
        non_mated_density.push(pn / width);
    }
    Ok(Unlinkability {
        d_sys,
        local,
        mated_density,
        non_mated_density,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn gaussian(rng: &mut ChaCha8Rng, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        // Box–Muller.
        (0..n)
            .map(|_| {
                let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
                mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
            })
            .collect()
    }

    #[test]
    fn same_distribution_is_unlinkable() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = gaussian(&mut rng, 20_000, 0.5, 0.05);
        let b = gaussian(&mut rng, 20_000, 0.5, 0.05);
        let u = unlinkability(&a, &b, 30).unwrap();
        assert!(u.d_sys < 0.03, "D_sys = {}", u.d_sys);
        assert_eq!(unlinkability(&a, &a, 30).unwrap().d_sys, 0.0);
    }

    #[test]
    fn separated_distributions_are_linkable() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let a = gaussian(&mut rng, 5_000, 0.9, 0.02);
        let b = gaussian(&mut rng, 5_000, 0.5, 0.02);
        let u = unlinkability(&a, &b, 50).unwrap();
        assert!(u.d_sys > 0.99, "D_sys = {}", u.d_sys);
    }

    #[test]
    fn partial_overlap_is_in_between_and_densities_integrate() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let a = gaussian(&mut rng, 10_000, 0.55, 0.05);
        let b = gaussian(&mut rng, 10_000, 0.5, 0.05);
        let u = unlinkability(&a, &b, 40).unwrap();
        assert!(u.d_sys > 0.1 && u.d_sys < 0.6, "D_sys = {}", u.d_sys);
        let width = u.local[1].0 - u.local[0].0;
        let total: f64 = u.mated_density.iter().sum::<f64>() * width;
        assert!((total - 1.0).abs() < 1e-9);
        assert!(u.local.iter().all(|&(_, d)| (0.0..=1.0).contains(&d)));
    }

    #[test]
    fn bad_input_is_rejected() {
        assert!(matches!(
            unlinkability(&[], &[1.0], 10),
            Err(Error::NoScores { which: "mated" })
        ));
        assert!(matches!(
            unlinkability(&[1.0], &[], 10),
            Err(Error::NoScores { which: "non-mated" })
        ));
        assert!(matches!(
            unlinkability(&[1.0], &[1.0], 0),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            unlinkability(&[f64::NAN], &[1.0], 4),
            Err(Error::NonFiniteScore { .. })
        ));
        // Constant scores: one bin, nothing to tell apart.
        assert_eq!(unlinkability(&[0.3, 0.3], &[0.3], 10).unwrap().d_sys, 0.0);
    }
}
