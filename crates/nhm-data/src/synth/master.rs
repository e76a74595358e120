//! The master print of one finger (SFinGe steps 1–4): finger shape, orientation field with
//! singular points, ridge-frequency map, and ridges grown by iterated Gabor filtering.
//!
//! Everything here works on a fixed internal grid ([`MASTER`] pixels square, mean ridge period
//! [`PERIOD`] pixels) whatever the output size: impressions resample the master, so the cost of a
//! master does not grow with the output size and a finger looks the same at every size.

use std::f32::consts::{FRAC_PI_2, PI, TAU};
use std::sync::OnceLock;

use rand::Rng;

use super::warp::{Plane, SmoothNoise};
use super::View;

/// Side of the master grid, internal pixels.
pub(crate) const MASTER: usize = 128;
/// Mean ridge period on the master grid, internal pixels.
pub(crate) const PERIOD: f32 = 5.0;
/// Internal pixels that span the output image's width: sixteen ridge periods, whatever the size.
pub(crate) const WINDOW: f32 = 16.0 * PERIOD;

/// Gabor kernel radius (the kernel is `2·RADIUS+1` square, rows padded to [`ROW`] floats).
const RADIUS: usize = 7;
const KSIZE: usize = 2 * RADIUS + 1;
const ROW: usize = 16;
/// Quantised orientations (over π) and ridge periods in the filter bank.
const N_ORI: usize = 32;
const N_PER: usize = 8;
const PERIOD_MIN: f32 = 0.8 * PERIOD;
const PERIOD_MAX: f32 = 1.25 * PERIOD;

/// Henry classes, drawn with their natural frequencies (Wilson et al.: A 3.7%, TA 2.9%,
/// L 33.8%, R 31.7%, W 27.9%).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Arch,
    TentedArch,
    LeftLoop,
    RightLoop,
    Whorl,
}

impl Class {
    fn draw(rng: &mut impl Rng) -> Class {
        let u: f32 = rng.gen();
        match u {
            u if u < 0.037 => Class::Arch,
            u if u < 0.066 => Class::TentedArch,
            u if u < 0.404 => Class::LeftLoop,
            u if u < 0.721 => Class::RightLoop,
            _ => Class::Whorl,
        }
    }
}

/// The elliptical outline of the finger pad on the master grid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub cx: f32,
    pub cy: f32,
    /// Half width and half height.
    pub a: f32,
    pub b: f32,
}

/// One finger (of a class drawn first): its shape and its ridges (values in [-1, 1], +1 on a ridge).
#[derive(Debug, Clone)]
pub(crate) struct Master {
    pub shape: Shape,
    pub ridges: Plane,
    /// The point impressions centre on: the pad centre in the whole view, the mean core position
    /// (where a scan's region of interest lands) in the centre view.
    pub centre: (f32, f32),
}

/// Orientation model: zero-pole (Sherlock & Monro) around cores and deltas, or an arch.
struct OrientationModel {
    cores: Vec<(f32, f32)>,
    deltas: Vec<(f32, f32)>,
    /// Arch: centre column, bump width, bump height scale.
    arch: Option<(f32, f32, f32)>,
    /// Row of the pad centre and the view's scale: an arch's height follows the row on the pad as
    /// the whole view sees it (high at the top, flatter below).
    pivot: f32,
    scale: f32,
    /// Low-frequency random perturbation of the angle, radians.
    wobble: SmoothNoise,
    wobble_amp: f32,
}

impl OrientationModel {
    /// Ridge direction at (x, y) on the image grid (y down), radians mod π.
    fn at(&self, x: f32, y: f32) -> f32 {
        let base = if let Some((cx, w, h)) = self.arch {
            // Ridges y = y0 − h(y)·exp(−((x−cx)/w)²): high arches at the top, flatter below.
            let t = (x - cx) / w;
            let row = if self.scale == 1.0 {
                y
            } else {
                self.pivot + (y - self.pivot) / self.scale
            };
            let height = h * (1.0 - (row / MASTER as f32)).clamp(0.15, 1.0);
            let slope = height * 2.0 * t / w * (-t * t).exp();
            slope.atan()
        } else {
            // Zero-pole in mathematical coordinates (y up): cores +½·arg, deltas −½·arg.
            let mut th = 0.0f32;
            for &(cx, cy) in &self.cores {
                th += 0.5 * (-(y - cy)).atan2(x - cx);
            }
            for &(dx, dy) in &self.deltas {
                th -= 0.5 * (-(y - dy)).atan2(x - dx);
            }
            -th
        };
        base + self.wobble_amp * self.wobble.at(x, y)
    }

