//! Dataset loaders on the real sample data in `../shared/data` and on folders written here.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use nhm_data::input::InputSpec;
use nhm_data::loaders::{
    self, decode_bytes, detect_layout, image_dpi, inspect, inspect_as, inspect_named, load_image, open,
    open_as, LoadOptions, NamingRule,
};
use nhm_data::preprocess::Fit;
use nhm_data::{Dataset, Error, GrayImage, Layout};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tempfile::TempDir;

fn shared(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).join(rel)
}

/// The shared data folder `rel`, or `None` (with a note on stdout) when this checkout has no
/// `../shared/data` beside it: the test then checks nothing.
fn shared_or_skip(rel: &str) -> Option<PathBuf> {
    let p = shared(rel);
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipped: {} is absent", p.display());
        None
    }
}

/// A small image whose pixels depend on `seed`, so files differ.
fn img(w: u32, h: u32, seed: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        image::Luma([((x * 7 + y * 3 + seed * 31) % 256) as u8])
    })
}

/// Writes an image in the format its extension names, creating parent folders (GIF as RGB:
/// its encoder takes no grey).
fn write(root: &Path, rel: &str, w: u32, h: u32, seed: u32) -> PathBuf {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    let g = image::DynamicImage::ImageLuma8(img(w, h, seed));
    if rel.to_ascii_lowercase().ends_with(".gif") {
        g.to_rgb8().save(&p).unwrap();
    } else {
        g.save(&p).unwrap();
    }
    p
}

fn write_bytes(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(&p, bytes).unwrap();
    p
}

/// The bytes of a valid image in `format`, to truncate.
fn encoded(format: image::ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let g = image::DynamicImage::ImageLuma8(img(w, h, 1));
    if format == image::ImageFormat::Gif {
        g.to_rgb8().write_to(&mut out, format).unwrap();
    } else {
        g.write_to(&mut out, format).unwrap();
    }
    out.into_inner()
}

fn has_problem(d: &[nhm_data::Problem], path: &Path, words: &str) -> bool {
    d.iter().any(|p| p.path == path && p.message.contains(words))
}

