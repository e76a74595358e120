//! Geometric warps with bilinear sampling, shared by the generator and by [`crate::augment`].
//!
//! A [`Warp`] maps every output pixel to a point of a source image: a similarity transform
//! (rotation, scale, translation about the centres) plus an optional smooth, non-linear
//! [`DisplacementField`] (elastic distortion). One piece of code, so that an impression made by
//! the generator and a training sample made by augmentation are distorted the same way.

use image::GrayImage;
use rand::Rng;

/// A single-channel image of `f32` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plane {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

impl Plane {
    /// A plane of `w × h` zeros.
    pub fn zeros(w: usize, h: usize) -> Plane {
        Plane {
            w,
            h,
            data: vec![0.0; w * h],
        }
    }

    /// The gray values of `img` as floats (0..=255).
    pub fn from_gray(img: &GrayImage) -> Plane {
        Plane {
            w: img.width() as usize,
            h: img.height() as usize,
            data: img.as_raw().iter().map(|&p| p as f32).collect(),
        }
    }

    /// Rounds and clamps the values into an 8-bit image.
    pub fn to_gray(&self) -> GrayImage {
        let raw: Vec<u8> = self
            .data
            .iter()
            .map(|&v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        GrayImage::from_raw(self.w as u32, self.h as u32, raw)
            .unwrap_or_else(|| GrayImage::new(self.w as u32, self.h as u32))
    }

    /// Bilinear sample at (x, y), pixel centres on integer coordinates; `fill` outside.
    #[inline]
    pub fn sample(&self, x: f32, y: f32, fill: f32) -> f32 {
        // Outside by more than one pixel: all four taps are outside.
        if !(x > -1.0 && y > -1.0 && x < self.w as f32 && y < self.h as f32) {
            return fill;
        }
        let x0 = x.floor();
        let y0 = y.floor();
        let fx = x - x0;
        let fy = y - y0;
        let (x0, y0) = (x0 as isize, y0 as isize);
        let get = |xi: isize, yi: isize| -> f32 {
            if xi < 0 || yi < 0 || xi >= self.w as isize || yi >= self.h as isize {
                fill
            } else {
                self.data[yi as usize * self.w + xi as usize]
            }
        };
        let top = get(x0, y0) * (1.0 - fx) + get(x0 + 1, y0) * fx;
        let bottom = get(x0, y0 + 1) * (1.0 - fx) + get(x0 + 1, y0 + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// Mean of the outermost ring of pixels: an estimate of the background of a scan.
    pub fn border_mean(&self) -> f32 {
        if self.w == 0 || self.h == 0 {
            return 0.0;
        }
        let mut sum = 0.0f64;
        let mut n = 0usize;
        for y in 0..self.h {
            for x in 0..self.w {
                if x == 0 || y == 0 || x + 1 == self.w || y + 1 == self.h {
                    sum += self.data[y * self.w + x] as f64;
                    n += 1;
                }
            }
        }
        (sum / n.max(1) as f64) as f32
    }
}

/// A smooth random scalar field on a `w × h` pixel grid: random values on a coarse `g × g`
/// lattice, interpolated with smoothstep weights (value noise). Cheap, smooth, seeded.
#[derive(Debug, Clone)]
pub(crate) struct SmoothNoise {
    g: usize,
    values: Vec<f32>,
    sx: f32,
    sy: f32,
}

impl SmoothNoise {
    /// Values uniform in [-1, 1] on a `g × g` lattice (g ≥ 2) spanning a `w × h` image.
    pub fn new(w: usize, h: usize, g: usize, rng: &mut impl Rng) -> SmoothNoise {
        let g = g.max(2);
        let values = (0..g * g).map(|_| rng.gen_range(-1.0f32..=1.0)).collect();
        SmoothNoise {
            g,
            values,
            sx: (g - 1) as f32 / (w.max(2) - 1) as f32,
            sy: (g - 1) as f32 / (h.max(2) - 1) as f32,
        }
    }

    /// The field at pixel (x, y).
    #[inline]
    pub fn at(&self, x: f32, y: f32) -> f32 {
        let gx = (x * self.sx).clamp(0.0, (self.g - 1) as f32 - 1e-4);
        let gy = (y * self.sy).clamp(0.0, (self.g - 1) as f32 - 1e-4);
        let (ix, iy) = (gx as usize, gy as usize);
        let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
        let fx = smooth(gx - ix as f32);
        let fy = smooth(gy - iy as f32);
        let v = |i: usize, j: usize| self.values[j * self.g + i];
        let top = v(ix, iy) * (1.0 - fx) + v(ix + 1, iy) * fx;
        let bottom = v(ix, iy + 1) * (1.0 - fx) + v(ix + 1, iy + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// A smooth random displacement field (elastic distortion), tabulated on a coarse grid over the
/// output image and interpolated bilinearly. Each axis is a sum of a few low-frequency plane
/// waves (0.4 to 1.4 cycles across the image), scaled to a given RMS displacement: a stand-in
/// for the plastic distortion of skin pressed on a sensor, smooth enough not to tear ridges.
#[derive(Debug, Clone)]
pub(crate) struct DisplacementField {
    cells: usize,
    step_x: f32,
    step_y: f32,
    dx: Vec<f32>,
    dy: Vec<f32>,
}

impl DisplacementField {
    /// Number of grid cells per side; the field is tabulated at (cells+1)² points.
    const CELLS: usize = 12;
    /// Plane waves per axis.
    const WAVES: usize = 4;

    /// A random field over a `w × h` output with RMS displacement `rms` (source units) per axis.
    pub fn random(w: usize, h: usize, rms: f32, rng: &mut impl Rng) -> DisplacementField {
        let cells = Self::CELLS;
        let n = cells + 1;
        let make_axis = |rng: &mut dyn rand::RngCore| -> Vec<f32> {
            // Waves in normalised coordinates u, v ∈ [0, 1].
            let waves: Vec<(f32, f32, f32, f32)> = (0..Self::WAVES)
                .map(|_| {
                    let freq = rng.gen_range(0.4f32..1.4);
                    let dir = rng.gen_range(0.0f32..std::f32::consts::TAU);
                    let phase = rng.gen_range(0.0f32..std::f32::consts::TAU);
                    let amp = rng.gen_range(0.5f32..1.0);
                    (freq * dir.cos(), freq * dir.sin(), phase, amp)
                })
                .collect();
            // A sum of K waves with amplitudes a_k has RMS sqrt(Σ a_k² / 2).
            let power: f32 = waves.iter().map(|w| w.3 * w.3).sum::<f32>() / 2.0;
            let norm = rms / power.sqrt().max(1e-6);
            let mut out = vec![0.0; n * n];
            for j in 0..n {
                for i in 0..n {
                    let (u, v) = (i as f32 / cells as f32, j as f32 / cells as f32);
                    out[j * n + i] = norm
                        * waves
                            .iter()
                            .map(|&(fu, fv, ph, a)| {
                                a * (std::f32::consts::TAU * (fu * u + fv * v) + ph).sin()
                            })
                            .sum::<f32>();
                }
            }
            out
        };
        let dx = make_axis(rng);
        let dy = make_axis(rng);
        DisplacementField {
            cells,
            step_x: cells as f32 / (w.max(2) - 1) as f32,
            step_y: cells as f32 / (h.max(2) - 1) as f32,
            dx,
            dy,
        }
    }

    /// The displacement at output pixel (x, y).
    #[inline]
    pub fn at(&self, x: f32, y: f32) -> (f32, f32) {
        let n = self.cells + 1;
        let gx = (x * self.step_x).clamp(0.0, self.cells as f32 - 1e-4);
        let gy = (y * self.step_y).clamp(0.0, self.cells as f32 - 1e-4);
        let (ix, iy) = (gx as usize, gy as usize);
        let (fx, fy) = (gx - ix as f32, gy - iy as f32);
        let i00 = iy * n + ix;
        let lerp2 = |t: &[f32]| {
            let top = t[i00] * (1.0 - fx) + t[i00 + 1] * fx;
            let bottom = t[i00 + n] * (1.0 - fx) + t[i00 + n + 1] * fx;
            top * (1.0 - fy) + bottom * fy
        };
        (lerp2(&self.dx), lerp2(&self.dy))
    }
}

/// Maps each output pixel to a source point: `src = c_src + A · (p − c_out − t) + d(p)`, with `A`
/// a rotation by `angle` times `scale`, `t` a translation in output pixels and `d` an optional
/// elastic displacement in source pixels. Pixel centres are on integer coordinates, so the
/// identity warp between images of equal size samples every pixel exactly.
#[derive(Debug, Clone)]
pub(crate) struct Warp {
    pub out_w: usize,
    pub out_h: usize,
    /// Row-major 2×2 matrix A.
    a: [f32; 4],
    /// c_src − A · (c_out + t): the source point of output pixel (0, 0) before elastic terms.
    offset: [f32; 2],
    field: Option<DisplacementField>,
}

impl Warp {
    /// A similarity warp: content rotated by `angle` (radians), magnified `1/scale` (`scale`
    /// source pixels per output pixel), moved by `shift` output pixels, `src_center` landing at the
    /// output centre.
    pub fn similarity(
        out_w: usize,
        out_h: usize,
        src_center: (f32, f32),
        scale: f32,
        angle: f32,
        shift: (f32, f32),
    ) -> Warp {
        let (s, c) = angle.sin_cos();
        let a = [scale * c, -scale * s, scale * s, scale * c];
        let cx = (out_w as f32 - 1.0) / 2.0 + shift.0;
        let cy = (out_h as f32 - 1.0) / 2.0 + shift.1;
        let offset = [
            src_center.0 - (a[0] * cx + a[1] * cy),
            src_center.1 - (a[2] * cx + a[3] * cy),
        ];
        Warp {
            out_w,
            out_h,
            a,
            offset,
            field: None,
        }
    }

    /// Adds an elastic displacement field (source pixels) to the warp.
    pub fn with_field(mut self, field: DisplacementField) -> Warp {
        self.field = Some(field);
        self
    }

    /// Calls `f(index, x, y, src_x, src_y)` for every output pixel in row-major order.
    #[inline]
    pub fn for_each(&self, mut f: impl FnMut(usize, usize, usize, f32, f32)) {
        for y in 0..self.out_h {
            let yf = y as f32;
            let row_x = self.a[1] * yf + self.offset[0];
            let row_y = self.a[3] * yf + self.offset[1];
            for x in 0..self.out_w {
                let xf = x as f32;
                let mut sx = self.a[0] * xf + row_x;
                let mut sy = self.a[2] * xf + row_y;
                if let Some(field) = &self.field {
                    let (dx, dy) = field.at(xf, yf);
                    sx += dx;
                    sy += dy;
                }
                f(y * self.out_w + x, x, y, sx, sy);
            }
        }
    }

    /// Resamples `src` through the warp (bilinear), `fill` where the source has no pixel.
    pub fn apply(&self, src: &Plane, fill: f32) -> Plane {
        let mut out = Plane::zeros(self.out_w, self.out_h);
        self.for_each(|i, _, _, sx, sy| out.data[i] = src.sample(sx, sy, fill));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ramp(w: usize, h: usize) -> Plane {
        Plane {
            w,
            h,
            data: (0..w * h).map(|i| (i % 251) as f32).collect(),
        }
    }

    #[test]
    fn identity_warp_is_exact() {
        let p = ramp(13, 9);
        let w = Warp::similarity(13, 9, (6.0, 4.0), 1.0, 0.0, (0.0, 0.0));
        assert_eq!(w.apply(&p, -1.0), p);
    }

    #[test]
    fn shift_moves_content() {
        let p = ramp(10, 10);
        let w = Warp::similarity(10, 10, (4.5, 4.5), 1.0, 0.0, (2.0, 0.0));
        let out = w.apply(&p, -1.0);
        // Content moved right by two pixels: out(x) = src(x − 2); the left columns are fill.
        assert_eq!(out.data[3 * 10 + 5], p.data[3 * 10 + 3]);
        assert_eq!(out.data[3 * 10], -1.0);
    }

    #[test]
    fn quarter_turn_maps_centre_to_centre_and_keeps_values() {
        let p = ramp(9, 9);
        let w = Warp::similarity(9, 9, (4.0, 4.0), 1.0, std::f32::consts::FRAC_PI_2, (0.0, 0.0));
        let out = w.apply(&p, -1.0);
        assert!((out.data[4 * 9 + 4] - p.data[4 * 9 + 4]).abs() < 1e-3);
        let mut a: Vec<i32> = out.data.iter().map(|v| v.round() as i32).collect();
        let mut b: Vec<i32> = p.data.iter().map(|v| v.round() as i32).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn displacement_field_has_requested_rms() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let f = DisplacementField::random(64, 64, 2.0, &mut rng);
        let mut s = 0.0;
        let mut n = 0;
        for y in 0..64 {
            for x in 0..64 {
                let (dx, _) = f.at(x as f32, y as f32);
                s += dx * dx;
                n += 1;
            }
        }
        let rms = (s / n as f32).sqrt();
        // Low-frequency waves over one image are not ergodic: allow a wide band.
        assert!(rms > 0.5 && rms < 4.0, "rms {rms}");
    }

    #[test]
    fn smooth_noise_stays_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = SmoothNoise::new(50, 30, 4, &mut rng);
        for y in 0..30 {
            for x in 0..50 {
                let v = n.at(x as f32, y as f32);
                assert!((-1.0..=1.0).contains(&v));
            }
        }
    }
}