    /// Draws the singular points of `class` on `shape`; `k` scales their distances (in grid
    /// pixels) from the pad centre and from each other.
    fn draw(class: Class, shape: &Shape, k: f32, rng: &mut impl Rng) -> OrientationModel {
        let (cx, cy) = (
            shape.cx + k * rng.gen_range(-6.0..6.0),
            // Evaluated as (cy − 8k) + k·u so that k = 1 gives the whole view's numbers bit for bit.
            shape.cy - 8.0 * k + k * rng.gen_range(-6.0..6.0),
        );
        let mut cores = vec![];
        let mut deltas = vec![];
        let mut arch = None;
        match class {
            Class::Arch => arch = Some((cx, k * rng.gen_range(24.0..34.0), k * rng.gen_range(10.0..18.0))),
            Class::TentedArch => {
                cores.push((cx, cy));
                deltas.push((
                    cx + k * rng.gen_range(-3.0..3.0),
                    cy + k * rng.gen_range(12.0..20.0),
                ));
            }
            Class::LeftLoop | Class::RightLoop => {
                let side = if class == Class::LeftLoop { 1.0 } else { -1.0 };
                cores.push((cx, cy));
                deltas.push((
                    cx + k * side * rng.gen_range(18.0..30.0),
                    cy + k * rng.gen_range(24.0..34.0),
                ));
            }
            Class::Whorl => {
                let sep = k * rng.gen_range(6.0..14.0);
                let tilt = k * rng.gen_range(-5.0..5.0);
                cores.push((cx - tilt, cy - sep / 2.0));
                cores.push((cx + tilt, cy + sep / 2.0));
                let dy = cy + k * rng.gen_range(24.0..34.0);
                deltas.push((
                    cx - k * rng.gen_range(22.0..32.0),
                    dy + k * rng.gen_range(-4.0..4.0),
                ));
                deltas.push((
                    cx + k * rng.gen_range(22.0..32.0),
                    dy + k * rng.gen_range(-4.0..4.0),
                ));
            }
        }
        OrientationModel {
            cores,
            deltas,
            arch,
            pivot: shape.cy,
            scale: k,
            wobble: SmoothNoise::new(MASTER, MASTER, 4, rng),
            wobble_amp: rng.gen_range(0.05..0.15),
        }
    }
}

/// The bank of Gabor filters: `N_ORI × N_PER` kernels of `KSIZE` rows of `ROW` floats.
struct Bank {
    kernels: Vec<f32>,
}

impl Bank {
    fn get() -> &'static Bank {
        static BANK: OnceLock<Bank> = OnceLock::new();
        BANK.get_or_init(Bank::build)
    }

    fn period(j: usize) -> f32 {
        PERIOD_MIN + (PERIOD_MAX - PERIOD_MIN) * j as f32 / (N_PER - 1) as f32
    }

    fn build() -> Bank {
        let mut kernels = vec![0.0f32; N_ORI * N_PER * KSIZE * ROW];
        for o in 0..N_ORI {
            // Ridge direction θ; the filter oscillates across it, along the normal.
            let theta = o as f32 * PI / N_ORI as f32;
            let (s, c) = (theta + FRAC_PI_2).sin_cos();
            for j in 0..N_PER {
                let period = Self::period(j);
                let sigma_across = 0.38 * period;
                let sigma_along = 0.9 * period;
                let k = &mut kernels[(o * N_PER + j) * KSIZE * ROW..][..KSIZE * ROW];
                let mut env = vec![0.0f32; KSIZE * KSIZE];
                let mut wave = vec![0.0f32; KSIZE * KSIZE];
                for ky in 0..KSIZE {
                    for kx in 0..KSIZE {
                        let (dx, dy) = (kx as f32 - RADIUS as f32, ky as f32 - RADIUS as f32);
                        let across = dx * c + dy * s;
                        let along = -dx * s + dy * c;
                        let r2 = dx * dx + dy * dy;
                        let e = if r2 > (RADIUS as f32 + 0.5).powi(2) {
                            0.0
                        } else {
                            (-(across * across) / (2.0 * sigma_across * sigma_across)
                                - (along * along) / (2.0 * sigma_along * sigma_along))
                                .exp()
                        };
                        env[ky * KSIZE + kx] = e;
                        wave[ky * KSIZE + kx] = (TAU * across / period).cos();
                    }
                }
                // Zero DC (a flat patch gives nothing), unit gain on a ridge pattern of this period.
                let g: Vec<f32> = env.iter().zip(&wave).map(|(e, w)| e * w).collect();
                let dc = g.iter().sum::<f32>() / env.iter().sum::<f32>();
                let g: Vec<f32> = g.iter().zip(&env).map(|(g, e)| g - dc * e).collect();
                let gain: f32 = g.iter().zip(&wave).map(|(g, w)| g * w).sum();
                for ky in 0..KSIZE {
                    for kx in 0..KSIZE {
                        k[ky * ROW + kx] = g[ky * KSIZE + kx] / gain;
                    }
                }
            }
        }
        Bank { kernels }
    }
}

