//! Real datasets on disk: FVC, Neurotechnology, SOCOFing, AT&T/ORL faces, one folder per
//! identity, and any naming the user describes.
//!
//! [`open`] recognises the layout of a folder ([`detect_layout`]), reads every image in it in
//! parallel, converts it to 8-bit grey and brings it to the model's input size with
//! [`crate::preprocess::fit`]. [`inspect`] does the same reading without keeping the images and
//! says what it found, for `nhm dataset inspect`. [`image_dpi`] reads the resolution a file's
//! header states, which every loaded [`Sample`] carries in [`Sample::dpi`].
//!
//! # Layouts
//!
//! | layout | files | identity |
//! |---|---|---|
//! | [`Layout::Fvc`] | `{finger}_{impression}.{ext}` directly in the folder (`101_1.tif`, zero-padded `001_1.jpg`) | the finger number, spelt as in the file (`001`) |
//! | [`Layout::PersonFingerScan`] | `{person}_{finger}_{scan}.{ext}` directly in the folder (Neurotechnology `012_3_1.png`) | (person, finger), labelled `012_3` as spelt in the file, so the same finger read by two sensors has the same label in both folders |
//! | [`Layout::Socofing`] | `{subject}__{M\|F}_{Left\|Right}_{finger}_finger[_{CR\|Obl\|Zcut}].BMP`, in any sub-folder (`Real/`, `Altered/Altered-Easy/`, ...) | (subject, hand, finger), labelled `1_Left_index` |
//! | [`Layout::Orl`] | `s{N}/{k}.pgm` | the folder `s{N}` |
//! | [`Layout::FolderPerIdentity`] | any image anywhere below a first-level sub-folder | the first-level sub-folder |
//! | [`Layout::Custom`] | whatever [`LoadOptions::naming`] describes: a template `{subject}_{finger}_{sample}` or a regular expression `re:...` ([`NamingRule`]) | the subject and every other named field, joined with `_` |
//!
//! Extensions are matched case-insensitively and any format this build decodes (PNG, TIFF, BMP,
//! PNM/PGM, JPEG, GIF, WebP) is accepted in every layout. [`detect_layout`] picks the first of
//! SOCOFing, FVC, person-finger-scan, ORL and folder-per-identity whose naming rule fits more
//! than half of the readable images; a custom layout is never detected, only asked for.
//!
//! # Order
//!
//! Subjects are in natural order of their labels (`s2` before `s10`, finger `101` before `110`,
//! `009` before `010`; person-finger-scan by person number, then finger number; SOCOFing by
//! subject number, then Left before Right, then thumb, index, middle, ring, little; custom by
//! natural order of the identity label). Samples within a subject are sorted by impression /
//! scan / image number (SOCOFing: the real print, then CR, Obl, Zcut alterations, each in natural
//! path order; custom: the `{sample}` field when it is a number), then by path. [`Sample::subject`]
//! counts subjects densely from 0 and [`Sample::index`] samples from 0 within their subject,
//! after unreadable files have been dropped, so both are always dense.
//!
//! # Bad input
//!
//! Nothing in a dataset folder makes these functions panic. The policy:
//!
//! - The path is missing or not a folder: [`Error::MissingFolder`].
//! - No usable image at all (empty folder, only unreadable files, every subject dropped):
//!   [`Error::Empty`] naming the folder and why.
//! - No layout explains a majority of the images ([`open`] and [`inspect`] only):
//!   [`Error::UnknownLayout`], with how many images fit each layout. [`open_as`] forces a layout.
//! - A naming rule that cannot be parsed: [`Error::InvalidNaming`] from [`NamingRule::parse`],
//!   saying what is wrong. [`Layout::Custom`] without a rule, or a rule with another forced
//!   layout: [`Error::InvalidParameter`].
//! - A corrupt or truncated image: skipped, recorded as a [`Problem`] naming the file and the
//!   decoder's message. Reading one file directly ([`load_image`]) gives [`Error::Decode`].
//! - A file of a type this build does not decode (`.avif`, `.exr`: formats without a decoder
//!   compiled in; `.xyz`; no extension): skipped with a [`Problem`]. Well-known non-image files
//!   are skipped silently: hidden files (`.DS_Store`, `._*`), `README*`, `LICENSE*`, `COPYING*`,
//!   `Thumbs.db`, `desktop.ini`, and documents with the extensions `txt md rst csv tsv json xml
//!   html htm pdf log ini yaml yml` (so a dataset's `readme.txt` is no problem). Hidden folders
//!   (`.git`) are not read.
//! - An image whose path does not fit the layout: skipped with a [`Problem`] saying what was
//!   expected (for a custom layout: the naming rule).
//! - A header that states no resolution, an implausible one, or is corrupt: [`Sample::dpi`] is
//!   `None` (see [`image_dpi`]); never an error.
//! - A subject with fewer samples than [`LoadOptions::min_samples_per_subject`]: dropped, with a
//!   [`Problem`]. A kept subject with a single sample is reported too ("no mated pair can be
//!   formed"): it can serve as an impostor but never as a genuine comparison.
//! - A sub-folder that cannot be listed, or lies more than six levels deep: a [`Problem`].

