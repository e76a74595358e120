//! A model's input contract: everything that turns a decoded image into what the encoder reads.
//!
//! A checkpoint records one [`InputSpec`], and every path from a file to the model (training,
//! evaluation, `nhm encode`, the client commands, the demo) applies it through
//! [`InputSpec::prepare`], so that no flag has to be repeated by hand and a model trained for
//! scans cannot be fed whole frames by mistake.
//!
//! # Scale
//!
//! Fingerprint sensors differ in resolution (500, 569, 1000 dpi); ridges are about 0.46 mm apart
//! on every finger, so the same finger shows them at different pixel periods. A fingerprint model
//! states the resolution it was trained at ([`InputSpec::dpi`]); a sample's own resolution comes
//! from, in this order, the file's metadata, the user (`--dpi`), or an estimate from the measured
//! ridge period ([`Resolution`]), and the image is resampled to the model's resolution before the
//! region of interest is cut. Metadata comes first because it belongs to the file; the flag is for
//! files that carry none (most datasets are stored without it, or with a converter's 72 dpi,
//! which the metadata reader ignores).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::fingerprint::singular::{reference_core, singular_points};
use crate::fingerprint::{analyse, features, FrontEnd, FrontEndParams, BACKGROUND};
use crate::preprocess::{crop_around, fit, print_centre, Fit, FIT_FILTER};

/// What kind of biometric a model reads: decides which preprocessing applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Modality {
    /// Fingerprint images (synthetic prints, optical or capacitive scans).
    #[default]
    Fingerprint,
    /// Face images.
    Face,
}

impl Modality {
    /// The name in checkpoints and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Fingerprint => "fingerprint",
            Modality::Face => "face",
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Modality {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "fingerprint" | "finger" => Ok(Modality::Fingerprint),
            "face" => Ok(Modality::Face),
            _ => Err(format!("unknown modality {s:?}: expected fingerprint or face")),
        }
    }
}

/// Where a sample's resolution came from (reported with every figure that depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DpiSource {
    /// The file's header (TIFF, PNG pHYs, JPEG JFIF, BMP).
    Metadata,
    /// Given by the user (`--dpi`).
    User,
    /// Estimated from the median ridge period of the print.
    RidgeEstimate,
}

/// Whether `dpi` is a resolution a sensor scans at (finite, 100 to 5000 dpi): what `--dpi` and
/// [`Resolution::resolve`] accept.
pub fn is_sensor_resolution(dpi: f32) -> bool {
    dpi.is_finite() && (100.0..=5000.0).contains(&dpi)
}

/// A sample's resolution and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// Dots (pixels) per inch.
    pub dpi: f32,
    /// How it was found.
    pub source: DpiSource,
}

impl Resolution {
    /// The first of `metadata`, `user` and `estimate()` that is a plausible sensor resolution
    /// (finite, 100–5000 dpi); `estimate` runs only when the first two give nothing, because it
    /// analyses the whole image.
    pub fn resolve(
        metadata: Option<f32>,
        user: Option<f32>,
        estimate: impl FnOnce() -> Option<f32>,
    ) -> Option<Resolution> {
        let plausible = |d: &f32| is_sensor_resolution(*d);
        if let Some(dpi) = metadata.filter(plausible) {
            return Some(Resolution {
                dpi,
                source: DpiSource::Metadata,
            });
        }
        if let Some(dpi) = user.filter(plausible) {
            return Some(Resolution {
                dpi,
                source: DpiSource::User,
            });
        }
        estimate().filter(plausible).map(|dpi| Resolution {
            dpi,
            source: DpiSource::RidgeEstimate,
        })
    }
}

