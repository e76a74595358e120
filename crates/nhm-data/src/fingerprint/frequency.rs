//! Local ridge period from oriented block signatures, and the scan resolution it implies.
//!
//! In each block a window of [`FrontEndParams::signature_length`] pixels is read along the normal
//! to the ridges, each sample averaged over [`FrontEndParams::signature_width`] pixels along the
//! ridges: the "x-signature" of Hong, Wan & Jain (1998, §2.4), a nearly sinusoidal wave whose
//! wavelength is the ridge period. Instead of counting its peaks, the signature is detrended,
//! Hann-windowed and scanned with a finely spaced discrete Fourier transform over the periods
//! `min_period..=max_period`; the strongest component, refined by a parabola through its
//! neighbours, is the period. The share of the signature's power in that component is its
//! quality (1 for a pure sinusoid, about `3/length` per frequency for white noise). NIST MINDTCT
//! similarly scores oriented block signatures against discrete waves.
//!
//! Blocks whose quality is below [`FrontEndParams::min_period_quality`] get the quality-weighted
//! mean of their neighbours, as Hong et al. interpolate invalid blocks.

use image::GrayImage;

use super::{BlockMap, Features, FrontEndParams, Result};

/// Resolution at which [`NOMINAL_PERIOD_PX`] holds: the scanners of FVC2002 DB1 and the
/// Neurotechnology samples are 500 dpi, as is the ISO/IEC 19794-4 and FBI (EFTS) reference.
pub const NOMINAL_DPI: f32 = 500.0;

/// Median ridge period of adult fingertips at [`NOMINAL_DPI`], in pixels.
///
/// The mean ridge-to-ridge distance of adult fingertips is about 0.46 mm (0.48 mm for men,
/// 0.43 mm for women in Kralik & Novotny, "Epidermal ridge breadth", Forensic Sci. Int. 2003),
/// which is 0.46 mm × 500 / 25.4 mm ≈ 9.1 px at 500 dpi; Maltoni et al. (Handbook of Fingerprint
/// Recognition, §3.5) likewise give about 9 px for the average inter-ridge distance at 500 dpi.
pub const NOMINAL_PERIOD_PX: f32 = 9.0;

/// Fewest clearly measured blocks for a median period (and a resolution) to be reported.
pub const MIN_PERIOD_BLOCKS: usize = 8;

/// Smallest mean coherence over the print for [`estimate_dpi`] to trust the ridge pattern.
pub const MIN_DPI_COHERENCE: f32 = 0.25;

/// Ridge period per block and its global median.
#[derive(Debug, Clone, PartialEq)]
pub struct RidgePeriod {
    /// Period in pixels per block: measured where clear, filled from neighbours elsewhere on the
    /// print, 0 outside the mask. The ridge frequency is its reciprocal.
    pub period: BlockMap<f32>,
    /// Spectral quality of each block's measurement, 0..=1 (0 where nothing was found).
    pub quality: BlockMap<f32>,
    /// Median of the clearly measured periods on the print, in pixels; `None` when fewer than
    /// [`MIN_PERIOD_BLOCKS`] blocks gave one.
    pub median: Option<f32>,
}

/// Measures the local ridge period of `img` over its foreground (see the module docs).
pub fn ridge_period(img: &GrayImage, params: &FrontEndParams) -> Result<RidgePeriod> {
    let Features { period, .. } = super::features(img, params)?;
    Ok(period)
}

/// Resolution in dpi implied by a median ridge period: `NOMINAL_DPI · period / NOMINAL_PERIOD_PX`.
pub fn dpi_from_period(period: f32) -> f32 {
    NOMINAL_DPI * period / NOMINAL_PERIOD_PX
}

/// Estimates the scan resolution of a fingerprint image from its median ridge period, assuming
/// an adult fingertip (see [`NOMINAL_PERIOD_PX`]). Children's prints (finer ridges) read low.
///
/// Returns `None` when the image cannot be analysed, when fewer than [`MIN_PERIOD_BLOCKS`]
/// blocks show a clear period, or when the print's mean coherence is under
/// [`MIN_DPI_COHERENCE`] (no consistent ridge flow).
pub fn estimate_dpi(img: &GrayImage) -> Option<f32> {
    let f = super::features(img, &FrontEndParams::default()).ok()?;
    let median = f.period.median?;
    let (sum, n) = f
        .block_mask
        .data
        .iter()
        .zip(&f.orientation.coherence.data)
        .filter(|(&m, _)| m)
        .fold((0.0f32, 0usize), |(s, n), (_, &c)| (s + c, n + 1));
    if n == 0 || sum / (n as f32) < MIN_DPI_COHERENCE {
        return None;
    }
    Some(dpi_from_period(median))
}

