//! File-name rules of each layout: which subject and which sample a file is, and layout detection.

use std::path::{Path, PathBuf};

use super::naming::{FieldValue, NamingMatch};
use super::scan::{classify, natural_cmp, natural_cmp_parts, FileEntry, FileKind, Scan};
use crate::{Error, Layout, Result};

/// One image file assigned to a subject, before decoding.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// The file.
    pub path: PathBuf,
    /// The subject's label in the source.
    pub subject_label: String,
    /// Sort key of the subject (natural order of the label unless the layout says otherwise).
    pub subject_key: Vec<u64>,
    /// Sort key of the sample within its subject.
    pub sample_key: Vec<u64>,
    /// Tie-breaker: the relative path, compared in natural order.
    pub rel: Vec<String>,
    /// The sample as read from the name (impression number, naming rule `{sample}`), for reports.
    pub sample: Option<String>,
    /// The fields a naming rule extracted (empty for the built-in layouts).
    pub fields: Vec<FieldValue>,
}

impl Planned {
    /// A file read by a naming rule: subjects in natural order of their identity label, samples
    /// by the number in `{sample}` (when it is one), then by path.
    pub fn named(f: &FileEntry, m: NamingMatch) -> Self {
        let sample_key = m.sample.as_deref().and_then(number).into_iter().collect();
        Planned {
            path: f.path.clone(),
            subject_label: m.identity,
            subject_key: vec![],
            sample_key,
            rel: f.rel.clone(),
            sample: m.sample,
            fields: m.fields,
        }
    }
}

/// SOCOFing finger names in anatomical order (the order of subjects within a hand).
const SOCOFING_FINGERS: &[&str] = &["thumb", "index", "middle", "ring", "little"];
/// SOCOFing alterations; the unaltered ("Real") image comes first, as alteration 0.
const SOCOFING_ALTERATIONS: &[&str] = &["cr", "obl", "zcut"];

/// What each layout expects, for the message of a file that does not fit.
pub(crate) fn expected(layout: Layout) -> &'static str {
    match layout {
        Layout::Fvc => "{finger}_{impression}.{tif,jpg,png,...} directly in the dataset folder",
        Layout::PersonFingerScan => "{person}_{finger}_{scan}.{png,tif,...} directly in the dataset folder",
        Layout::Socofing => "{subject}__{M|F}_{Left|Right}_{finger}_finger[_{CR|Obl|Zcut}].BMP",
        Layout::Orl => "s{N}/{k}.pgm",
        Layout::FolderPerIdentity => "an image inside a sub-folder (one sub-folder per identity)",
        Layout::Synthetic => "nothing: synthetic samples are generated, not read",
        Layout::Custom => "a name that fits the naming rule",
    }
}

/// Assigns a file to a subject under `layout`, or `None` if its path does not fit the layout.
pub(crate) fn parse(layout: Layout, f: &FileEntry) -> Option<Planned> {
    let (subject_label, subject_key, sample_key) = match layout {
        Layout::Fvc => parse_fvc(f)?,
        Layout::PersonFingerScan => parse_person_finger_scan(f)?,
        Layout::Socofing => parse_socofing(f)?,
        Layout::Orl => parse_orl(f)?,
        Layout::FolderPerIdentity => parse_folder(f)?,
        // A custom layout is read by its naming rule (`naming::NamingRule::read`), not here.
        Layout::Synthetic | Layout::Custom => return None,
    };
    let sample = (!sample_key.is_empty()).then(|| {
        sample_key
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    });
    Some(Planned {
        path: f.path.clone(),
        subject_label,
        subject_key,
        sample_key,
        rel: f.rel.clone(),
        sample,
        fields: vec![],
    })
}

type Parsed = (String, Vec<u64>, Vec<u64>);

/// Parses a string of ASCII digits (no sign, no spaces) that fits in a u64.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn stem(name: &str) -> Option<&str> {
    name.rsplit_once('.').map(|(s, _)| s)
}

fn parse_fvc(f: &FileEntry) -> Option<Parsed> {
    if f.depth() != 0 {
        return None;
    }
    let (finger, impression) = stem(f.name())?.split_once('_')?;
    let (fk, ik) = (number(finger)?, number(impression)?);
    Some((finger.to_string(), vec![fk], vec![ik]))
}

