//! A classic fingerprint image front end: segmentation, orientation, ridge period, Gabor enhancement.
//!
//! Optical scanners differ in background (white paper-like for FVC2002 DB1, textured grey for the
//! U.are.U), in contrast and in resolution; the project's synthetic prints differ again. This
//! module brings them to one look (dark ridges on white valleys, neutral grey background) and
//! measures the scan's ridge period, from which the resolution can be estimated ([`estimate_dpi`]).
//!
//! # Pipeline
//!
//! The image is cut into square blocks of [`FrontEndParams::block`] pixels (16 by default, the
//! block size of Hong et al.); every quantity below is one value per block, held in a
//! [`BlockMap`], and interpolated bilinearly between block centres where a per-pixel value is
//! needed.
//!
//! 1. **Gradients and block statistics** ([`orientation`]): Sobel gradients, and over a window
//!    centred on each block the least-squares orientation sums `Gxx`, `Gyy`, `Gxy` (Kass & Witkin
//!    1987; Bazen & Gerez 2002), plus the intensity contrast (standard deviation).
//! 2. **Orientation** ([`orientation`]): the doubled-angle vector `(Gxx − Gyy, 2 Gxy)` of each
//!    block, normalised by the gradient energy, is smoothed with a Gaussian over neighbouring
//!    blocks (Hong, Wan & Jain 1998, §2.3). Its angle halved and turned by 90° is the ridge
//!    direction; its length after smoothing is the coherence (1 for parallel ridges, 0 for noise).
//! 3. **Ridge period** ([`frequency`]): in each block an oriented window is read across the
//!    ridges and averaged along them (the "x-signature" of Hong et al.); the strongest Fourier
//!    component between [`FrontEndParams::min_period`] and [`FrontEndParams::max_period`] gives
//!    the period, and the share of the signature's power it carries gives a quality in 0..=1.
//!    NIST MINDTCT (Watson et al., NISTIR 7392) likewise fits discrete waves to oriented block
//!    signatures. Blocks without a clear period are filled from their neighbours.
//! 4. **Segmentation** ([`mod@segment`]): a block belongs to the print when its contrast is a fair
//!    share of the image's typical contrast and it shows ridges (a clear period, or coherent
//!    gradients with some periodicity). Uniform white backgrounds fail the contrast test, noisy dark ones the ridge test.
//!    The block mask is then cleaned as SourceAFIS does (Važan, sourceafis.machinezoo.com): a
//!    majority vote over 3×3 blocks, removal of small islands, filling of holes.
//! 5. **Enhancement** ([`mod@enhance`]): the image is normalised to zero local mean and unit local
//!    standard deviation, then each foreground pixel is filtered with the even-symmetric Gabor
//!    kernel tuned to its local orientation and period (Hong et al. 1998, §2.6), taken from a bank
//!    quantised in orientation and period. The response is mapped to 8 bits with a soft clip.
//!
//! [`analyse`] runs all stages and returns an [`Analysis`]; [`enhance_print`] is the one-call
//! version with default parameters.
//!
//! # Conventions
//!
//! - Ridges are dark in the input (as on every optical scanner) and dark in the output; valleys
//!   are light; pixels outside the mask are [`BACKGROUND`] (128).
//! - Orientation angles are ridge directions in radians in `[0, π)`, measured from the +x axis
//!   towards +y in image coordinates (y grows downwards, so positive angles turn clockwise on
//!   screen).
//! - Periods are in pixels (the distance between neighbouring ridge centres).
//!
//! # References
//!
//! - L. Hong, Y. Wan, A. K. Jain, "Fingerprint Image Enhancement: Algorithm and Performance
//!   Evaluation", IEEE TPAMI 20(8), 1998.
//! - C. I. Watson et al., "User's Guide to NIST Biometric Image Software (NBIS)", NISTIR 7392,
//!   2007 (MINDTCT).
//! - R. Važan, SourceAFIS algorithm documentation (segmentation by block contrast and voting).
//! - D. Maltoni, D. Maio, A. K. Jain, S. Prabhakar, "Handbook of Fingerprint Recognition",
//!   2nd ed., Springer 2009, §3.5 (ridge frequency).

use image::GrayImage;
use serde::{Deserialize, Serialize};