mod dpi;
mod layouts;
mod naming;
mod scan;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use image::error::{DecodingError, ImageFormatHint};
use image::{GrayImage, ImageError, ImageReader};
use rayon::prelude::*;
use serde::Serialize;

pub use self::dpi::{
    image_dpi, image_dpi_from_bytes, save_png_with_dpi, MAX_PLAUSIBLE_DPI, MIN_PLAUSIBLE_DPI,
};
pub use self::naming::{FieldValue, NamingMatch, NamingRule, REGEX_PREFIX};

use self::layouts::{expected, parse, sort_planned, Planned};
use self::scan::{classify, FileKind};
use crate::input::InputSpec;
use crate::{Dataset, Error, Layout, Problem, Result, Sample};

/// How to read a dataset: the model's input size and how to get there, and optionally how its
/// files are named.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// The model's input contract: size, fit, scale and region of interest
    /// ([`InputSpec::prepare`]). Reading a dataset under a checkpoint's contract is what makes
    /// evaluation see images as training did.
    pub input: InputSpec,
    /// The resolution (dpi) of files whose header states none, when the contract normalises
    /// scale; without it such a file's resolution is estimated from its ridge period.
    pub user_dpi: Option<f32>,
    /// Subjects with fewer readable samples are dropped (and reported). 1 keeps every subject;
    /// 2 keeps only subjects that can form a mated pair.
    pub min_samples_per_subject: usize,
    /// How the files are named, for a layout this crate does not know: [`open`] then reads the
    /// folder as [`Layout::Custom`] with this rule instead of detecting a layout. `None` detects.
    pub naming: Option<NamingRule>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions::at_size(96)
    }
}

impl LoadOptions {
    /// Whole frames fitted to `size × size` (no scale normalisation, no region of interest),
    /// every subject kept, layout detected.
    pub fn at_size(size: u32) -> Self {
        LoadOptions {
            input: InputSpec::plain(size),
            user_dpi: None,
            min_samples_per_subject: 1,
            naming: None,
        }
    }
}

/// Recognises the layout of a dataset folder (see the module docs for the rules).
///
/// # Errors
/// [`Error::MissingFolder`], [`Error::Empty`] when it holds no readable image,
/// [`Error::UnknownLayout`] when no layout explains most of the images.
pub fn detect_layout(path: &Path) -> Result<Layout> {
    let s = scan::scan(path)?;
    layouts::detect(path, &s)
}

/// Reads a dataset folder, recognising its layout, or with [`Layout::Custom`] when
/// [`LoadOptions::naming`] is given.
///
/// # Errors
/// As [`detect_layout`] and [`open_as`].
pub fn open(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let s = scan::scan(path)?;
    let layout = match opts.naming {
        Some(_) => Layout::Custom,
        None => layouts::detect(path, &s)?,
    };
    open_scanned(path, layout, s, opts)
}