fn file_names(d: &Dataset, subject: u32) -> Vec<String> {
    d.samples_of(subject)
        .map(|s| {
            s.source
                .as_ref()
                .and_then(|p| p.file_name())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn check_dense(d: &Dataset) {
    let mut expect_subject = 0;
    let mut expect_index = 0;
    for s in &d.samples {
        if s.subject != expect_subject {
            assert_eq!(s.subject, expect_subject + 1, "subjects are dense and in order");
            expect_subject = s.subject;
            expect_index = 0;
        }
        assert_eq!(s.index, expect_index, "sample indices are dense and in order");
        assert_eq!(d.subjects[s.subject as usize], s.subject_label);
        expect_index += 1;
    }
    assert_eq!(expect_subject as usize + 1, d.n_subjects());
}

// ---- real data ----

fn check_fvc(folder: &str, original: (u32, u32)) {
    let root = shared(folder);
    assert_eq!(detect_layout(&root).unwrap(), Layout::Fvc);
    let d = open(&root, &LoadOptions::default()).unwrap();
    assert_eq!(d.layout, Layout::Fvc);
    assert_eq!(d.n_subjects(), 10);
    assert_eq!(d.samples_per_subject(), vec![8; 10]);
    assert_eq!(d.subjects, (101..=110).map(|n| n.to_string()).collect::<Vec<_>>());
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    for s in &d.samples {
        assert_eq!(s.original_size, original);
        assert_eq!(s.image.dimensions(), (96, 96));
    }
    assert_eq!(
        file_names(&d, 0),
        (1..=8).map(|i| format!("101_{i}.tif")).collect::<Vec<_>>()
    );
    check_dense(&d);
    // A real scan is not flat after fitting: ridges survive the 4x reduction.
    let s0 = &d.samples[0].image;
    let (lo, hi) = s0
        .as_raw()
        .iter()
        .fold((255u8, 0u8), |(l, h), &p| (l.min(p), h.max(p)));
    assert!(hi - lo > 100, "contrast {lo}..{hi}");
}

#[test]
fn fvc2002_db1_b_is_10_fingers_by_8_impressions() {
    check_fvc("fvc2002/DB1_B", (388, 374));
}

#[test]
fn fvc2002_db4_b_is_10_fingers_by_8_impressions() {
    check_fvc("fvc2002/DB4_B", (288, 384));
}

#[test]
fn orl_faces_are_40_subjects_by_10_in_natural_order() {
    let root = shared("orl_faces");
    assert_eq!(detect_layout(&root).unwrap(), Layout::Orl);
    let d = open(
        &root,
        &LoadOptions {
            input: InputSpec {
                fit: Fit::Pad,
                ..InputSpec::plain(64)
            },
            min_samples_per_subject: 2,
            user_dpi: None,
            naming: None,
        },
    )
    .unwrap();
    assert_eq!(d.n_subjects(), 40);
    assert_eq!(d.samples_per_subject(), vec![10; 40]);
    assert_eq!(d.subjects, (1..=40).map(|n| format!("s{n}")).collect::<Vec<_>>());
    // The README beside the subject folders is ignored without a word.
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert!(d
        .samples
        .iter()
        .all(|s| s.original_size == (92, 112) && s.image.dimensions() == (64, 64)));
    assert_eq!(
        file_names(&d, 1),
        (1..=10).map(|i| format!("{i}.pgm")).collect::<Vec<_>>()
    );
    check_dense(&d);
}

#[test]
fn inspect_real_folders() {
    let i = inspect(&shared("fvc2002/DB1_B")).unwrap();
    assert_eq!((i.layout, i.subjects, i.samples), (Layout::Fvc, 10, 80));
    assert_eq!(i.samples_per_subject, BTreeMap::from([(8, 10)]));
    assert_eq!(i.image_sizes, BTreeMap::from([((388, 374), 80)]));
    assert!(i.problems.is_empty());
    let text = i.to_string();
    assert!(
        text.contains("fvc") && text.contains("388x374 (80)") && text.contains("8 samples x 10 subjects"),
        "{text}"
    );
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["layout"], "fvc");
    assert_eq!(json["image_sizes"]["388x374"], 80);
    assert_eq!(json["samples_per_subject"]["8"], 10);
    // What the layout understood, for the first file of the first and of the last finger.
    assert_eq!(i.naming, None);
    let ex: Vec<(&str, &str, Option<&str>)> = i
        .examples
        .iter()
        .map(|e| (e.file.as_str(), e.identity.as_str(), e.sample.as_deref()))
        .collect();
    assert_eq!(
        ex,
        vec![("101_1.tif", "101", Some("1")), ("110_1.tif", "110", Some("1"))]
    );
    assert_eq!(json["examples"][1]["identity"], "110");
    assert!(
        text.contains("example      101_1.tif -> identity 101, sample 1"),
        "{text}"
    );
    assert_eq!(i.dpi, BTreeMap::from([("none".to_string(), 80)]));

    let o = inspect(&shared("orl_faces")).unwrap();
    assert_eq!((o.layout, o.subjects, o.samples), (Layout::Orl, 40, 400));
    assert_eq!(
        (o.min_samples_per_subject(), o.max_samples_per_subject()),
        (10, 10)
    );
    assert_eq!(o.image_sizes, BTreeMap::from([((92, 112), 400)]));
    assert!(o.problems.is_empty(), "{:?}", o.problems);
}

// ---- layouts written here ----

#[test]
fn socofing_identities_are_subject_hand_finger_across_subfolders() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    let mut seed = 0;
    let mut w = |rel: &str| {
        seed += 1;
        write(r, rel, 96, 103, seed)
    };
    w("Real/10__F_Right_thumb_finger.BMP");
    w("Real/2__M_Left_index_finger.BMP");
    w("Real/2__M_Left_thumb_finger.BMP");
    w("Altered/Altered-Hard/2__M_Left_index_finger_Zcut.BMP");
    w("Altered/Altered-Easy/2__M_Left_index_finger_CR.BMP");
    w("Altered/Altered-Easy/2__M_Left_index_finger_Obl.bmp");
    w("Altered/Altered-Easy/10__F_Right_thumb_finger_CR.BMP");
    let bad = w("Real/2__M_Left_toe_finger.BMP");
    write_bytes(r, "Real/Thumbs.db", b"junk");

    assert_eq!(detect_layout(r).unwrap(), Layout::Socofing);
    let d = open(r, &LoadOptions::default()).unwrap();
    assert_eq!(d.layout, Layout::Socofing);
    // Subject 2 before 10 (numeric), thumb before index (anatomical order).
    assert_eq!(d.subjects, vec!["2_Left_thumb", "2_Left_index", "10_Right_thumb"]);
    assert_eq!(d.samples_per_subject(), vec![1, 4, 2]);
    // Real print first, then CR, Obl, Zcut.
    assert_eq!(
        file_names(&d, 1),
        vec![
            "2__M_Left_index_finger.BMP",
            "2__M_Left_index_finger_CR.BMP",
            "2__M_Left_index_finger_Obl.bmp",
            "2__M_Left_index_finger_Zcut.BMP"
        ]
    );
    assert!(d
        .samples
        .iter()
        .all(|s| s.original_size == (96, 103) && s.image.dimensions() == (96, 96)));
    check_dense(&d);
    assert!(has_problem(&d.problems, &bad, "does not fit the socofing layout"));
    assert!(d
        .problems
        .iter()
        .any(|p| p.message.contains("subject 2_Left_thumb has only 1 sample")));
    assert_eq!(d.problems.len(), 2, "{:?}", d.problems);
}

#[test]
fn folder_per_identity_takes_any_subfolder_and_any_image() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    write(r, "bob/b.png", 30, 40, 1);
    write(r, "bob/a.bmp", 50, 20, 2);
    write(r, "alice/img10.png", 64, 64, 3);
    write(r, "alice/img9.tif", 64, 64, 4);
    write(r, "alice/more/img1.pgm", 64, 64, 5);
    let stray = write(r, "stray.png", 10, 10, 6);
    write_bytes(r, "alice/.DS_Store", b"\0\0");
    write_bytes(r, "notes.txt", b"about this set");

    assert_eq!(detect_layout(r).unwrap(), Layout::FolderPerIdentity);
    let d = open(r, &LoadOptions::at_size(32)).unwrap();
    assert_eq!(d.subjects, vec!["alice", "bob"]);
    assert_eq!(file_names(&d, 0), vec!["img9.tif", "img10.png", "img1.pgm"]);
    assert_eq!(file_names(&d, 1), vec!["a.bmp", "b.png"]);
    assert_eq!(d.samples[3].original_size, (50, 20));
    assert!(d.samples.iter().all(|s| s.image.dimensions() == (32, 32)));
    check_dense(&d);
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    assert!(has_problem(
        &d.problems,
        &stray,
        "does not fit the folder-per-identity layout"
    ));
}