pub mod enhance;
pub mod frequency;
pub mod orientation;
pub mod segment;
pub mod singular;

#[cfg(test)]
mod tests;

pub use enhance::enhance;
pub use frequency::{estimate_dpi, ridge_period, RidgePeriod, NOMINAL_DPI, NOMINAL_PERIOD_PX};
pub use orientation::{orientation_field, OrientationField};
pub use segment::segment;

/// Grey level given to pixels outside the print in enhanced images: neutral, neither ridge nor
/// valley, so a model sees no edge where the print ends.
pub const BACKGROUND: u8 = 128;

/// Result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the front end could not analyse an image.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image is smaller than two blocks on one side: too small to hold measurable ridges.
    #[error("image {width}x{height} is too small for the fingerprint front end (need at least {min}x{min})")]
    TooSmall {
        /// Width of the image given.
        width: u32,
        /// Height of the image given.
        height: u32,
        /// Smallest accepted side, in pixels.
        min: u32,
    },
    /// No block of the image looks like a fingerprint (for example a blank or constant image).
    #[error("no fingerprint area found: {foreground} foreground blocks of {blocks}")]
    NoForeground {
        /// Blocks classified as print.
        foreground: usize,
        /// Blocks in the image.
        blocks: usize,
    },
    /// A parameter is out of its valid range.
    #[error("invalid front-end parameter `{name}` = {value}: {expected}")]
    InvalidParam {
        /// Field of [`FrontEndParams`].
        name: &'static str,
        /// The value given.
        value: f32,
        /// The accepted range.
        expected: &'static str,
    },
}

/// Settings of the front end. Serialisable so that a model checkpoint can record how its inputs
/// were prepared; the defaults suit 500 dpi scans (ridge period 7–12 px) and tolerate 250–1000 dpi.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FrontEndParams {
    /// Block size in pixels: the grid on which orientation, period and mask are estimated.
    pub block: u32,
    /// Side of the window centred on each block over which gradients and contrast are summed
    /// (larger than `block` so neighbouring windows overlap and estimates vary smoothly).
    pub window: u32,
    /// Standard deviation, in blocks, of the Gaussian that smooths the doubled-angle orientation
    /// vectors.
    pub orientation_sigma: f32,
    /// Shortest ridge period searched, in pixels (Hong et al.: 3 px at 500 dpi).
    pub min_period: f32,
    /// Longest ridge period searched, in pixels (Hong et al.: 25 px at 500 dpi).
    pub max_period: f32,
    /// Length in pixels of the oriented signature read across the ridges in each block.
    pub signature_length: u32,
    /// Width in pixels over which the signature is averaged along the ridges.
    pub signature_width: u32,
    /// Smallest spectral quality (share of the signature's power in its peak, 0..=1) for a
    /// block's period to count as measured.
    pub min_period_quality: f32,
    /// Smallest block contrast (standard deviation, grey levels) for a foreground block.
    pub mask_min_contrast: f32,
    /// Smallest block contrast as a fraction of the image's 90th-percentile block contrast.
    pub mask_relative_contrast: f32,
    /// A foreground block needs at least this coherence (with half of `mask_min_quality`), or
    /// the full `mask_min_quality`.
    pub mask_min_coherence: f32,
    /// Period quality that alone makes a block foreground (if its contrast passes); half of it
    /// suffices together with `mask_min_coherence`.
    pub mask_min_quality: f32,
    /// Connected foreground regions smaller than this fraction of the largest are dropped.
    pub mask_min_island: f32,
    /// Blocks eroded from the mask border after cleaning (0 keeps it as found).
    pub mask_erode: u32,
    /// Number of orientations in the Gabor bank (evenly spaced over 180°).
    pub gabor_orientations: u32,
    /// Ratio between neighbouring periods in the Gabor bank (1.06: 6% steps).
    pub gabor_period_step: f32,
    /// Gaussian envelope along the ridges, as a multiple of the period (longer: smoother ridges).
    pub gabor_sigma_along: f32,
    /// Gaussian envelope across the ridges, as a multiple of the period.
    pub gabor_sigma_across: f32,
    /// Kernel radius in envelope standard deviations.
    pub gabor_radius: f32,
    /// Gain of the soft clip `128 + 127·tanh(gain·response)` that maps the filter response,
    /// in units of local standard deviation, to 8 bits.
    pub output_gain: f32,
}

