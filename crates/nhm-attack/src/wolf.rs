//! The wolf attack: one crafted hashmap sent to 1:N identification that matches as many enrolled
//! subjects as possible (a "master template"). Success is the share of enrolled subjects whose
//! template the wolf matches at the operating threshold.
//!
//! Three attackers: with neither key nor gallery, it can only take the majority bit of public
//! samples under a key it made up; with the application key, it protects the densest point of
//! the public embeddings (their mean, refined by mean shift); with a stolen gallery it takes the
//! majority bit of the stored templates, which the server peppers again on the way in when the
//! pepper is on.

use nhm_template::{BinaryHashmap, Protector};
use serde_json::json;

use crate::world::normalized;
use crate::{AttackResult, Defences, OperatingPoint, Result, Tally, World};

/// Mean-shift rounds refining the wolf's embedding.
const MEAN_SHIFT_ROUNDS: usize = 5;

/// The bitwise majority of `hashmaps` (ties to 1).
pub fn majority(hashmaps: &[BinaryHashmap]) -> Result<BinaryHashmap> {
    let dim = hashmaps.first().map_or(0, BinaryHashmap::dim);
    let mut votes = vec![0f32; dim];
    for h in hashmaps {
        for (i, v) in votes.iter_mut().enumerate() {
            *v += if h.bit(i) { 1.0 } else { -1.0 };
        }
    }
    votes
        .iter_mut()
        .for_each(|v| *v = if *v >= 0.0 { 1.0 } else { -1.0 });
    Ok(BinaryHashmap::try_from_signs(&votes)?)
}

/// The densest direction of `embeddings`: their mean, then the mean of the half nearest to it,
/// a few times.
fn densest(embeddings: &[Vec<f32>]) -> Vec<f32> {
    let dim = embeddings[0].len();
    let mean = |rows: &mut dyn Iterator<Item = &Vec<f32>>| {
        let mut m = vec![0f32; dim];
        for e in rows {
            m.iter_mut().zip(e).for_each(|(a, b)| *a += b);
        }
        normalized(m)
    };
    let mut c = mean(&mut embeddings.iter());
    for _ in 0..MEAN_SHIFT_ROUNDS {
        let mut scored: Vec<(f32, usize)> = embeddings
            .iter()
            .enumerate()
            .map(|(i, e)| (-e.iter().zip(&c).map(|(a, b)| a * b).sum::<f32>(), i))
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        let half = (scored.len() / 2).max(1);
        c = mean(&mut scored[..half].iter().map(|&(_, i)| &embeddings[i]));
    }
    c
}

/// The share of `gallery` templates `wolf` matches, judged as the server does: the probe is
/// peppered like the stored templates, so the comparison happens in the peppered space.
fn matched(
    world: &World,
    defences: &Defences,
    op: &OperatingPoint,
    stored: &[BinaryHashmap],
    wolf: &BinaryHashmap,
) -> Result<Tally> {
    let probe = world.at_rest(defences, std::slice::from_ref(wolf))?.remove(0);
    let mut t = Tally::default();
    for g in stored {
        t.record(op.accepts(&probe, g)?);
    }
    Ok(t)
}

/// Runs the three wolves against a gallery of every victim subject's first sample.
pub fn wolf(world: &World, defences: &Defences) -> Result<Vec<AttackResult>> {
    let key = world.victim_key(defences, "app-a");
    let p = world.protector(&key, defences)?;
    let op = world.operating_point(&p)?;
    let enrolled: Vec<Vec<f32>> = world
        .victims
        .first_of_each_subject()
        .into_iter()
        .map(|i| world.victims.embeddings[i].clone())
        .collect();
    let stored = world.at_rest(defences, &World::hashmaps(&p, &enrolled)?)?;
    let guess: Protector = world.protector(&world.attacker_key(0x3011), defences)?;
    let wolves = [
        (
            "no key, no gallery",
            majority(&World::hashmaps(&guess, &world.public.embeddings)?)?,
        ),
        ("application key", p.binary(&densest(&world.public.embeddings))?),
        ("stolen gallery", majority(&stored)?),
    ];
    let mut out = Vec::new();
    for (scenario, w) in wolves {
        let t = matched(world, defences, &op, &stored, &w)?;
        out.push(AttackResult {
            attack: "wolf".into(),
            scenario: scenario.into(),
            defences: defences.label(),
            success: t,
            type_i: None,
            threshold: op.threshold.score,
            details: json!({"success_is": "share of enrolled subjects the one wolf matches in 1:N"}),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_majority_takes_each_bit_from_the_most_votes() {
        let h = |s: &[f32]| BinaryHashmap::try_from_signs(s).unwrap();
        let m = majority(&[h(&[1., 1., -1.]), h(&[1., -1., -1.]), h(&[-1., -1., -1.])]).unwrap();
        assert_eq!(m, h(&[1., -1., -1.]));
    }

    #[test]
    fn mean_shift_finds_the_dense_cluster() {
        let mut rows = vec![vec![1.0, 0.0], vec![0.99, 0.14], vec![0.98, -0.2], vec![0.0, 1.0]];
        rows.iter_mut().for_each(|r| *r = normalized(r.clone()));
        let c = densest(&rows);
        assert!(c[0] > 0.95, "{c:?}");
    }
}
