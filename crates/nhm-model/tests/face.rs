//! The face pipeline against dlib, its reference implementation: `scripts/face-reference.py`
//! ran dlib 20.0.1's Python module once on shipped faces and stored what each stage gave in
//! `tests/fixtures/face/reference.json` (with dlib's aligned chips as PNG). Tolerances:
//!
//! - backbone: every descriptor value within 2e-3 of dlib's on dlib's own chips (Euclidean
//!   distance under 0.01, where dlib's same-person threshold is 0.6);
//! - detector: the same number of faces and the best box overlapping dlib's at IoU ≥ 0.8 (dlib
//!   tiles its pyramid levels into one image; here each level runs on its own);
//! - whole pipeline (detector → landmarks → chip → backbone): within distance 0.02 of dlib's
//!   descriptor of the same image.

use std::path::{Path, PathBuf};

use nhm_data::face::FaceBox;
use nhm_model::face::{
    FaceBackbone, FaceContract, FaceDetector, FaceModel, FaceProblem, NoFacePolicy, CHIP_SIZE,
};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models() -> PathBuf {
    repo().join("models/face")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/face")
}

fn reference() -> Value {
    let bytes = std::fs::read(fixture().join("reference.json")).expect("the reference fixture");
    serde_json::from_slice(&bytes).expect("reference.json is JSON")
}

/// The image of a fixture entry, `None` (with a note) when the shared data is not beside the
/// repository.
fn image_path(entry: &Value) -> Option<PathBuf> {
    let rel = entry["path"].as_str().expect("path");
    let p = match entry["root"].as_str() {
        Some("fixture") => fixture().join(rel),
        _ => repo().join("../shared/data").join(rel),
    };
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping {}: not found (shared data missing)", p.display());
        None
    }
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

#[test]
fn backbone_matches_dlib_on_its_own_chips() {
    let backbone = FaceBackbone::load(&models().join("backbone.safetensors")).expect("backbone");
    let r = reference();
    let images = r["images"].as_array().expect("images");
    assert!(images.len() >= 5);
    for entry in images {
        let chip = image::open(fixture().join(entry["chip"]["file"].as_str().expect("chip file")))
            .expect("chip png")
            .to_rgb8();
        assert_eq!(chip.dimensions(), (CHIP_SIZE as u32, CHIP_SIZE as u32));
        let ours = &backbone.describe_rgb(chip.as_raw(), 1).expect("describe")[0];
        let dlib = floats(&entry["descriptor_chip"]);
        let worst = ours
            .iter()
            .zip(&dlib)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{}: largest difference from dlib's descriptor {worst:e}",
            entry["path"]
        );
        assert!(worst <= 2e-3, "{}: max difference {worst}", entry["path"]);
        assert!(distance(ours, &dlib) < 0.01);
    }
}

#[test]
fn detector_finds_the_faces_dlib_finds() {
    let detector = FaceDetector::load(&models().join("detector.safetensors")).expect("detector");
    for entry in reference()["images"].as_array().expect("images") {
        let Some(path) = image_path(entry) else { continue };
        let img = nhm_data::loaders::load_image(&path).expect("image");
        let ours = detector.detect(&img, 1, 0.0).expect("detect");
        let dlib = entry["detections"]["upsample_1"].as_array().expect("detections");
        assert_eq!(ours.len(), dlib.len(), "{}: {ours:?}", path.display());
        if let (Some(a), Some(b)) = (ours.first(), dlib.first()) {
            let b = FaceBox {
                left: b["left"].as_f64().unwrap_or(0.0) as f32,
                top: b["top"].as_f64().unwrap_or(0.0) as f32,
                right: b["right"].as_f64().unwrap_or(0.0) as f32,
                bottom: b["bottom"].as_f64().unwrap_or(0.0) as f32,
            };
            let iou = iou(&a.rect, &b);
            eprintln!("{}: ours {:?}, dlib's {b:?}, IoU {iou}", path.display(), a.rect);
            assert!(
                iou >= 0.8,
                "{}: IoU {iou} ({:?} vs {b:?})",
                path.display(),
                a.rect
            );
        }
    }
}

fn iou(a: &FaceBox, b: &FaceBox) -> f32 {
    let iw = (a.right.min(b.right) - a.left.max(b.left)).max(0.0);
    let ih = (a.bottom.min(b.bottom) - a.top.max(b.top)).max(0.0);
    let area = |r: &FaceBox| (r.right - r.left) * (r.bottom - r.top);
    iw * ih / (area(a) + area(b) - iw * ih)
}

