//! Bringing images of any size to the model's input, and into the numbers the model reads.
//!
//! # Size policy
//!
//! The encoder reads square images of one size (96×96 by default, DESIGN.md §1). Sources differ:
//! FVC2002 DB1 scans are 388×374, DB4 288×384, ORL faces 92×112 (portrait), SOCOFing about
//! 96×103. [`fit`] brings any of them to `size × size` under a [`Fit`] policy:
//!
//! - [`Fit::CenterCropResize`] (the default) cuts the largest centred square, then resizes it. It
//!   keeps the aspect ratio (ridges and faces are not squashed) and wastes no input pixels on
//!   padding; it loses the edges of the long side: 7 px of each side of a DB1 scan, 48 px top
//!   and bottom of a DB4 scan, 10 px (forehead, chin) of an ORL face. Fingerprint centres are near
//!   the middle of FVC frames, and the cropped margins are mostly background.
//! - [`Fit::Pad`] keeps the whole image: it scales the long side to `size` and fills the rest with
//!   the mean of the image's border pixels (the background: white paper for scans, the dark
//!   backdrop for ORL), so the padding does not draw an artificial edge.
//! - [`Fit::Stretch`] resizes to the square ignoring the aspect ratio; only for sources that are
//!   nearly square already.
//!
//! Resampling uses [`FIT_FILTER`], a Lanczos-3 kernel. The image crate widens the kernel by the
//! scale factor when shrinking, so shrinking a 374-px scan to 96 px averages over the source
//! pixels instead of skipping them (no aliasing of ridges into moiré). Among the anti-aliased
//! filters Lanczos-3 attenuates least the frequencies just below the new Nyquist limit, which is
//! where ridges land after a 4× reduction (a ridge period of about 9 px at 500 dpi becomes about
//! 2.3 px); a triangle (bilinear) kernel visibly greys them out (see the test
//! `lanczos_keeps_more_ridge_contrast_than_triangle`). Its overshoot is clamped to 0..=255.

use std::fmt;
use std::str::FromStr;

use image::imageops::{self, FilterType};
use image::{GrayImage, Luma};
use serde::{Deserialize, Serialize};

/// Resampling kernel used by [`fit`] (see the module docs for why Lanczos-3).
pub const FIT_FILTER: FilterType = FilterType::Lanczos3;

/// How [`fit`] brings an image of any shape to a square of the model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Cut the largest centred square, then resize it (keeps the aspect ratio, loses the edges of
    /// the long side). The default.
    #[default]
    CenterCropResize,
    /// Scale the long side to the target and pad the short side with the border's mean grey
    /// (keeps everything, wastes some input pixels).
    Pad,
    /// Resize to the square, ignoring the aspect ratio (distorts non-square images).
    Stretch,
}

impl Fit {
    /// Every policy, for help texts and tests.
    pub const ALL: [Fit; 3] = [Fit::CenterCropResize, Fit::Pad, Fit::Stretch];

    /// The policy's name on the command line and in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Fit::CenterCropResize => "center-crop-resize",
            Fit::Pad => "pad",
            Fit::Stretch => "stretch",
        }
    }
}

impl fmt::Display for Fit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fit {
    type Err = String;

    /// Parses `center-crop-resize` (also `crop`), `pad` or `stretch`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "center-crop-resize" | "centre-crop-resize" | "crop" => Ok(Fit::CenterCropResize),
            "pad" => Ok(Fit::Pad),
            "stretch" => Ok(Fit::Stretch),
            _ => Err(format!(
                "unknown fit policy {s:?}: expected center-crop-resize, pad or stretch"
            )),
        }
    }
}

/// Brings `img` to `size × size` under the policy `fit` (see the module docs).
///
/// Never panics: an image with a zero side gives a black square, `size == 0` an empty image.
pub fn fit(img: &GrayImage, size: u32, fit: Fit) -> GrayImage {
    let (w, h) = img.dimensions();
    if size == 0 {
        return GrayImage::new(0, 0);
    }
    if w == 0 || h == 0 {
        return GrayImage::new(size, size);
    }
    match fit {
        Fit::CenterCropResize => {
            let s = w.min(h);
            let crop = imageops::crop_imm(img, (w - s) / 2, (h - s) / 2, s, s).to_image();
            resize(&crop, size, size)
        }
        Fit::Stretch => resize(img, size, size),
        Fit::Pad => {
            let long = w.max(h) as f64;
            let scale = size as f64 / long;
            let nw = ((w as f64 * scale).round() as u32).clamp(1, size);
            let nh = ((h as f64 * scale).round() as u32).clamp(1, size);
            let inner = resize(img, nw, nh);
            let mut out = GrayImage::from_pixel(size, size, Luma([border_mean(img)]));
            imageops::replace(
                &mut out,
                &inner,
                ((size - nw) / 2) as i64,
                ((size - nh) / 2) as i64,
            );
            out
        }
    }
}

