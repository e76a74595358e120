//! Walking a dataset folder: which files exist, which are images, in a stable natural order.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use image::ImageFormat;

use crate::{Error, Problem, Result};

/// Folders deeper than this below the root are not read (a guard against symbolic-link loops;
/// the deepest known layout, SOCOFing's `Altered/Altered-Easy/`, is two levels down).
pub(crate) const MAX_DEPTH: usize = 6;

/// One regular file found under the root.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    /// Full path (root joined with `rel`).
    pub path: PathBuf,
    /// Path relative to the root, as UTF-8 components (non-UTF-8 names are reported and skipped).
    pub rel: Vec<String>,
}

impl FileEntry {
    /// The file name (last component).
    pub fn name(&self) -> &str {
        self.rel.last().map(String::as_str).unwrap_or("")
    }

    /// Number of folders between the root and the file (0 = directly in the root).
    pub fn depth(&self) -> usize {
        self.rel.len().saturating_sub(1)
    }
}

/// What a file is, judged from its name only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// An image in a format this build can decode.
    Image,
    /// A well-known non-image file (README, notes, OS metadata): skipped without a word.
    Ignored,
    /// Anything else: skipped and reported, with the reason.
    Unsupported(String),
}

/// Extensions of documentation and metadata files that ship with datasets and are not samples.
const IGNORED_EXTENSIONS: &[&str] = &[
    "txt", "md", "rst", "csv", "tsv", "json", "xml", "html", "htm", "pdf", "log", "ini", "yaml", "yml",
];

/// File names (lower case, without extension) that are documentation, licences or OS metadata.
const IGNORED_STEMS: &[&str] = &["readme", "license", "licence", "copying", "thumbs", "desktop"];

/// Classifies a file by its name: readable image, silently ignored, or unsupported.
pub(crate) fn classify(name: &str) -> FileKind {
    let lower = name.to_ascii_lowercase();
    // Hidden files: .DS_Store, AppleDouble `._x.png`, editor swap files.
    if lower.starts_with('.') {
        return FileKind::Ignored;
    }
    let (stem, ext) = match lower.rsplit_once('.') {
        Some((s, e)) => (s, Some(e)),
        None => (lower.as_str(), None),
    };
    if IGNORED_STEMS.contains(&stem) {
        return FileKind::Ignored;
    }
    let Some(ext) = ext else {
        return FileKind::Unsupported("no file extension: not recognised as an image".into());
    };
    if IGNORED_EXTENSIONS.contains(&ext) {
        return FileKind::Ignored;
    }
    match ImageFormat::from_extension(ext) {
        Some(f) if f.reading_enabled() => FileKind::Image,
        Some(f) => {
            let readable: Vec<String> = ImageFormat::all()
                .filter(|f| f.reading_enabled())
                .map(|f| format!("{f:?}"))
                .collect();
            FileKind::Unsupported(format!(
                "unsupported image format {f:?}: this build decodes only {}",
                readable.join(", ")
            ))
        }
        None => FileKind::Unsupported(format!("unknown file type .{ext}: not an image format")),
    }
}

/// Everything found under a root: files (in natural path order) and folders that could not be read.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Regular files, sorted by [`natural_cmp`] on their relative path.
    pub files: Vec<FileEntry>,
    /// Folders that could not be listed, or lay too deep, or names that are not UTF-8.
    pub problems: Vec<Problem>,
}

/// Lists every file under `root`, recursively up to [`MAX_DEPTH`], skipping hidden folders.
///
/// # Errors
/// [`Error::MissingFolder`] when `root` is not a folder, [`Error::Io`] when it cannot be listed.
pub(crate) fn scan(root: &Path) -> Result<Scan> {
    if !root.is_dir() {
        return Err(Error::MissingFolder {
            path: root.to_path_buf(),
        });
    }
    let mut out = Scan::default();
    // The root itself must be listable; failures further down are problems, not errors.
    std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    walk(root, &mut Vec::new(), &mut out);
    out.files.sort_by(|a, b| natural_cmp_parts(&a.rel, &b.rel));
    Ok(out)
}

fn walk(dir: &Path, rel: &mut Vec<String>, out: &mut Scan) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.problems.push(Problem {
                path: dir.to_path_buf(),
                message: format!("cannot list folder: {e}"),
            });
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.problems.push(Problem {
                    path: dir.to_path_buf(),
                    message: format!("cannot list folder: {e}"),
                });
                continue;
            }
        };
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            out.problems.push(Problem {
                path,
                message: "file name is not valid UTF-8: skipped".into(),
            });
            continue;
        };
        // `metadata` follows symbolic links, so a linked folder or file is read like a real one.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                out.problems.push(Problem {
                    path,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        if meta.is_dir() {
            if name.starts_with('.') {
                continue;
            }
            if rel.len() >= MAX_DEPTH {
                out.problems.push(Problem {
                    path,
                    message: format!("folder more than {MAX_DEPTH} levels below the dataset root: not read"),
                });
                continue;
            }
            rel.push(name);
            walk(&path, rel, out);
            rel.pop();
        } else if meta.is_file() {
            let mut r = rel.clone();
            r.push(name);
            out.files.push(FileEntry { path, rel: r });
        }
    }
}

/// Compares two strings in natural order: digit runs compare as numbers, so `s2` < `s10`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (trim_zeros(&x[..nx]), trim_zeros(&y[..ny]));
                // Without leading zeros, a longer digit run is a larger number; equal lengths
                // compare digit by digit. No overflow whatever the length.
                let o = dx.len().cmp(&dy.len()).then_with(|| dx.cmp(dy));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                let o = c.to_ascii_lowercase().cmp(&d.to_ascii_lowercase());
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z..]
}

/// [`natural_cmp`] component by component (a folder's files stay together).
pub(crate) fn natural_cmp_parts(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = natural_cmp(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_numbers_in_numeric_order() {
        let mut v = vec!["s10", "s2", "s1", "s02", "a", "s", "10_1", "9_12", "9_2"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["9_2", "9_12", "10_1", "a", "s", "s1", "s02", "s2", "s10"]);
    }

    #[test]
    fn natural_order_survives_huge_numbers() {
        let big = "x99999999999999999999999999999999";
        assert_eq!(natural_cmp(big, "x100"), Ordering::Greater);
        assert_eq!(natural_cmp("x100", big), Ordering::Less);
    }

    #[test]
    fn classification_by_name() {
        assert_eq!(classify("101_1.TIF"), FileKind::Image);
        assert_eq!(classify("1.pgm"), FileKind::Image);
        assert_eq!(classify("x.Bmp"), FileKind::Image);
        for name in ["001_1.jpg", "a.JPEG", "b.gif", "c.webp"] {
            assert_eq!(classify(name), FileKind::Image, "{name}");
        }
        assert!(matches!(classify("a.avif"), FileKind::Unsupported(m) if m.contains("Avif")));
        assert_eq!(classify("README"), FileKind::Ignored);
        assert_eq!(classify("readme.md"), FileKind::Ignored);
        assert_eq!(classify("Thumbs.db"), FileKind::Ignored);
        assert_eq!(classify(".DS_Store"), FileKind::Ignored);
        assert_eq!(classify("notes.txt"), FileKind::Ignored);
        assert!(matches!(classify("a.xyz"), FileKind::Unsupported(_)));
        assert!(matches!(classify("noext"), FileKind::Unsupported(_)));
    }
}
