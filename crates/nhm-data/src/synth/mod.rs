//! Synthetic fingerprints in the manner of SFinGe (Cappelli, Maio & Maltoni).
//!
//! Per finger, a *master print*: a Henry class (arch, tented arch, left loop, right loop,
//! whorl) with its singular points, an orientation field from the zero-pole model of Sherlock
//! and Monro, a smoothly varying ridge-period map, and ridges grown from a few random seed spots
//! by iterated, orientation- and frequency-adapted Gabor filtering around pinned minutiae (ridge
//! endings and bifurcations at about one per 20 squared ridge periods, as on real fingers; they
//! are what tells two fingers of one class apart). The image shows about sixteen ridge periods
//! across, as a 144-px region of a 500-dpi scan does. Per impression, the master is
//! placed on a virtual sensor (rotation, translation, slight scale change), distorted elastically,
//! cut to a partial contact area, its ridges thickened or thinned (wet or dry skin), and the
//! sensor adds background stains, fading and Gaussian noise.
//!
//! Every image is a pure function of `(seed, finger, impression)`: each draws from its own random
//! stream derived by hashing those numbers, so the result does not depend on thread count or order.
//!
//! ```
//! use nhm_data::synth::SynthConfig;
//! let cfg = SynthConfig { subjects: 2, impressions: 2, size: 64, ..SynthConfig::default() };
//! let ds = cfg.generate().unwrap();
//! assert_eq!(ds.samples.len(), 4);
//! assert_eq!(ds.samples[3].image, cfg.impression(1, 1));
//! ```

mod impression;
mod master;
pub(crate) mod warp;

use std::path::{Path, PathBuf};

use image::GrayImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Dataset, Error, Layout, Result, Sample};

/// Smallest and largest image side the generator accepts.
pub const MIN_SIZE: u32 = 16;
/// Largest image side the generator accepts (bigger sizes cost memory and time for no use).
pub const MAX_SIZE: u32 = 1024;

/// How much impressions of one finger differ from each other. The default is the "hard" setting:
/// raw pixels of two impressions of one finger are barely more alike than those of two fingers,
/// while most of the ridge pattern is shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Variation {
    /// Largest rotation of the finger on the sensor, degrees. Drawn from a triangular distribution
    /// on ±this (mode 0, standard deviation max/√6: with 30°, about 12°, and |angle| > 15° in a
    /// quarter of impressions).
    pub max_rotation_deg: f32,
    /// Largest shift of the finger per axis, as a fraction of the image side; triangular as above.
    pub max_translation: f32,
    /// Elastic (non-linear) distortion: RMS displacement per axis, in ridge periods, of a smooth
    /// random field of about one cycle across the image. 0 = rigid.
    pub distortion: f32,
    /// Sensor noise and contrast variation in [0, 1]: Gaussian noise (σ = 14·noise gray levels),
    /// background stains, ink fading and random background/ridge levels.
    pub noise: f32,
    /// Partial contact in [0, 1): up to this fraction of the finger pad is cut off by a straight
    /// edge at a random angle (uniform in [0, partial]).
    pub partial: f32,
    /// Ridge thickness variation in [0, 1]: dry (thin, broken) to wet (thick, merged) skin, as a
    /// global threshold shift plus smooth patches.
    pub thickness: f32,
    /// Largest relative scale change (finger pressure, sensor), triangular on ±this.
    pub max_scale: f32,
    /// Skin texture in [0, 1]: ridge breaks of dry skin (ink missing in small patches along the
    /// ridges) and creases (white lines across them), as optical scans show. 0 (the default,
    /// and the data behind the figures recorded before it existed) draws nothing.
    #[serde(default)]
    pub texture: f32,
}

