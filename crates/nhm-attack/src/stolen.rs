//! What the white-box attacks share: the service's store (templates under the victims' key,
//! peppered when the defence is on), what a thief makes of stolen bits, and pixel buffers.

use image::GrayImage;
use nhm_template::{BinaryHashmap, Pepper, Protector};

use crate::{normalized, Defences, OperatingPoint, Result, Tally, World};

/// The application name the victims' service enrols under.
pub(crate) const VICTIM_APP: &str = "app-a";

/// The service the white-box attacks steal from: its key, its templates, its threshold.
pub(crate) struct Store {
    /// The victims' protector (the client key of [`VICTIM_APP`]).
    pub(crate) protector: Protector,
    /// Every victim sample's template, unpeppered: the pepper is an isometry applied to both
    /// sides of every comparison, so matching unpeppered hashmaps gives the service's decisions.
    pub(crate) templates: Vec<BinaryHashmap>,
    /// The operating point of the victims' hashmaps.
    pub(crate) op: OperatingPoint,
    /// The server pepper, when the defence is on.
    pub(crate) pepper: Option<Pepper>,
}

impl Store {
    /// The store of `world`'s victims under `defences`, at application `app`.
    pub(crate) fn new(world: &World, defences: &Defences, app: &str) -> Result<Store> {
        let key = world.victim_key(defences, app);
        let protector = world.protector(&key, defences)?;
        let templates = World::hashmaps(&protector, &world.victims.embeddings)?;
        let op = world.operating_point(&protector)?;
        let pepper = defences
            .pepper
            .then(|| world.server_pepper(protector.output_dim()));
        Ok(Store {
            protector,
            templates,
            op,
            pepper,
        })
    }

    /// What a thief of the store reads for `h`: the bits as stored (peppered when it is on).
    pub(crate) fn as_stored(&self, h: &BinaryHashmap) -> Result<BinaryHashmap> {
        Ok(match &self.pepper {
            Some(p) => p.apply(h)?,
            None => h.clone(),
        })
    }
}

/// What the victims' own templates achieve as probes: the type II tally of each target's real
/// template against its other samples (the ceiling a perfect reconstruction reaches).
pub(crate) fn genuine_baseline(world: &World, store: &Store, targets: &[usize]) -> Result<Tally> {
    let mut t = Tally::default();
    for &src in targets {
        let (_, mates) = world.judge(&store.op, &store.templates, src, &store.templates[src])?;
        t = t.merged(mates);
    }
    Ok(t)
}

/// A hashmap's bits as ±1 values (bit 1 is a non-negative projection).
pub(crate) fn signs(h: &BinaryHashmap) -> Vec<f32> {
    (0..h.dim()).map(|i| if h.bit(i) { 1.0 } else { -1.0 }).collect()
}

/// The thief's estimate of an embedding from hashmaps of it made under `protectors`:
/// `normalize(Σ R_iᵀ b_i)`.
pub(crate) fn estimate(protectors: &[&Protector], bits: &[BinaryHashmap]) -> Result<Vec<f32>> {
    let mut sum: Vec<f32> = Vec::new();
    for (p, b) in protectors.iter().zip(bits) {
        let back = p.adjoint(&signs(b))?;
        if sum.is_empty() {
            sum = back;
        } else {
            sum.iter_mut().zip(&back).for_each(|(s, v)| *s += v);
        }
    }
    Ok(normalized(sum))
}

/// An image's intensities in [0, 1].
pub(crate) fn to_unit(img: &GrayImage) -> Vec<f32> {
    img.as_raw().iter().map(|&p| f32::from(p) / 255.0).collect()
}

/// Intensities in [0, 1] (clamped) as an `s`×`s` image.
pub(crate) fn from_unit(v: &[f32], s: u32) -> GrayImage {
    let raw: Vec<u8> = v
        .iter()
        .map(|&x| (x.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    GrayImage::from_raw(s, s, raw).unwrap_or_else(|| GrayImage::new(s, s))
}

/// Mean of the values (0 for none).
pub(crate) fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}
