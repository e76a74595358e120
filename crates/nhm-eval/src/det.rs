//! Detection error trade-off (DET) curves and the normal-deviate (probit) scale they are drawn on.
//!
//! A DET curve plots FNMR against FMR as the threshold sweeps over every score (ISO/IEC 19795-1),
//! both axes on the normal-deviate scale so that Gaussian score distributions give straight lines.

use serde::{Deserialize, Serialize};

use crate::ScoreSet;

/// One operating point of a DET curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetPoint {
    /// The threshold: comparisons with `score >= threshold` are accepted.
    pub threshold: f64,
    /// False match rate at that threshold, as a fraction.
    pub fmr: f64,
    /// False non-match rate at that threshold, as a fraction.
    pub fnmr: f64,
}

/// The DET curve of `s`, ordered by ascending threshold (FMR falls, FNMR rises), with at most
/// `max_points` points (at least 2 are kept when `max_points < 2`).
///
/// Every threshold where FMR or FNMR changes is a candidate. When there are more than
/// `max_points`, points are kept evenly spaced along the curve's length on the probit scale, so
/// the low-FMR tail keeps as much detail as the middle; the two ends are always kept.
pub fn det_curve(s: &ScoreSet, max_points: usize) -> Vec<DetPoint> {
    let mut thresholds: Vec<f64> = s.genuine().iter().chain(s.impostor()).copied().collect();
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    // One threshold above every score: FMR 0, FNMR 1.
    if let Some(&top) = thresholds.last() {
        thresholds.push(top + 1e-9f64.max(top.abs() * 1e-12));
    }
    let all: Vec<DetPoint> = thresholds
        .iter()
        .map(|&t| DetPoint {
            threshold: t,
            fmr: s.fmr(t),
            fnmr: s.fnmr(t),
        })
        .collect();
    // Keep the equal-error point (chosen as ScoreSet::eer chooses it), so the EER read off the
    // curve is the reported one.
    let mut eer_index = 0;
    for (i, p) in all.iter().enumerate() {
        let (gap, best) = ((p.fmr - p.fnmr).abs(), &all[eer_index]);
        let best_gap = (best.fmr - best.fnmr).abs();
        if gap < best_gap || (gap == best_gap && p.fmr + p.fnmr < best.fmr + best.fnmr) {
            eer_index = i;
        }
    }
    thin(all, max_points.max(2), eer_index)
}

/// Keeps at most `max` points (one more when `keep` must be added), evenly spaced by arc length
/// on the probit scale, always with `keep`.
fn thin(all: Vec<DetPoint>, max: usize, keep: usize) -> Vec<DetPoint> {
    if all.len() <= max {
        return all;
    }
    // Clamp so that rates of 0 and 1 have a finite position on the probit scale.
    let eps = 1e-7;
    let pos = |p: &DetPoint| {
        (
            probit(p.fmr.clamp(eps, 1.0 - eps)),
            probit(p.fnmr.clamp(eps, 1.0 - eps)),
        )
    };
    let mut cumulative = Vec::with_capacity(all.len());
    let mut total = 0.0;
    let mut prev = pos(&all[0]);
    for p in &all {
        let here = pos(p);
        total += ((here.0 - prev.0).powi(2) + (here.1 - prev.1).powi(2)).sqrt();
        cumulative.push(total);
        prev = here;
    }
    let mut kept = Vec::with_capacity(max);
    let mut next_index = 0;
    for k in 0..max {
        let target = total * k as f64 / (max - 1) as f64;
        // First point at or beyond the target length, never going back.
        let i = next_index + cumulative[next_index..].partition_point(|&c| c < target);
        let i = i.min(all.len() - 1);
        if kept.last().is_none_or(|&last| last != i) {
            kept.push(i);
        }
        next_index = i;
    }
    if kept.last() != Some(&(all.len() - 1)) {
        kept.push(all.len() - 1);
    }
    if let Err(at) = kept.binary_search(&keep) {
        kept.insert(at, keep);
    }
    kept.into_iter().map(|i| all[i]).collect()
}