#[test]
fn orl_subjects_sort_naturally_and_fvc_accepts_bmp_and_png() {
    let t = TempDir::new().unwrap();
    for s in [1, 2, 10] {
        for k in [1, 2, 10] {
            write(t.path(), &format!("s{s}/{k}.pgm"), 23, 28, s * k);
        }
    }
    let d = open(t.path(), &LoadOptions::default()).unwrap();
    assert_eq!(d.layout, Layout::Orl);
    assert_eq!(d.subjects, vec!["s1", "s2", "s10"]);
    assert_eq!(file_names(&d, 2), vec!["1.pgm", "2.pgm", "10.pgm"]);

    let f = TempDir::new().unwrap();
    write(f.path(), "1_2.PNG", 40, 30, 1);
    write(f.path(), "1_1.bmp", 40, 30, 2);
    write(f.path(), "2_1.Tif", 40, 30, 3);
    write(f.path(), "2_2.tif", 40, 30, 4);
    let d = open(f.path(), &LoadOptions::default()).unwrap();
    assert_eq!(d.layout, Layout::Fvc);
    assert_eq!(file_names(&d, 0), vec!["1_1.bmp", "1_2.PNG"]);
    assert_eq!(d.samples_per_subject(), vec![2, 2]);
}

#[test]
fn loading_is_deterministic() {
    let root = shared("fvc2002/DB4_B");
    let a = open(&root, &LoadOptions::default()).unwrap();
    let b = open(&root, &LoadOptions::default()).unwrap();
    for (x, y) in a.samples.iter().zip(&b.samples) {
        assert_eq!((x.subject, x.index, &x.source), (y.subject, y.index, &y.source));
        assert_eq!(x.image, y.image);
    }
}

// ---- bad input ----

#[test]
fn missing_folder_is_an_error() {
    let t = TempDir::new().unwrap();
    let p = t.path().join("nope");
    assert!(matches!(open(&p, &LoadOptions::default()), Err(Error::MissingFolder { path }) if path == p));
    assert!(matches!(inspect(&p), Err(Error::MissingFolder { .. })));
    assert!(matches!(detect_layout(&p), Err(Error::MissingFolder { .. })));
    // A file is not a folder either.
    let f = write_bytes(t.path(), "file.png", b"x");
    assert!(matches!(
        open_as(&f, Layout::Fvc, &LoadOptions::default()),
        Err(Error::MissingFolder { .. })
    ));
}