/// Raw per-block measurements before validation and filling.
pub(crate) struct RawPeriods {
    /// Measured period in pixels, 0 where the spectrum peaked at the edge of the search range.
    pub(crate) period: BlockMap<f32>,
    pub(crate) quality: BlockMap<f32>,
}

/// Bilinear sample of a `w × h` float image, clamped at the borders.
fn sample(img: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (tx, ty) = (x - x0 as f32, y - y0 as f32);
    let top = img[y0 * w + x0] * (1.0 - tx) + img[y0 * w + x1] * tx;
    let bottom = img[y1 * w + x0] * (1.0 - tx) + img[y1 * w + x1] * tx;
    top * (1.0 - ty) + bottom * ty
}

/// Measures the period and its quality along the given ridge orientations in the `wanted`
/// blocks (the others get period and quality 0).
pub(crate) fn block_periods(
    img: &[f32],
    width: u32,
    height: u32,
    angle: &BlockMap<f32>,
    wanted: &BlockMap<bool>,
    params: &FrontEndParams,
) -> RawPeriods {
    let (w, h) = (width as usize, height as usize);
    let len = params.signature_length as usize;
    let across = params.signature_width as usize;
    // Hann window and its sums for the quality normalisation.
    let window: Vec<f32> = (0..len)
        .map(|k| {
            let t = (k as f32 + 0.5) / len as f32;
            0.5 - 0.5 * (2.0 * std::f32::consts::PI * t).cos()
        })
        .collect();
    let sum_w: f32 = window.iter().sum();
    let sum_w2: f32 = window.iter().map(|v| v * v).sum();
    // Frequencies scanned: four times finer than the DFT's own spacing.
    let (f_lo, f_hi) = (1.0 / params.max_period, 1.0 / params.min_period);
    let df = 1.0 / (4.0 * len as f32);
    let nf = (((f_hi - f_lo) / df).ceil() as usize + 1).max(3);
    let freqs: Vec<f32> = (0..nf)
        .map(|i| f_lo + (f_hi - f_lo) * i as f32 / (nf - 1) as f32)
        .collect();
    let table: Vec<(f32, f32)> = freqs
        .iter()
        .flat_map(|&f| {
            (0..len).map(move |k| {
                let a = 2.0 * std::f32::consts::PI * f * k as f32;
                (a.cos(), a.sin())
            })
        })
        .collect();

    let mut period = angle.like(0.0f32);
    let mut quality = angle.like(0.0f32);
    let mut sig = vec![0.0f32; len];
    let mut power = vec![0.0f32; nf];
    let half_len = (len as f32 - 1.0) / 2.0;
    let half_across = (across as f32 - 1.0) / 2.0;
    for row in 0..angle.rows {
        for col in 0..angle.cols {
            let i = row * angle.cols + col;
            if !wanted.data[i] {
                continue;
            }
            let (cx, cy) = angle.centre(col, row);
            let (cx, cy) = (cx.min((w - 1) as f32), cy.min((h - 1) as f32));
            let theta = angle.data[i];
            let (dx, dy) = (theta.cos(), theta.sin()); // along the ridges
            let (nx, ny) = (-dy, dx); // across the ridges
            for (k, s) in sig.iter_mut().enumerate() {
                let t = k as f32 - half_len;
                let mut acc = 0.0;
                for j in 0..across {
                    let u = j as f32 - half_across;
                    acc += sample(img, w, h, cx + t * nx + u * dx, cy + t * ny + u * dy);
                }
                *s = acc / across as f32;
            }
            detrend(&mut sig);
            for (s, wk) in sig.iter_mut().zip(&window) {
                *s *= wk;
            }
            let energy: f32 = sig.iter().map(|v| v * v).sum();
            if energy <= 1e-6 {
                continue;
            }
            for (fi, p) in power.iter_mut().enumerate() {
                let row_t = &table[fi * len..(fi + 1) * len];
                let (mut re, mut im) = (0.0f32, 0.0f32);
                for (s, (c, sn)) in sig.iter().zip(row_t) {
                    re += s * c;
                    im += s * sn;
                }
                *p = re * re + im * im;
            }
            let (best, &peak) = power
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap_or((0, &0.0));
            if best == 0 || best + 1 >= nf {
                continue; // the strongest component lies outside the searched range
            }
            let (a, b, c) = (power[best - 1], peak, power[best + 1]);
            let denom = a - 2.0 * b + c;
            let shift = if denom.abs() > 1e-12 {
                (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
            } else {
                0.0
            };
            let step = freqs[1] - freqs[0];
            let f = freqs[best] + shift * step;
            let q = peak * 2.0 * sum_w2 / (sum_w * sum_w * energy);
            if f > 0.0 && q.is_finite() {
                period.data[i] = (1.0 / f).clamp(params.min_period, params.max_period);
                quality.data[i] = q.clamp(0.0, 1.0);
            }
        }
    }
    RawPeriods { period, quality }
}

/// Removes the least-squares straight line from `s` (illumination gradients are not ridges).
fn detrend(s: &mut [f32]) {
    let n = s.len() as f32;
    let mean_k = (n - 1.0) / 2.0;
    let mean_s = s.iter().sum::<f32>() / n;
    let (mut cov, mut var) = (0.0f32, 0.0f32);
    for (k, v) in s.iter().enumerate() {
        let dk = k as f32 - mean_k;
        cov += dk * (v - mean_s);
        var += dk * dk;
    }
    let slope = if var > 0.0 { cov / var } else { 0.0 };
    for (k, v) in s.iter_mut().enumerate() {
        *v -= mean_s + slope * (k as f32 - mean_k);
    }
}

/// Validates the raw periods against the mask, takes their median and fills the grid.
///
/// Returns the public result (period 0 outside the mask) and a copy filled everywhere for
/// interpolation by the enhancement stage.
pub(crate) fn finish(
    raw: RawPeriods,
    mask: &BlockMap<bool>,
    params: &FrontEndParams,
) -> (RidgePeriod, BlockMap<f32>) {
    let valid: Vec<bool> = (0..raw.period.data.len())
        .map(|i| mask.data[i] && raw.period.data[i] > 0.0 && raw.quality.data[i] >= params.min_period_quality)
        .collect();
    let mut measured: Vec<f32> = raw
        .period
        .data
        .iter()
        .zip(&valid)
        .filter(|(_, &v)| v)
        .map(|(&p, _)| p)
        .collect();
    measured.sort_by(f32::total_cmp);
    let median = if measured.len() >= MIN_PERIOD_BLOCKS {
        Some(measured[measured.len() / 2])
    } else {
        None
    };
    let fallback = median
        .or_else(|| measured.get(measured.len() / 2).copied())
        .unwrap_or(NOMINAL_PERIOD_PX)
        .clamp(params.min_period, params.max_period);
    let (cols, rows) = (raw.period.cols, raw.period.rows);
    let mut filled = raw.period.like(fallback);
    for row in 0..rows {
        for col in 0..cols {
            // Quality-weighted Gaussian mean of the valid neighbours, widening until some are found.
            for sigma in [1.0f32, 2.0, 4.0] {
                let radius = (2.0 * sigma).ceil() as i64;
                let (mut s, mut sw) = (0.0f32, 0.0f32);
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
                        let j = r as usize * cols + c as usize;
                        if !valid[j] {
                            continue;
                        }
                        let g = (-((dr * dr + dc * dc) as f32) / (2.0 * sigma * sigma)).exp();
                        let wgt = g * raw.quality.data[j];
                        s += wgt * raw.period.data[j];
                        sw += wgt;
                    }
                }
                if sw > 1e-6 {
                    filled.data[row * cols + col] = s / sw;
                    break;
                }
            }
        }
    }
    let period = BlockMap {
        data: filled
            .data
            .iter()
            .zip(&mask.data)
            .map(|(&p, &m)| if m { p } else { 0.0 })
            .collect(),
        ..filled.like(0.0f32)
    };
    (
        RidgePeriod {
            period,
            quality: raw.quality,
            median,
        },
        filled,
    )
}