/// The whole preprocessing of one decoded image: the optional region of interest
/// ([`crop_to_print`]), then [`fit`] to `size × size`. Every path from a file to the model goes
/// through here, so training, evaluation, `encode` and the client see images alike.
pub fn prepare(img: &GrayImage, size: u32, policy: Fit, roi: Option<u32>) -> GrayImage {
    match roi {
        Some(side) => fit(&crop_to_print(img, side), size, policy),
        None => fit(img, size, policy),
    }
}

/// Cuts a `side × side` square centred on the print: the centroid of the image's high-contrast
/// blocks (ridges), moved inward so that the square stays inside the image; a side larger than the
/// image is cut to its short side.
///
/// Why: the encoder learns ridges at the period the synthetic prints have at its input size
/// (sixteen periods across). A 500-dpi scan has a ridge period of about 9 px, so a 144-px region
/// fitted to the input shows ridges at the period the model knows, where fitting the whole
/// 374-px frame would shrink them below what the input can resolve. Centring on the ridges rather
/// than the frame keeps an off-centre finger in view.
pub fn crop_to_print(img: &GrayImage, side: u32) -> GrayImage {
    crop_around(img, print_centre(img), side)
}

/// Cuts a `side × side` square centred on `(cx, cy)`, moved inward so that it stays inside the
/// image; a side larger than the image is cut to its short side.
pub fn crop_around(img: &GrayImage, (cx, cy): (f32, f32), side: u32) -> GrayImage {
    let (w, h) = img.dimensions();
    let side = side.min(w).min(h);
    if side == 0 {
        return GrayImage::new(0, 0);
    }
    let x0 = (cx - side as f32 / 2.0).round().clamp(0.0, (w - side) as f32) as u32;
    let y0 = (cy - side as f32 / 2.0).round().clamp(0.0, (h - side) as f32) as u32;
    imageops::crop_imm(img, x0, y0, side, side).to_image()
}

/// The centre [`crop_to_print`] uses: the centroid of the blocks whose grey-level spread is above the mean block spread (ridges, not
/// the flat background); the image centre when nothing stands out.
pub fn print_centre(img: &GrayImage) -> (f32, f32) {
    const BLOCK: u32 = 12;
    let (w, h) = img.dimensions();
    let mut blocks = vec![];
    for by in (0..h.saturating_sub(BLOCK - 1)).step_by(BLOCK as usize) {
        for bx in (0..w.saturating_sub(BLOCK - 1)).step_by(BLOCK as usize) {
            let (mut s, mut s2) = (0.0f64, 0.0f64);
            for y in by..by + BLOCK {
                for x in bx..bx + BLOCK {
                    let v = img.get_pixel(x, y).0[0] as f64;
                    s += v;
                    s2 += v * v;
                }
            }
            let n = (BLOCK * BLOCK) as f64;
            let sd = (s2 / n - (s / n).powi(2)).max(0.0).sqrt();
            blocks.push((bx as f64 + BLOCK as f64 / 2.0, by as f64 + BLOCK as f64 / 2.0, sd));
        }
    }
    let mean = blocks.iter().map(|b| b.2).sum::<f64>() / blocks.len().max(1) as f64;
    let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
    for &(x, y, sd) in blocks.iter().filter(|b| b.2 > mean) {
        sx += x * sd;
        sy += y * sd;
        sw += sd;
    }
    if sw <= 0.0 {
        return (w as f32 / 2.0, h as f32 / 2.0);
    }
    ((sx / sw) as f32, (sy / sw) as f32)
}

fn resize(img: &GrayImage, w: u32, h: u32) -> GrayImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    imageops::resize(img, w, h, FIT_FILTER)
}

/// Mean grey of the outermost rows and columns: the background colour to pad with.
fn border_mean(img: &GrayImage) -> u8 {
    let (w, h) = img.dimensions();
    let (mut sum, mut n) = (0u64, 0u64);
    for (x, y, p) in img.enumerate_pixels() {
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            sum += p.0[0] as u64;
            n += 1;
        }
    }
    (sum / n.max(1)) as u8
}

