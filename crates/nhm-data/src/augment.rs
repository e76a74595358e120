//! Training-time augmentation of any grayscale sample (synthetic or real): rotation, translation,
//! elastic distortion, partial crops, contrast and brightness, Gaussian noise.
//!
//! The geometric part uses the generator's own warp code ([`crate::synth`]), so augmented real
//! samples are distorted the way synthetic impressions are.

use image::GrayImage;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::synth::warp::{DisplacementField, Plane, Warp};

/// How strongly to augment. Every draw is uniform in its range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    /// Largest rotation, degrees (uniform in ±this).
    pub max_rotation_deg: f32,
    /// Largest shift per axis, as a fraction of the image side (uniform in ±this).
    pub max_translation: f32,
    /// Elastic distortion: RMS displacement per axis, as a fraction of the image side, of a
    /// smooth random field of about one cycle across the image.
    pub elastic: f32,
    /// Gaussian noise, standard deviation as a fraction of the full gray range (uniform in
    /// [0, noise] per image).
    pub noise: f32,
    /// Partial contact: up to this fraction of the image is replaced by background beyond a straight
    /// cut at a random angle (uniform in [0, crop]).
    pub crop: f32,
    /// Largest relative change of contrast, and of brightness as a fraction of the gray range.
    pub contrast: f32,
    /// Mirror left-right with probability ½ (faces only: a mirrored fingerprint is another finger).
    pub flip: bool,
}

impl Default for AugmentConfig {
    /// Moderate: ±15°, ±8% shift, 1.5% elastic, ≤ 4% noise, ≤ 20% cut, ±20% contrast.
    fn default() -> Self {
        AugmentConfig {
            max_rotation_deg: 15.0,
            max_translation: 0.08,
            elastic: 0.015,
            noise: 0.04,
            crop: 0.2,
            contrast: 0.2,
            flip: false,
        }
    }
}

impl AugmentConfig {
    /// No augmentation: [`augment`] returns the image unchanged.
    pub fn none() -> Self {
        AugmentConfig {
            max_rotation_deg: 0.0,
            max_translation: 0.0,
            elastic: 0.0,
            noise: 0.0,
            crop: 0.0,
            contrast: 0.0,
            flip: false,
        }
    }
}

/// Uniform in ±`max` (0 without drawing when `max` is 0, so that disabled steps use no randomness).
fn sym(rng: &mut impl Rng, max: f32) -> f32 {
    if max > 0.0 && max.is_finite() {
        rng.gen_range(-max..=max)
    } else {
        0.0
    }
}

/// Uniform in [0, `max`] (0 without drawing when `max` is 0).
fn up_to(rng: &mut impl Rng, max: f32) -> f32 {
    if max > 0.0 && max.is_finite() {
        rng.gen_range(0.0..=max)
    } else {
        0.0
    }
}

/// An augmented copy of `img`, same size. Deterministic for a given `rng` state; with
/// [`AugmentConfig::none`] the output equals the input. Pixels moved in from outside the image,
/// and the cut-off part, take the mean of the image border (the background of a scan).
pub fn augment(img: &GrayImage, cfg: &AugmentConfig, rng: &mut impl Rng) -> GrayImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return img.clone();
    }
    // Drawn only when enabled, so that turning it on changes no other draw's stream.
    let mirrored;
    let img = if cfg.flip && rng.gen_bool(0.5) {
        mirrored = image::imageops::flip_horizontal(img);
        &mirrored
    } else {
        img
    };
    let src = Plane::from_gray(img);
    let fill = src.border_mean();
    let side = w.max(h) as f32;

    let angle = sym(rng, cfg.max_rotation_deg).to_radians();
    let shift = (
        sym(rng, cfg.max_translation) * w as f32,
        sym(rng, cfg.max_translation) * h as f32,
    );
    let centre = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let mut warp = Warp::similarity(w, h, centre, 1.0, angle, shift);
    if cfg.elastic > 0.0 && cfg.elastic.is_finite() {
        warp = warp.with_field(DisplacementField::random(w, h, cfg.elastic * side, rng));
    }
    let mut out = warp.apply(&src, fill);

    let cut = up_to(rng, cfg.crop.min(0.95));
    if cut > 0.0 {
        // A straight cut at a random angle through the image, removing about `cut` of it.
        let dir = rng.gen_range(0.0..std::f32::consts::TAU);
        let (s, c) = dir.sin_cos();
        let extent = (w as f32 * c / 2.0).abs() + (h as f32 * s / 2.0).abs();
        let at = (1.0 - 2.0 * cut) * extent;
        for y in 0..h {
            for x in 0..w {
                let d = (x as f32 - centre.0) * c + (y as f32 - centre.1) * s;
                if d > at {
                    out.data[y * w + x] = fill;
                }
            }
        }
    }

    if cfg.contrast > 0.0 {
        let gain = 1.0 + sym(rng, cfg.contrast);
        let offset = sym(rng, cfg.contrast) * 255.0 * 0.5;
        let mean = out.data.iter().sum::<f32>() / out.data.len() as f32;
        for v in &mut out.data {
            *v = (*v - mean) * gain + mean + offset;
        }
    }

    let sigma = up_to(rng, cfg.noise) * 255.0;
    if sigma > 0.0 {
        for v in &mut out.data {
            // Box–Muller from two uniforms.
            let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
            let u2: f32 = rng.gen();
            *v += sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
        }
    }
    out.to_gray()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn stripes() -> GrayImage {
        GrayImage::from_fn(40, 30, |x, y| image::Luma([((x * 7 + y * 3) % 200 + 20) as u8]))
    }

    #[test]
    fn flip_mirrors_about_half_the_images_and_nothing_else() {
        let img = stripes();
        let flip_only = AugmentConfig {
            flip: true,
            ..AugmentConfig::none()
        };
        let mirror = image::imageops::flip_horizontal(&img);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut flipped = 0;
        for _ in 0..200 {
            let out = augment(&img, &flip_only, &mut rng);
            if out == mirror {
                flipped += 1;
            } else {
                assert_eq!(out, img);
            }
        }
        assert!((70..=130).contains(&flipped), "{flipped} of 200 mirrored");
    }

    #[test]
    fn none_is_identity() {
        let img = stripes();
        let out = augment(&img, &AugmentConfig::none(), &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(out, img);
    }

    #[test]
    fn default_changes_image_keeps_size_and_is_seeded() {
        let img = stripes();
        let cfg = AugmentConfig::default();
        let a = augment(&img, &cfg, &mut ChaCha8Rng::seed_from_u64(9));
        let b = augment(&img, &cfg, &mut ChaCha8Rng::seed_from_u64(9));
        let c = augment(&img, &cfg, &mut ChaCha8Rng::seed_from_u64(10));
        assert_eq!(a.dimensions(), img.dimensions());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, img);
    }
}
