//! Ridge orientation by least-squares fitting of gradients, smoothed as doubled-angle vectors.
//!
//! Over a window, the direction that best agrees with all gradient vectors (in the squared,
//! sign-free sense) has the doubled angle `2φ = atan2(2 Gxy, Gxx − Gyy)`, where `Gxx = Σ gx²`,
//! `Gyy = Σ gy²`, `Gxy = Σ gx·gy` (Kass & Witkin 1987; Hong, Wan & Jain 1998, §2.3). Ridges run
//! perpendicular to the gradients: `θ = φ + π/2`. Doubling the angle makes opposite gradients
//! (the two flanks of one ridge) agree, so vectors can be averaged; the length of the average
//! relative to the energy is the coherence.

use image::GrayImage;

use super::{BlockMap, Features, FrontEndParams, Result};

/// Ridge orientation and its coherence per block.
#[derive(Debug, Clone, PartialEq)]
pub struct OrientationField {
    /// Ridge direction per block, radians in `[0, π)` from +x towards +y (image coordinates).
    pub angle: BlockMap<f32>,
    /// Coherence per block, 0..=1: how consistently the gradients around the block agree.
    pub coherence: BlockMap<f32>,
}

/// Per-block sums over the window centred on each block.
pub(crate) struct BlockStats {
    /// `(Gxx − Gyy) / (Gxx + Gyy)`: the doubled-angle vector scaled by the block's own coherence.
    pub(crate) vx: BlockMap<f32>,
    /// `2 Gxy / (Gxx + Gyy)`.
    pub(crate) vy: BlockMap<f32>,
    /// Standard deviation of the intensity over the window, in grey levels.
    pub(crate) contrast: BlockMap<f32>,
}

/// A smoothed orientation field with its doubled-angle vectors.
pub(crate) struct Smoothed {
    pub(crate) angle: BlockMap<f32>,
    pub(crate) coherence: BlockMap<f32>,
    pub(crate) vx: BlockMap<f32>,
    pub(crate) vy: BlockMap<f32>,
}

/// Estimates the smoothed ridge orientation field of `img` over the foreground found by the
/// segmentation stage (so that a noisy background does not bend the orientations at the edge of
/// the print). Background blocks get the orientation of the nearby print.
pub fn orientation_field(img: &GrayImage, params: &FrontEndParams) -> Result<OrientationField> {
    let Features { orientation, .. } = super::features(img, params)?;
    Ok(orientation)
}

/// Sobel gradients and per-block orientation sums and contrast.
pub(crate) fn block_stats(img: &GrayImage, params: &FrontEndParams) -> BlockStats {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let px = img.as_raw();
    let at = |x: usize, y: usize| px[y * w + x] as f32;
    let mut gx = vec![0.0f32; w * h];
    let mut gy = vec![0.0f32; w * h];
    for y in 0..h {
        let (ym, yp) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            let (xm, xp) = (x.saturating_sub(1), (x + 1).min(w - 1));
            gx[y * w + x] =
                (at(xp, ym) + 2.0 * at(xp, y) + at(xp, yp)) - (at(xm, ym) + 2.0 * at(xm, y) + at(xm, yp));
            gy[y * w + x] =
                (at(xm, yp) + 2.0 * at(x, yp) + at(xp, yp)) - (at(xm, ym) + 2.0 * at(x, ym) + at(xp, ym));
        }
    }
    let mut vx = BlockMap::new(w as u32, h as u32, params.block, 0.0f32);
    let mut vy = vx.clone();
    let mut contrast = vx.clone();
    let half = params.window as i64 / 2;
    for row in 0..vx.rows {
        for col in 0..vx.cols {
            let (cx, cy) = vx.centre(col, row);
            let x0 = (cx as i64 - half + 1).clamp(0, w as i64) as usize;
            let x1 = (cx as i64 + half + 1).clamp(0, w as i64) as usize;
            let y0 = (cy as i64 - half + 1).clamp(0, h as i64) as usize;
            let y1 = (cy as i64 + half + 1).clamp(0, h as i64) as usize;
            let (mut sxx, mut syy, mut sxy, mut s, mut ss) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for y in y0..y1 {
                for x in x0..x1 {
                    let (a, b) = (gx[y * w + x] as f64, gy[y * w + x] as f64);
                    sxx += a * a;
                    syy += b * b;
                    sxy += a * b;
                    let v = px[y * w + x] as f64;
                    s += v;
                    ss += v * v;
                }
            }
            let n = ((x1 - x0) * (y1 - y0)).max(1) as f64;
            let energy = sxx + syy;
            let i = row * vx.cols + col;
            if energy > 1e-9 {
                vx.data[i] = ((sxx - syy) / energy) as f32;
                vy.data[i] = (2.0 * sxy / energy) as f32;
            }
            let mean = s / n;
            contrast.data[i] = (ss / n - mean * mean).max(0.0).sqrt() as f32;
        }
    }
    BlockStats { vx, vy, contrast }
}