/// Model input numbers for an image: each pixel standardised by the image's own mean and
/// standard deviation, row-major. Per-image standardisation makes optical scans, synthetic
/// prints and faces look alike in brightness and contrast, which the encoder should not learn.
pub fn to_f32(img: &GrayImage) -> Vec<f32> {
    let raw = img.as_raw();
    let n = raw.len().max(1) as f32;
    let mean = raw.iter().map(|&p| p as f32).sum::<f32>() / n;
    let var = raw.iter().map(|&p| (p as f32 - mean).powi(2)).sum::<f32>() / n;
    let inv = 1.0 / (var.sqrt() + 1e-3);
    raw.iter().map(|&p| (p as f32 - mean) * inv).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_follows_the_print_not_the_frame() {
        // A striped 60×60 "print" in the bottom-right corner of a flat 200×160 frame.
        let img = GrayImage::from_fn(200, 160, |x, y| {
            Luma([if x >= 130 && y >= 90 && (x / 3) % 2 == 0 {
                30
            } else {
                220
            }])
        });
        let c = crop_to_print(&img, 80);
        assert_eq!(c.dimensions(), (80, 80));
        // The crop sits against the bottom-right edges and holds the whole print.
        let dark = c.pixels().filter(|p| p.0[0] < 100).count();
        let all_dark = img.pixels().filter(|p| p.0[0] < 100).count();
        assert_eq!(dark, all_dark);
        // Degenerate inputs: larger than the image, flat image, empty image.
        assert_eq!(crop_to_print(&img, 1000).dimensions(), (160, 160));
        let flat = GrayImage::from_pixel(50, 40, Luma([9]));
        assert_eq!(crop_to_print(&flat, 20).dimensions(), (20, 20));
        assert_eq!(crop_to_print(&GrayImage::new(0, 7), 20).dimensions(), (0, 0));
    }

    #[test]
    fn standardised_input_has_zero_mean_unit_variance() {
        let img = GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * 30 + y * 3) as u8]));
        let v = to_f32(&img);
        let mean: f32 = v.iter().sum::<f32>() / v.len() as f32;
        let var: f32 = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 1e-4);
        assert!((var - 1.0).abs() < 1e-2);
    }

    fn stripes(w: u32, h: u32, period: u32) -> GrayImage {
        GrayImage::from_fn(w, h, |x, _| {
            Luma([if (x / (period / 2).max(1)).is_multiple_of(2) {
                40
            } else {
                220
            }])
        })
    }

    fn std_dev(img: &GrayImage) -> f64 {
        let v: Vec<f64> = img.as_raw().iter().map(|&p| p as f64).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    #[test]
    fn every_policy_gives_the_target_size() {
        for (w, h) in [
            (388, 374),
            (288, 384),
            (92, 112),
            (96, 96),
            (10, 300),
            (1, 1),
            (0, 5),
        ] {
            let img = GrayImage::from_fn(w, h, |x, y| Luma([((x + y) % 256) as u8]));
            for f in Fit::ALL {
                assert_eq!(fit(&img, 96, f).dimensions(), (96, 96), "{w}x{h} {f}");
            }
        }
        assert_eq!(fit(&GrayImage::new(5, 5), 0, Fit::Pad).dimensions(), (0, 0));
    }

    #[test]
    fn center_crop_keeps_the_centre_and_drops_the_long_edges() {
        // A portrait image: black bands top and bottom, white in the middle square.
        let img = GrayImage::from_fn(100, 140, |_, y| {
            Luma([if (20..120).contains(&y) { 255 } else { 0 }])
        });
        let out = fit(&img, 50, Fit::CenterCropResize);
        assert!(out.as_raw().iter().all(|&p| p == 255));
        // Padding keeps the black bands (scaled) and pads the sides with the border mean.
        let padded = fit(&img, 70, Fit::Pad);
        assert!(padded.as_raw().iter().any(|&p| p < 30));
    }

    #[test]
    fn pad_fills_with_the_border_mean() {
        let img = GrayImage::from_fn(40, 80, |x, y| {
            let border = x == 0 || y == 0 || x == 39 || y == 79;
            Luma([if border { 200 } else { 10 }])
        });
        let out = fit(&img, 80, Fit::Pad);
        assert_eq!(out.get_pixel(0, 40).0[0], 200);
        assert_eq!(out.get_pixel(79, 40).0[0], 200);
    }

    #[test]
    fn lanczos_keeps_more_ridge_contrast_than_triangle() {
        // Ridges of period 10 px shrunk 4x: close to the new Nyquist limit, as for a 500-dpi scan.
        let img = stripes(384, 384, 10);
        let lanczos = fit(&img, 96, Fit::Stretch);
        let triangle = imageops::resize(&img, 96, 96, FilterType::Triangle);
        assert!(
            std_dev(&lanczos) > std_dev(&triangle),
            "{} vs {}",
            std_dev(&lanczos),
            std_dev(&triangle)
        );
    }

    #[test]
    fn fit_names_round_trip() {
        for f in Fit::ALL {
            assert_eq!(f.name().parse::<Fit>(), Ok(f));
        }
        assert!("squash".parse::<Fit>().is_err());
        assert_eq!(Fit::default(), Fit::CenterCropResize);
    }

    #[test]
    fn flat_image_gives_zeros_not_nan() {
        let v = to_f32(&GrayImage::from_pixel(4, 4, image::Luma([77])));
        assert!(v.iter().all(|x| *x == 0.0));
    }
}