impl Default for Variation {
    fn default() -> Self {
        Variation {
            max_rotation_deg: 30.0,
            // 0.12 made raw-pixel matching pure chance (EER ~50%) by itself; 0.05 keeps impressions
            // hard (raw-pixel EER still far above 20%) while leaving the encoder something to learn.
            max_translation: 0.05,
            // 0.5 held the (then ten-ridge, minutia-poor) demo encoder at 11% EER on unseen
            // fingers, 0.3 at 8% (raw-pixel EER 49% and 48%): plenty of elastic variation, less
            // that only noise could explain.
            distortion: 0.3,
            noise: 0.6,
            partial: 0.25,
            thickness: 0.6,
            max_scale: 0.05,
            texture: 0.0,
        }
    }
}

impl Variation {
    /// No variation at all: every impression is the master print, centred, clean.
    pub fn none() -> Self {
        Variation {
            max_rotation_deg: 0.0,
            max_translation: 0.0,
            distortion: 0.0,
            noise: 0.0,
            partial: 0.0,
            thickness: 0.0,
            max_scale: 0.0,
            texture: 0.0,
        }
    }

    fn validate(&self) -> Result<()> {
        let check = |name: &'static str, v: f32, lo: f32, hi: f32| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::InvalidParameter {
                    name,
                    reason: format!("{v} is outside [{lo}, {hi}]"),
                })
            }
        };
        check("max_rotation_deg", self.max_rotation_deg, 0.0, 180.0)?;
        check("max_translation", self.max_translation, 0.0, 0.5)?;
        check("distortion", self.distortion, 0.0, 3.0)?;
        check("noise", self.noise, 0.0, 1.0)?;
        check("partial", self.partial, 0.0, 0.9)?;
        check("thickness", self.thickness, 0.0, 1.0)?;
        check("max_scale", self.max_scale, 0.0, 0.5)?;
        check("texture", self.texture, 0.0, 1.0)
    }
}

/// Which part of a finger an image shows.
///
/// `Whole` (the default, and the data behind every synthetic figure so far) shows the whole pad,
/// about fourteen ridges across, with its outline: small fingers, easy to tell apart by shape.
/// `Centre` shows the central sixteen ridge periods of a pad of realistic size (about 28 ridges
/// across, singular points and minutiae spaced as on real fingers), which is what a 144-px region
/// of a 500-dpi scan (`--roi 144`) shows: train on it for real scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// The whole finger pad, outline included.
    #[default]
    Whole,
    /// The centre of a realistically sized pad, no outline.
    Centre,
}

impl View {
    /// Every view, for help texts and tests.
    pub const ALL: [View; 2] = [View::Whole, View::Centre];

    /// The view's name on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            View::Whole => "whole",
            View::Centre => "centre",
        }
    }
}

impl std::str::FromStr for View {
    type Err = Error;

    /// Parses `whole` or `centre` (also `center`).
    fn from_str(s: &str) -> Result<View> {
        match s {
            "whole" => Ok(View::Whole),
            "centre" | "center" => Ok(View::Centre),
            other => Err(Error::InvalidParameter {
                name: "view",
                reason: format!("unknown view {other:?}; expected whole or centre"),
            }),
        }
    }
}

/// What to generate: how many fingers and impressions, at what size, with what variation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Seed of everything; the same seed gives the same images, byte for byte.
    pub seed: u64,
    /// Number of fingers (subjects).
    pub subjects: u32,
    /// Impressions per finger.
    pub impressions: u32,
    /// Image side in pixels (square images, [`MIN_SIZE`]..=[`MAX_SIZE`]); about sixteen ridges across
    /// at any size.
    pub size: u32,
    /// How impressions of one finger differ.
    pub variation: Variation,
    /// Which part of the finger the images show.
    #[serde(default)]
    pub view: View,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 42,
            subjects: 100,
            impressions: 8,
            size: 96,
            variation: Variation::default(),
            view: View::Whole,
        }
    }
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash step.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random stream of one finger's master (`impression = None`) or of one impression.
fn stream(seed: u64, finger: u32, impression: Option<u32>) -> ChaCha8Rng {
    let mut h = splitmix(seed ^ 0x6e68_6d2d_7379_6e74); // "nhm-synt"
    h = splitmix(h ^ finger as u64);
    h = splitmix(h ^ impression.map_or(u64::MAX, |i| i as u64));
    ChaCha8Rng::seed_from_u64(h)
}