/// A model's whole input contract, recorded in its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// What the model reads.
    #[serde(default)]
    pub modality: Modality,
    /// Side of the square grayscale image the encoder reads, in pixels.
    pub size: u32,
    /// How the region (or the whole frame) is brought to `size × size`.
    #[serde(default)]
    pub fit: Fit,
    /// The resolution the model was trained at, in dpi: every sample is resampled to it first.
    /// `None`: no scale normalisation (faces; models from before the contract existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpi: Option<f32>,
    /// Side, in pixels at `dpi`, of the square cut around the print before fitting; `None` fits
    /// the whole frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roi: Option<u32>,
    /// The fingerprint front end applied at the model's resolution before the region is cut:
    /// contextual Gabor enhancement ([`crate::fingerprint`]), which makes scans of every sensor
    /// and synthetic prints look alike (dark ridges on white, background grey). `None`: the
    /// grey levels as scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_end: Option<FrontEnd>,
    /// Where the region of interest is centred.
    #[serde(default, skip_serializing_if = "CropCentre::is_default")]
    pub centre: CropCentre,
}

/// Where a fingerprint's region of interest is centred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CropCentre {
    /// The centroid of the ridge area ([`crate::preprocess::print_centre`]): cheap, but it moves
    /// with the finger's placement and contact area.
    #[default]
    Print,
    /// The core (the singular point nearest the print's centroid, from the orientation field's
    /// Poincaré index, [`crate::fingerprint::singular`]), else the centroid: a point on the
    /// finger itself, so two impressions are cut around the same ridges, as the synthetic centre
    /// view is cut around the core.
    Core,
}

impl CropCentre {
    fn is_default(&self) -> bool {
        *self == CropCentre::Print
    }

    /// The name on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            CropCentre::Print => "print",
            CropCentre::Core => "core",
        }
    }
}

impl FromStr for CropCentre {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "print" => Ok(CropCentre::Print),
            "core" => Ok(CropCentre::Core),
            _ => Err(format!("unknown crop centre {s:?}: expected print or core")),
        }
    }
}

impl InputSpec {
    /// A contract that fits the whole frame to `size` and does nothing else: what checkpoints
    /// written before the contract existed were trained with (unless `--roi` was given by hand).
    pub fn plain(size: u32) -> Self {
        InputSpec {
            modality: Modality::Fingerprint,
            size,
            fit: Fit::CenterCropResize,
            dpi: None,
            roi: None,
            front_end: None,
            centre: CropCentre::Print,
        }
    }

    /// The contract of a fingerprint model for real scans: resampled to `dpi`, a square of `roi`
    /// pixels (at that resolution) around the print, fitted to `size`.
    pub fn scan(size: u32, dpi: f32, roi: u32) -> Self {
        InputSpec {
            modality: Modality::Fingerprint,
            size,
            fit: Fit::CenterCropResize,
            dpi: Some(dpi),
            roi: Some(roi),
            front_end: None,
            centre: CropCentre::Print,
        }
    }

    /// Side, in pixels at the model's resolution, of what the model sees: the region of interest,
    /// or the input size when the whole frame is fitted. Synthetic prints are drawn at this side
    /// when a front end must run on them at full resolution.
    pub fn view_side(&self) -> u32 {
        self.roi.unwrap_or(self.size)
    }

    /// Whether a sample's resolution matters to this contract (so callers know whether to look
    /// for one).
    pub fn needs_resolution(&self) -> bool {
        self.dpi.is_some()
    }

    /// The resolution of a decoded image read from `path` (when known), under the order of the
    /// module docs; `None` when this contract does not normalise scale.
    pub fn resolution_of(
        &self,
        path: Option<&Path>,
        img: &GrayImage,
        user_dpi: Option<f32>,
    ) -> Option<Resolution> {
        if !self.needs_resolution() {
            return None;
        }
        let meta = path.and_then(crate::loaders::image_dpi);
        Resolution::resolve(meta, user_dpi, || match self.modality {
            Modality::Fingerprint => crate::fingerprint::estimate_dpi(img),
            Modality::Face => None,
        })
    }

