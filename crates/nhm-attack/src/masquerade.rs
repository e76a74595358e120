//! Masquerade: gradient ascent on an input image through the white-box encoder until its
//! embedding points where a stolen template says the victim's does (ISO/IEC 30136 presentation
//! of a synthesised sample).
//!
//! The target direction is `t = normalize(R_kᵀ b*)` for the stolen bits `b*` (the store's, so
//! peppered when the pepper is on): with the victims' key ("with the key") or with a key the
//! attacker made up ([`World::attacker_key`], "without the key"). Each attack starts from a
//! public image (a seeded choice), takes `steps` Adam steps on its pixels (kept in [0, 1]) to
//! maximise `cos(encoder(x), t)`, and presents the final 8-bit image to the real pipeline
//! (encoder, then the victims' protector), judged with [`World::judge`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::stolen::{estimate, from_unit, genuine_baseline, mean, to_unit, Store, VICTIM_APP};
use crate::{cosine, AttackResult, Defences, Error, Result, Tally, World};

/// Settings of [`masquerade`].
#[derive(Debug, Clone, PartialEq)]
pub struct MasqueradeConfig {
    /// Gradient steps per attacked template.
    pub steps: usize,
    /// Adam step size, in intensity units (pixels are in [0, 1]).
    pub learning_rate: f32,
    /// Stolen templates attacked ([`World::targets`]).
    pub targets: usize,
    /// Seed of the starting images.
    pub seed: u64,
}

impl Default for MasqueradeConfig {
    fn default() -> Self {
        MasqueradeConfig {
            steps: 200,
            learning_rate: 0.01,
            targets: 50,
            seed: 0,
        }
    }
}

impl MasqueradeConfig {
    /// A small run for tests: 10 targets, 60 steps.
    pub fn quick() -> Self {
        MasqueradeConfig {
            steps: 60,
            learning_rate: 0.02,
            targets: 10,
            seed: 0,
        }
    }

    /// Errors with [`Error::InvalidParameter`] for zero steps or targets or a step size that is
    /// not a positive number.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(invalid("steps", "must be at least 1"));
        }
        if self.targets == 0 {
            return Err(invalid("targets", "must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(invalid("learning_rate", "must be a positive number"));
        }
        Ok(())
    }
}

fn invalid(name: &'static str, reason: &str) -> Error {
    Error::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

/// Runs the masquerade attack in both scenarios ("with the key", "without the key") under
/// `defences`; each result's success is type II (other samples of the victim accepted), with
/// type I (the stolen sample's own template) beside it. Details: the mean cosine the final
/// images reach with the target direction and with the victim's true embedding, and
/// `genuine_type_ii`, what the victims' own templates achieve as probes (the ceiling).
pub fn masquerade(world: &World, defences: &Defences, cfg: &MasqueradeConfig) -> Result<Vec<AttackResult>> {
    cfg.validate()?;
    let store = Store::new(world, defences, VICTIM_APP)?;
    let targets = world.targets(cfg.targets);
    let stolen = targets
        .iter()
        .map(|&i| store.as_stored(&store.templates[i]))
        .collect::<Result<Vec<_>>>()?;
    let genuine = genuine_baseline(world, &store, &targets)?;
    let guess = world.protector(&world.attacker_key(cfg.seed ^ 0x3A5C), defences)?;
    let mut out = Vec::new();
    for (scenario, protector) in [("with the key", &store.protector), ("without the key", &guess)] {
        let directions = stolen
            .iter()
            .map(|b| estimate(&[protector], std::slice::from_ref(b)))
            .collect::<Result<Vec<_>>>()?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x4A5C_0EAD);
        let starts: Vec<usize> = targets
            .iter()
            .map(|_| rng.gen_range(0..world.public.len()))
            .collect();
        let start_pixels: Vec<f32> = starts
            .iter()
            .flat_map(|&j| to_unit(&world.public.images[j]))
            .collect();
        let (pixels, start_cos) = ascend(world, start_pixels, &directions, cfg)?;
        let s = world.encoder.config().input_size as u32;
        let images: Vec<_> = pixels.chunks((s * s) as usize).map(|c| from_unit(c, s)).collect();
        let embeddings = world.encoder.embed(&images)?;
        let (mut type_i, mut type_ii) = (Tally::default(), Tally::default());
        let (mut to_target, mut to_victim) = (Vec::new(), Vec::new());
        for (k, &src) in targets.iter().enumerate() {
            let candidate = store.protector.binary(&embeddings[k])?;
            let (hit, mates) = world.judge(&store.op, &store.templates, src, &candidate)?;
            type_i.record(hit);
            type_ii = type_ii.merged(mates);
            to_target.push(cosine(&embeddings[k], &directions[k]));
            to_victim.push(cosine(&embeddings[k], &world.victims.embeddings[src]));
        }
        let direction_cos: Vec<f64> = targets
            .iter()
            .zip(&directions)
            .map(|(&src, t)| cosine(t, &world.victims.embeddings[src]))
            .collect();
        out.push(AttackResult {
            attack: "masquerade".into(),
            scenario: scenario.into(),
            defences: defences.label(),
            success: type_ii,
            type_i: Some(type_i),
            threshold: store.op.threshold.score,
            details: json!({
                "steps": cfg.steps,
                "genuine_type_ii": genuine,
                "learning_rate": cfg.learning_rate,
                "seed": cfg.seed,
                "mean_start_cosine_to_target": mean(&start_cos),
                "mean_cosine_to_target": mean(&to_target),
                "mean_cosine_to_victim": mean(&to_victim),
                "mean_target_cosine_to_victim": mean(&direction_cos),
            }),
        });
    }
    Ok(out)
}

/// Adam ascent of `cos(encoder(x), t)` on every image of `pixels` at once (one target each),
/// pixels clamped to [0, 1] after each step; returns the final pixels and the starting cosines.
fn ascend(
    world: &World,
    mut pixels: Vec<f32>,
    directions: &[Vec<f32>],
    cfg: &MasqueradeConfig,
) -> Result<(Vec<f32>, Vec<f64>)> {
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut m = vec![0f32; pixels.len()];
    let mut v = vec![0f32; pixels.len()];
    let mut start = Vec::new();
    for step in 1..=cfg.steps {
        let (cos, grad) = world.encoder.cosine_gradient(&pixels, directions)?;
        if step == 1 {
            start = cos.iter().map(|&c| f64::from(c)).collect();
        }
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for (((x, g), m), v) in pixels.iter_mut().zip(&grad).zip(&mut m).zip(&mut v) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let update = cfg.learning_rate * (*m / c1) / ((*v / c2).sqrt() + eps);
            *x = (*x + update).clamp(0.0, 1.0);
        }
    }
    Ok((pixels, start))
}
