//! Linkage of one person across two services (ISO/IEC 30136; Gomez-Barrero et al., IEEE TIFS
//! 2018): an attacker holding both services' templates tries to tell which belong to the same
//! person. Measured two ways: the global linkability D↔sys of mated against non-mated
//! cross-service scores, with the floor the estimator reaches on two samples of one and the same
//! distribution of the same sizes (what D↔sys reads for fully unlinkable templates with this many
//! pairs); and an active attacker that links each service-A template to its most similar
//! service-B template (rank-1 linkage, against the 1/N of guessing).

use nhm_eval::unlinkability::unlinkability;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::{AttackResult, Defences, Result, Tally, World};

/// Histogram bins of the D↔sys estimate (the value the evaluation reports use).
pub const DSYS_BINS: usize = 50;
/// Most non-mated pairs sampled.
const MAX_NON_MATED: usize = 200_000;

/// Runs the linkage measurement between application A and application B.
pub fn linkage(world: &World, defences: &Defences) -> Result<AttackResult> {
    let pa = world.protector(&world.victim_key(defences, "app-a"), defences)?;
    let pb = world.protector(&world.victim_key(defences, "app-b"), defences)?;
    let a = world.at_rest(defences, &World::hashmaps(&pa, &world.victims.embeddings)?)?;
    let b = World::hashmaps(&pb, &world.victims.embeddings)?;
    // Service B has its own pepper secret.
    let b = if defences.pepper {
        let pepper = world.server_pepper_of("app-b", pb.output_dim());
        b.iter()
            .map(|h| pepper.apply(h))
            .collect::<nhm_template::Result<Vec<_>>>()?
    } else {
        b
    };
    let s = &world.victims.subjects;
    let n = a.len();
    let mut mated = Vec::new();
    for (i, ai) in a.iter().enumerate() {
        for j in world.victims.mates(i) {
            mated.push(ai.similarity(&b[j])?);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(world.seed ^ 0x11A4);
    let mut non_mated = Vec::with_capacity(MAX_NON_MATED);
    let total_non_mated = n * n - n - mated.len();
    if total_non_mated <= MAX_NON_MATED {
        for i in 0..n {
            for j in 0..n {
                if s[i] != s[j] {
                    non_mated.push(a[i].similarity(&b[j])?);
                }
            }
        }
    } else {
        while non_mated.len() < MAX_NON_MATED {
            let (i, j) = (rng.gen_range(0..n), rng.gen_range(0..n));
            if s[i] != s[j] {
                non_mated.push(a[i].similarity(&b[j])?);
            }
        }
    }
    let u = unlinkability(&mated, &non_mated, DSYS_BINS)?;
    // The estimator's floor: split the non-mated scores into two disjoint random parts of the
    // sizes compared above and measure D↔sys between them.
    let floor = {
        let mut pool = non_mated.clone();
        pool.shuffle(&mut rng);
        let m = mated.len().min(pool.len() / 2);
        unlinkability(&pool[..m], &pool[m..], DSYS_BINS)?.d_sys
    };
    // Rank-1 linkage: each A template against the first B template of every subject.
    let firsts = world.victims.first_of_each_subject();
    let mut linked = Tally::default();
    for i in 0..n {
        let mut best = (f64::NEG_INFINITY, 0usize);
        for &j in &firsts {
            if j == i {
                continue; // the same capture at both services is not the attacker's case
            }
            let v = a[i].similarity(&b[j])?;
            if v > best.0 {
                best = (v, j);
            }
        }
        linked.record(s[best.1] == s[i]);
    }
    let chance = 1.0 / firsts.len() as f64;
    Ok(AttackResult {
        attack: "linkage".into(),
        scenario: "two services, templates of both".into(),
        defences: defences.label(),
        success: linked,
        type_i: None,
        threshold: f64::NAN,
        details: json!({
            "success_is": "rank-1 linkage: an A template's most similar B template is the same person",
            "chance": chance,
            "d_sys": u.d_sys,
            "d_sys_floor_of_the_estimator": floor,
            "d_sys_bins": DSYS_BINS,
            "mated_pairs": mated.len(),
            "non_mated_pairs": non_mated.len(),
        }),
    })
}
