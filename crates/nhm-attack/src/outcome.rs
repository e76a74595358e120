//! What an attack reports: successes over attempts, with the operating point they were judged at.

use serde::{Deserialize, Serialize};

/// Successes out of attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Attempts (stolen templates attacked, comparisons made, subjects targeted, ...).
    pub attempts: usize,
    /// Attempts that succeeded (accepted at the operating threshold).
    pub successes: usize,
}

impl Tally {
    /// Counts one attempt.
    pub fn record(&mut self, success: bool) {
        self.attempts += 1;
        self.successes += usize::from(success);
    }

    /// The success rate (0 when nothing was attempted).
    pub fn rate(&self) -> f64 {
        if self.attempts == 0 {
            0.0
        } else {
            self.successes as f64 / self.attempts as f64
        }
    }

    /// The two tallies together.
    pub fn merged(self, o: Tally) -> Tally {
        Tally {
            attempts: self.attempts + o.attempts,
            successes: self.successes + o.successes,
        }
    }
}

/// One attack, in one scenario, under one set of defences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackResult {
    /// The attack (`inversion`, `known-sample`, `masquerade`, `hill-climbing`, `wolf`, `replay`,
    /// `linkage`).
    pub attack: String,
    /// The scenario within it (`template stolen`, `template and key stolen`, ...).
    pub scenario: String,
    /// The defences in force ([`crate::Defences::label`]).
    pub defences: String,
    /// The headline success: what the attack's target in the issue is measured on (type II for
    /// inversion, share of subjects matched for wolf, ...).
    pub success: Tally,
    /// Type I success (against the very sample the stolen template came from), where it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_i: Option<Tally>,
    /// The similarity threshold success was judged at.
    pub threshold: f64,
    /// Further measured figures of the attack (queries spent, mean similarity reached, ...).
    #[serde(default)]
    pub details: serde_json::Value,
}

impl AttackResult {
    /// The headline success rate.
    pub fn rate(&self) -> f64 {
        self.success.rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_and_rates() {
        let mut t = Tally::default();
        assert_eq!(t.rate(), 0.0);
        t.record(true);
        t.record(false);
        t.record(false);
        t.record(true);
        assert_eq!((t.attempts, t.successes), (4, 2));
        assert_eq!(t.rate(), 0.5);
        let m = t.merged(Tally {
            attempts: 6,
            successes: 0,
        });
        assert_eq!((m.attempts, m.successes), (10, 2));
    }
}
