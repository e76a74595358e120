//! Contextual Gabor filtering (Hong, Wan & Jain 1998, §2.6).
//!
//! The image is first normalised to zero local mean and unit local standard deviation over a
//! window of about two blocks, which removes the differences of brightness and contrast between
//! sensors (the global mean/variance normalisation of Hong et al., made local). Each foreground
//! pixel is then filtered with an even-symmetric Gabor kernel: a cosine across the ridges at the
//! local period, under a Gaussian envelope longer along the ridges (it bridges small gaps and
//! pores) than across them. Kernels come from a bank quantised to
//! [`FrontEndParams::gabor_orientations`] directions and periods spaced by
//! [`FrontEndParams::gabor_period_step`]; only the cells an image needs are built. Each kernel has
//! zero mean (flat areas give no response) and unit gain on a matched unit sinusoid, so the
//! response is in units of local standard deviation; `128 + 127·tanh(gain·response)` maps it to
//! 8 bits. Ridges (dark in the input) give negative responses and stay dark.

use image::{GrayImage, Luma};
use rayon::prelude::*;

use super::orientation::ridge_angle;
use super::{Features, FrontEndParams, Result, BACKGROUND};

/// Gabor-enhances `img`: dark ridges on white valleys, [`BACKGROUND`] outside the print.
///
/// Fails like [`super::analyse`], which also returns the other stages' results.
pub fn enhance(img: &GrayImage, params: &FrontEndParams) -> Result<GrayImage> {
    let f = super::features(img, params)?;
    Ok(gabor_filter(&f, params))
}

/// Normalises `img` to zero mean and unit standard deviation over a `(2·radius+1)²` window,
/// clipped to ±4 (specular spots and dust do not dominate). The deviation has a floor of 2 grey
/// levels so that flat areas are not blown up into noise.
pub(crate) fn normalise(img: &GrayImage, radius: usize) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let px = img.as_raw();
    // Integral images with a zero first row and column.
    let (iw, ih) = (w + 1, h + 1);
    let mut s1 = vec![0.0f64; iw * ih];
    let mut s2 = vec![0.0f64; iw * ih];
    for y in 0..h {
        let (mut r1, mut r2) = (0.0f64, 0.0f64);
        for x in 0..w {
            let v = px[y * w + x] as f64;
            r1 += v;
            r2 += v * v;
            s1[(y + 1) * iw + x + 1] = s1[y * iw + x + 1] + r1;
            s2[(y + 1) * iw + x + 1] = s2[y * iw + x + 1] + r2;
        }
    }
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(radius), (y + radius + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(radius), (x + radius + 1).min(w));
            let n = ((x1 - x0) * (y1 - y0)) as f64;
            let rect = |s: &[f64]| s[y1 * iw + x1] - s[y0 * iw + x1] - s[y1 * iw + x0] + s[y0 * iw + x0];
            let mean = rect(&s1) / n;
            let var = (rect(&s2) / n - mean * mean).max(0.0);
            let sd = var.sqrt().max(2.0);
            out[y * w + x] = (((px[y * w + x] as f64 - mean) / sd) as f32).clamp(-4.0, 4.0);
        }
    }
    out
}

/// One Gabor kernel, `(2·radius+1)²` taps row by row.
struct Kernel {
    radius: usize,
    taps: Vec<f32>,
}

impl Kernel {
    /// Even-symmetric Gabor kernel for ridges along `theta` with the given period.
    fn new(theta: f32, period: f32, params: &FrontEndParams) -> Kernel {
        let sa = params.gabor_sigma_along * period;
        let sc = params.gabor_sigma_across * period;
        let radius = (params.gabor_radius * sa.max(sc)).ceil().clamp(1.0, 48.0) as usize;
        let side = 2 * radius + 1;
        let (c, s) = (theta.cos(), theta.sin());
        let k = 2.0 * std::f32::consts::PI / period;
        let mut env = vec![0.0f32; side * side];
        let mut wave = vec![0.0f32; side * side];
        for j in 0..side {
            for i in 0..side {
                let (dx, dy) = (i as f32 - radius as f32, j as f32 - radius as f32);
                let along = dx * c + dy * s;
                let across = -dx * s + dy * c;
                env[j * side + i] =
                    (-(along * along) / (2.0 * sa * sa) - (across * across) / (2.0 * sc * sc)).exp();
                wave[j * side + i] = (k * across).cos();
            }
        }
        // Zero mean: subtract the envelope-weighted mean of the cosine.
        let sum_env: f32 = env.iter().sum();
        let dc = env.iter().zip(&wave).map(|(e, v)| e * v).sum::<f32>() / sum_env.max(1e-12);
        let raw: Vec<f32> = env.iter().zip(&wave).map(|(e, v)| e * (v - dc)).collect();
        // Unit gain on the matched sinusoid (which is the cosine itself).
        let gain: f32 = raw.iter().zip(&wave).map(|(a, v)| a * v).sum();
        let scale = if gain.abs() > 1e-12 { 1.0 / gain } else { 0.0 };
        let taps = raw.iter().map(|v| v * scale).collect();
        Kernel { radius, taps }
    }
}

