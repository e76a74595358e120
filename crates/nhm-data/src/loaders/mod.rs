//! Real datasets on disk: FVC, SOCOFing, AT&T/ORL faces and one folder per identity.
//!
//! [`open`] recognises the layout of a folder ([`detect_layout`]), reads every image in it in
//! parallel, converts it to 8-bit grey and brings it to the model's input size with
//! [`crate::preprocess::fit`]. [`inspect`] does the same reading without keeping the images and
//! says what it found, for `nhm dataset inspect`.
//!
//! # Layouts
//!
//! | layout | files | identity |
//! |---|---|---|
//! | [`Layout::Fvc`] | `{finger}_{impression}.{tif,bmp,png}` directly in the folder | the finger number |
//! | [`Layout::Socofing`] | `{subject}__{M\|F}_{Left\|Right}_{finger}_finger[_{CR\|Obl\|Zcut}].BMP`, in any sub-folder (`Real/`, `Altered/Altered-Easy/`, ...) | (subject, hand, finger), labelled `1_Left_index` |
//! | [`Layout::Orl`] | `s{N}/{k}.pgm` | the folder `s{N}` |
//! | [`Layout::FolderPerIdentity`] | any image anywhere below a first-level sub-folder | the first-level sub-folder |
//!
//! Extensions are matched case-insensitively and any format this build decodes (PNG, TIFF, BMP,
//! PNM/PGM) is accepted in every layout. [`detect_layout`] picks the first of SOCOFing, FVC, ORL
//! and folder-per-identity whose naming rule fits more than half of the readable images.
//!
//! # Order
//!
//! Subjects are in natural order of their labels (`s2` before `s10`, finger `101` before `110`;
//! SOCOFing by subject number, then Left before Right, then thumb, index, middle, ring, little).
//! Samples within a subject are sorted by impression / image number (SOCOFing: the real print,
//! then CR, Obl, Zcut alterations, each in natural path order), then by path. [`Sample::subject`]
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
//! - A corrupt or truncated image: skipped, recorded as a [`Problem`] naming the file and the
//!   decoder's message. Reading one file directly ([`load_image`]) gives [`Error::Decode`].
//! - A file of a type this build does not decode (`.jpg`: no JPEG decoder compiled in; `.xyz`; no
//!   extension): skipped with a [`Problem`]. Well-known non-image files are skipped silently:
//!   hidden files (`.DS_Store`, `._*`), `README*`, `LICENSE*`, `COPYING*`, `Thumbs.db`,
//!   `desktop.ini`, and documents with the extensions `txt md rst csv tsv json xml html htm pdf
//!   log ini yaml yml`. Hidden folders (`.git`) are not read.
//! - An image whose path does not fit the layout: skipped with a [`Problem`] saying what was
//!   expected.
//! - A subject with fewer samples than [`LoadOptions::min_samples_per_subject`]: dropped, with a
//!   [`Problem`]. A kept subject with a single sample is reported too ("no mated pair can be
//!   formed"): it can serve as an impostor but never as a genuine comparison.
//! - A sub-folder that cannot be listed, or lies more than six levels deep: a [`Problem`].

mod layouts;
mod scan;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use image::error::{DecodingError, ImageFormatHint};
use image::{GrayImage, ImageError, ImageReader};
use rayon::prelude::*;
use serde::Serialize;

use self::layouts::{expected, parse, sort_planned, Planned};
use self::scan::{classify, FileKind};
use crate::preprocess::{prepare, Fit};
use crate::{Dataset, Error, Layout, Problem, Result, Sample};

/// How to read a dataset: the model's input size and how to get there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Side of the square images handed to the model, in pixels (DESIGN.md §1: 96).
    pub size: u32,
    /// How images of other shapes are brought to `size × size`.
    pub fit: Fit,
    /// Before fitting, cut a square of this many source pixels centred on the print
    /// ([`crate::preprocess::crop_to_print`]): brings a fingerprint scan's ridges to the period
    /// the encoder was trained at. `None` fits the whole frame.
    pub roi: Option<u32>,
    /// Subjects with fewer readable samples are dropped (and reported). 1 keeps every subject;
    /// 2 keeps only subjects that can form a mated pair.
    pub min_samples_per_subject: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            size: 96,
            fit: Fit::CenterCropResize,
            roi: None,
            min_samples_per_subject: 1,
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

