//! The attacks on the running service, each against a fresh service (so one scenario's
//! lockouts do not decide the next one) configured from the defences and holding the victims.

use nhm_template::BinaryHashmap;
use serde_json::json;

use crate::hill_climb::{hill_climb, Climb, Feedback};
use crate::oracle::ServiceHarness;
use crate::replay::{replay, Replay};
use crate::{AttackResult, Defences, Error, OperatingPoint, Result, World};

/// Salt of the seeds of the hill-climbing runs.
const CLIMB_SALT: u64 = 0x000C_1178_B000;

/// The subject id a victim sample is enrolled under.
pub fn victim_id(sample: usize) -> String {
    format!("victim-{sample:05}")
}

/// The victims enrolled at one application: `(subject id, hashmap)` of each target's source
/// sample under `world.victim_key(defences, app)`, with that application's operating point.
pub fn enrolment(
    world: &World,
    defences: &Defences,
    targets: &[usize],
    app: &str,
) -> Result<(Vec<(String, BinaryHashmap)>, OperatingPoint)> {
    let p = world.protector(&world.victim_key(defences, app), defences)?;
    let op = world.operating_point(&p)?;
    let embeddings: Vec<Vec<f32>> = targets
        .iter()
        .map(|&i| world.victims.embeddings[i].clone())
        .collect();
    let hashmaps = World::hashmaps(&p, &embeddings)?;
    let enrolled = targets.iter().map(|&i| victim_id(i)).zip(hashmaps).collect();
    Ok((enrolled, op))
}

/// A fresh service under `defences` at `op`'s threshold with `enrolled` enrolled over HTTP.
fn harness(
    world: &World,
    defences: &Defences,
    op: &OperatingPoint,
    enrolled: &[(String, BinaryHashmap)],
    salt: u64,
) -> Result<ServiceHarness> {
    let mut h = ServiceHarness::start(defences, op.threshold, world.seed ^ salt)?;
    h.enrol(enrolled)?;
    Ok(h)
}

/// Runs the attacks on the running service against `victims` victims (seeded targets of
/// [`World::targets`], each enrolled with the hashmap of its source sample under
/// `world.victim_key(defences, "app-a")` at `defences.hashmap_bits`): hill-climbing with scores
/// and accept/reject only (at most `budget` verification queries per victim), replay of a
/// stored template, and replay at another application (`"app-b"`). Every service runs at the
/// operating point of its key (FMR 0.1%), so "accepted" means what it means in production.
pub fn service_attacks(
    world: &World,
    defences: &Defences,
    victims: usize,
    budget: usize,
) -> Result<Vec<AttackResult>> {
    if victims == 0 {
        return Err(Error::InvalidParameter {
            name: "victims",
            reason: "at least one victim is needed".into(),
        });
    }
    if budget == 0 {
        return Err(Error::InvalidParameter {
            name: "budget",
            reason: "at least one query per victim is needed".into(),
        });
    }
    let targets = world.targets(victims);
    if targets.len() < victims {
        return Err(Error::InvalidParameter {
            name: "victims",
            reason: format!(
                "{victims} requested, the world has {} victims with a second sample",
                targets.len()
            ),
        });
    }
    let (enrolled_a, op_a) = enrolment(world, defences, &targets, "app-a")?;
    let mut out = Vec::new();
    for (k, feedback) in [Feedback::Scores, Feedback::AcceptReject].into_iter().enumerate() {
        let h = harness(world, defences, &op_a, &enrolled_a, 0x11 + k as u64)?;
        let mut oracle = h.oracle();
        let mut climbs = Vec::with_capacity(enrolled_a.len());
        for (j, (id, _)) in enrolled_a.iter().enumerate() {
            let seed = world.seed ^ CLIMB_SALT ^ ((k as u64) << 32) ^ j as u64;
            climbs.push(hill_climb(
                &mut oracle,
                id,
                defences.hashmap_bits,
                feedback,
                budget,
                seed,
            )?);
        }
        h.shutdown();
        out.push(climb_result(defences, &op_a, feedback, budget, &climbs));
    }

    let h = harness(world, defences, &op_a, &enrolled_a, 0x21)?;
    let stolen = h.store_templates()?;
    let r = replay(&mut h.oracle(), &stolen)?;
    h.shutdown();
    out.push(replay_result(defences, &op_a, "stored template", &r));

    // The victims enrol at application B too; what their clients sent to A is replayed at B.
    let (enrolled_b, op_b) = enrolment(world, defences, &targets, "app-b")?;
    let h = harness(world, defences, &op_b, &enrolled_b, 0x22)?;
    let r = replay(&mut h.oracle(), &enrolled_a)?;
    h.shutdown();
    out.push(replay_result(defences, &op_b, "another application", &r));
    Ok(out)
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, s) = xs.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| s / n as f64)
}

fn climb_result(
    defences: &Defences,
    op: &OperatingPoint,
    feedback: Feedback,
    budget: usize,
    climbs: &[Climb],
) -> AttackResult {
    let mut success = crate::Tally::default();
    for c in climbs {
        success.record(c.accepted);
    }
    let queries = |only_accepted: bool| {
        mean(
            climbs
                .iter()
                .filter(|c| !only_accepted || c.accepted)
                .map(|c| c.queries as f64),
        )
    };
    AttackResult {
        attack: "hill-climbing".into(),
        scenario: feedback.scenario().into(),
        defences: defences.label(),
        success,
        type_i: None,
        threshold: op.threshold.score,
        details: json!({
            "budget": budget,
            "bits": op.bits,
            "mean_queries": queries(false),
            "mean_queries_to_accept": queries(true),
            "refusals": climbs.iter().filter(|c| c.refused).count(),
            "scores_seen": climbs.iter().filter(|c| c.scores_seen).count(),
            "mean_best_score": mean(climbs.iter().filter_map(|c| c.best_score)),
        }),
    }
}

fn replay_result(defences: &Defences, op: &OperatingPoint, scenario: &str, r: &Replay) -> AttackResult {
    AttackResult {
        attack: "replay".into(),
        scenario: scenario.into(),
        defences: defences.label(),
        success: r.success,
        type_i: None,
        threshold: op.threshold.score,
        details: json!({
            "refusals": r.refusals,
            "mean_score": r.mean_score(),
        }),
    }
}
