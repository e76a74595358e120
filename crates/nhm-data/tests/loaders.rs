//! Dataset loaders on the real sample data in `../shared/data` and on folders written here.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use nhm_data::loaders::{self, decode_bytes, detect_layout, inspect, load_image, open, open_as, LoadOptions};
use nhm_data::preprocess::Fit;
use nhm_data::{Dataset, Error, GrayImage, Layout};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tempfile::TempDir;

fn shared(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).join(rel)
}

/// A small image whose pixels depend on `seed`, so files differ.
fn img(w: u32, h: u32, seed: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        image::Luma([((x * 7 + y * 3 + seed * 31) % 256) as u8])
    })
}

/// Writes an image in the format its extension names, creating parent folders.
fn write(root: &Path, rel: &str, w: u32, h: u32, seed: u32) -> PathBuf {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    img(w, h, seed).save(&p).unwrap();
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
    img(w, h, 1).write_to(&mut out, format).unwrap();
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
            size: 64,
            fit: Fit::Pad,
            min_samples_per_subject: 2,
            roi: None,
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
    let d = open(
        r,
        &LoadOptions {
            size: 32,
            ..LoadOptions::default()
        },
    )
    .unwrap();
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
    // The .jpg is skipped whether or not some other crate compiled a JPEG decoder in.
    assert!(d.problems.iter().any(|p| p.path == jpg));
    assert!(has_problem(&d.problems, &xyz, "unknown file type"));
    assert!(has_problem(&d.problems, &bare, "no file extension"));
    assert_eq!(d.problems.len(), 3, "{:?}", d.problems);
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
                roi: Some(0),
                ..LoadOptions::default()
            }
        ),
        Err(Error::InvalidParameter { name: "roi", .. })
    ));
    let fvc = shared("fvc2002/DB1_B");
    assert!(matches!(
        open(
            &fvc,
            &LoadOptions {
                size: 0,
                ..LoadOptions::default()
            }
        ),
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
    let whole = open(
        &root,
        &LoadOptions {
            size: 64,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let roi = open(
        &root,
        &LoadOptions {
            size: 64,
            roi: Some(144),
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