#[test]
fn empty_folders_are_errors_naming_the_folder() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    match open(r, &LoadOptions::default()) {
        Err(Error::Empty { path, .. }) => assert_eq!(path, r),
        other => panic!("{other:?}"),
    }
    // Only documentation and metadata.
    write_bytes(r, "README", b"hello");
    write_bytes(r, "Thumbs.db", b"x");
    assert!(matches!(detect_layout(r), Err(Error::Empty { .. })));
    // Only files that cannot be decoded by this build.
    write_bytes(r, "101_1.xyz", b"x");
    match inspect(r) {
        Err(Error::Empty { reason, .. }) => assert!(reason.contains("101_1.xyz"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Images with the right names, none of them decodable.
    write_bytes(r, "101_1.png", b"not a png at all");
    write_bytes(r, "101_2.png", &[]);
    match open(r, &LoadOptions::default()) {
        Err(Error::Empty { path, reason }) => {
            assert_eq!(path, r);
            assert!(reason.contains("skipped"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupt_and_truncated_images_are_skipped_with_a_problem() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    for k in 1..=3 {
        write(r, &format!("1_{k}.png"), 40, 40, k);
        write(r, &format!("2_{k}.tif"), 40, 40, k);
    }
    let png = encoded(image::ImageFormat::Png, 40, 40);
    let tif = encoded(image::ImageFormat::Tiff, 40, 40);
    let bmp = encoded(image::ImageFormat::Bmp, 40, 40);
    let trunc_png = write_bytes(r, "1_4.png", &png[..png.len() / 2]);
    let trunc_tif = write_bytes(r, "2_4.tif", &tif[..tif.len() / 3]);
    let trunc_bmp = write_bytes(r, "2_5.bmp", &bmp[..bmp.len() / 2]);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let random = write_bytes(
        r,
        "1_5.png",
        &(0..500).map(|_| rng.gen::<u8>()).collect::<Vec<_>>(),
    );
    let empty = write_bytes(r, "1_6.png", &[]);

    let d = open(r, &LoadOptions::default()).unwrap();
    assert_eq!(d.samples_per_subject(), vec![3, 3]);
    for p in [&trunc_png, &trunc_tif, &trunc_bmp, &random, &empty] {
        assert!(
            has_problem(&d.problems, p, "cannot decode image"),
            "{p:?} not in {:?}",
            d.problems
        );
        // Reading the file directly is a typed error, not a panic.
        assert!(
            matches!(load_image(p), Err(Error::Decode { path, .. }) if &path == p),
            "{p:?}"
        );
    }
    assert_eq!(d.problems.len(), 5);
    check_dense(&d);
    // Inspection finds the same files.
    let i = inspect(r).unwrap();
    assert_eq!(i.problems, d.problems);
    assert_eq!(i.samples, 6);
}

#[test]
fn load_image_reads_one_file_and_reports_io_errors() {
    let t = TempDir::new().unwrap();
    let p = write(t.path(), "x.bmp", 17, 9, 3);
    let g = load_image(&p).unwrap();
    assert_eq!(g, img(17, 9, 3));
    assert!(matches!(
        load_image(&t.path().join("missing.png")),
        Err(Error::Io { .. })
    ));
    // A PNG named .tif is still read: the format is taken from the content.
    let q = write_bytes(t.path(), "y.tif", &encoded(image::ImageFormat::Png, 5, 6));
    assert_eq!(load_image(&q).unwrap().dimensions(), (5, 6));
}

#[test]
fn unsupported_files_are_reported_and_known_extras_ignored() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    for s in 1..=2 {
        for k in 1..=2 {
            write(r, &format!("s{s}/{k}.pgm"), 20, 24, s + k);
        }
    }
    let jpg = write_bytes(r, "s1/3.jpg", b"\xff\xd8\xff\xe0 not really a jpeg");
    let avif = write_bytes(r, "s1/4.avif", b"\0\0\0\x1cftypavif");
    let xyz = write_bytes(r, "s2/3.xyz", b"?");
    let bare = write_bytes(r, "s2/data", b"?");
    for quiet in [
        "README",
        "s1/.DS_Store",
        "s1/Thumbs.db",
        "s2/notes.txt",
        "LICENSE.md",
        "s1/._1.pgm",
    ] {
        write_bytes(r, quiet, b"metadata");
    }
    let d = open(r, &LoadOptions::default()).unwrap();
    assert_eq!(d.samples_per_subject(), vec![2, 2]);
    // A JPEG is an image now: a broken one is a decode problem, not an unsupported type.
    assert!(has_problem(&d.problems, &jpg, "cannot decode image"));
    assert!(has_problem(&d.problems, &avif, "unsupported image format Avif"));
    assert!(has_problem(&d.problems, &xyz, "unknown file type"));
    assert!(has_problem(&d.problems, &bare, "no file extension"));
    assert_eq!(d.problems.len(), 4, "{:?}", d.problems);
}

#[test]
fn misnamed_files_are_reported_with_the_expected_pattern() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    for f in 1..=3 {
        for k in 1..=2 {
            write(r, &format!("{f}_{k}.png"), 20, 20, f + k);
        }
    }
    let odd = write(r, "scan-7.png", 20, 20, 1);
    let nested = write(r, "extra/1_3.png", 20, 20, 2);
    let d = open_as(r, Layout::Fvc, &LoadOptions::default()).unwrap();
    assert_eq!(d.samples.len(), 6);
    assert!(has_problem(&d.problems, &odd, "{finger}_{impression}"));
    assert!(has_problem(&d.problems, &nested, "does not fit the fvc layout"));
}

#[test]
fn single_sample_subjects_are_reported_and_dropped_below_the_minimum() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    write(r, "a/1.png", 20, 20, 1);
    write(r, "a/2.png", 20, 20, 2);
    let lonely = write(r, "b/1.png", 20, 20, 3);
    let d = open(r, &LoadOptions::default()).unwrap();
    assert_eq!(d.subjects, vec!["a", "b"]);
    assert!(has_problem(
        &d.problems,
        &lonely,
        "subject b has only 1 sample: no mated pair can be formed"
    ));

    let d2 = open(
        r,
        &LoadOptions {
            min_samples_per_subject: 2,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(d2.subjects, vec!["a"]);
    assert!(has_problem(&d2.problems, &lonely, "dropped"));

    match open(
        r,
        &LoadOptions {
            min_samples_per_subject: 3,
            ..LoadOptions::default()
        },
    ) {
        Err(Error::Empty { reason, .. }) => assert!(reason.contains("fewer than the minimum"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_layout_and_bad_parameters_are_errors() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    write(r, "cat.png", 8, 8, 1);
    write(r, "dog.png", 8, 8, 2);
    match detect_layout(r) {
        Err(Error::UnknownLayout { reason, .. }) => assert!(reason.contains("2 readable images"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        open(r, &LoadOptions::default()),
        Err(Error::UnknownLayout { .. })
    ));
    // Forcing a layout that nothing fits leaves nothing to load.
    assert!(matches!(
        open_as(r, Layout::Orl, &LoadOptions::default()),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        open_as(r, Layout::Synthetic, &LoadOptions::default()),
        Err(Error::InvalidParameter { name: "layout", .. })
    ));
    let fvc = shared("fvc2002/DB1_B");
    assert!(matches!(
        open(
            &fvc,
            &LoadOptions {
                input: InputSpec {
                    roi: Some(0),
                    ..InputSpec::plain(96)
                },
                ..LoadOptions::default()
            }
        ),
        Err(Error::InvalidParameter { name: "roi", .. })
    ));
    let fvc = shared("fvc2002/DB1_B");
    assert!(matches!(
        open(&fvc, &LoadOptions::at_size(0)),
        Err(Error::InvalidParameter { name: "size", .. })
    ));
    assert!(loaders::parse_layout("nonsense").is_err());
    assert_eq!(loaders::parse_layout("ORL").unwrap(), Layout::Orl);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary bytes never make the decoder panic.
    #[test]
    fn decode_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_bytes(&bytes);
    }

    /// Valid images with a few bytes flipped or cut never make the decoder panic.
    #[test]
    fn damaged_images_never_panic(
        which in 0usize..3,
        cut in 0.0f64..1.0,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let format = [image::ImageFormat::Png, image::ImageFormat::Tiff, image::ImageFormat::Bmp][which];
        let mut b = encoded(format, 12, 9);
        for (i, v) in flips {
            let k = i.index(b.len());
            b[k] = v;
        }
        b.truncate(((b.len() as f64) * cut) as usize + 1);
        if let Ok(g) = decode_bytes(&b) {
            prop_assert!(g.width() > 0 && g.height() > 0);
        }
    }
}

/// The fit filter (Lanczos-3) keeps more ridge contrast than a triangle filter on real scans,
/// which is why it is the default (see `nhm_data::preprocess`).
#[test]
fn lanczos_keeps_more_ridge_contrast_on_real_scans() {
    fn std_dev(img: &GrayImage) -> f64 {
        let v: Vec<f64> = img.as_raw().iter().map(|&p| p as f64).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }
    for folder in ["fvc2002/DB1_B", "fvc2002/DB4_B"] {
        let (mut lanczos, mut triangle) = (0.0, 0.0);
        for k in 1..=8 {
            let g = load_image(&shared(&format!("{folder}/101_{k}.tif"))).unwrap();
            let s = g.width().min(g.height());
            let crop =
                image::imageops::crop_imm(&g, (g.width() - s) / 2, (g.height() - s) / 2, s, s).to_image();
            lanczos += std_dev(&nhm_data::preprocess::fit(&g, 96, Fit::CenterCropResize));
            triangle += std_dev(&image::imageops::resize(
                &crop,
                96,
                96,
                image::imageops::FilterType::Triangle,
            ));
        }
        println!(
            "{folder}: mean grey std after fit: lanczos3 {:.2}, triangle {:.2}",
            lanczos / 8.0,
            triangle / 8.0
        );
        assert!(lanczos > triangle, "{folder}: {lanczos} vs {triangle}");
    }
}

#[test]
fn roi_crops_around_the_print_before_fitting() {
    let root = shared("fvc2002/DB1_B");
    let whole = open(&root, &LoadOptions::at_size(64)).unwrap();
    let roi = open(
        &root,
        &LoadOptions {
            input: InputSpec {
                roi: Some(144),
                ..InputSpec::plain(64)
            },
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(roi.samples.len(), whole.samples.len());
    // A 144-px crop around the print is filled with ridges; the whole 388x374 frame fitted to the
    // same 64 px is part background, and its 9-px ridge period shrinks to about 1.5 px, where
    // the resampling filter smooths most of the ridge contrast away.
    let ridge_share = |ds: &nhm_data::Dataset| {
        let mut busy = 0usize;
        let mut all = 0usize;
        for s in &ds.samples {
            let img = &s.image;
            assert_eq!(img.dimensions(), (64, 64));
            for by in (0..64).step_by(8) {
                for bx in (0..64).step_by(8) {
                    let px: Vec<f64> = (0..64)
                        .map(|i| img.get_pixel(bx + i % 8, by + i / 8).0[0] as f64)
                        .collect();
                    let m = px.iter().sum::<f64>() / 64.0;
                    let sd = (px.iter().map(|p| (p - m).powi(2)).sum::<f64>() / 64.0).sqrt();
                    busy += (sd > 30.0) as usize;
                    all += 1;
                }
            }
        }
        busy as f64 / all as f64
    };
    let (a, b) = (ridge_share(&whole), ridge_share(&roi));
    assert!(
        b > a + 0.1,
        "share of ridge blocks: whole frame {a:.3}, roi {b:.3}"
    );
}

// ---- JPEG, GIF, WebP; zero-padded FVC; Neurotechnology; naming rules; resolution ----

#[test]
fn jpeg_gif_and_webp_folders_decode() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    for f in 1..=2 {
        for (k, ext) in [(1, "jpg"), (2, "JPEG"), (3, "gif"), (4, "webp")] {
            write(r, &format!("{f:03}_{k}.{ext}"), 40, 30, f * 10 + k);
        }
    }
    assert_eq!(detect_layout(r).unwrap(), Layout::Fvc);
    let d = open(r, &LoadOptions::default()).unwrap();
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.subjects, vec!["001", "002"]);
    assert_eq!(
        file_names(&d, 0),
        vec!["001_1.jpg", "001_2.JPEG", "001_3.gif", "001_4.webp"]
    );
    assert!(d.samples.iter().all(|s| s.original_size == (40, 30)));
    // Lossless formats give the pixels back; JPEG comes close.
    let g = load_image(&r.join("002_4.webp")).unwrap();
    assert_eq!(g, img(40, 30, 24));
    let j = load_image(&r.join("002_1.jpg")).unwrap();
    let diff = j
        .as_raw()
        .iter()
        .zip(img(40, 30, 21).as_raw())
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .sum::<i32>() as f64
        / 1200.0;
    assert!(diff < 40.0, "mean JPEG error {diff}");
    check_dense(&d);
    // Truncated files of the new formats are problems, not panics.
    let jpg = encoded(image::ImageFormat::Jpeg, 40, 30);
    let gif = encoded(image::ImageFormat::Gif, 40, 30);
    let webp = encoded(image::ImageFormat::WebP, 40, 30);
    let bad = [
        write_bytes(r, "003_1.jpg", &jpg[..jpg.len() / 3]),
        write_bytes(r, "003_2.gif", &gif[..gif.len() / 2]),
        write_bytes(r, "003_3.webp", &webp[..webp.len() / 2]),
    ];
    let d = open(r, &LoadOptions::default()).unwrap();
    for p in &bad {
        assert!(
            has_problem(&d.problems, p, "cannot decode image"),
            "{p:?}: {:?}",
            d.problems
        );
        assert!(matches!(load_image(p), Err(Error::Decode { .. })), "{p:?}");
    }
    assert_eq!(d.n_subjects(), 2);
}

#[test]
fn fvc2002_db1_a_zero_padded_jpegs_are_100_fingers_by_5() {
    let Some(root) = shared_or_skip("fvc2002/DB1_A") else {
        return;
    };
    assert_eq!(detect_layout(&root).unwrap(), Layout::Fvc);
    let d = open(&root, &LoadOptions::default()).unwrap();
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.n_subjects(), 100);
    assert_eq!(d.samples_per_subject(), vec![5; 100]);
    assert_eq!(
        d.subjects,
        (1..=100).map(|n| format!("{n:03}")).collect::<Vec<_>>()
    );
    assert_eq!(
        file_names(&d, 9),
        (1..=5).map(|i| format!("010_{i}.jpg")).collect::<Vec<_>>()
    );
    assert!(d
        .samples
        .iter()
        .all(|s| s.original_size == (388, 374) && s.image.dimensions() == (96, 96)));
    check_dense(&d);
    // The JFIF header states only an aspect ratio: no resolution.
    assert!(d.samples.iter().all(|s| s.dpi.is_none()));
    let (lo, hi) = d.samples[0]
        .image
        .as_raw()
        .iter()
        .fold((255u8, 0u8), |(l, h), &p| (l.min(p), h.max(p)));
    assert!(hi - lo > 100, "contrast {lo}..{hi}");
}

fn neurotech(sensor: &str, identities: usize) -> Option<Dataset> {
    let root = shared_or_skip(&format!("neurotech/{sensor}"))?;
    assert_eq!(detect_layout(&root).unwrap(), Layout::PersonFingerScan);
    let d = open(&root, &LoadOptions::at_size(48)).unwrap();
    assert_eq!(d.layout, Layout::PersonFingerScan);
    // readme.txt is documentation: ignored without a word.
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.n_subjects(), identities);
    assert_eq!(d.samples_per_subject(), vec![8; identities]);
    check_dense(&d);
    Some(d)
}

#[test]
fn neurotech_folders_share_person_finger_labels_across_sensors() {
    let (Some(u), Some(c)) = (neurotech("UareU", 65), neurotech("CrossMatch", 51)) else {
        return;
    };
    // Person 012 before 013, finger 2 before 10; scans in number order.
    assert_eq!(&u.subjects[..3], &["012_1", "012_2", "012_3"]);
    assert_eq!(u.subjects[9], "012_10");
    assert_eq!(
        file_names(&u, 0),
        (1..=8).map(|i| format!("012_1_{i}.png")).collect::<Vec<_>>()
    );
    assert!(u.samples.iter().all(|s| s.original_size == (326, 357)));
    assert!(c.samples.iter().all(|s| s.original_size == (504, 480)));
    let both: Vec<&String> = u.subjects.iter().filter(|l| c.subjects.contains(l)).collect();
    assert_eq!(both.len(), 39, "{both:?}");
    assert!(both.contains(&&"012_3".to_string()));
    // The same finger on both sensors, paired by label.
    let uk = u.subjects.iter().position(|l| l == "027_5").unwrap() as u32;
    let ck = c.subjects.iter().position(|l| l == "027_5").unwrap() as u32;
    assert_eq!(u.samples_of(uk).count(), c.samples_of(ck).count());

    // A naming rule that spells out the same layout reads the same identities.
    let rule = NamingRule::parse("{subject}_{finger}_{sample}").unwrap();
    let i = inspect_named(&shared("neurotech/CrossMatch"), &rule).unwrap();
    assert_eq!(i.subject_labels, c.subjects);
    assert_eq!(i.layout, Layout::Custom);
}

#[test]
fn naming_rules_read_unknown_layouts() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    let mut seed = 0;
    let mut w = |rel: &str| {
        seed += 1;
        write(r, rel, 20, 24, seed)
    };
    for p in ["anna", "bo"] {
        for hand in ["L", "R"] {
            for k in [1, 2, 10] {
                w(&format!("scans/{p}-{hand}-x{k}.png"));
            }
        }
    }
    let odd = w("scans/anna_L_3.png");
    // Detection sees one folder of images: a single identity, which is wrong.
    assert_eq!(detect_layout(r).unwrap(), Layout::FolderPerIdentity);
    let rule = NamingRule::parse("scans/{subject}-{hand}-x{sample}").unwrap();
    let opts = LoadOptions {
        naming: Some(rule.clone()),
        ..LoadOptions::default()
    };
    let d = open(r, &opts).unwrap();
    assert_eq!(d.layout, Layout::Custom);
    assert_eq!(d.subjects, vec!["anna_L", "anna_R", "bo_L", "bo_R"]);
    // Samples in number order, not name order.
    assert_eq!(
        file_names(&d, 0),
        vec!["anna-L-x1.png", "anna-L-x2.png", "anna-L-x10.png"]
    );
    check_dense(&d);
    assert!(has_problem(
        &d.problems,
        &odd,
        "path does not fit the naming rule scans/{subject}-{hand}-x{sample}"
    ));
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    // open_as with the custom layout is the same; a regex reads the same identities.
    let same = open_as(r, Layout::Custom, &opts).unwrap();
    assert_eq!(same.subjects, d.subjects);
    let re =
        NamingRule::parse(r"re:^scans/(?P<subject>[a-z]+)-(?P<hand>[LR])-x(?P<sample>\d+)\.png$").unwrap();
    let d2 = open(
        r,
        &LoadOptions {
            naming: Some(re),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(d2.subjects, d.subjects);

    // Inspection names the rule and what it read from a couple of files.
    let i = inspect_named(r, &rule).unwrap();
    assert_eq!(i.naming.as_deref(), Some(rule.as_str()));
    assert_eq!(i.examples.len(), 2);
    assert_eq!(i.examples[0].file, "scans/anna-L-x1.png");
    assert_eq!(i.examples[1].identity, "bo_R");
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["layout"], "custom");
    assert_eq!(json["examples"][0]["fields"][1]["name"], "hand");
    assert_eq!(json["examples"][0]["fields"][1]["value"], "L");
    assert_eq!(json["examples"][0]["sample"], "1");
    let text = i.to_string();
    assert!(
        text.contains("naming       scans/{subject}-{hand}-x{sample}"),
        "{text}"
    );
    assert!(
        text.contains("identity anna_L, sample 1 (subject=anna hand=L sample=1)"),
        "{text}"
    );

    // A rule that fits nothing leaves nothing to read, and says which rule.
    let none = NamingRule::parse("{subject}#{sample}").unwrap();
    match inspect_named(r, &none) {
        Err(Error::Empty { reason, .. }) => assert!(reason.contains("{subject}#{sample}"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn custom_layout_without_a_rule_or_with_another_layout_is_an_error() {
    let t = TempDir::new().unwrap();
    write(t.path(), "1_1.png", 8, 8, 1);
    assert!(matches!(
        open_as(t.path(), Layout::Custom, &LoadOptions::default()),
        Err(Error::InvalidParameter { name: "naming", .. })
    ));
    assert!(matches!(
        inspect_as(t.path(), Layout::Custom),
        Err(Error::InvalidParameter { name: "naming", .. })
    ));
    let opts = LoadOptions {
        naming: Some(NamingRule::parse("{subject}_{sample}").unwrap()),
        ..LoadOptions::default()
    };
    match open_as(t.path(), Layout::Fvc, &opts) {
        Err(Error::InvalidParameter {
            name: "naming",
            reason,
        }) => {
            assert!(reason.contains("fvc"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        NamingRule::parse("{sample}"),
        Err(Error::InvalidNaming { .. })
    ));
    assert_eq!(
        loaders::parse_layout("neurotech").unwrap(),
        Layout::PersonFingerScan
    );
    assert_eq!(
        loaders::parse_layout("person-finger-scan").unwrap(),
        Layout::PersonFingerScan
    );
    assert_eq!(loaders::parse_layout("custom").unwrap(), Layout::Custom);
}

#[test]
fn header_resolutions_reach_samples() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    // A PNG written with a 500 dpi pHYs chunk (19685 px/m), and one with a converter's 72 dpi.
    let with_phys = |ppm: u32| {
        let png = encoded(image::ImageFormat::Png, 20, 20);
        let mut out = png[..33].to_vec();
        let mut chunk = b"pHYs".to_vec();
        chunk.extend(ppm.to_be_bytes());
        chunk.extend(ppm.to_be_bytes());
        chunk.push(1);
        out.extend(9u32.to_be_bytes());
        out.extend(&chunk);
        out.extend(crc32(&chunk).to_be_bytes());
        out.extend(&png[33..]);
        out
    };
    let a = write_bytes(r, "1_1.png", &with_phys(19685));
    let b = write_bytes(r, "1_2.png", &with_phys(2835));
    assert!((image_dpi(&a).unwrap() - 500.0).abs() < 0.5);
    assert_eq!(image_dpi(&b), None);
    // A scale-free contract does not look for resolutions.
    let d = open(r, &LoadOptions::default()).unwrap();
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert!(d.samples.iter().all(|s| s.dpi.is_none()));
    // A scan contract: the header's resolution first; a file without one (too small for a ridge
    // estimate) takes the user's, and only then.
    let scan = |user_dpi| LoadOptions {
        input: InputSpec::scan(16, 500.0, 16),
        user_dpi,
        ..LoadOptions::default()
    };
    let d = open(r, &scan(None)).unwrap();
    assert_eq!(d.samples[0].dpi, Some(image_dpi(&a).unwrap()));
    assert_eq!(d.samples[1].dpi, None);
    let d = open(r, &scan(Some(569.0))).unwrap();
    assert_eq!(d.samples[0].dpi, Some(image_dpi(&a).unwrap()));
    assert_eq!(d.samples[1].dpi, Some(569.0));
    let i = inspect(r).unwrap();
    assert_eq!(
        i.dpi,
        BTreeMap::from([("500".to_string(), 1), ("none".to_string(), 1)])
    );
    assert!(i.to_string().contains("dpi          500 (1), none (1)"), "{i}");
}

/// The CRC-32 of PNG chunks (ISO 3309), bit by bit: small and slow, for tests.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn shipped_files_report_their_resolution() {
    for (folder, file) in [
        ("fvc2002/DB1_A", "001_1.jpg"),
        ("fvc2002/DB1_B", "101_1.tif"),
        ("fvc2002/DB4_B", "101_1.tif"),
        ("neurotech/UareU", "012_1_1.png"),
        ("neurotech/CrossMatch", "012_3_1.png"),
        ("orl_faces", "s1/1.pgm"),
        ("extended_yale_b", "yaleB01/yaleB01_P00A+000E+00.png"),
    ] {
        let Some(root) = shared_or_skip(folder) else {
            continue;
        };
        let p = root.join(file);
        if !p.is_file() {
            println!("{folder}/{file}: absent");
            continue;
        }
        let dpi = image_dpi(&p);
        println!("{folder}/{file}: {dpi:?} dpi");
        if let Some(d) = dpi {
            assert!((250.0..=5000.0).contains(&d), "{folder}: {d}");
        }
    }
}

/// A photo marked by EXIF as turned a quarter (orientation 6, as phones store portraits) is read
/// upright: its sides swap and the pixel stored top-left ends up top-right.
#[test]
fn exif_orientation_is_applied_on_reading() {
    use image::ImageEncoder as _;
    let dir = TempDir::new().unwrap();
    // 8×4 grey, dark in the stored top-left quarter, light elsewhere.
    let stored = GrayImage::from_fn(8, 4, |x, y| image::Luma([if x < 4 && y < 2 { 10 } else { 240 }]));
    // A minimal little-endian TIFF-structured EXIF block with one entry: Orientation = 6.
    let exif: Vec<u8> = vec![
        0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00, // header, first IFD at 8
        0x01, 0x00, // one entry
        0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, // 0x0112 SHORT 1 = 6
        0x00, 0x00, 0x00, 0x00, // no next IFD
    ];
    let mut bytes = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 100);
    enc.set_exif_metadata(exif).unwrap();
    enc.write_image(stored.as_raw(), 8, 4, image::ExtendedColorType::L8)
        .unwrap();
    let path = write_bytes(dir.path(), "turned.jpg", &bytes);
    let upright = load_image(&path).unwrap();
    assert_eq!(upright.dimensions(), (4, 8));
    // Rotating 90° clockwise puts the stored top-left quarter at the top right.
    assert!(upright.get_pixel(3, 0)[0] < 60, "{:?}", upright.get_pixel(3, 0));
    assert!(upright.get_pixel(0, 0)[0] > 180, "{:?}", upright.get_pixel(0, 0));
    let from_bytes = decode_bytes(&bytes).unwrap();
    assert_eq!(from_bytes.dimensions(), (4, 8));
}