/// `{person}_{finger}_{scan}`: the identity keeps the file's spelling (`012_3`), so two folders
/// of the same database (one per sensor) give the same finger the same label.
fn parse_person_finger_scan(f: &FileEntry) -> Option<Parsed> {
    if f.depth() != 0 {
        return None;
    }
    let mut it = stem(f.name())?.split('_');
    let (person, finger, scan) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let (pk, fk, sk) = (number(person)?, number(finger)?, number(scan)?);
    Some((format!("{person}_{finger}"), vec![pk, fk], vec![sk]))
}

fn parse_socofing(f: &FileEntry) -> Option<Parsed> {
    let (subject, rest) = stem(f.name())?.split_once("__")?;
    let sk = number(subject)?;
    let parts: Vec<&str> = rest.split('_').collect();
    let (sex, hand, finger, word, alteration) = match parts.as_slice() {
        [s, h, f, w] => (*s, *h, *f, *w, None),
        [s, h, f, w, a] => (*s, *h, *f, *w, Some(*a)),
        _ => return None,
    };
    if !(sex.eq_ignore_ascii_case("m") || sex.eq_ignore_ascii_case("f"))
        || !word.eq_ignore_ascii_case("finger")
    {
        return None;
    }
    let hand_k = if hand.eq_ignore_ascii_case("left") {
        0
    } else if hand.eq_ignore_ascii_case("right") {
        1
    } else {
        return None;
    };
    let finger_lc = finger.to_ascii_lowercase();
    let finger_k = SOCOFING_FINGERS.iter().position(|x| *x == finger_lc)? as u64;
    let alt_k = match alteration {
        None => 0,
        Some(a) => {
            1 + SOCOFING_ALTERATIONS
                .iter()
                .position(|x| a.eq_ignore_ascii_case(x))? as u64
        }
    };
    // Canonical spelling, so `left`/`Left` in different folders name the same identity.
    let hand_label = if hand_k == 0 { "Left" } else { "Right" };
    Some((
        format!("{sk}_{hand_label}_{finger_lc}"),
        vec![sk, hand_k, finger_k],
        vec![alt_k],
    ))
}

fn parse_orl(f: &FileEntry) -> Option<Parsed> {
    let [dir, name] = f.rel.as_slice() else {
        return None;
    };
    let n = dir
        .strip_prefix('s')
        .or_else(|| dir.strip_prefix('S'))
        .and_then(number)?;
    let k = number(stem(name)?)?;
    Some((dir.clone(), vec![n], vec![k]))
}

fn parse_folder(f: &FileEntry) -> Option<Parsed> {
    if f.depth() == 0 {
        return None;
    }
    // Subject and sample order come from the natural order of the paths (see `sort_planned`).
    Some((f.rel[0].clone(), vec![], vec![]))
}

/// Sorts planned files into subject order, then sample order, deterministically.
pub(crate) fn sort_planned(v: &mut [Planned]) {
    v.sort_by(|a, b| {
        a.subject_key
            .cmp(&b.subject_key)
            .then_with(|| natural_cmp(&a.subject_label, &b.subject_label))
            .then_with(|| a.sample_key.cmp(&b.sample_key))
            .then_with(|| natural_cmp_parts(&a.rel, &b.rel))
    });
}

/// The layouts tried by [`detect`], in order of precedence (most specific first).
const CANDIDATES: [Layout; 5] = [
    Layout::Socofing,
    Layout::Fvc,
    Layout::PersonFingerScan,
    Layout::Orl,
    Layout::FolderPerIdentity,
];