/// Side of the square of pixels that share one interpolated orientation and period.
const TILE: usize = 4;

/// Pixels filtered together: a run of neighbours in a row that share one kernel.
const LANES: usize = 16;

/// Responses of `LANES` consecutive pixels to one kernel, the first at padded offset `base`
/// (the kernel's top-left corner). Broadcasting each tap over the lanes lets the compiler
/// vectorise without reordering any sum.
fn filter_run(padded: &[f32], pw: usize, base: usize, k: &Kernel) -> [f32; LANES] {
    let side = 2 * k.radius + 1;
    let mut acc = [0.0f32; LANES];
    for (ky, taps) in k.taps.chunks_exact(side).enumerate() {
        let row = &padded[base + ky * pw..base + ky * pw + side + LANES];
        for (src, &t) in row.windows(LANES).zip(taps) {
            let src: &[f32; LANES] = match src.try_into() {
                Ok(a) => a,
                Err(_) => continue,
            };
            for i in 0..LANES {
                acc[i] += t * src[i];
            }
        }
    }
    acc
}

/// Filters the foreground of the normalised image with the contextual Gabor bank.
pub(crate) fn gabor_filter(f: &Features, params: &FrontEndParams) -> GrayImage {
    let (w, h) = (f.width as usize, f.height as usize);
    let n_orient = params.gabor_orientations as usize;
    let step_ln = params.gabor_period_step.ln();
    let n_period = ((params.max_period / params.min_period).ln() / step_ln).ceil() as usize + 1;
    let mask = f.mask.as_raw();
    let (vx, vy) = &f.vectors;

    // Bank cell per foreground pixel (u32::MAX for background). Orientation and period vary
    // over blocks, so they are interpolated once per TILE × TILE pixels, not per pixel.
    let (tw, th) = (w.div_ceil(TILE), h.div_ceil(TILE));
    let tile_cells: Vec<u32> = (0..tw * th)
        .into_par_iter()
        .map(|t| {
            let x = ((t % tw) * TILE) as f32 + (TILE as f32 - 1.0) / 2.0;
            let y = ((t / tw) * TILE) as f32 + (TILE as f32 - 1.0) / 2.0;
            let theta = ridge_angle(vx.sample(x, y), vy.sample(x, y));
            let o = (theta / std::f32::consts::PI * n_orient as f32).round() as usize % n_orient;
            let period = f
                .period_filled
                .sample(x, y)
                .clamp(params.min_period, params.max_period);
            let p = ((period / params.min_period).ln() / step_ln).round().max(0.0) as usize;
            (p.min(n_period - 1) * n_orient + o) as u32
        })
        .collect();
    let cells: Vec<u32> = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            if mask[i] == 0 {
                u32::MAX
            } else {
                tile_cells[(y / TILE) * tw + x / TILE]
            }
        })
        .collect();
    let mut needed = vec![false; n_period * n_orient];
    for &c in &cells {
        if c != u32::MAX {
            needed[c as usize] = true;
        }
    }
    let bank: Vec<Option<Kernel>> = needed
        .par_iter()
        .enumerate()
        .map(|(cell, &need)| {
            need.then(|| {
                let (p, o) = (cell / n_orient, cell % n_orient);
                let theta = o as f32 * std::f32::consts::PI / n_orient as f32;
                let period = params.min_period * params.gabor_period_step.powi(p as i32);
                Kernel::new(theta, period, params)
            })
        })
        .collect();
    let pad = bank.iter().flatten().map(|k| k.radius).max().unwrap_or(0);
    let pw = w + 2 * pad + LANES;
    let ph = h + 2 * pad;
    let mut padded = vec![0.0f32; pw * ph];
    for y in 0..h {
        padded[(y + pad) * pw + pad..(y + pad) * pw + pad + w]
            .copy_from_slice(&f.normalised[y * w..(y + 1) * w]);
    }

    let gain = params.output_gain;
    let mut out = vec![BACKGROUND; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let cells = &cells[y * w..(y + 1) * w];
        let mut x = 0;
        while x < w {
            let cell = cells[x];
            let Some(Some(k)) = bank.get(cell as usize) else {
                x += 1;
                continue;
            };
            // The run of following pixels that use the same kernel, at most LANES long.
            let run = cells[x..].iter().take(LANES).take_while(|&&c| c == cell).count();
            let base = (y + pad - k.radius) * pw + (x + pad - k.radius);
            let resp = filter_run(&padded, pw, base, k);
            for (o, r) in row[x..x + run].iter_mut().zip(resp) {
                let v = 128.0 + 127.0 * (gain * r).tanh();
                *o = if v.is_finite() {
                    v.round().clamp(0.0, 255.0) as u8
                } else {
                    BACKGROUND
                };
            }
            x += run;
        }
    });
    GrayImage::from_fn(f.width, f.height, |x, y| Luma([out[y as usize * w + x as usize]]))
}
