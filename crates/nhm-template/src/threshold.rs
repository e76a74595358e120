//! Decision thresholds chosen from a target false-match rate measured on impostor scores,
//! never guessed (DESIGN.md §1).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A decision threshold: accept iff `score >= self.score`, documented by the FMR it gave on
/// the impostor comparisons it was chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Accept a comparison iff its score is at least this.
    pub score: f64,
    /// The false-match rate asked for.
    pub target_fmr: f64,
    /// The false-match rate on the impostor scores it was chosen from (≤ `target_fmr`).
    pub measured_fmr: f64,
    /// How many impostor comparisons it was chosen from.
    pub impostor_comparisons: usize,
}

impl Threshold {
    /// The lowest threshold whose false-match rate on `impostor_scores` is at most
    /// `target_fmr` (in [0, 1]). With `n` scores, rates below `1/n` cannot be told apart
    /// from 0: the threshold then rejects every impostor score seen.
    pub fn for_target_fmr(impostor_scores: &[f64], target_fmr: f64) -> Result<Threshold> {
        if !(0.0..=1.0).contains(&target_fmr) {
            return Err(Error::InvalidFmr { target: target_fmr });
        }
        if impostor_scores.is_empty() {
            return Err(Error::NoScores);
        }
        if let Some(index) = impostor_scores.iter().position(|s| !s.is_finite()) {
            return Err(Error::NonFiniteScore { index });
        }
        let n = impostor_scores.len();
        let mut sorted = impostor_scores.to_vec();
        sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        // At most `allowed` impostors may be accepted.
        let allowed = ((target_fmr * n as f64).floor() as usize).min(n);
        let score = if allowed == n {
            sorted[n - 1]
        } else {
            // Accept only scores strictly above the (allowed+1)-th highest.
            sorted[allowed].next_up()
        };
        let accepted = sorted.iter().take_while(|&&s| s >= score).count();
        Ok(Threshold {
            score,
            target_fmr,
            measured_fmr: accepted as f64 / n as f64,
            impostor_comparisons: n,
        })
    }

    /// Whether a comparison with this score is accepted as a match.
    pub fn accepts(&self, score: f64) -> bool {
        score >= self.score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_lowest_threshold_within_target() {
        let scores: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let t = Threshold::for_target_fmr(&scores, 0.05).unwrap();
        assert_eq!(t.measured_fmr, 0.05);
        assert!(t.accepts(0.95) && t.accepts(0.9401) && !t.accepts(0.94));
        assert_eq!(t.impostor_comparisons, 100);
        let all = Threshold::for_target_fmr(&scores, 1.0).unwrap();
        assert_eq!((all.score, all.measured_fmr), (0.0, 1.0));
        let none = Threshold::for_target_fmr(&scores, 0.0).unwrap();
        assert_eq!(none.measured_fmr, 0.0);
        assert!(!none.accepts(0.99));
    }

    #[test]
    fn ties_are_not_split() {
        // Five equal top scores cannot be partly accepted: FMR 2% forces rejecting all five.
        let mut scores = vec![0.9; 5];
        scores.extend((0..95).map(|i| i as f64 / 200.0));
        let t = Threshold::for_target_fmr(&scores, 0.02).unwrap();
        assert!(t.measured_fmr <= 0.02);
        assert!(!t.accepts(0.9));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            Threshold::for_target_fmr(&[], 0.1),
            Err(Error::NoScores)
        ));
        assert!(matches!(
            Threshold::for_target_fmr(&[0.1], 1.5),
            Err(Error::InvalidFmr { .. })
        ));
        assert!(matches!(
            Threshold::for_target_fmr(&[0.1], f64::NAN),
            Err(Error::InvalidFmr { .. })
        ));
        assert!(matches!(
            Threshold::for_target_fmr(&[0.1, f64::NAN], 0.1),
            Err(Error::NonFiniteScore { index: 1 })
        ));
    }
}
