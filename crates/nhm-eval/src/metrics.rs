//! FMR, FNMR, EER and FNMR at a fixed FMR, from genuine and impostor scores (ISO/IEC 19795-1).
//!
//! A comparison is accepted when `score >= threshold`. FMR(τ) is the share of impostor scores
//! accepted, FNMR(τ) the share of genuine scores rejected. All figures are computed exactly from
//! the sorted scores: no binning.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Genuine (mated) and impostor (non-mated) comparison scores, each sorted ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreSet {
    genuine: Vec<f64>,
    impostor: Vec<f64>,
}

/// The equal error rate and where it lies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Eer {
    /// The equal error rate, as a fraction (0.01 = 1%): mean of FMR and FNMR at the crossing.
    pub eer: f64,
    /// The threshold at the crossing.
    pub threshold: f64,
}

impl ScoreSet {
    /// Builds a score set; rejects empty sides and non-finite scores.
    pub fn new(mut genuine: Vec<f64>, mut impostor: Vec<f64>) -> Result<Self> {
        if genuine.is_empty() {
            return Err(Error::NoScores { which: "genuine" });
        }
        if impostor.is_empty() {
            return Err(Error::NoScores { which: "impostor" });
        }
        for (i, &v) in genuine.iter().chain(impostor.iter()).enumerate() {
            if !v.is_finite() {
                return Err(Error::NonFiniteScore { index: i, value: v });
            }
        }
        genuine.sort_by(f64::total_cmp);
        impostor.sort_by(f64::total_cmp);
        Ok(ScoreSet { genuine, impostor })
    }

    /// Genuine scores, ascending.
    pub fn genuine(&self) -> &[f64] {
        &self.genuine
    }

    /// Impostor scores, ascending.
    pub fn impostor(&self) -> &[f64] {
        &self.impostor
    }

    /// Share of impostor scores at or above `t` (falsely accepted).
    pub fn fmr(&self, t: f64) -> f64 {
        let below = self.impostor.partition_point(|&s| s < t);
        (self.impostor.len() - below) as f64 / self.impostor.len() as f64
    }

    /// Share of genuine scores below `t` (falsely rejected).
    pub fn fnmr(&self, t: f64) -> f64 {
        self.genuine.partition_point(|&s| s < t) as f64 / self.genuine.len() as f64
    }

    /// Every threshold where FMR or FNMR changes, ascending, plus one above all scores.
    fn candidate_thresholds(&self) -> Vec<f64> {
        let mut t: Vec<f64> = self.genuine.iter().chain(self.impostor.iter()).copied().collect();
        t.sort_by(f64::total_cmp);
        t.dedup();
        let top = t.last().copied().unwrap_or(0.0);
        t.push(top + 1e-9f64.max(top.abs() * 1e-12));
        t
    }

    /// The equal error rate: at the threshold where |FMR − FNMR| is smallest, their mean.
    pub fn eer(&self) -> Eer {
        let mut best = Eer {
            eer: 1.0,
            threshold: 0.0,
        };
        let mut best_gap = f64::INFINITY;
        for t in self.candidate_thresholds() {
            let (a, b) = (self.fmr(t), self.fnmr(t));
            let gap = (a - b).abs();
            if gap < best_gap || (gap == best_gap && (a + b) / 2.0 < best.eer) {
                best_gap = gap;
                best = Eer {
                    eer: (a + b) / 2.0,
                    threshold: t,
                };
            }
        }
        best
    }

    /// The lowest threshold whose FMR is at most `target` (the operating point for that FMR).
    pub fn threshold_at_fmr(&self, target: f64) -> f64 {
        // Accepting k impostors out of n gives FMR k/n; keep k <= floor(target * n).
        let n = self.impostor.len();
        let k = ((target * n as f64).floor() as usize).min(n);
        if k == 0 {
            let top = self.impostor[n - 1];
            return next_up(top);
        }
        // Accept exactly the top k impostors: threshold just above the (n-k-1)-th score, but
        // ties may force fewer.
        let idx = n - k;
        let t = self.impostor[idx];
        if self.fmr(t) <= target {
            t
        } else {
            next_up(t)
        }
    }

    /// FNMR at the operating point where FMR is at most `target`.
    pub fn fnmr_at_fmr(&self, target: f64) -> f64 {
        self.fnmr(self.threshold_at_fmr(target))
    }
}

fn next_up(x: f64) -> f64 {
    if x == 0.0 {
        f64::MIN_POSITIVE
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() + 1)
    } else {
        f64::from_bits(x.to_bits() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn separated_scores_have_zero_eer() {
        let s = ScoreSet::new(vec![0.9, 0.8, 0.95], vec![0.1, 0.2, 0.3]).unwrap();
        assert_eq!(s.eer().eer, 0.0);
        assert_eq!(s.fnmr_at_fmr(0.0), 0.0);
    }

    #[test]
    fn inverted_scores_have_full_eer() {
        let s = ScoreSet::new(vec![0.1, 0.2], vec![0.8, 0.9]).unwrap();
        assert!(s.eer().eer >= 0.99);
    }

    #[test]
    fn overlap_gives_known_eer() {
        // one of four genuine below one of four impostors
        let s = ScoreSet::new(vec![0.45, 0.7, 0.8, 0.9], vec![0.1, 0.2, 0.3, 0.5]).unwrap();
        assert!((s.eer().eer - 0.25).abs() < 1e-12);
    }

    #[test]
    fn empty_and_nan_are_rejected() {
        assert!(matches!(
            ScoreSet::new(vec![], vec![1.0]),
            Err(Error::NoScores { which: "genuine" })
        ));
        assert!(matches!(
            ScoreSet::new(vec![1.0], vec![]),
            Err(Error::NoScores { which: "impostor" })
        ));
        assert!(matches!(
            ScoreSet::new(vec![f64::NAN], vec![1.0]),
            Err(Error::NonFiniteScore { .. })
        ));
    }

    proptest! {
        #[test]
        fn threshold_at_fmr_respects_target(imp in proptest::collection::vec(-1.0f64..1.0, 1..200),
                                            gen in proptest::collection::vec(-1.0f64..1.0, 1..50),
                                            target in 0.0f64..0.5) {
            let s = ScoreSet::new(gen, imp).unwrap();
            let t = s.threshold_at_fmr(target);
            prop_assert!(s.fmr(t) <= target + 1e-12);
            let e = s.eer();
            prop_assert!((0.0..=1.0).contains(&e.eer));
        }
    }
}