/// Reads a dataset folder, recognising its layout.
///
/// # Errors
/// As [`detect_layout`] and [`open_as`].
pub fn open(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let s = scan::scan(path)?;
    let layout = layouts::detect(path, &s)?;
    open_scanned(path, layout, s, opts)
}

/// Reads a dataset folder with the given layout.
///
/// # Errors
/// [`Error::MissingFolder`]; [`Error::Empty`] when no sample survives;
/// [`Error::InvalidParameter`] for a zero size or [`Layout::Synthetic`].
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
    let img = reader
        .decode()
        .and_then(to_gray)
        .map_err(|source| Error::Decode {
            path: path.into(),
            source,
        })?;
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
    reader.decode().and_then(to_gray)
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

fn plan(layout: Layout, s: scan::Scan) -> Plan {
    let mut problems = s.problems;
    let mut planned = Vec::new();
    for f in &s.files {
        match classify(f.name()) {
            FileKind::Ignored => {}
            FileKind::Unsupported(why) => problems.push(Problem {
                path: f.path.clone(),
                message: why,
            }),
            FileKind::Image => match parse(layout, f) {
                Some(p) => planned.push(p),
                None => problems.push(Problem {
                    path: f.path.clone(),
                    message: format!(
                        "file name does not fit the {} layout (expected {})",
                        layout_name(layout),
                        expected(layout)
                    ),
                }),
            },
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
        Layout::Socofing => "socofing",
        Layout::Orl => "orl",
        Layout::FolderPerIdentity => "folder-per-identity",
    }
}

/// Parses a layout name as printed by [`layout_name`] (case-insensitive; `folder` also works).
///
/// # Errors
/// [`Error::InvalidParameter`] for any other name.
pub fn parse_layout(name: &str) -> Result<Layout> {
    match name.to_ascii_lowercase().as_str() {
        "fvc" => Ok(Layout::Fvc),
        "socofing" => Ok(Layout::Socofing),
        "orl" | "att" => Ok(Layout::Orl),
        "folder-per-identity" | "folder" => Ok(Layout::FolderPerIdentity),
        "synthetic" => Ok(Layout::Synthetic),
        _ => Err(Error::InvalidParameter {
            name: "layout",
            reason: format!("unknown layout {name:?}: expected fvc, socofing, orl or folder-per-identity"),
        }),
    }
}

fn check_layout(layout: Layout) -> Result<()> {
    if layout == Layout::Synthetic {
        return Err(Error::InvalidParameter {
            name: "layout",
            reason: "synthetic samples are generated with nhm_data::synth, not read from a folder".into(),
        });
    }
    Ok(())
}

/// A decoded file: its image (already fitted, or nothing for inspection) and its original size.
type Decoded<T> = std::result::Result<(T, (u32, u32)), ImageError>;

/// Decodes every planned file in parallel (rayon keeps the input order) and applies `then`.
fn decode_all<T: Send>(planned: &[Planned], then: impl Fn(GrayImage) -> T + Sync) -> Vec<Decoded<T>> {
    planned
        .par_iter()
        .map(|p| {
            let img = ImageReader::open(&p.path)
                .and_then(|r| r.with_guessed_format())
                .map_err(ImageError::IoError)?
                .decode()
                .and_then(to_gray)?;
            let size = img.dimensions();
            Ok((then(img), size))
        })
        .collect()
}

/// A subject's decoded samples, before numbering.
struct Group<T> {
    label: String,
    items: Vec<(T, (u32, u32), PathBuf)>,
}

/// Pairs planned files with their decode results, records failures, and groups by subject in order.
fn group<T>(planned: Vec<Planned>, decoded: Vec<Decoded<T>>, problems: &mut Vec<Problem>) -> Vec<Group<T>> {
    let mut groups: Vec<Group<T>> = Vec::new();
    for (p, d) in planned.into_iter().zip(decoded) {
        let item = match d {
            Ok((t, size)) => (t, size, p.path),
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
            .map(|i| i.2.clone())
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
    check_layout(layout)?;
    if opts.size == 0 {
        return Err(Error::InvalidParameter {
            name: "size",
            reason: "the input size must be at least 1 pixel".into(),
        });
    }
    if opts.roi == Some(0) {
        return Err(Error::InvalidParameter {
            name: "roi",
            reason: "the region of interest must be at least 1 pixel".into(),
        });
    }
    let Plan {
        planned,
        mut problems,
    } = plan(layout, s);
    let (size, policy, roi) = (opts.size, opts.fit, opts.roi);
    let decoded = decode_all(&planned, |img| prepare(&img, size, policy, roi));
    let groups = group(planned, decoded, &mut problems);
    let groups = filter_groups(groups, opts.min_samples_per_subject, root, &mut problems);
    if groups.is_empty() {
        return Err(Error::Empty {
            path: root.to_path_buf(),
            reason: empty_reason(layout, &problems),
        });
    }
    let mut subjects = Vec::with_capacity(groups.len());
    let mut samples = Vec::new();
    for (s, g) in groups.into_iter().enumerate() {
        for (i, (image, original_size, path)) in g.items.into_iter().enumerate() {
            samples.push(Sample {
                subject: s as u32,
                subject_label: g.label.clone(),
                index: i as u32,
                image,
                original_size,
                source: Some(path),
            });
        }
        subjects.push(g.label);
    }
    tracing::info!(
        root = %root.display(),
        layout = layout_name(layout),
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

fn empty_reason(layout: Layout, problems: &[Problem]) -> String {
    match problems.first() {
        None => format!("no image fits the {} layout", layout_name(layout)),
        Some(p) => format!(
            "no usable sample in the {} layout; {} file(s) skipped, the first: {}: {}",
            layout_name(layout),
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
    /// Subject labels in subject order.
    pub subject_labels: Vec<String>,
    /// Files skipped and subjects that cannot form a mated pair, each with its reason.
    pub problems: Vec<Problem>,
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
    inspect_scanned(path, layout, s)
}

/// [`inspect`] with a forced layout.
///
/// # Errors
/// [`Error::MissingFolder`], [`Error::Empty`], [`Error::InvalidParameter`] for
/// [`Layout::Synthetic`].
pub fn inspect_as(path: &Path, layout: Layout) -> Result<Inspection> {
    let s = scan::scan(path)?;
    inspect_scanned(path, layout, s)
}

fn inspect_scanned(root: &Path, layout: Layout, s: scan::Scan) -> Result<Inspection> {
    check_layout(layout)?;
    let Plan {
        planned,
        mut problems,
    } = plan(layout, s);
    let decoded = decode_all(&planned, |_| ());
    let groups = group(planned, decoded, &mut problems);
    let groups = filter_groups(groups, 1, root, &mut problems);
    if groups.is_empty() {
        return Err(Error::Empty {
            path: root.to_path_buf(),
            reason: empty_reason(layout, &problems),
        });
    }
    let mut samples_per_subject = BTreeMap::new();
    let mut image_sizes = BTreeMap::new();
    for g in &groups {
        *samples_per_subject.entry(g.items.len()).or_insert(0) += 1;
        for (_, size, _) in &g.items {
            *image_sizes.entry(*size).or_insert(0) += 1;
        }
    }
    Ok(Inspection {
        layout,
        root: root.to_path_buf(),
        subjects: groups.len(),
        samples: groups.iter().map(|g| g.items.len()).sum(),
        samples_per_subject,
        image_sizes,
        subject_labels: groups.into_iter().map(|g| g.label).collect(),
        problems,
    })
}