/// Picks the layout that explains more than half of the readable images under the root.
pub(crate) fn detect(root: &Path, scan: &Scan) -> Result<Layout> {
    let mut unsupported = None;
    let images: Vec<&FileEntry> = scan
        .files
        .iter()
        .filter(|f| match classify(f.name()) {
            FileKind::Image => true,
            FileKind::Ignored => false,
            FileKind::Unsupported(_) => {
                unsupported.get_or_insert_with(|| f.path.clone());
                false
            }
        })
        .collect();
    if images.is_empty() {
        let reason = match unsupported {
            Some(p) => format!("no file in a readable image format (for example {})", p.display()),
            None => "no image files".to_string(),
        };
        return Err(Error::Empty {
            path: root.to_path_buf(),
            reason,
        });
    }
    let counts: Vec<usize> = CANDIDATES
        .iter()
        .map(|&l| images.iter().filter(|f| parse(l, f).is_some()).count())
        .collect();
    for (l, &c) in CANDIDATES.iter().zip(&counts) {
        if 2 * c > images.len() {
            return Ok(*l);
        }
    }
    let detail: Vec<String> = CANDIDATES
        .iter()
        .zip(&counts)
        .map(|(l, c)| format!("{c} fit {l:?}"))
        .collect();
    Err(Error::UnknownLayout {
        path: root.to_path_buf(),
        reason: format!(
            "{} readable images, none of the known layouts explains more than half of them ({})",
            images.len(),
            detail.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fe(rel: &str) -> FileEntry {
        FileEntry {
            path: PathBuf::from(rel),
            rel: rel.split('/').map(String::from).collect(),
        }
    }

    #[test]
    fn fvc_names() {
        let p = parse(Layout::Fvc, &fe("101_3.TIF")).expect("fits");
        assert_eq!(
            (p.subject_label.as_str(), p.subject_key, p.sample_key),
            ("101", vec![101], vec![3])
        );
        assert!(parse(Layout::Fvc, &fe("101-3.tif")).is_none());
        assert!(parse(Layout::Fvc, &fe("a_3.tif")).is_none());
        assert!(parse(Layout::Fvc, &fe("sub/101_3.tif")).is_none());
        // Zero-padded names keep their spelling and sort by number.
        let p = parse(Layout::Fvc, &fe("007_5.jpg")).expect("fits");
        assert_eq!(
            (p.subject_label.as_str(), p.subject_key, p.sample_key),
            ("007", vec![7], vec![5])
        );
        assert!(parse(Layout::Fvc, &fe("012_3_1.png")).is_none());
    }

    #[test]
    fn person_finger_scan_names() {
        let p = parse(Layout::PersonFingerScan, &fe("012_10_8.png")).expect("fits");
        assert_eq!(
            (p.subject_label.as_str(), p.subject_key, p.sample_key),
            ("012_10", vec![12, 10], vec![8])
        );
        for bad in [
            "012_10.png",
            "012_10_8_1.png",
            "a_1_2.png",
            "1_2_.png",
            "x/1_2_3.png",
            "1-2-3.png",
        ] {
            assert!(parse(Layout::PersonFingerScan, &fe(bad)).is_none(), "{bad}");
        }
        assert!(parse(Layout::Custom, &fe("1_2_3.png")).is_none());
    }

    #[test]
    fn socofing_names() {
        let p = parse(Layout::Socofing, &fe("Real/1__M_Left_index_finger.BMP")).expect("fits");
        assert_eq!(p.subject_label, "1_Left_index");
        assert_eq!(p.sample_key, vec![0]);
        let q = parse(
            Layout::Socofing,
            &fe("Altered/Altered-Easy/1__M_Left_index_finger_Zcut.BMP"),
        )
        .expect("fits");
        assert_eq!(q.subject_label, "1_Left_index");
        assert_eq!(q.sample_key, vec![3]);
        let r = parse(Layout::Socofing, &fe("600__F_Right_little_finger_Obl.bmp")).expect("fits");
        assert_eq!(r.subject_key, vec![600, 1, 4]);
        for bad in [
            "1__M_Left_toe_finger.BMP",
            "1__X_Left_index_finger.BMP",
            "1__M_Up_index_finger.BMP",
            "1_M_Left_index_finger.BMP",
            "1__M_Left_index_finger_Blur.BMP",
            "1__M_Left_index_nail.BMP",
        ] {
            assert!(parse(Layout::Socofing, &fe(bad)).is_none(), "{bad}");
        }
    }

    #[test]
    fn orl_names() {
        let p = parse(Layout::Orl, &fe("s12/3.pgm")).expect("fits");
        assert_eq!(
            (p.subject_label.as_str(), p.subject_key, p.sample_key),
            ("s12", vec![12], vec![3])
        );
        assert!(parse(Layout::Orl, &fe("3.pgm")).is_none());
        assert!(parse(Layout::Orl, &fe("x12/3.pgm")).is_none());
        assert!(parse(Layout::Orl, &fe("s12/a.pgm")).is_none());
        assert!(parse(Layout::Orl, &fe("s12/x/3.pgm")).is_none());
    }

    #[test]
    fn folder_names() {
        let p = parse(Layout::FolderPerIdentity, &fe("alice/deep/x.png")).expect("fits");
        assert_eq!(p.subject_label, "alice");
        assert!(parse(Layout::FolderPerIdentity, &fe("x.png")).is_none());
    }
}