    /// Reads one image file and brings it to the model's input; also returns the resolution it
    /// was read at. `user_dpi` is the resolution to assume when the file's header has none.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Decode`] naming the file.
    pub fn prepare_file(
        &self,
        path: &Path,
        user_dpi: Option<f32>,
    ) -> crate::Result<(GrayImage, Option<Resolution>)> {
        let img = crate::loaders::load_image(path)?;
        let res = self.resolution_of(Some(path), &img, user_dpi);
        Ok((self.prepare(&img, res), res))
    }

    /// Brings a decoded image at resolution `res` to the model's input: resampled to the model's
    /// resolution (when both are known), the front end, the region of interest, then fitted to
    /// `size`. A sample of unknown resolution is taken to be at the model's resolution already.
    /// An image the front end cannot analyse (no ridges) becomes a uniform background image:
    /// its hashmap then matches nobody well, rather than the pipeline failing.
    pub fn prepare(&self, img: &GrayImage, res: Option<Resolution>) -> GrayImage {
        let scaled;
        let at_scale = match (self.dpi, res) {
            (Some(model), Some(r)) if (r.dpi / model - 1.0).abs() > 0.005 => {
                scaled = rescale(img, model / r.dpi);
                &scaled
            }
            _ => img,
        };
        // The front end's analysis serves the core search too; without a front end only the
        // stages the orientation field needs run (no Gabor filtering).
        let wants_core = self.centre == CropCentre::Core && self.roi.is_some();
        let mut field = None;
        let enhanced;
        let at_scale = match &self.front_end {
            Some(fe) => {
                enhanced = match analyse(at_scale, &fe.params) {
                    Ok(a) => {
                        field = Some((a.orientation, a.block_mask));
                        a.enhanced
                    }
                    Err(_) => {
                        GrayImage::from_pixel(at_scale.width(), at_scale.height(), image::Luma([BACKGROUND]))
                    }
                };
                &enhanced
            }
            None => {
                if wants_core {
                    field = features(at_scale, &FrontEndParams::default())
                        .ok()
                        .map(|f| (f.orientation.angle, f.block_mask));
                }
                at_scale
            }
        };
        match self.roi {
            Some(side) => {
                let near = print_centre(at_scale);
                let centre = match (&field, wants_core) {
                    (Some((orientation, mask)), true) => {
                        reference_core(&singular_points(orientation, mask), near).unwrap_or(near)
                    }
                    _ => near,
                };
                fit(&crop_around(at_scale, centre, side), self.size, self.fit)
            }
            None => fit(at_scale, self.size, self.fit),
        }
    }
}