/// Dot product of a kernel row with an image row, 16 lanes wide so that it vectorises.
#[inline(always)]
fn dot_rows(acc: &mut [f32; ROW], img: &[f32], k: &[f32]) {
    let img: &[f32; ROW] = img[..ROW].try_into().unwrap_or(&[0.0; ROW]);
    let k: &[f32; ROW] = k[..ROW].try_into().unwrap_or(&[0.0; ROW]);
    for i in 0..ROW {
        acc[i] += img[i] * k[i];
    }
}

/// Generates the master print of one finger from its random stream. With [`View::Whole`] the grid
/// holds the whole pad (about fourteen ridges across); with [`View::Centre`] the pad, the
/// distances between singular points and the minutiae count are twice as large in ridge periods
/// (about 28 ridges across the pad, as on a real fingertip) and the grid holds its centre. The
/// random draws are the same for both views, so a finger keeps its class and layout.
pub(crate) fn generate(rng: &mut impl Rng, view: View) -> Master {
    let k = match view {
        View::Whole => 1.0,
        View::Centre => 2.0,
    };
    let class = Class::draw(rng);
    let m = MASTER as f32;
    let (dx, dy) = (rng.gen_range(-2.0..2.0), rng.gen_range(0.0..6.0));
    let shape = Shape {
        cx: m / 2.0 + dx,
        // The centre view's grid is the window around the mean core position, 8k above the pad
        // centre: the pad centre sits that much below the grid centre.
        cy: m / 2.0
            + if view == View::Whole {
                dy
            } else {
                8.0 * k + dy - 3.0
            },
        a: k * rng.gen_range(33.0..39.0),
        b: k * rng.gen_range(44.0..52.0),
    };
    let model = OrientationModel::draw(class, &shape, k, rng);

    // Ridge period map: smooth random variation around the mean, a little wider near the bottom.
    let per_noise = SmoothNoise::new(MASTER, MASTER, 4, rng);
    let per_mean = PERIOD * rng.gen_range(0.93..1.07);
    let per_amp = rng.gen_range(0.06..0.14);

    // Kernel index per pixel: orientation quantised to N_ORI, period to N_PER.
    let mut kidx = vec![0u16; MASTER * MASTER];
    for y in 0..MASTER {
        for x in 0..MASTER {
            let (xf, yf) = (x as f32, y as f32);
            let th = model.at(xf, yf).rem_euclid(PI);
            let o = ((th / PI * N_ORI as f32).round() as usize) % N_ORI;
            let bottom = ((yf - shape.cy) / shape.b).clamp(0.0, 1.0) * 0.08;
            let p = per_mean * (1.0 + per_amp * per_noise.at(xf, yf) + bottom);
            let j = ((p - PERIOD_MIN) / (PERIOD_MAX - PERIOD_MIN) * (N_PER - 1) as f32)
                .round()
                .clamp(0.0, (N_PER - 1) as f32) as usize;
            kidx[y * MASTER + x] = (o * N_PER + j) as u16;
        }
    }

    let minutiae = Minutia::draw(&shape, &model, &kidx, view, rng);
    let ridges = grow(&kidx, &minutiae, rng);
    let centre = match view {
        View::Whole => (shape.cx, shape.cy),
        View::Centre => (shape.cx, shape.cy - 8.0 * k),
    };
    Master {
        shape,
        ridges,
        centre,
    }
}