fn model(policy: NoFacePolicy) -> FaceModel {
    FaceModel::from_parts(
        &models(),
        FaceContract {
            no_face: policy,
            ..FaceContract::default()
        },
        "test".into(),
    )
    .expect("the shipped face parts")
}

#[test]
fn whole_pipeline_is_close_to_dlibs() {
    let m = model(NoFacePolicy::Error);
    for entry in reference()["images"].as_array().expect("images") {
        let Some(path) = image_path(entry) else { continue };
        if entry["detections"]["upsample_1"]
            .as_array()
            .is_none_or(|d| d.is_empty())
        {
            continue;
        }
        let img = nhm_data::loaders::load_image(&path).expect("image");
        let found = m.find(&img).expect("find").expect("a face");
        let raw = &m
            .backbone()
            .describe_rgb(&grey_to_rgb(&found.chip), 1)
            .expect("describe")[0];
        // dlib's descriptor through its own detection, landmarks in that box, and chip.
        let dlib = floats(&entry["chip_detection"]["descriptor_pipeline"]);
        let d = distance(raw, &dlib);
        eprintln!("{}: distance to dlib's pipeline {d:.4}", path.display());
        assert!(d < 0.02, "{}: distance {d}", path.display());
    }
}

fn grey_to_rgb(g: &image::GrayImage) -> Vec<u8> {
    g.as_raw().iter().flat_map(|&v| [v, v, v]).collect()
}

#[test]
fn a_frame_without_a_face_is_refused_or_taken_whole_by_policy() {
    let blank = image::GrayImage::from_pixel(200, 160, image::Luma([128]));
    match model(NoFacePolicy::Error).find(&blank).expect("find") {
        Err(FaceProblem::NoFace { .. }) => {}
        other => panic!("expected no face, got {other:?}"),
    }
    let whole = model(NoFacePolicy::WholeFrame)
        .find(&blank)
        .expect("find")
        .expect("whole frame");
    assert!(whole.detection.is_none());
    assert_eq!(whole.chip.dimensions(), (CHIP_SIZE as u32, CHIP_SIZE as u32));
}

#[test]
fn a_tiny_face_is_refused_by_name() {
    let frame = image::open(fixture().join("frame-0.png"))
        .expect("frame")
        .to_luma8();
    let strict = FaceModel::from_parts(
        &models(),
        FaceContract {
            min_face: 1000.0,
            ..FaceContract::default()
        },
        "test".into(),
    )
    .expect("model");
    match strict.find(&frame).expect("find") {
        Err(FaceProblem::TooSmall { side, min }) => assert!(side < min),
        other => panic!("expected a face too small, got {other:?}"),
    }
    // The same face at the default contract is found.
    assert!(model(NoFacePolicy::Error).find(&frame).expect("find").is_ok());
}

#[test]
fn malformed_weight_files_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("backbone.safetensors");
    std::fs::write(&bad, b"not safetensors").expect("write");
    let err = FaceBackbone::load(&bad).expect_err("garbage").to_string();
    assert!(err.contains("backbone.safetensors"), "{err}");
    // A real file of another part: the format tag names what was expected.
    let err = FaceBackbone::load(&models().join("detector.safetensors")).expect_err("detector as backbone");
    assert!(err.to_string().contains("nhm-dlib-resnet/1"), "{err}");
    let err = FaceDetector::load(&dir.path().join("absent.safetensors")).expect_err("missing");
    assert!(err.to_string().contains("absent.safetensors"), "{err}");
}

#[test]
fn chips_cached_on_disk_are_the_chips_computed() {
    // The only test of this binary that reads files through prepare_file, so the variable
    // cannot reach another test.
    let cache = tempfile::tempdir().expect("tmp");
    std::env::set_var(nhm_model::face::FACE_CACHE_VAR, cache.path());
    let frame = fixture().join("frame-0.png");
    let m = model(NoFacePolicy::Error);
    let first = m.prepare_file(&frame).expect("a face");
    let files: Vec<_> = std::fs::read_dir(cache.path()).expect("cache").collect();
    assert_eq!(files.len(), 1, "one chip cached");
    let again = m.prepare_file(&frame).expect("a face");
    assert_eq!(first, again);
    // Another policy finds the same detected face in the same cache entry.
    let whole = model(NoFacePolicy::WholeFrame)
        .prepare_file(&frame)
        .expect("a face");
    assert_eq!(first, whole);
    assert_eq!(std::fs::read_dir(cache.path()).expect("cache").count(), 1);
    std::env::remove_var(nhm_model::face::FACE_CACHE_VAR);
}