/// Reads a dataset folder with the given layout.
///
/// # Errors
/// [`Error::MissingFolder`]; [`Error::Empty`] when no sample survives;
/// [`Error::InvalidParameter`] for a zero size, [`Layout::Synthetic`], [`Layout::Custom`]
/// without [`LoadOptions::naming`], or a naming rule with any other layout.
pub fn open_as(path: &Path, layout: Layout, opts: &LoadOptions) -> Result<Dataset> {
    let s = scan::scan(path)?;
    open_scanned(path, layout, s, opts)
}

/// Decodes one image file to 8-bit grey, at its own size.
///
/// The format is recognised from the file's first bytes, falling back on its extension.
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened, [`Error::Decode`] when it is corrupt, truncated,
/// empty (zero width or height) or in a format this build cannot decode.
pub fn load_image(path: &Path) -> Result<GrayImage> {
    let reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Error::io(path, e))?;
    let img = decode_upright(reader)
        .and_then(to_gray)
        .map_err(|source| Error::Decode {
            path: path.into(),
            source,
        })?;
    Ok(img)
}

/// Decodes an image and turns it the way its EXIF orientation says (a phone photo is stored as
/// the sensor saw it and marked as rotated): detectors and encoders see it upright.
fn decode_upright<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
) -> std::result::Result<image::DynamicImage, ImageError> {
    use image::ImageDecoder as _;
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut img = image::DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Decodes an image held in memory to 8-bit grey (the decode path of [`load_image`], for
/// uploads and fuzzing). The format is recognised from the bytes alone.
///
/// # Errors
/// The decoder's error, also for an unknown format and an image with a zero side.
pub fn decode_bytes(bytes: &[u8]) -> std::result::Result<GrayImage, ImageError> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(ImageError::IoError)?;
    decode_upright(reader).and_then(to_gray)
}

fn to_gray(img: image::DynamicImage) -> std::result::Result<GrayImage, ImageError> {
    if img.width() == 0 || img.height() == 0 {
        return Err(ImageError::Decoding(DecodingError::new(
            ImageFormatHint::Unknown,
            "image has zero width or height",
        )));
    }
    Ok(img.to_luma8())
}

/// The files of a dataset that fit its layout, sorted, and the problems met finding them.
struct Plan {
    planned: Vec<Planned>,
    problems: Vec<Problem>,
}

fn plan(layout: Layout, naming: Option<&NamingRule>, s: scan::Scan) -> Plan {
    let mut problems = s.problems;
    let mut planned = Vec::new();
    for f in &s.files {
        match classify(f.name()) {
            FileKind::Ignored => {}
            FileKind::Unsupported(why) => problems.push(Problem {
                path: f.path.clone(),
                message: why,
            }),
            FileKind::Image => {
                let fits = match naming {
                    Some(rule) => rule.read(&f.rel).map(|m| Planned::named(f, m)),
                    None => parse(layout, f),
                };
                match (fits, naming) {
                    (Some(p), _) => planned.push(p),
                    (None, Some(rule)) => problems.push(Problem {
                        path: f.path.clone(),
                        message: format!(
                            "{} does not fit the naming rule {}",
                            if rule.matches_path() { "path" } else { "file name" },
                            rule
                        ),
                    }),
                    (None, None) => problems.push(Problem {
                        path: f.path.clone(),
                        message: format!(
                            "file name does not fit the {} layout (expected {})",
                            layout_name(layout),
                            expected(layout)
                        ),
                    }),
                }
            }
        }
    }
    sort_planned(&mut planned);
    Plan { planned, problems }
}

/// A short lower-case name of a layout, as in JSON and on the command line.
pub fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::Synthetic => "synthetic",
        Layout::Fvc => "fvc",
        Layout::PersonFingerScan => "person-finger-scan",
        Layout::Socofing => "socofing",
        Layout::Orl => "orl",
        Layout::FolderPerIdentity => "folder-per-identity",
        Layout::Custom => "custom",
    }
}

