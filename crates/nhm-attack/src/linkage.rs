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

/// Pairs of services the linkage is measured across: D↔sys of one pair depends on that pair's
/// keys (the cross-service transform `R_Aᵀ·R_B`), so one pair alone says little about the
/// scheme; the report gives the mean, the worst pair and each pair.
pub const LINKAGE_SERVICE_PAIRS: usize = 8;

/// Runs the linkage measurement between the services of [`LINKAGE_SERVICE_PAIRS`] pairs (the
/// first is application A and application B of the other attacks).
pub fn linkage(world: &World, defences: &Defences) -> Result<AttackResult> {
    let mut d_sys = Vec::new();
    let mut floors = Vec::new();
    let mut linked = Tally::default();
    let (mut mated_pairs, mut non_mated_pairs) = (0, 0);
    let mut chance = 0.0;
    for pair in 0..LINKAGE_SERVICE_PAIRS {
        let (app_a, app_b) = if pair == 0 {
            ("app-a".to_string(), "app-b".to_string())
        } else {
            (format!("app-a-{pair}"), format!("app-b-{pair}"))
        };
        let one = linkage_between(world, defences, &app_a, &app_b, pair as u64)?;
        d_sys.push(one.d_sys);
        floors.push(one.floor);
        linked.successes += one.linked.successes;
        linked.attempts += one.linked.attempts;
        mated_pairs = one.mated;
        non_mated_pairs = one.non_mated;
        chance = one.chance;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let worst = d_sys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ok(AttackResult {
        attack: "linkage".into(),
        scenario: "two services, templates of both".into(),
        defences: defences.label(),
        success: linked,
        type_i: None,
        threshold: f64::NAN,
        details: json!({
            "success_is": "rank-1 linkage: an A template's most similar B template is the same person (over every pair of services)",
            "chance": chance,
            "d_sys": mean(&d_sys),
            "d_sys_worst_pair": worst,
            "d_sys_per_pair": d_sys,
            "d_sys_floor_of_the_estimator": mean(&floors),
            "d_sys_bins": DSYS_BINS,
            "service_pairs": LINKAGE_SERVICE_PAIRS,
            "mated_pairs": mated_pairs,
            "non_mated_pairs": non_mated_pairs,
        }),
    })
}

/// The linkage between one pair of services.
struct PairLinkage {
    d_sys: f64,
    floor: f64,
    linked: Tally,
    chance: f64,
    mated: usize,
    non_mated: usize,
}

/// D↔sys, its floor and rank-1 linkage between the services `app_a` (templates as its store
/// holds them) and `app_b` (as its store holds them, under its own pepper).
fn linkage_between(
    world: &World,
    defences: &Defences,
    app_a: &str,
    app_b: &str,
    salt: u64,
) -> Result<PairLinkage> {
    let pa = world.protector(&world.victim_key(defences, app_a), defences)?;
    let pb = world.protector(&world.victim_key(defences, app_b), defences)?;
    let at_rest = |p: &nhm_template::Protector, app: &str| -> Result<Vec<_>> {
        let h = World::hashmaps(p, &world.victims.embeddings)?;
        if !defences.pepper {
            return Ok(h);
        }
        // Each service has its own pepper secret.
        let pepper = world.server_pepper_of(app, p.output_dim());
        Ok(h.iter()
            .map(|h| pepper.apply(h))
            .collect::<nhm_template::Result<Vec<_>>>()?)
    };
    let (a, b) = (at_rest(&pa, app_a)?, at_rest(&pb, app_b)?);
    let s = &world.victims.subjects;
    let n = a.len();
    let mut mated = Vec::new();
    for (i, ai) in a.iter().enumerate() {
        for j in world.victims.mates(i) {
            mated.push(ai.similarity(&b[j])?);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(world.seed ^ 0x11A4 ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
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
    Ok(PairLinkage {
        d_sys: u.d_sys,
        floor,
        linked,
        chance: 1.0 / firsts.len() as f64,
        mated: mated.len(),
        non_mated: non_mated.len(),
    })
}
