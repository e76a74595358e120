//! One impression of a master print (SFinGe steps 5–8): placement on the sensor (rotation,
//! translation, scale), elastic distortion, partial contact, ridge thickness (dry or wet skin),
//! and background and sensor noise.

use image::GrayImage;
use rand::Rng;

use super::master::{Master, Shape, MASTER, PERIOD, WINDOW};
use super::warp::{DisplacementField, SmoothNoise, Warp};
use super::Variation;

/// A draw from the triangular distribution on [-1, 1] (mode 0, standard deviation 1/√6 ≈ 0.41):
/// most impressions are placed near the reference pose, a few far from it.
fn tri(rng: &mut impl Rng) -> f32 {
    rng.gen::<f32>() + rng.gen::<f32>() - 1.0
}

/// An approximately standard normal draw from one 64-bit word (Irwin–Hall sum of four 16-bit
/// uniforms, rescaled): cheap enough for per-pixel sensor noise.
#[inline]
fn fast_normal(rng: &mut impl Rng) -> f32 {
    let w: u64 = rng.gen();
    let s = (w & 0xffff) + ((w >> 16) & 0xffff) + ((w >> 32) & 0xffff) + (w >> 48);
    // Mean 4·32767.5, variance 4·65536²/12.
    (s as f32 - 131_070.0) / 37_837.2
}

#[inline]
fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Renders one `size × size` impression of `master` with random variation drawn from `rng`.
pub(crate) fn render(master: &Master, size: u32, var: &Variation, rng: &mut impl Rng) -> GrayImage {
    let n = size as usize;
    let shape = master.shape;

    // Placement: the master's centre lands at the image centre, then moves.
    let scale = WINDOW / n as f32 * (1.0 + var.max_scale * tri(rng));
    let angle = var.max_rotation_deg.to_radians() * tri(rng);
    let shift = (
        var.max_translation * n as f32 * tri(rng),
        var.max_translation * n as f32 * tri(rng),
    );
    let mut warp = Warp::similarity(n, n, master.centre, scale, angle, shift);
    if var.distortion > 0.0 {
        warp = warp.with_field(DisplacementField::random(n, n, var.distortion * PERIOD, rng));
    }

    // Contact region, in master coordinates: the pad ellipse shrunk by a light touch, an
    // irregular border, and (partial contact) a straight cut at a random angle.
    let pressure = 1.0 - 0.12 * rng.gen::<f32>();
    let ca = shape.a * pressure * (1.0 + 0.05 * tri(rng));
    let cb = shape.b * pressure * (1.0 + 0.05 * tri(rng));
    let ccx = shape.cx + 3.0 * tri(rng);
    let ccy = shape.cy + 3.0 * tri(rng);
    let border = SmoothNoise::new(super::master::MASTER, super::master::MASTER, 6, rng);
    let cut_dir = rng.gen_range(0.0..std::f32::consts::TAU);
    let (cut_s, cut_c) = cut_dir.sin_cos();
    // Cut off up to `partial` of the pad: the cut line sits at 1 − 2·fraction of the half extent.
    let cut_fraction = var.partial * rng.gen::<f32>();
    let cut_extent = (ca * cut_c).hypot(cb * cut_s);
    let cut_at = (1.0 - 2.0 * cut_fraction) * cut_extent;

    // Ridge thickness: a global threshold shift (dry: thin ridges, wet: thick) plus patches.
    let bias0 = 0.45 * var.thickness * tri(rng);
    let bias_field = SmoothNoise::new(n, n, 5, rng);
    let bias_amp = 0.35 * var.thickness;

    // Sensor: background level, ridge level, fading blotches, Gaussian noise.
    let bg = 232.0 - 25.0 * var.noise * rng.gen::<f32>();
    let ridge = 25.0 + 70.0 * var.noise * rng.gen::<f32>();
    let fade = SmoothNoise::new(n, n, 5, rng);
    let fade_amp = 0.6 * var.noise;
    let stain = SmoothNoise::new(n, n, 4, rng);
    let stain_amp = 18.0 * var.noise;
    let sigma = 14.0 * var.noise;

    // Drawn last, and only when asked for, so that texture 0 leaves every other draw in place.
    let texture = (var.texture > 0.0).then(|| Texture::draw(var.texture, &shape, rng));

    let mut out = vec![0u8; n * n];
    let ridges = &master.ridges;
    warp.for_each(|i, x, y, sx, sy| {
        let (xf, yf) = (x as f32, y as f32);
        // Contact mask in [0, 1], soft at the border.
        let ex = (sx - ccx) / ca;
        let ey = (sy - ccy) / cb;
        let e = (ex * ex + ey * ey).sqrt() + 0.07 * border.at(sx, sy);
        let mut m = smoothstep((1.0 - e) / 0.1);
        let d = (sx - ccx) * cut_c + (sy - ccy) * cut_s;
        m *= smoothstep((cut_at - d) / 3.0);
        let mut v = bg + stain_amp * stain.at(xf, yf);
        if m > 0.0 {
            let r = ridges.sample(sx, sy, 0.0);
            let bias = bias0 + bias_amp * bias_field.at(xf, yf);
            let dark = (0.5 + 0.7 * (r + bias)).clamp(0.0, 1.0);
            // Pressure: ink fades toward the border of the contact and in blotches.
            let mut ink =
                m * (1.0 - fade_amp * (0.5 + 0.5 * fade.at(xf, yf))) * (1.0 - 0.25 * e * e).max(0.0);
            if let Some(t) = &texture {
                ink *= t.contact(sx, sy);
            }
            v -= ink * dark * (v - ridge);
        }
        v += sigma * fast_normal(rng);
        out[i] = v.round().clamp(0.0, 255.0) as u8;
    });
    GrayImage::from_raw(size, size, out).unwrap_or_else(|| GrayImage::new(size, size))
}