impl Default for FrontEndParams {
    fn default() -> Self {
        FrontEndParams {
            block: 16,
            window: 24,
            orientation_sigma: 1.0,
            min_period: 3.0,
            max_period: 25.0,
            signature_length: 48,
            signature_width: 16,
            min_period_quality: 0.3,
            mask_min_contrast: 3.0,
            mask_relative_contrast: 0.3,
            mask_min_coherence: 0.3,
            mask_min_quality: 0.4,
            mask_min_island: 0.25,
            mask_erode: 0,
            gabor_orientations: 16,
            gabor_period_step: 1.06,
            gabor_sigma_along: 0.5,
            gabor_sigma_across: 0.4,
            gabor_radius: 2.0,
            output_gain: 1.5,
        }
    }
}

impl FrontEndParams {
    /// Checks every field against its valid range; the stages assume they hold.
    pub fn validate(&self) -> Result<()> {
        fn check(name: &'static str, value: f32, ok: bool, expected: &'static str) -> Result<()> {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(Error::InvalidParam {
                    name,
                    value,
                    expected,
                })
            }
        }
        let p = self;
        check("block", p.block as f32, (4..=64).contains(&p.block), "4..=64")?;
        check(
            "window",
            p.window as f32,
            p.window >= p.block && p.window <= 4 * p.block,
            "block..=4*block",
        )?;
        check(
            "orientation_sigma",
            p.orientation_sigma,
            (0.0..=8.0).contains(&p.orientation_sigma),
            "0..=8",
        )?;
        check(
            "min_period",
            p.min_period,
            (2.0..=32.0).contains(&p.min_period),
            "2..=32",
        )?;
        check(
            "max_period",
            p.max_period,
            p.max_period > p.min_period && p.max_period <= 64.0,
            "min_period<..=64",
        )?;
        check(
            "signature_length",
            p.signature_length as f32,
            (8..=256).contains(&p.signature_length),
            "8..=256",
        )?;
        check(
            "signature_width",
            p.signature_width as f32,
            (1..=128).contains(&p.signature_width),
            "1..=128",
        )?;
        for (name, v) in [
            ("min_period_quality", p.min_period_quality),
            ("mask_relative_contrast", p.mask_relative_contrast),
            ("mask_min_coherence", p.mask_min_coherence),
            ("mask_min_quality", p.mask_min_quality),
            ("mask_min_island", p.mask_min_island),
        ] {
            check(name, v, (0.0..=1.0).contains(&v), "0..=1")?;
        }
        check(
            "mask_min_contrast",
            p.mask_min_contrast,
            (0.0..=255.0).contains(&p.mask_min_contrast),
            "0..=255",
        )?;
        check("mask_erode", p.mask_erode as f32, p.mask_erode <= 8, "0..=8")?;
        check(
            "gabor_orientations",
            p.gabor_orientations as f32,
            (4..=64).contains(&p.gabor_orientations),
            "4..=64",
        )?;
        check(
            "gabor_period_step",
            p.gabor_period_step,
            p.gabor_period_step > 1.005 && p.gabor_period_step <= 1.5,
            "1.005<..=1.5",
        )?;
        for (name, v) in [
            ("gabor_sigma_along", p.gabor_sigma_along),
            ("gabor_sigma_across", p.gabor_sigma_across),
        ] {
            check(name, v, v > 0.05 && v <= 2.0, "0.05<..=2")?;
        }
        check(
            "gabor_radius",
            p.gabor_radius,
            p.gabor_radius > 0.5 && p.gabor_radius <= 4.0,
            "0.5<..=4",
        )?;
        check(
            "output_gain",
            p.output_gain,
            p.output_gain > 0.0 && p.output_gain <= 100.0,
            "0<..=100",
        )?;
        Ok(())
    }

    /// Smallest image side accepted: two blocks, so that there is a neighbourhood to smooth over.
    pub fn min_side(&self) -> u32 {
        2 * self.block
    }
}

/// One value per block of a regular grid laid over an image. Block `(col, row)` covers pixels
/// `col*block .. (col+1)*block` by `row*block .. (row+1)*block` (the last row and column may be
/// cut by the image border); its centre is at `(col*block + (block-1)/2, row*block + (block-1)/2)`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockMap<T> {
    /// Blocks across.
    pub cols: usize,
    /// Blocks down.
    pub rows: usize,
    /// Block side in pixels.
    pub block: u32,
    /// Values, row by row (`rows * cols` of them).
    pub data: Vec<T>,
}