/// Parses a layout name as printed by [`layout_name`] (case-insensitive; `folder` and
/// `neurotech` also work).
///
/// # Errors
/// [`Error::InvalidParameter`] for any other name.
pub fn parse_layout(name: &str) -> Result<Layout> {
    match name.to_ascii_lowercase().as_str() {
        "fvc" => Ok(Layout::Fvc),
        "person-finger-scan" | "neurotech" => Ok(Layout::PersonFingerScan),
        "custom" => Ok(Layout::Custom),
        "socofing" => Ok(Layout::Socofing),
        "orl" | "att" => Ok(Layout::Orl),
        "folder-per-identity" | "folder" => Ok(Layout::FolderPerIdentity),
        "synthetic" => Ok(Layout::Synthetic),
        _ => Err(Error::InvalidParameter {
            name: "layout",
            reason: format!(
                "unknown layout {name:?}: expected fvc, person-finger-scan, socofing, orl, \
                 folder-per-identity or custom"
            ),
        }),
    }
}

fn check_layout(layout: Layout, naming: Option<&NamingRule>) -> Result<()> {
    match (layout, naming) {
        (Layout::Synthetic, _) => Err(Error::InvalidParameter {
            name: "layout",
            reason: "synthetic samples are generated with nhm_data::synth, not read from a folder".into(),
        }),
        (Layout::Custom, None) => Err(Error::InvalidParameter {
            name: "naming",
            reason: "the custom layout needs a naming rule such as {subject}_{sample}".into(),
        }),
        (Layout::Custom, Some(_)) | (_, None) => Ok(()),
        (other, Some(rule)) => Err(Error::InvalidParameter {
            name: "naming",
            reason: format!(
                "the naming rule {rule} reads files as the custom layout, not the {} layout: \
                 give one or the other",
                layout_name(other)
            ),
        }),
    }
}

/// A decoded file: its image (already fitted, or nothing for inspection), its original size and
/// the resolution its header states.
type Decoded<T> = std::result::Result<(T, (u32, u32), Option<f32>), ImageError>;

/// Decodes every planned file in parallel (rayon keeps the input order) and applies `then`.
/// Decodes every planned file in parallel and hands each image (with its path) to `then`, which
/// returns the value kept and the sample's resolution when known.
fn decode_all<T: Send>(
    planned: &[Planned],
    then: impl Fn(GrayImage, &Path) -> (T, Option<f32>) + Sync,
) -> Vec<Decoded<T>> {
    planned
        .par_iter()
        .map(|p| {
            let img = ImageReader::open(&p.path)
                .and_then(|r| r.with_guessed_format())
                .map_err(ImageError::IoError)?
                .decode()
                .and_then(to_gray)?;
            let size = img.dimensions();
            let (value, dpi) = then(img, &p.path);
            Ok((value, size, dpi))
        })
        .collect()
}

/// One decoded sample, before numbering.
struct Item<T> {
    value: T,
    size: (u32, u32),
    dpi: Option<f32>,
    path: PathBuf,
}

/// A subject's decoded samples, before numbering.
struct Group<T> {
    label: String,
    items: Vec<Item<T>>,
}

/// Pairs planned files with their decode results, records failures, and groups by subject in order.
fn group<T>(planned: Vec<Planned>, decoded: Vec<Decoded<T>>, problems: &mut Vec<Problem>) -> Vec<Group<T>> {
    let mut groups: Vec<Group<T>> = Vec::new();
    for (p, d) in planned.into_iter().zip(decoded) {
        let item = match d {
            Ok((value, size, dpi)) => Item {
                value,
                size,
                dpi,
                path: p.path,
            },
            Err(e) => {
                problems.push(Problem {
                    path: p.path,
                    message: format!("cannot decode image: {e}"),
                });
                continue;
            }
        };
        match groups.last_mut() {
            Some(g) if g.label == p.subject_label => g.items.push(item),
            _ => groups.push(Group {
                label: p.subject_label,
                items: vec![item],
            }),
        }
    }
    groups
}