/// Skin texture of one impression, in master coordinates so that it follows the finger: dry-skin
/// breaks (value noise at about a ridge period, cut at a dryness level) and creases (straight
/// white bands across the ridges).
struct Texture {
    breaks: SmoothNoise,
    /// Noise level above which the skin did not touch: 1 = no breaks.
    dry_at: f32,
    creases: Vec<Crease>,
}

/// A crease: a segment with a half width, in master pixels.
struct Crease {
    x: f32,
    y: f32,
    /// Unit direction.
    dx: f32,
    dy: f32,
    half_len: f32,
    half_width: f32,
}

impl Texture {
    fn draw(amount: f32, shape: &Shape, rng: &mut impl Rng) -> Texture {
        // About one noise cell per ridge period: breaks as long as a ridge is wide.
        let breaks = SmoothNoise::new(MASTER, MASTER, (MASTER as f32 / PERIOD) as usize, rng);
        let dry_at = 1.0 - 0.9 * amount * rng.gen::<f32>();
        let count = rng.gen_range(0..=(3.0 * amount).round() as u32);
        let creases = (0..count)
            .map(|_| {
                // Mostly across the finger, as flexion creases run.
                let angle = std::f32::consts::FRAC_PI_4 * tri(rng);
                Crease {
                    x: shape.cx + 0.6 * shape.a * tri(rng),
                    y: shape.cy + 0.6 * shape.b * tri(rng),
                    dx: angle.cos(),
                    dy: angle.sin(),
                    half_len: shape.a * rng.gen_range(0.3..1.0),
                    half_width: PERIOD * rng.gen_range(0.2..0.6),
                }
            })
            .collect();
        Texture {
            breaks,
            dry_at,
            creases,
        }
    }

    /// Share of the ink that reaches the sensor at master point (x, y): 0 in a break or crease.
    fn contact(&self, x: f32, y: f32) -> f32 {
        let mut c = smoothstep((self.dry_at - self.breaks.at(x, y)) / 0.12);
        for k in &self.creases {
            let (rx, ry) = (x - k.x, y - k.y);
            let along = rx * k.dx + ry * k.dy;
            let across = (-rx * k.dy + ry * k.dx).abs();
            let end = smoothstep((k.half_len - along.abs()) / PERIOD);
            c *= 1.0 - end * smoothstep((k.half_width - across) / 0.8 + 0.5);
        }
        c
    }
}