impl<T: Clone> BlockMap<T> {
    /// A grid covering a `width × height` image with blocks of `block` pixels, every value `fill`.
    pub fn new(width: u32, height: u32, block: u32, fill: T) -> Self {
        let b = block.max(1);
        let cols = width.div_ceil(b) as usize;
        let rows = height.div_ceil(b) as usize;
        BlockMap {
            cols,
            rows,
            block: b,
            data: vec![fill; cols * rows],
        }
    }

    /// The same grid with every value `fill`.
    pub fn like<U: Clone>(&self, fill: U) -> BlockMap<U> {
        BlockMap {
            cols: self.cols,
            rows: self.rows,
            block: self.block,
            data: vec![fill; self.cols * self.rows],
        }
    }

    /// The value of block `(col, row)`, or `None` outside the grid.
    pub fn get(&self, col: usize, row: usize) -> Option<&T> {
        if col < self.cols && row < self.rows {
            self.data.get(row * self.cols + col)
        } else {
            None
        }
    }

    /// Centre of block `(col, row)` in pixel coordinates.
    pub fn centre(&self, col: usize, row: usize) -> (f32, f32) {
        let half = (self.block as f32 - 1.0) / 2.0;
        (
            col as f32 * self.block as f32 + half,
            row as f32 * self.block as f32 + half,
        )
    }
}

impl BlockMap<f32> {
    /// Bilinear interpolation between block centres at pixel position `(x, y)`; positions beyond
    /// the outer centres take the nearest edge value.
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        if self.data.is_empty() {
            return 0.0;
        }
        let b = self.block as f32;
        let half = (b - 1.0) / 2.0;
        let fx = ((x - half) / b).clamp(0.0, (self.cols - 1) as f32);
        let fy = ((y - half) / b).clamp(0.0, (self.rows - 1) as f32);
        let (c0, r0) = (fx.floor() as usize, fy.floor() as usize);
        let (c1, r1) = ((c0 + 1).min(self.cols - 1), (r0 + 1).min(self.rows - 1));
        let (tx, ty) = (fx - c0 as f32, fy - r0 as f32);
        let v = |c: usize, r: usize| self.data[r * self.cols + c];
        let top = v(c0, r0) * (1.0 - tx) + v(c1, r0) * tx;
        let bottom = v(c0, r1) * (1.0 - tx) + v(c1, r1) * tx;
        top * (1.0 - ty) + bottom * ty
    }
}

/// Everything the front end measured on one image.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Foreground mask at pixel resolution: 255 on the print, 0 elsewhere.
    pub mask: GrayImage,
    /// Foreground mask per block.
    pub block_mask: BlockMap<bool>,
    /// Smoothed ridge orientation per block, radians in `[0, π)` (see the module conventions).
    pub orientation: BlockMap<f32>,
    /// Orientation coherence per block, 0..=1.
    pub coherence: BlockMap<f32>,
    /// Ridge period per block in pixels: measured where clear, filled from neighbours elsewhere
    /// on the print, 0 outside the mask.
    pub period: BlockMap<f32>,
    /// Spectral quality of each block's period measurement, 0..=1.
    pub period_quality: BlockMap<f32>,
    /// Median of the clearly measured periods on the print, in pixels; `None` when fewer than
    /// [`frequency::MIN_PERIOD_BLOCKS`] blocks gave a clear period.
    pub median_period: Option<f32>,
    /// Gabor-enhanced image, same size as the input: dark ridges, white valleys, background 128.
    pub enhanced: GrayImage,
}

impl Analysis {
    /// Resolution estimated from the median period (see [`estimate_dpi`]).
    pub fn dpi(&self) -> Option<f32> {
        self.median_period.map(frequency::dpi_from_period)
    }
}

/// The front end with fixed parameters: convenient to keep beside a model and call per image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrontEnd {
    /// Parameters used by every call.
    pub params: FrontEndParams,
}

impl FrontEnd {
    /// A front end with the given parameters, checked once here.
    pub fn new(params: FrontEndParams) -> Result<Self> {
        params.validate()?;
        Ok(FrontEnd { params })
    }