/// A pinned minutia: a ridge ending or bifurcation, imprinted as a phase vortex
/// `cos(2π·across/period + arg(z − z₀))` in a small disc and re-imposed after every growth step.
/// Gabor growth alone heals most phase mismatches into smooth, nearly minutia-free ridges; a
/// vortex is a topological defect of a stripe pattern, so the grown ridges must keep it. Real
/// prints carry about one minutia per 20 squared ridge periods, and the minutiae (not the
/// orientation field, which fingers of one class share) are what tell two fingers apart.
#[derive(Debug, Clone, Copy)]
struct Minutia {
    x: f32,
    y: f32,
    /// Ridge direction at the minutia, radians.
    theta: f32,
    period: f32,
    /// +1 or −1: which side the extra ridge opens to (ending versus bifurcation, by phase).
    polarity: f32,
    /// Phase offset of the imprinted pattern.
    phase: f32,
}

impl Minutia {
    /// Imprint radius, in ridge periods.
    const RADIUS: f32 = 1.1;
    /// Closest distance between two minutiae, and from a minutia to a singular point, in periods.
    const SPACING: f32 = 2.5;

    /// Draws the minutiae of one finger: about one per 20 squared ridge periods of the pad (of the
    /// part of it on the grid, in the centre view).
    fn draw(
        shape: &Shape,
        model: &OrientationModel,
        kidx: &[u16],
        view: View,
        rng: &mut impl Rng,
    ) -> Vec<Minutia> {
        let on_grid = |x: f32, y: f32| (0.0..MASTER as f32).contains(&x) && (0.0..MASTER as f32).contains(&y);
        let area = match view {
            View::Whole => PI * shape.a * shape.b,
            View::Centre => (0..MASTER * MASTER)
                .filter(|i| {
                    let (x, y) = ((i % MASTER) as f32, (i / MASTER) as f32);
                    ((x - shape.cx) / shape.a).powi(2) + ((y - shape.cy) / shape.b).powi(2) <= 1.0
                })
                .count() as f32,
        } / (PERIOD * PERIOD);
        let target = (area / 20.0 * rng.gen_range(0.7..1.3)).round() as usize;
        let singular: Vec<(f32, f32)> = model.cores.iter().chain(&model.deltas).copied().collect();
        let min_d = Self::SPACING * PERIOD;
        let mut out: Vec<Minutia> = Vec::with_capacity(target);
        for _ in 0..target * 20 {
            if out.len() >= target {
                break;
            }
            let (u, v): (f32, f32) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
            let polarity = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
            let phase = rng.gen_range(0.0..TAU);
            if u * u + v * v > 0.9 {
                continue;
            }
            let (x, y) = (shape.cx + u * shape.a, shape.cy + v * shape.b);
            if !on_grid(x, y) {
                continue;
            }
            let far = |&(px, py): &(f32, f32)| (x - px).hypot(y - py) >= min_d;
            if !singular.iter().all(far) || !out.iter().map(|m| (m.x, m.y)).all(|p| far(&p)) {
                continue;
            }
            let (xi, yi) = ((x as usize).min(MASTER - 1), (y as usize).min(MASTER - 1));
            let j = kidx[yi * MASTER + xi] as usize % N_PER;
            out.push(Minutia {
                x,
                y,
                theta: model.at(x, y),
                period: Bank::period(j),
                polarity,
                phase,
            });
        }
        out
    }

    /// Blends the vortex pattern into the padded growth buffer (`pw` floats per row).
    fn imprint(&self, buf: &mut [f32], pw: usize) {
        let r = Self::RADIUS * self.period;
        let (s, c) = (self.theta + FRAC_PI_2).sin_cos();
        let (x0, x1) = (
            (self.x - r).floor().max(0.0) as usize,
            ((self.x + r).ceil() as usize).min(MASTER - 1),
        );
        let (y0, y1) = (
            (self.y - r).floor().max(0.0) as usize,
            ((self.y + r).ceil() as usize).min(MASTER - 1),
        );
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (dx, dy) = (x as f32 - self.x, y as f32 - self.y);
                let d = dx.hypot(dy);
                if d > r {
                    continue;
                }
                let across = dx * c + dy * s;
                let v = (TAU * across / self.period + self.polarity * dy.atan2(dx) + self.phase).cos();
                // Full weight in the middle, fading to the grown ridges at the rim.
                let w = 1.0 - (d / r).powi(2);
                let cell = &mut buf[(y + RADIUS) * pw + x + RADIUS];
                *cell = w * v + (1.0 - w) * *cell;
            }
        }
    }
}

