//! Inversion: an attacker who stole templates decodes them into images that the service accepts
//! (ISO/IEC 30136 irreversibility; NbNet-style reconstruction).
//!
//! The attacker trains a decoder ([`nhm_model::Decoder`]) on its public data only: input an
//! embedding, target the image it came from, loss the pixel error plus an identity loss (the
//! reconstruction re-encoded by the frozen white-box encoder should point where the embedding
//! does). The decoder is fed, for each public image, its true embedding and the estimates a
//! thief will have at attack time: `normalize(R_kᵀ sign(R_k e))` under each of
//! [`KEY_POOL`] keys the attacker makes up, and the sum of three of them (the renewed-keys
//! estimate); one is drawn per step. The identity loss aims at the true embedding.
//!
//! Each stolen victim template ([`World::targets`]) is turned into an estimate `e_hat`, decoded,
//! and the image is presented to the real pipeline (the encoder, then the victims' protector)
//! and judged with [`World::judge`]. Scenarios:
//! - "template stolen": the bits as stored (peppered when the pepper is on), no key: the
//!   attacker estimates with a key of its own ([`World::attacker_key`]);
//! - "template and key stolen": `e_hat = normalize(R_kᵀ b)` with the victims' key — on the
//!   stored bits, so with the pepper on the estimate is noise (the thief lacks the pepper);
//! - "renewed templates and keys stolen": [`RENEWALS`] templates of the same sample made under
//!   renewed keys (each derived from the victims' key, so they differ under either key policy),
//!   with their keys: `e_hat = normalize(Σ R_iᵀ b_i)`.

use image::GrayImage;
use nhm_model::{Decoder, DecoderConfig, DecoderSample, DecoderTrainConfig};
use nhm_template::Protector;
use serde_json::json;

use crate::stolen::{estimate, genuine_baseline, mean, Store, VICTIM_APP};
use crate::{cosine, AttackResult, Defences, Error, Result, Tally, World};

/// Keys the attacker makes up to simulate stolen-template estimates of its training data.
pub const KEY_POOL: usize = 6;
/// Renewed templates (and keys) of one sample the third scenario steals.
pub const RENEWALS: usize = 3;
/// The scenarios, in the order [`inversion`] reports them.
pub const INVERSION_SCENARIOS: [&str; 3] = [
    "template stolen",
    "template and key stolen",
    "renewed templates and keys stolen",
];

/// Settings of the inversion attack.
#[derive(Debug, Clone, PartialEq)]
pub struct InversionConfig {
    /// Decoder training epochs over the public data.
    pub epochs: usize,
    /// Decoder training batch size.
    pub batch_size: usize,
    /// Decoder learning rate (Adam).
    pub learning_rate: f64,
    /// Weight of the identity loss beside the pixel loss.
    pub identity_weight: f32,
    /// Stolen templates attacked ([`World::targets`]).
    pub targets: usize,
    /// Seed of the decoder's weights and training order, and of the attacker's keys.
    pub seed: u64,
}

impl Default for InversionConfig {
    /// Sized for about 1000 public images on 2 CPU cores: an epoch there took 18 s (12 epochs
    /// 216 s), so 9 epochs train in under 3 minutes. The identity loss weighs heavily (2): the
    /// reconstructions are accepted far more often than they look like prints (the pixel loss
    /// alone gives ridge-like images the encoder does not recognise).
    fn default() -> Self {
        InversionConfig {
            epochs: 9,
            batch_size: 32,
            learning_rate: 2e-3,
            identity_weight: 2.0,
            targets: 50,
            seed: 0,
        }
    }
}

impl InversionConfig {
    /// A small run for tests: 3 epochs, 10 targets.
    pub fn quick() -> Self {
        InversionConfig {
            epochs: 4,
            targets: 10,
            ..InversionConfig::default()
        }
    }

