//! Replay: a hashmap the attacker obtained is sent back as the probe of its subject.
//!
//! - **stored template**: a template read from the store (a stolen disk or backup, an admin
//!   export) replayed to the same service. Without a pepper it is the subject's template itself
//!   and is accepted; with one, the store holds `pepper(t)` and the service peppers the probe
//!   again, so the replay is compared as `pepper(pepper(t))` with `pepper(t)` and rejected.
//! - **another application**: a hashmap a client sent to application A (captured in transit
//!   or from A's logs) replayed at application B. With one key for every application both
//!   services hold the same hashmap and B accepts; with a key per application B's template is
//!   made under an independent transform and the replay is an impostor.

use nhm_template::BinaryHashmap;

use crate::oracle::Oracle;
use crate::{Result, Tally};

/// The outcome of replaying a set of hashmaps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    /// Replays accepted out of replays sent.
    pub success: Tally,
    /// Replays the service refused (locked subject).
    pub refusals: usize,
    /// The similarities returned (when the service returns scores).
    pub scores: Vec<f64>,
}

impl Replay {
    /// The mean returned similarity, if any was returned.
    pub fn mean_score(&self) -> Option<f64> {
        (!self.scores.is_empty()).then(|| self.scores.iter().sum::<f64>() / self.scores.len() as f64)
    }
}

/// Sends each `(subject, hashmap)` once as a verification probe for that subject.
pub fn replay(oracle: &mut dyn Oracle, probes: &[(String, BinaryHashmap)]) -> Result<Replay> {
    let mut out = Replay::default();
    for (subject, h) in probes {
        let a = oracle.verify(subject, h)?;
        out.success.record(a.accepted);
        out.refusals += usize::from(a.refused);
        out.scores.extend(a.score);
    }
    Ok(out)
}