/// Iterative Gabor growth (SFinGe): a few random seed spots, then repeatedly filter every pixel
/// with the Gabor kernel of its own orientation and period, amplify and clip to [-1, 1]. Ridges
/// spread from the seeds along the orientation field until they fill the grid.
fn grow(kidx: &[u16], minutiae: &[Minutia], rng: &mut impl Rng) -> Plane {
    const GAIN: f32 = 1.8;
    const MAX_ITERS: usize = 24;
    let bank = Bank::get();
    // Padded buffers: RADIUS on the top/left, RADIUS plus row slack on the right/bottom.
    let pw = MASTER + 2 * RADIUS + ROW;
    let ph = MASTER + 2 * RADIUS + 1;
    let mut cur = vec![0.0f32; pw * ph];
    let mut next = vec![0.0f32; pw * ph];
    let n_seeds = rng.gen_range(10..18);
    for _ in 0..n_seeds {
        let x = rng.gen_range(8..MASTER - 8);
        let y = rng.gen_range(8..MASTER - 8);
        let v = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
        cur[(y + RADIUS) * pw + x + RADIUS] = v;
    }
    let mut settled = 0;
    for _ in 0..MAX_ITERS {
        // Re-impose the minutiae before each step: the filter then grows ridges around them and
        // the last step's saturation leaves the pattern crisp.
        for m in minutiae {
            m.imprint(&mut cur, pw);
        }
        let mut filled = 0usize;
        for y in 0..MASTER {
            for x in 0..MASTER {
                let k = &bank.kernels[kidx[y * MASTER + x] as usize * KSIZE * ROW..][..KSIZE * ROW];
                let mut acc = [0.0f32; ROW];
                for ky in 0..KSIZE {
                    let row = &cur[(y + ky) * pw + x..][..ROW];
                    dot_rows(&mut acc, row, &k[ky * ROW..]);
                }
                let v = (GAIN * acc.iter().sum::<f32>()).clamp(-1.0, 1.0);
                filled += (v.abs() > 0.3) as usize;
                next[(y + RADIUS) * pw + x + RADIUS] = v;
            }
        }
        std::mem::swap(&mut cur, &mut next);
        // Stop a few rounds after the ridges cover the grid, so that they settle.
        if filled as f32 >= 0.97 * (MASTER * MASTER) as f32 {
            settled += 1;
            if settled >= 3 {
                break;
            }
        }
    }
    let mut out = Plane::zeros(MASTER, MASTER);
    for y in 0..MASTER {
        out.data[y * MASTER..(y + 1) * MASTER].copy_from_slice(&cur[(y + RADIUS) * pw + RADIUS..][..MASTER]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn kernels_have_zero_dc() {
        let bank = Bank::get();
        for k in bank.kernels.chunks(KSIZE * ROW) {
            let s: f32 = k.iter().sum();
            assert!(s.abs() < 1e-3, "dc {s}");
        }
    }

    #[test]
    fn minutiae_are_spread_over_the_pad_at_a_realistic_density() {
        let shape = Shape {
            cx: 64.0,
            cy: 64.0,
            a: 36.0,
            b: 48.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let model = OrientationModel::draw(Class::Whorl, &shape, 1.0, &mut rng);
        let kidx = vec![0u16; MASTER * MASTER];
        let ms = Minutia::draw(&shape, &model, &kidx, View::Whole, &mut rng);
        // About one per 20 squared periods of a 218-squared-period pad, minus rejected draws.
        assert!((6..=15).contains(&ms.len()), "{} minutiae", ms.len());
        for (i, a) in ms.iter().enumerate() {
            let (u, v) = ((a.x - shape.cx) / shape.a, (a.y - shape.cy) / shape.b);
            assert!(u * u + v * v <= 0.9, "outside the pad: {a:?}");
            for b in &ms[i + 1..] {
                assert!(
                    (a.x - b.x).hypot(a.y - b.y) >= Minutia::SPACING * PERIOD,
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn master_fills_with_ridges() {
        let m = generate(&mut ChaCha8Rng::seed_from_u64(5), View::Whole);
        // Saturated ridges and valleys everywhere but the ridge flanks (a fifth of a 5-px period).
        let strong = m.ridges.data.iter().filter(|v| v.abs() > 0.5).count();
        assert!(strong as f32 > 0.7 * m.ridges.data.len() as f32, "{strong}");
        let pos = m.ridges.data.iter().filter(|v| **v > 0.0).count() as f32 / m.ridges.data.len() as f32;
        assert!((0.3..0.7).contains(&pos), "ridge share {pos}");
    }
}