/// Gaussian smoothing of the doubled-angle vectors over blocks, with optional per-block weights
/// (normalised convolution: the result is a weighted mean, so weight-0 blocks take their
/// neighbours' value). Blocks with no weight in reach fall back to the unweighted mean.
pub(crate) fn smooth(stats: &BlockStats, weights: Option<&BlockMap<f32>>, sigma: f32) -> Smoothed {
    let (cols, rows) = (stats.vx.cols, stats.vx.rows);
    let radius = (2.0 * sigma).ceil().max(0.0) as i64;
    let taps: Vec<f32> = (-radius..=radius)
        .map(|d| {
            if sigma > 0.0 {
                (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()
            } else {
                1.0
            }
        })
        .collect();
    let mut out_x = stats.vx.like(0.0f32);
    let mut out_y = stats.vx.like(0.0f32);
    let mut angle = stats.vx.like(0.0f32);
    let mut coherence = stats.vx.like(0.0f32);
    for row in 0..rows {
        for col in 0..cols {
            let mut acc = [0.0f32; 6]; // weighted x, y, weight; unweighted x, y, weight
            for dr in -radius..=radius {
                let r = row as i64 + dr;
                if r < 0 || r >= rows as i64 {
                    continue;
                }
                for dc in -radius..=radius {
                    let c = col as i64 + dc;
                    if c < 0 || c >= cols as i64 {
                        continue;
                    }
                    let i = r as usize * cols + c as usize;
                    let g = taps[(dr + radius) as usize] * taps[(dc + radius) as usize];
                    let wgt = weights.map_or(1.0, |m| m.data[i]) * g;
                    acc[0] += wgt * stats.vx.data[i];
                    acc[1] += wgt * stats.vy.data[i];
                    acc[2] += wgt;
                    acc[3] += g * stats.vx.data[i];
                    acc[4] += g * stats.vy.data[i];
                    acc[5] += g;
                }
            }
            let (sx, sy, sw) = if acc[2] > 1e-6 {
                (acc[0], acc[1], acc[2])
            } else {
                (acc[3], acc[4], acc[5].max(1e-6))
            };
            let (mx, my) = (sx / sw, sy / sw);
            let i = row * cols + col;
            out_x.data[i] = mx;
            out_y.data[i] = my;
            angle.data[i] = ridge_angle(mx, my);
            coherence.data[i] = mx.hypot(my).clamp(0.0, 1.0);
        }
    }
    Smoothed {
        angle,
        coherence,
        vx: out_x,
        vy: out_y,
    }
}

/// Ridge direction in `[0, π)` from a doubled-angle gradient vector.
pub(crate) fn ridge_angle(vx: f32, vy: f32) -> f32 {
    let theta = 0.5 * vy.atan2(vx) + std::f32::consts::FRAC_PI_2;
    let theta = theta.rem_euclid(std::f32::consts::PI);
    if theta.is_finite() && theta < std::f32::consts::PI {
        theta
    } else {
        0.0
    }
}