/// Resamples `img` by `factor` (above 1 enlarges), never to an empty image.
pub fn rescale(img: &GrayImage, factor: f32) -> GrayImage {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || !factor.is_finite() || factor <= 0.0 {
        return img.clone();
    }
    let nw = ((w as f32 * factor).round() as u32).max(1);
    let nh = ((h as f32 * factor).round() as u32).max(1);
    image::imageops::resize(img, nw, nh, FIT_FILTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn resolution_order_is_metadata_user_estimate() {
        let r = Resolution::resolve(Some(569.0), Some(500.0), || Some(480.0)).unwrap();
        assert_eq!((r.dpi, r.source), (569.0, DpiSource::Metadata));
        let r = Resolution::resolve(None, Some(500.0), || panic!("not needed")).unwrap();
        assert_eq!((r.dpi, r.source), (500.0, DpiSource::User));
        // Implausible metadata (a converter's 72 dpi is filtered by the reader; 0 or NaN here)
        // falls through to the next source.
        let r = Resolution::resolve(Some(f32::NAN), None, || Some(480.0)).unwrap();
        assert_eq!((r.dpi, r.source), (480.0, DpiSource::RidgeEstimate));
        assert!(Resolution::resolve(Some(0.0), Some(-3.0), || Some(1e9)).is_none());
    }

    fn stripes(w: u32, h: u32, period: f32) -> GrayImage {
        GrayImage::from_fn(w, h, |x, _| {
            let v = (x as f32 * std::f32::consts::TAU / period).sin();
            Luma([(128.0 + 100.0 * v) as u8])
        })
    }

    /// Mean number of dark runs per row: the number of ridges across the input.
    fn ridges_across(img: &GrayImage) -> f32 {
        let (w, h) = img.dimensions();
        let mut runs = 0;
        for y in 0..h {
            let mut dark = false;
            for x in 0..w {
                let d = img.get_pixel(x, y).0[0] < 128;
                if d && !dark {
                    runs += 1;
                }
                dark = d;
            }
        }
        runs as f32 / h as f32
    }

    #[test]
    fn scale_normalisation_shows_the_same_ridges_at_every_resolution() {
        let spec = InputSpec::scan(64, 500.0, 144);
        // The same "finger" (period 9 px at 500 dpi) scanned at 500 and 1000 dpi.
        let at500 = stripes(300, 300, 9.0);
        let at1000 = stripes(600, 600, 18.0);
        let res = |dpi| {
            Some(Resolution {
                dpi,
                source: DpiSource::User,
            })
        };
        let a = spec.prepare(&at500, res(500.0));
        let b = spec.prepare(&at1000, res(1000.0));
        assert_eq!(a.dimensions(), (64, 64));
        assert_eq!(b.dimensions(), (64, 64));
        let (ra, rb) = (ridges_across(&a), ridges_across(&b));
        assert!((ra - 16.0).abs() <= 1.0, "{ra}");
        assert!((ra - rb).abs() <= 1.0, "{ra} vs {rb}");
        // Without the resolution, the 1000-dpi scan shows half as many ridges.
        let c = spec.prepare(&at1000, None);
        assert!(ridges_across(&c) < 10.0);
    }

    #[test]
    fn plain_spec_fits_the_whole_frame() {
        let img = stripes(120, 80, 6.0);
        let out = InputSpec::plain(32).prepare(&img, None);
        assert_eq!(out.dimensions(), (32, 32));
        assert_eq!(rescale(&GrayImage::new(0, 3), 2.0).dimensions(), (0, 3));
        assert_eq!(rescale(&img, f32::NAN).dimensions(), (120, 80));
        assert_eq!(rescale(&img, 0.001).dimensions(), (1, 1));
    }

    #[test]
    fn front_end_runs_at_the_model_scale_and_survives_blank_images() {
        let spec = InputSpec {
            front_end: Some(FrontEnd::default()),
            ..InputSpec::scan(64, 500.0, 144)
        };
        let out = spec.prepare(&stripes(300, 300, 9.0), None);
        assert_eq!(out.dimensions(), (64, 64));
        assert!(ridges_across(&out) > 12.0, "{}", ridges_across(&out));
        // Nothing to enhance: a uniform background image of the input size, no error.
        let blank = spec.prepare(&GrayImage::from_pixel(200, 200, Luma([250])), None);
        assert_eq!(blank.dimensions(), (64, 64));
        assert!(blank.pixels().all(|p| p.0[0] == BACKGROUND));
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<InputSpec>(&text).unwrap(), spec);
        assert_eq!(spec.view_side(), 144);
        assert_eq!(InputSpec::plain(64).view_side(), 64);
    }

    #[test]
    fn spec_round_trips_through_json_and_old_headers_parse() {
        let spec = InputSpec::scan(64, 500.0, 144);
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<InputSpec>(&text).unwrap(), spec);
        let old: InputSpec = serde_json::from_str(r#"{"size":64}"#).unwrap();
        assert_eq!(old, InputSpec::plain(64));
        assert!(serde_json::from_str::<InputSpec>(r#"{"size":64,"zoom":2}"#).is_err());
        assert_eq!("face".parse::<Modality>(), Ok(Modality::Face));
        assert!("iris".parse::<Modality>().is_err());
    }
}