impl SynthConfig {
    /// Checks every field: at least one subject and impression, size in
    /// [`MIN_SIZE`]..=[`MAX_SIZE`], variation in range. Errors are [`Error::InvalidParameter`].
    pub fn validate(&self) -> Result<()> {
        if self.subjects == 0 {
            return Err(Error::InvalidParameter {
                name: "subjects",
                reason: "must be at least 1".into(),
            });
        }
        if self.impressions == 0 {
            return Err(Error::InvalidParameter {
                name: "impressions",
                reason: "must be at least 1".into(),
            });
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(Error::InvalidParameter {
                name: "size",
                reason: format!("{} is outside [{MIN_SIZE}, {MAX_SIZE}]", self.size),
            });
        }
        self.variation.validate()
    }

    /// Generates the whole dataset in memory, in parallel (rayon), deterministically: one master
    /// print per finger, shared by all its impressions. Samples are in finger then impression order.
    pub fn generate(&self) -> Result<Dataset> {
        self.generate_with(&|_| {})
    }

    /// As [`SynthConfig::generate`], calling `progress(impressions)` after each finger is done
    /// (from worker threads, in any order): for progress bars.
    pub fn generate_with(&self, progress: &(dyn Fn(u32) + Sync)) -> Result<Dataset> {
        self.validate()?;
        let fingers: Vec<Vec<Sample>> = (0..self.subjects)
            .into_par_iter()
            .map(|finger| {
                let m = master::generate(&mut stream(self.seed, finger, None), self.view);
                let samples = (0..self.impressions)
                    .into_par_iter()
                    .map(|imp| self.sample(finger, imp, self.render(&m, finger, imp)))
                    .collect();
                progress(self.impressions);
                samples
            })
            .collect();
        Ok(Dataset {
            layout: Layout::Synthetic,
            root: None,
            subjects: (0..self.subjects).map(|f| (f + 1).to_string()).collect(),
            samples: fingers.into_iter().flatten().collect(),
            problems: vec![],
        })
    }

    /// One impression (0-based finger and impression numbers), identical to the matching sample
    /// of [`SynthConfig::generate`]. Builds the finger's master print on each call, so prefer
    /// `generate` for many images. An out-of-range size is clamped to [`MIN_SIZE`]..=[`MAX_SIZE`];
    /// call [`SynthConfig::validate`] first to reject it instead.
    pub fn impression(&self, finger: u32, impression: u32) -> GrayImage {
        let m = master::generate(&mut stream(self.seed, finger, None), self.view);
        self.render(&m, finger, impression)
    }

    /// The master print of a finger rendered without any variation (centred, clean): the common
    /// ridge pattern of all its impressions. For tests and figures.
    pub fn master_image(&self, finger: u32) -> GrayImage {
        let m = master::generate(&mut stream(self.seed, finger, None), self.view);
        let size = self.size.clamp(MIN_SIZE, MAX_SIZE);
        impression::render(
            &m,
            size,
            &Variation::none(),
            &mut stream(self.seed, finger, Some(0)),
        )
    }

    fn render(&self, m: &master::Master, finger: u32, imp: u32) -> GrayImage {
        let size = self.size.clamp(MIN_SIZE, MAX_SIZE);
        impression::render(
            m,
            size,
            &self.variation,
            &mut stream(self.seed, finger, Some(imp)),
        )
    }

    fn sample(&self, finger: u32, imp: u32, image: GrayImage) -> Sample {
        Sample {
            subject: finger,
            subject_label: (finger + 1).to_string(),
            index: imp,
            image,
            original_size: (self.size, self.size),
            source: None,
            dpi: None,
        }
    }
}

/// One file in a [`Manifest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestEntry {
    /// File name relative to the manifest's folder.
    pub file: String,
    /// The sample's subject index (0-based).
    pub subject: u32,
    /// The sample's subject label.
    pub subject_label: String,
    /// The sample's index within its subject (0-based).
    pub index: u32,
}