    /// Runs every stage on `img` (see [`analyse`]).
    pub fn analyse(&self, img: &GrayImage) -> Result<Analysis> {
        analyse(img, &self.params)
    }
}

/// Runs segmentation, orientation, period estimation and Gabor enhancement on `img`.
///
/// Fails with [`Error::TooSmall`] when a side is under [`FrontEndParams::min_side`], with
/// [`Error::NoForeground`] when nothing in the image looks like ridges (blank or constant
/// images), and with [`Error::InvalidParam`] for out-of-range parameters.
pub fn analyse(img: &GrayImage, params: &FrontEndParams) -> Result<Analysis> {
    let f = features(img, params)?;
    let enhanced = enhance::gabor_filter(&f, params);
    Ok(Analysis {
        mask: f.mask,
        block_mask: f.block_mask,
        orientation: f.orientation.angle,
        coherence: f.orientation.coherence,
        period: f.period.period,
        period_quality: f.period.quality,
        median_period: f.period.median,
        enhanced,
    })
}

/// Enhances `img` with default parameters: dark continuous ridges on white, background 128.
///
/// Never fails: an image that cannot be analysed (too small, no ridges) comes back as a uniform
/// [`BACKGROUND`] image of the same size, i.e. "no print here".
pub fn enhance_print(img: &GrayImage) -> GrayImage {
    match analyse(img, &FrontEndParams::default()) {
        Ok(a) => a.enhanced,
        Err(_) => GrayImage::from_pixel(img.width(), img.height(), image::Luma([BACKGROUND])),
    }
}

/// Intermediate results shared by the stages (everything but the enhanced image).
pub(crate) struct Features {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Image normalised to zero local mean and unit local standard deviation.
    pub(crate) normalised: Vec<f32>,
    pub(crate) block_mask: BlockMap<bool>,
    pub(crate) mask: GrayImage,
    pub(crate) orientation: OrientationField,
    /// Smoothed doubled-angle vector per block (x: cos 2φ part, y: sin 2φ part), for
    /// interpolation between blocks.
    pub(crate) vectors: (BlockMap<f32>, BlockMap<f32>),
    pub(crate) period: RidgePeriod,
    /// Period per block filled over the whole grid (background included), for interpolation.
    pub(crate) period_filled: BlockMap<f32>,
}

/// Runs every stage but the enhancement.
pub(crate) fn features(img: &GrayImage, params: &FrontEndParams) -> Result<Features> {
    params.validate()?;
    let (width, height) = img.dimensions();
    let min = params.min_side();
    if width < min || height < min {
        return Err(Error::TooSmall { width, height, min });
    }
    let stats = orientation::block_stats(img, params);
    let normalised = enhance::normalise(img, params.block as usize);
    // First orientation pass over every block: the mask does not exist yet.
    let first = orientation::smooth(&stats, None, params.orientation_sigma);
    // Blocks too flat to be print are not worth a period measurement.
    let contrasted = segment::contrasted(&stats.contrast, params);
    let raw_period = frequency::block_periods(&normalised, width, height, &first.angle, &contrasted, params);
    let block_mask = segment::block_mask(&contrasted, &first.coherence, &raw_period.quality, params);
    let foreground = block_mask.data.iter().filter(|&&m| m).count();
    if foreground == 0 {
        return Err(Error::NoForeground {
            foreground,
            blocks: block_mask.data.len(),
        });
    }
    // Second pass: only the print votes, so a noisy background does not bend edge orientations.
    let weights = block_mask.like(0.0f32);
    let weights = BlockMap {
        data: block_mask
            .data
            .iter()
            .map(|&m| if m { 1.0 } else { 0.0 })
            .collect(),
        ..weights
    };
    let second = orientation::smooth(&stats, Some(&weights), params.orientation_sigma);
    let (period, period_filled) = frequency::finish(raw_period, &block_mask, params);
    let mask = segment::pixel_mask(&block_mask, width, height);
    Ok(Features {
        width,
        height,
        normalised,
        block_mask,
        mask,
        orientation: OrientationField {
            angle: second.angle,
            coherence: second.coherence,
        },
        vectors: (second.vx, second.vy),
        period,
        period_filled,
    })
}