/// The inverse of the standard normal CDF (the normal deviate of `p`): `probit(0.5) = 0`,
/// `probit(0.975) ≈ 1.96`. Returns −∞ at 0, +∞ at 1 and NaN outside [0, 1].
///
/// Acklam's rational approximation (relative error below 1.2e-9), refined by one step of
/// Halley's method against an accurate `erfc`, which brings it to about machine precision.
pub fn probit(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;
    let x = if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step: e = Φ(x) − p, Φ(x) = erfc(−x/√2)/2.
    let e = 0.5 * erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The standard normal CDF Φ(x).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function: the Chebyshev fit of Numerical Recipes (3rd ed., §6.2,
/// `Erf::erfccheb`), relative error below 1e-13 for x in [0, 20] (checked against a reference).
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    // Numerical Recipes 3rd edition, Erf::erfccheb.
    const COF: [f64; 28] = [
        -1.302_653_719_781_709_4,
        6.419_697_923_564_902e-1,
        1.947_647_320_418_583_6e-2,
        -9.561_514_786_808_63e-3,
        -9.465_953_444_820_36e-4,
        3.668_394_978_527_61e-4,
        4.252_332_480_690_7e-5,
        -2.027_857_811_253_4e-5,
        -1.624_290_004_647e-6,
        1.303_655_835_580e-6,
        1.562_644_172_2e-8,
        -8.523_809_591_5e-8,
        6.529_054_439e-9,
        5.059_343_495e-9,
        -9.913_641_56e-10,
        -2.273_651_22e-10,
        9.646_791_1e-11,
        2.394_038e-12,
        -6.886_027e-12,
        8.944_87e-13,
        3.130_92e-13,
        -1.127_08e-13,
        3.81e-16,
        7.106e-15,
        -1.523e-15,
        -9.4e-17,
        1.21e-16,
        -2.8e-17,
    ];
    let t = 2.0 / (2.0 + x);
    let ty = 4.0 * t - 2.0;
    let (mut d, mut dd) = (0.0f64, 0.0f64);
    for &c in COF[1..].iter().rev() {
        let tmp = d;
        d = ty * d - dd + c;
        dd = tmp;
    }
    t * (-x * x + 0.5 * (COF[0] + ty * d) - dd).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn probit_known_values() {
        assert_eq!(probit(0.5), 0.0);
        assert!((probit(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
        assert!((probit(0.001) + 3.090_232_306_167_813_6).abs() < 1e-12);
        assert!((probit(1e-10) + 6.361_340_902_404_056).abs() < 1e-9);
        assert_eq!(probit(0.0), f64::NEG_INFINITY);
        assert_eq!(probit(1.0), f64::INFINITY);
        assert!(probit(-0.1).is_nan() && probit(1.1).is_nan() && probit(f64::NAN).is_nan());
    }

    #[test]
    fn erfc_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-15);
        assert!((erfc(1.0) - 0.157_299_207_050_285_13).abs() < 1e-15);
        assert!((erfc(-1.0) - 1.842_700_792_949_714_8).abs() < 1e-15);
        assert!((normal_cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-14);
    }

    #[test]
    fn det_curve_ends_and_size() {
        let gen: Vec<f64> = (0..500).map(|i| 0.5 + i as f64 / 1000.0).collect();
        let imp: Vec<f64> = (0..3000).map(|i| i as f64 / 4000.0).collect();
        let s = ScoreSet::new(gen, imp).unwrap();
        let c = det_curve(&s, 100);
        assert!(c.len() <= 102 && c.len() >= 50, "{} points", c.len());
        assert_eq!((c[0].fmr, c[0].fnmr), (1.0, 0.0));
        let last = c[c.len() - 1];
        assert_eq!((last.fmr, last.fnmr), (0.0, 1.0));
        let mut unique: Vec<f64> = s.genuine().iter().chain(s.impostor()).copied().collect();
        unique.sort_by(f64::total_cmp);
        unique.dedup();
        // Every distinct score, plus one threshold above them all.
        assert_eq!(det_curve(&s, usize::MAX).len(), unique.len() + 1);
    }

    proptest! {
        #[test]
        fn probit_is_symmetric_and_inverts_cdf(p in 1e-12f64..0.5) {
            prop_assert!((probit(p) + probit(1.0 - p)).abs() < 1e-6 * probit(p).abs().max(1.0));
            prop_assert!((normal_cdf(probit(p)) - p).abs() <= 1e-12 * p.max(1e-3));
        }

        #[test]
        fn det_curve_is_monotonic(gen in proptest::collection::vec(-1.0f64..1.0, 1..60),
                                  imp in proptest::collection::vec(-1.0f64..1.0, 1..300),
                                  max in 2usize..40) {
            let s = ScoreSet::new(gen, imp).unwrap();
            let c = det_curve(&s, max);
            prop_assert!(c.len() <= max + 2);
            let e = s.eer().eer;
            let from_curve = c.iter().map(|p| ((p.fmr - p.fnmr).abs(), (p.fmr + p.fnmr) / 2.0))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))).unwrap().1;
            prop_assert!((from_curve - e).abs() < 1e-12, "{} vs {}", from_curve, e);
            for w in c.windows(2) {
                prop_assert!(w[0].threshold < w[1].threshold);
                prop_assert!(w[0].fmr >= w[1].fmr);
                prop_assert!(w[0].fnmr <= w[1].fnmr);
            }
        }
    }
}