/// `manifest.json`, written beside the images: how they were made, and which file is which.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Always "nhm-synth".
    pub generator: String,
    /// The generator's configuration, when known.
    pub config: Option<SynthConfig>,
    /// The seed, when known (repeated from the config for quick reading).
    pub seed: Option<u64>,
    /// Every image written, in sample order.
    pub files: Vec<ManifestEntry>,
}

/// Writes `ds` as an FVC-style folder: `{finger}_{impression}.png` (1-based) plus `manifest.json`.
/// Creates `out_dir`. Returns the manifest's path.
pub fn write_fvc(ds: &Dataset, out_dir: &Path) -> Result<PathBuf> {
    write_fvc_with(ds, out_dir, None, &|| {})
}

/// As [`write_fvc`], recording `config` (and its seed) in the manifest and calling `progress()`
/// after each image (from worker threads).
pub fn write_fvc_with(
    ds: &Dataset,
    out_dir: &Path,
    config: Option<&SynthConfig>,
    progress: &(dyn Fn() + Sync),
) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let files: Vec<ManifestEntry> = ds
        .samples
        .iter()
        .map(|s| ManifestEntry {
            file: format!("{}_{}.png", s.subject + 1, s.index + 1),
            subject: s.subject,
            subject_label: s.subject_label.clone(),
            index: s.index,
        })
        .collect();
    ds.samples
        .par_iter()
        .zip(files.par_iter())
        .try_for_each(|(s, f)| {
            let path = out_dir.join(&f.file);
            s.image
                .save(&path)
                .map_err(|source| Error::Encode { path, source })?;
            progress();
            Ok::<(), Error>(())
        })?;
    let manifest = Manifest {
        generator: "nhm-synth".into(),
        config: config.cloned(),
        seed: config.map(|c| c.seed),
        files,
    };
    let path = out_dir.join("manifest.json");
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::io(&path, e.into()))?;
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// A grid of samples for looking at: a row per subject (first `max_subjects`), a column per
/// sample (first `max_impressions`), 2-pixel dark separators. Cells take the largest image size.
pub fn contact_sheet(ds: &Dataset, max_subjects: usize, max_impressions: usize) -> GrayImage {
    const SEP: u32 = 2;
    let rows = ds.n_subjects().min(max_subjects);
    let cols = ds
        .samples_per_subject()
        .iter()
        .take(rows)
        .copied()
        .max()
        .unwrap_or(0)
        .min(max_impressions);
    let cw = ds.samples.iter().map(|s| s.image.width()).max().unwrap_or(0);
    let ch = ds.samples.iter().map(|s| s.image.height()).max().unwrap_or(0);
    let w = cols as u32 * (cw + SEP) + SEP;
    let h = rows as u32 * (ch + SEP) + SEP;
    let mut sheet = GrayImage::from_pixel(w, h, image::Luma([40]));
    for s in &ds.samples {
        let (r, c) = (s.subject as usize, s.index as usize);
        if r >= rows || c >= cols {
            continue;
        }
        let (x0, y0) = (SEP + c as u32 * (cw + SEP), SEP + r as u32 * (ch + SEP));
        image::imageops::replace(&mut sheet, &s.image, x0 as i64, y0 as i64);
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_every_input() {
        use rand::RngCore;
        let a = stream(1, 2, Some(3)).next_u64();
        assert_ne!(a, stream(2, 2, Some(3)).next_u64());
        assert_ne!(a, stream(1, 3, Some(3)).next_u64());
        assert_ne!(a, stream(1, 2, Some(4)).next_u64());
        assert_ne!(a, stream(1, 2, None).next_u64());
        assert_eq!(a, stream(1, 2, Some(3)).next_u64());
    }

    #[test]
    fn contact_sheet_has_a_cell_per_sample() {
        let cfg = SynthConfig {
            subjects: 3,
            impressions: 2,
            size: 32,
            ..SynthConfig::default()
        };
        let ds = cfg.generate().unwrap();
        let sheet = contact_sheet(&ds, 2, 5);
        assert_eq!(sheet.dimensions(), (2 * 34 + 2, 2 * 34 + 2));
    }
}