/// Drops subjects below the minimum and reports those too small to form a mated pair.
fn filter_groups<T>(
    groups: Vec<Group<T>>,
    min: usize,
    root: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<Group<T>> {
    let mut kept = Vec::with_capacity(groups.len());
    for g in groups {
        let folder_or_first = g
            .items
            .first()
            .map(|i| i.path.clone())
            .unwrap_or_else(|| root.to_path_buf());
        if g.items.len() < min {
            problems.push(Problem {
                path: folder_or_first,
                message: format!(
                    "subject {} has {} sample(s), fewer than the minimum of {min}: dropped",
                    g.label,
                    g.items.len()
                ),
            });
            continue;
        }
        if g.items.len() == 1 {
            problems.push(Problem {
                path: folder_or_first,
                message: format!(
                    "subject {} has only 1 sample: no mated pair can be formed",
                    g.label
                ),
            });
        }
        kept.push(g);
    }
    kept
}

fn open_scanned(root: &Path, layout: Layout, s: scan::Scan, opts: &LoadOptions) -> Result<Dataset> {
    let naming = opts.naming.as_ref();
    check_layout(layout, naming)?;
    if opts.input.size == 0 {
        return Err(Error::InvalidParameter {
            name: "size",
            reason: "the input size must be at least 1 pixel".into(),
        });
    }
    if opts.input.roi == Some(0) {
        return Err(Error::InvalidParameter {
            name: "roi",
            reason: "the region of interest must be at least 1 pixel".into(),
        });
    }
    let Plan {
        planned,
        mut problems,
    } = plan(layout, naming, s);
    let decoded = decode_all(&planned, |img, path| {
        let res = opts.input.resolution_of(Some(path), &img, opts.user_dpi);
        (opts.input.prepare(&img, res), res.map(|r| r.dpi))
    });
    let groups = group(planned, decoded, &mut problems);
    let groups = filter_groups(groups, opts.min_samples_per_subject, root, &mut problems);
    if groups.is_empty() {
        return Err(Error::Empty {
            path: root.to_path_buf(),
            reason: empty_reason(layout, naming, &problems),
        });
    }
    let mut subjects = Vec::with_capacity(groups.len());
    let mut samples = Vec::new();
    for (s, g) in groups.into_iter().enumerate() {
        for (i, item) in g.items.into_iter().enumerate() {
            samples.push(Sample {
                subject: s as u32,
                subject_label: g.label.clone(),
                index: i as u32,
                image: item.value,
                original_size: item.size,
                source: Some(item.path),
                dpi: item.dpi,
            });
        }
        subjects.push(g.label);
    }
    tracing::info!(
        root = %root.display(),
        layout = layout_name(layout),
        naming = naming.map(NamingRule::as_str),
        subjects = subjects.len(),
        samples = samples.len(),
        problems = problems.len(),
        "dataset read"
    );
    for p in &problems {
        tracing::debug!(path = %p.path.display(), "{}", p.message);
    }
    Ok(Dataset {
        layout,
        root: Some(root.to_path_buf()),
        subjects,
        samples,
        problems,
    })
}

fn empty_reason(layout: Layout, naming: Option<&NamingRule>, problems: &[Problem]) -> String {
    let what = match naming {
        Some(rule) => format!("the naming rule {rule}"),
        None => format!("the {} layout", layout_name(layout)),
    };
    match problems.first() {
        None => format!("no image fits {what}"),
        Some(p) => format!(
            "no usable sample in {what}; {} file(s) skipped, the first: {}: {}",
            problems.len(),
            p.path.display(),
            p.message
        ),
    }
}

/// What [`inspect`] found in a dataset folder, without keeping the images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// The layout recognised (or forced).
    pub layout: Layout,
    /// The folder read.
    pub root: PathBuf,
    /// Number of subjects with at least one readable sample.
    pub subjects: usize,
    /// Number of readable samples.
    pub samples: usize,
    /// Histogram of samples per subject: number of samples → number of subjects with that many.
    pub samples_per_subject: BTreeMap<usize, usize>,
    /// Original image sizes (width, height) → number of images; in JSON keyed `"WxH"`.
    #[serde(serialize_with = "sizes_as_strings")]
    pub image_sizes: BTreeMap<(u32, u32), usize>,
    /// Resolutions stated by the files' headers ([`image_dpi`], rounded to whole dpi) → number of
    /// images; files that state none (or an implausible one) are counted under `"none"`.
    pub dpi: BTreeMap<String, usize>,
    /// Subject labels in subject order.
    pub subject_labels: Vec<String>,
    /// The naming rule the files were read with, for [`Layout::Custom`].
    pub naming: Option<String>,
    /// How a couple of files were read (the first file of the first and of the last subject):
    /// what the layout or naming rule understood.
    pub examples: Vec<NamingExample>,
    /// Files skipped and subjects that cannot form a mated pair, each with its reason.
    pub problems: Vec<Problem>,
}