    /// Errors with [`Error::InvalidParameter`] for zero epochs, batch or targets, a learning
    /// rate that is not a positive number, or a negative identity weight.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, reason: &str| {
            Err(Error::InvalidParameter {
                name,
                reason: reason.into(),
            })
        };
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if self.targets == 0 {
            return bad("targets", "must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "must be a positive number");
        }
        if !(self.identity_weight.is_finite() && self.identity_weight >= 0.0) {
            return bad("identity_weight", "must be a non-negative number");
        }
        Ok(())
    }

    fn train(&self) -> DecoderTrainConfig {
        DecoderTrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            identity_weight: self.identity_weight,
            seed: self.seed,
        }
    }
}

/// Trains the attacker's decoder on the public population (see the module docs for its inputs),
/// with hashmaps of the defences' length. `on_epoch(epoch, mean loss)` reports progress.
pub fn train_decoder(
    world: &World,
    defences: &Defences,
    cfg: &InversionConfig,
    on_epoch: &mut dyn FnMut(usize, f32),
) -> Result<Decoder> {
    cfg.validate()?;
    let pool = (0..KEY_POOL)
        .map(|i| world.protector(&world.attacker_key(cfg.seed ^ (0x1DEC_0000 + i as u64)), defences))
        .collect::<Result<Vec<Protector>>>()?;
    let samples = world
        .public
        .images
        .iter()
        .zip(&world.public.embeddings)
        .map(|(image, e)| {
            let mut inputs = vec![e.clone()];
            let mut backs = Vec::with_capacity(KEY_POOL);
            for p in &pool {
                let b = p.binary(e)?;
                let back = estimate(&[p], std::slice::from_ref(&b))?;
                inputs.push(back.clone());
                backs.push(back);
            }
            for three in backs.chunks_exact(RENEWALS) {
                let mut sum = vec![0f32; e.len()];
                for v in three {
                    sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
                }
                inputs.push(crate::normalized(sum));
            }
            Ok(DecoderSample {
                image: image.clone(),
                embedding: e.clone(),
                inputs,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let layout = DecoderConfig::for_encoder(&world.encoder);
    Ok(Decoder::train(
        &world.encoder,
        &samples,
        &layout,
        &cfg.train(),
        on_epoch,
    )?)
}

/// One scenario's estimates and reconstructions of the targets.
struct Scenario {
    estimates: Vec<Vec<f32>>,
    images: Vec<GrayImage>,
}

/// The estimates and decoded images of every scenario, for `targets`.
fn reconstruct(
    world: &World,
    defences: &Defences,
    cfg: &InversionConfig,
    decoder: &Decoder,
    store: &Store,
    targets: &[usize],
) -> Result<Vec<Scenario>> {
    let guess = world.protector(&world.attacker_key(cfg.seed ^ 0x57A1), defences)?;
    let base = world.victim_key(defences, VICTIM_APP);
    let renewed = (0..RENEWALS)
        .map(|i| world.protector(&base.for_application(&format!("renewal-{i}")), defences))
        .collect::<Result<Vec<Protector>>>()?;
    let renewed_refs: Vec<&Protector> = renewed.iter().collect();
    let mut estimates = vec![Vec::new(), Vec::new(), Vec::new()];
    for &src in targets {
        let stolen = store.as_stored(&store.templates[src])?;
        estimates[0].push(estimate(&[&guess], std::slice::from_ref(&stolen))?);
        estimates[1].push(estimate(&[&store.protector], std::slice::from_ref(&stolen))?);
        let e = &world.victims.embeddings[src];
        let bits = renewed
            .iter()
            .map(|p| store.as_stored(&p.binary(e)?))
            .collect::<Result<Vec<_>>>()?;
        estimates[2].push(estimate(&renewed_refs, &bits)?);
    }
    estimates
        .into_iter()
        .map(|estimates| {
            let images = decoder.decode(&estimates)?;
            Ok(Scenario { estimates, images })
        })
        .collect()
}

/// Trains the decoder ([`train_decoder`]) and runs [`inversion_with`].
pub fn inversion(world: &World, defences: &Defences, cfg: &InversionConfig) -> Result<Vec<AttackResult>> {
    let decoder = train_decoder(world, defences, cfg, &mut |_, _| {})?;
    inversion_with(world, defences, cfg, &decoder)
}

/// Runs the three scenarios ([`INVERSION_SCENARIOS`]) with a trained `decoder`. Success is type
/// II (other samples of the victim accepted), type I beside it. Details: `mean_estimate_cosine`
/// (of `e_hat` with the victim's true embedding), `mean_reconstruction_cosine` (of the
/// re-encoded reconstruction with it), and `genuine_type_ii` (the victims' own templates as
/// probes: the ceiling).
pub fn inversion_with(
    world: &World,
    defences: &Defences,
    cfg: &InversionConfig,
    decoder: &Decoder,
) -> Result<Vec<AttackResult>> {
    cfg.validate()?;
    let store = Store::new(world, defences, VICTIM_APP)?;
    let targets = world.targets(cfg.targets);
    let genuine = genuine_baseline(world, &store, &targets)?;
    let scenarios = reconstruct(world, defences, cfg, decoder, &store, &targets)?;
    let mut out = Vec::new();
    for (name, sc) in INVERSION_SCENARIOS.iter().zip(&scenarios) {
        let embeddings = world.encoder.embed(&sc.images)?;
        let (mut type_i, mut type_ii) = (Tally::default(), Tally::default());
        let (mut est_cos, mut rec_cos) = (Vec::new(), Vec::new());
        for (k, &src) in targets.iter().enumerate() {
            let truth = &world.victims.embeddings[src];
            let candidate = store.protector.binary(&embeddings[k])?;
            let (hit, mates) = world.judge(&store.op, &store.templates, src, &candidate)?;
            type_i.record(hit);
            type_ii = type_ii.merged(mates);
            est_cos.push(cosine(&sc.estimates[k], truth));
            rec_cos.push(cosine(&embeddings[k], truth));
        }
        out.push(AttackResult {
            attack: "inversion".into(),
            scenario: (*name).into(),
            defences: defences.label(),
            success: type_ii,
            type_i: Some(type_i),
            threshold: store.op.threshold.score,
            details: json!({
                "mean_estimate_cosine": mean(&est_cos),
                "mean_reconstruction_cosine": mean(&rec_cos),
                "genuine_type_ii": genuine,
                "decoder_epochs": cfg.epochs,
                "decoder_training_images": world.public.len(),
                "identity_weight": cfg.identity_weight,
                "seed": cfg.seed,
            }),
        });
    }
    Ok(out)
}

/// A contact sheet of the reconstructions: one row per victim (the first `rows` targets of
/// `cfg`), columns the original image, then the reconstruction of each scenario
/// ([`INVERSION_SCENARIOS`] order), with 2-pixel white gaps.
pub fn inversion_pictures(
    world: &World,
    defences: &Defences,
    cfg: &InversionConfig,
    decoder: &Decoder,
    rows: usize,
) -> Result<GrayImage> {
    cfg.validate()?;
    if rows == 0 {
        return Err(Error::InvalidParameter {
            name: "rows",
            reason: "must be at least 1".into(),
        });
    }
    let store = Store::new(world, defences, VICTIM_APP)?;
    let mut targets = world.targets(cfg.targets);
    targets.truncate(rows);
    let scenarios = reconstruct(world, defences, cfg, decoder, &store, &targets)?;
    let s = world.encoder.config().input_size as u32;
    let gap = 2u32;
    let cols = 1 + scenarios.len() as u32;
    let n = targets.len() as u32;
    let mut sheet = GrayImage::from_pixel(cols * (s + gap) + gap, n * (s + gap) + gap, image::Luma([255]));
    for (r, &src) in targets.iter().enumerate() {
        let y = gap + r as u32 * (s + gap);
        let mut tiles = vec![&world.victims.images[src]];
        tiles.extend(scenarios.iter().map(|sc| &sc.images[r]));
        for (c, tile) in tiles.into_iter().enumerate() {
            image::imageops::replace(
                &mut sheet,
                tile,
                i64::from(gap + c as u32 * (s + gap)),
                i64::from(y),
            );
        }
    }
    Ok(sheet)
}
