//! Hill-climbing against a running service: the attacker holds a client's credentials and
//! queries verification for a victim until a probe is accepted, the query budget is spent or the
//! service stops answering.
//!
//! - **scores returned**: from a random hashmap, flip bits one coordinate at a time (a seeded
//!   order, cycled), keeping each flip that raised the returned similarity. Every flip moves
//!   the Hamming distance by one, so one pass of `bits` queries reaches the victim's template
//!   exactly: the attack needs at most `bits + 1` queries. When the service hides scores
//!   ([`Answer::score`] is `None`), it degrades to the blind search below.
//! - **accept/reject only**: no gradient: fresh random hashmaps until one is accepted, each
//!   accepted with about the false-match rate of a random impostor.

use nhm_template::BinaryHashmap;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::oracle::{flipped, random_hashmap, Answer, Oracle};
use crate::{Error, Result};

/// What the attacker reads from the answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// Climb on the returned similarity (blind search when the service returns none).
    Scores,
    /// Use only accept/reject.
    AcceptReject,
}

impl Feedback {
    /// The scenario name in an [`crate::AttackResult`].
    pub fn scenario(self) -> &'static str {
        match self {
            Feedback::Scores => "scores returned",
            Feedback::AcceptReject => "accept/reject only",
        }
    }
}

/// One hill-climbing run against one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Climb {
    /// A probe was accepted.
    pub accepted: bool,
    /// Queries spent (the refused one included).
    pub queries: usize,
    /// The service refused to answer (locked) before a probe was accepted.
    pub refused: bool,
    /// The service returned scores.
    pub scores_seen: bool,
    /// The best similarity the service returned (when it returned any).
    pub best_score: Option<f64>,
}

/// Attacks `subject` through `oracle` with at most `budget` queries of `bits`-bit probes
/// (seeded by `seed`).
pub fn hill_climb(
    oracle: &mut dyn Oracle,
    subject: &str,
    bits: usize,
    feedback: Feedback,
    budget: usize,
    seed: u64,
) -> Result<Climb> {
    if budget == 0 {
        return Err(Error::InvalidParameter {
            name: "budget",
            reason: "at least one query is needed".into(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut climb = Climb {
        accepted: false,
        queries: 0,
        refused: false,
        scores_seen: false,
        best_score: None,
    };
    // Sends one probe and records its answer.
    let mut ask = |climb: &mut Climb, probe: &BinaryHashmap| -> Result<Answer> {
        climb.queries += 1;
        let a = oracle.verify(subject, probe)?;
        climb.accepted |= a.accepted;
        climb.refused |= a.refused;
        Ok(a)
    };
    let done = |c: &Climb| c.accepted || c.refused || c.queries >= budget;

    let mut current = random_hashmap(bits, &mut rng)?;
    let first = ask(&mut climb, &current)?;
    let mut best = match (feedback, first.score) {
        (Feedback::Scores, Some(s)) => Some(s),
        _ => None,
    };
    if best.is_some() {
        climb.scores_seen = true;
        climb.best_score = best;
        let mut order: Vec<usize> = (0..bits).collect();
        'passes: while !done(&climb) {
            order.shuffle(&mut rng);
            for &i in &order {
                if done(&climb) {
                    break 'passes;
                }
                let candidate = flipped(&current, i)?;
                let a = ask(&mut climb, &candidate)?;
                match a.score {
                    Some(s) if best.is_none_or(|b| s > b) => {
                        current = candidate;
                        best = Some(s);
                        climb.best_score = best;
                    }
                    Some(_) => {}
                    // The service stopped returning scores: climb no further.
                    None => break 'passes,
                }
            }
        }
    }
    // Blind search: fresh random probes.
    while !done(&climb) {
        let candidate = random_hashmap(bits, &mut rng)?;
        ask(&mut climb, &candidate)?;
    }
    Ok(climb)
}