/// How one file was read, as [`inspect`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamingExample {
    /// The file, relative to the dataset folder, with `/` between folders.
    pub file: String,
    /// The identity label it was given.
    pub identity: String,
    /// The sample number it was read with, when the layout or rule has one.
    pub sample: Option<String>,
    /// For a naming rule, every named field it extracted, in the rule's order; empty for the
    /// built-in layouts.
    pub fields: Vec<FieldValue>,
}

impl NamingExample {
    fn of(p: &Planned) -> Self {
        NamingExample {
            file: p.rel.join("/"),
            identity: p.subject_label.clone(),
            sample: p.sample.clone(),
            fields: p.fields.clone(),
        }
    }
}

fn sizes_as_strings<S: serde::Serializer>(
    m: &BTreeMap<(u32, u32), usize>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|((w, h), n)| (format!("{w}x{h}"), *n)))
}

impl Inspection {
    /// Fewest samples of any subject (0 when there is no subject).
    pub fn min_samples_per_subject(&self) -> usize {
        self.samples_per_subject.keys().next().copied().unwrap_or(0)
    }

    /// Most samples of any subject (0 when there is no subject).
    pub fn max_samples_per_subject(&self) -> usize {
        self.samples_per_subject.keys().next_back().copied().unwrap_or(0)
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset      {}", self.root.display())?;
        writeln!(f, "layout       {}", layout_name(self.layout))?;
        if let Some(rule) = &self.naming {
            writeln!(f, "naming       {rule}")?;
        }
        let range = match (self.subject_labels.first(), self.subject_labels.last()) {
            (Some(a), Some(b)) if self.subjects > 1 => format!(" ({a} .. {b})"),
            (Some(a), _) => format!(" ({a})"),
            _ => String::new(),
        };
        writeln!(f, "subjects     {}{range}", self.subjects)?;
        writeln!(f, "samples      {}", self.samples)?;
        let hist: Vec<String> = self
            .samples_per_subject
            .iter()
            .map(|(n, c)| format!("{n} sample{} x {c} subject{}", plural(*n), plural(*c)))
            .collect();
        writeln!(
            f,
            "per subject  {}",
            if hist.is_empty() {
                "-".into()
            } else {
                hist.join(", ")
            }
        )?;
        let sizes: Vec<String> = self
            .image_sizes
            .iter()
            .map(|((w, h), n)| format!("{w}x{h} ({n})"))
            .collect();
        writeln!(
            f,
            "image sizes  {}",
            if sizes.is_empty() {
                "-".into()
            } else {
                sizes.join(", ")
            }
        )?;
        let dpi: Vec<String> = self.dpi.iter().map(|(d, n)| format!("{d} ({n})")).collect();
        writeln!(
            f,
            "dpi          {}",
            if dpi.is_empty() {
                "-".into()
            } else {
                dpi.join(", ")
            }
        )?;
        for e in &self.examples {
            let sample = e
                .sample
                .as_deref()
                .map(|s| format!(", sample {s}"))
                .unwrap_or_default();
            let fields: Vec<String> = e
                .fields
                .iter()
                .map(|v| format!("{}={}", v.name, v.value))
                .collect();
            let fields = if fields.is_empty() {
                String::new()
            } else {
                format!(" ({})", fields.join(" "))
            };
            writeln!(
                f,
                "example      {} -> identity {}{sample}{fields}",
                e.file, e.identity
            )?;
        }
        if self.problems.is_empty() {
            write!(f, "problems     none")?;
        } else {
            write!(f, "problems     {}", self.problems.len())?;
            for p in &self.problems {
                write!(f, "\n  {}: {}", p.path.display(), p.message)?;
            }
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Reads a dataset folder like [`open`], reporting what is in it instead of keeping the images:
/// layout, subjects, samples per subject, original image sizes and every problem.
///
/// Every image is decoded in full (not just its header), so a truncated file is found here as
/// it would be when loading.
///
/// # Errors
/// As [`detect_layout`]; [`Error::Empty`] when no image can be used.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let s = scan::scan(path)?;
    let layout = layouts::detect(path, &s)?;
    inspect_scanned(path, layout, None, s)
}

/// [`inspect`] with a forced layout.
///
/// # Errors
/// [`Error::MissingFolder`], [`Error::Empty`], [`Error::InvalidParameter`] for
/// [`Layout::Synthetic`] and [`Layout::Custom`] (which needs [`inspect_named`]).
pub fn inspect_as(path: &Path, layout: Layout) -> Result<Inspection> {
    let s = scan::scan(path)?;
    inspect_scanned(path, layout, None, s)
}

/// [`inspect`] reading the files with a naming rule ([`Layout::Custom`]): the report names the
/// rule and shows, for a couple of files, the fields it extracted.
///
/// # Errors
/// [`Error::MissingFolder`], [`Error::Empty`] (also when no file fits the rule).
pub fn inspect_named(path: &Path, naming: &NamingRule) -> Result<Inspection> {
    let s = scan::scan(path)?;
    inspect_scanned(path, Layout::Custom, Some(naming), s)
}

fn inspect_scanned(
    root: &Path,
    layout: Layout,
    naming: Option<&NamingRule>,
    s: scan::Scan,
) -> Result<Inspection> {
    check_layout(layout, naming)?;
    let Plan {
        planned,
        mut problems,
    } = plan(layout, naming, s);
    let mut examples: Vec<NamingExample> = planned.first().map(NamingExample::of).into_iter().collect();
    if let Some(last) = planned.last() {
        let first_of_last = planned
            .iter()
            .find(|p| p.subject_label == last.subject_label)
            .unwrap_or(last);
        if examples.first().map(|e| &e.identity) != Some(&first_of_last.subject_label) {
            examples.push(NamingExample::of(first_of_last));
        }
    }
    let decoded = decode_all(&planned, |_, path| ((), image_dpi(path)));
    let groups = group(planned, decoded, &mut problems);
    let groups = filter_groups(groups, 1, root, &mut problems);
    if groups.is_empty() {
        return Err(Error::Empty {
            path: root.to_path_buf(),
            reason: empty_reason(layout, naming, &problems),
        });
    }
    let mut samples_per_subject = BTreeMap::new();
    let mut image_sizes = BTreeMap::new();
    let mut dpi = BTreeMap::new();
    for g in &groups {
        *samples_per_subject.entry(g.items.len()).or_insert(0) += 1;
        for i in &g.items {
            *image_sizes.entry(i.size).or_insert(0) += 1;
            let d = i.dpi.map_or_else(|| "none".to_string(), |d| format!("{d:.0}"));
            *dpi.entry(d).or_insert(0) += 1;
        }
    }
    Ok(Inspection {
        layout,
        root: root.to_path_buf(),
        subjects: groups.len(),
        samples: groups.iter().map(|g| g.items.len()).sum(),
        samples_per_subject,
        image_sizes,
        dpi,
        subject_labels: groups.into_iter().map(|g| g.label).collect(),
        naming: naming.map(|r| r.as_str().to_string()),
        examples,
        problems,
    })
}
