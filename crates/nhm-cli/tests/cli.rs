//! End-to-end tests of the `nhm` binary: what a user types, what they get back.

mod common;

use std::path::Path;

use common::{nhm, s, shared, stderr, stdout};

/// The README's main job, small: generate, train, encode, enrol, verify, identify, report. Then
/// the client side on the model it produced: keys, encoding, and every bad input of `encode`.
#[test]
fn quick_demo_then_encode() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = nhm(&["demo", "--quick", "--out", s(&out)]);
    assert!(o.status.success(), "demo failed: {}", stderr(&o));
    assert!(stdout(&o).contains("verify, genuine"), "{}", stdout(&o));
    // The shipped model's figures on real scans it never trained on.
    assert!(stdout(&o).contains("FVC2002 DB1_B: binary EER"), "{}", stdout(&o));
    assert!(out.join("shipped/fvc2002-DB4_B/report.json").is_file());
    // The shipped face model on ORL identities it never trained on.
    assert!(stdout(&o).contains("the shipped face model"), "{}", stdout(&o));
    assert!(out.join("shipped/face-orl/report.json").is_file());

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema_version"], 1);
    let face = &report["extra"]["shipped_face_model"];
    assert_eq!(face["identities"], 10);
    assert_eq!(face["hashmap_bits"], 2048);
    assert!(face["binary_eer"].as_f64().unwrap() < face["raw_pixels_eer"].as_f64().unwrap() / 2.0);
    let shipped = report["extra"]["shipped_model_real_scans"].as_array().unwrap();
    assert_eq!(shipped.len(), 2, "{shipped:?}");
    assert!(shipped
        .iter()
        .all(|r| r["impostor_pairs"] == 45 && r["binary_eer"].as_f64().is_some()));
    let systems = report["systems"].as_array().unwrap();
    assert_eq!(systems.len(), 5);
    let eer = |i: usize| systems[i]["figures"]["eer"].as_f64().unwrap();
    for i in 0..systems.len() {
        assert!((0.0..=1.0).contains(&eer(i)), "EER of system {i} out of range");
    }
    // Even the quick run's encoder must beat raw pixels on unseen fingers.
    assert!(
        eer(1) < eer(0),
        "learned embedding EER {} not below raw pixels {}",
        eer(1),
        eer(0)
    );
    for f in [
        "report.md",
        "report.html",
        "det.png",
        "scores-binary.csv",
        "scores-binary.txt",
        "threshold.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let model = out.join("model");

    // A model folder whose run has not finished (as while training still runs): `eval` warns
    // before it reads any data (here a missing folder, so that it stops right after).
    let running = dir.path().join("running");
    std::fs::create_dir_all(running.join("last")).unwrap();
    for f in ["checkpoint.json", "encoder.safetensors"] {
        std::fs::copy(model.join(f), running.join(f)).unwrap();
    }
    let state = std::fs::read_to_string(model.join("last/state.json")).unwrap();
    let unfinished = state.replace("\"finished\": true", "\"finished\": false");
    assert_ne!(state, unfinished, "state.json has no finished flag");
    std::fs::write(running.join("last/state.json"), unfinished).unwrap();
    let o = nhm(&["eval", "--model", s(&running), "--data", "/no/such/set"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("has not finished"), "{}", stderr(&o));
    let o = nhm(&["eval", "--model", s(&model), "--data", "/no/such/set"]);
    assert!(!stderr(&o).contains("has not finished"), "{}", stderr(&o));

    // A key, then hashmaps of a real FVC folder.
    let key = dir.path().join("client.key");
    let o = nhm(&["key", "new", "--out", s(&key)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The hashmaps of DB1_B's 80 images, with extra `encode` flags.
    let encode_db1 = |name: &str, extra: &[&str]| -> Vec<nhm_template::Hashmap> {
        let out = dir.path().join(name);
        let mut args = vec!["encode", "--model", s(&model), "--key", s(&key), "--out", s(&out)];
        args.extend_from_slice(extra);
        let db1 = shared("fvc2002/DB1_B");
        args.push(s(&db1));
        let o = nhm(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| nhm_template::Hashmap::from_base64(v["template"].as_str().unwrap()).unwrap())
            .collect()
    };
    let plain = encode_db1("db1.jsonl", &[]);
    assert_eq!(plain.len(), 80);
    let t = &plain[0];
    assert_eq!(t.kind(), nhm_template::HashmapKind::Binary);
    // Four stacked rotations: four times the bits, the first quarter the plain hashmap's.
    let long_dim = (4 * t.dim()).to_string();
    let long = encode_db1("db1-long.jsonl", &["--hashmap-dim", &long_dim]);
    let (nhm_template::Hashmap::Binary(short), nhm_template::Hashmap::Binary(lt)) = (t, &long[0]) else {
        panic!("binary hashmaps expected");
    };
    assert_eq!(lt.dim(), 4 * short.dim());
    assert!((0..short.dim()).all(|i| lt.bit(i) == short.bit(i)));

    // Bad input: each a clear error naming the problem, and no output file.
    let bad_out = dir.path().join("never.jsonl");
    let short_key = dir.path().join("short.key");
    std::fs::write(&short_key, "abcd\n").unwrap();
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let other_model = dir.path().join("nope");
    let img = shared("fvc2002/DB1_B/101_1.tif");
    let cases: [(&[&str], &str); 5] = [
        (&["--model", s(&model), "--key", s(&short_key)], "key"),
        (
            &["--model", s(&model), "--key", s(&key), "--hashmap-dim", "300"],
            "hashmap's length",
        ),
        (&["--model", s(&other_model), "--key", s(&key)], "encoder"),
        (
            &["--model", s(&model), "--key", s(&key), "--kind", "fuzzy"],
            "fuzzy",
        ),
        (
            &["--model", s(&model), "--key", s(&key), s(&corrupt)],
            "corrupt.png",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["encode", "--out", s(&bad_out)];
        full.extend_from_slice(args);
        if !args.iter().any(|a| a.ends_with(".png")) {
            full.push(s(&img));
        }
        let o = nhm(&full);
        assert!(!o.status.success(), "encode {args:?} should fail");
        assert!(
            stderr(&o).contains(needle),
            "error for {args:?} does not name {needle}: {}",
            stderr(&o)
        );
        assert!(!bad_out.exists(), "a failed encode left {}", bad_out.display());
    }

    // Fine-tuning the demo's encoder on real faces: its architecture comes from the checkpoint,
    // and the header records where the weights started.
    let orl = shared("orl_faces");
    let fine_tune = |out: &Path, extra: &[&str]| {
        let mut args = vec!["train", "--data", s(&orl), "--init", s(&model), "--out", s(out)];
        args.extend_from_slice(extra);
        nhm(&args)
    };
    let tuned = dir.path().join("tuned");
    let o = fine_tune(&tuned, &["--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let header = std::fs::read_to_string(tuned.join("checkpoint.json")).unwrap();
    assert!(header.contains(s(&model)), "init not recorded: {header}");
    // Another architecture than the starting weights': refused, nothing written.
    let face = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/encoder-face.toml");
    let refused = dir.path().join("refused");
    let o = fine_tune(&refused, &["--model", s(&face)]);
    assert!(!o.status.success(), "a mismatched --init trained anyway");
    assert!(stderr(&o).contains("init"), "{}", stderr(&o));
    assert!(!refused.join("checkpoint.json").exists());
}

#[test]
fn synth_writes_fvc_named_images_and_a_contact_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let o = nhm(&[
        "synth",
        "--subjects",
        "3",
        "--impressions",
        "2",
        "--out",
        s(dir.path()),
        "--preview",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "1_1.png",
        "1_2.png",
        "3_2.png",
        "manifest.json",
        "contact_sheet.png",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let o = nhm(&["synth", "--subjects", "0", "--out", s(dir.path())]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("subjects"), "{}", stderr(&o));
    // The centre view is recorded in the manifest; an unknown view is refused by name, by
    // `synth` and by the commands that generate their data.
    let centre = dir.path().join("centre");
    let o = nhm(&[
        "synth",
        "--subjects",
        "2",
        "--impressions",
        "1",
        "--view",
        "centre",
        "--out",
        s(&centre),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest = std::fs::read_to_string(centre.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"view\": \"centre\""), "{manifest}");
    for (args, needle) in [
        (vec!["synth", "--view", "middle"], "middle"),
        (
            vec!["train", "--synth-view", "middle", "--out", s(dir.path())],
            "middle",
        ),
        (
            vec!["eval", "--model", "/no/such/model", "--synth-view", "middle"],
            "middle",
        ),
        (vec!["synth", "--texture", "2"], "texture"),
        (
            vec!["train", "--synth-texture", "1.5", "--out", s(dir.path())],
            "texture",
        ),
    ] {
        let o = nhm(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn dataset_inspect_reports_the_real_sets() {
    for (rel, subjects, per) in [
        ("fvc2002/DB1_B", 10, 8),
        ("fvc2002/DB4_B", 10, 8),
        ("fvc2002/DB1_A", 100, 5),
        ("neurotech/UareU", 65, 8),
        ("neurotech/CrossMatch", 51, 8),
        ("orl_faces", 40, 10),
    ] {
        let o = nhm(&["dataset", "inspect", "--json", s(&shared(rel))]);
        assert!(o.status.success(), "{rel}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["subjects"], subjects, "{rel}");
        assert_eq!(v["samples"], subjects * per, "{rel}");
    }
    let o = nhm(&["dataset", "inspect", "/definitely/not/here"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/definitely/not/here"), "{}", stderr(&o));
}

#[test]
fn eval_rejects_an_unknown_protocol_and_a_missing_model() {
    let o = nhm(&["eval", "--model", "/no/such/model", "--protocol", "fvc"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/no/such/model"), "{}", stderr(&o));
    let o = nhm(&["eval", "--model", "/no/such/model", "--protocol", "sideways"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sideways"), "{}", stderr(&o));
}

#[test]
fn bad_scale_flags_are_refused_by_every_command_that_takes_them() {
    let db1 = shared("fvc2002/DB1_B");
    for (args, needle) in [
        (
            vec![
                "eval",
                "--model",
                "/no/such/model",
                "--data",
                s(&db1),
                "--roi",
                "0",
            ],
            "--roi",
        ),
        (vec!["train", "--roi", "0", "--out", "never"], "--roi"),
        (
            vec!["dataset", "preview", s(&db1), "--out", "p.png", "--roi", "0"],
            "--roi",
        ),
        (vec!["train", "--scale-dpi", "72000", "--out", "never"], "72000"),
        (
            vec![
                "encode", "--model", "m", "--key", "k", "--out", "o", "--dpi", "abc", "img.png",
            ],
            "abc",
        ),
        (vec!["eval", "--model", "m", "--dpi", "20"], "20 dpi"),
        (
            vec![
                "verify",
                "--server",
                "http://127.0.0.1:1",
                "--token",
                "t",
                "--subject",
                "a",
                "--dpi",
                "0",
                "x.png",
            ],
            "--dpi",
        ),
        (
            vec!["dataset", "inspect", s(&db1), "--naming", "{finger}_{sample}"],
            "subject",
        ),
        (
            vec!["train", "--front-end", "sharpen", "--out", "never"],
            "sharpen",
        ),
        (vec!["eval", "--model", "m", "--crop-centre", "middle"], "middle"),
        (
            vec![
                "dataset",
                "resample",
                "/no/such/set",
                "--from-dpi",
                "500",
                "--to-dpi",
                "569",
                "--out",
                "never",
            ],
            "/no/such/set",
        ),
        (
            vec![
                "dataset",
                "resample",
                s(&db1),
                "--from-dpi",
                "500",
                "--to-dpi",
                "50",
                "--out",
                "never",
            ],
            "50 dpi",
        ),
    ] {
        let o = nhm(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

/// A model trained for scans records its whole input contract: `encode` applies it with no flag,
/// brings a sample of another resolution to the model's scale, and `eval --probe-data` matches
/// the same fingers across two sensors.
#[test]
fn whiten_writes_a_whitened_copy_and_refuses_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("whitened");
    let common = [
        "whiten",
        "--subjects",
        "12",
        "--impressions",
        "3",
        "--data-seed",
        "777",
    ];
    let o = nhm(&[&common[..], &["--shrinkage", "0.2", "--out", s(&out)]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(header["whitening"]["shrinkage"], 0.2);
    assert_eq!(header["whitening"]["samples"], 36);
    assert!(out.join("whitening.safetensors").exists());
    // The whitened model encodes a real set.
    let key = dir.path().join("client.key");
    assert!(nhm(&["key", "new", "--out", s(&key)]).status.success());
    let hashmaps = dir.path().join("db1.jsonl");
    let db1 = shared("fvc2002/DB1_B");
    let o = nhm(&[
        "encode",
        "--model",
        s(&out),
        "--key",
        s(&key),
        "--out",
        s(&hashmaps),
        s(&db1),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&hashmaps).unwrap().lines().count(), 80);
    for (extra, needle) in [
        (vec!["--shrinkage", "1.5", "--out", s(&out)], "outside [0, 1]"),
        (
            vec!["--shrinkage", "0", "--subjects", "3", "--out", s(&out)],
            "singular",
        ),
        (
            vec!["--model", s(&out), "--out", s(&out)],
            "the model's own folder",
        ),
        (
            vec!["--model", "/no/such/model", "--out", s(&out)],
            "/no/such/model",
        ),
    ] {
        let mut args = vec!["whiten", "--impressions", "3", "--data-seed", "777"];
        if !extra.contains(&"--subjects") {
            args.extend(["--subjects", "12"]);
        }
        args.extend(extra.iter().copied());
        let o = nhm(&args);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    // The refused runs left the good checkpoint as it was.
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(again, header);
}

#[test]
fn scan_contract_travels_with_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("scan");
    let db1 = shared("fvc2002/DB1_B");
    let o = nhm(&[
        "train",
        "--subjects",
        "12",
        "--impressions",
        "4",
        "--epochs",
        "1",
        "--synth-view",
        "centre",
        "--roi",
        "144",
        "--dpi",
        "500",
        "--train-extra",
        s(&db1),
        "--out",
        s(&model),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("extra training data"), "{}", stderr(&o));
    let header: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(header["input"]["roi"], 144, "{header}");
    assert_eq!(header["input"]["dpi"], 500.0, "{header}");
    assert_eq!(header["input"]["modality"], "fingerprint", "{header}");

    // The same print at 500 dpi and resampled to 1000 dpi.
    let src = db1.join("101_1.tif");
    let img = image::open(&src).unwrap().to_luma8();
    let big = image::imageops::resize(
        &img,
        img.width() * 2,
        img.height() * 2,
        image::imageops::FilterType::Lanczos3,
    );
    let big_path = dir.path().join("101_1-1000dpi.png");
    big.save(&big_path).unwrap();
    let key = dir.path().join("k.key");
    assert!(nhm(&["key", "new", "--out", s(&key)]).status.success());
    let encode = |img: &Path, dpi: &str| -> nhm_template::BinaryHashmap {
        let out = dir.path().join("one.jsonl");
        let o = nhm(&[
            "encode",
            "--model",
            s(&model),
            "--key",
            s(&key),
            "--dpi",
            dpi,
            "--out",
            s(&out),
            s(img),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let line = std::fs::read_to_string(&out).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        match nhm_template::Hashmap::from_base64(v["template"].as_str().unwrap()).unwrap() {
            nhm_template::Hashmap::Binary(b) => b,
            other => panic!("binary hashmap expected, got {:?}", other.kind()),
        }
    };
    let at500 = encode(&src, "500");
    let scaled = encode(&big_path, "1000");
    let unscaled = encode(&big_path, "500");
    let (same, wrong) = (
        at500.similarity(&scaled).unwrap(),
        at500.similarity(&unscaled).unwrap(),
    );
    assert!(
        same > 0.9,
        "the rescaled sample's hashmap differs: similarity {same}"
    );
    assert!(
        same > wrong,
        "scale normalisation did not help: {same} vs {wrong}"
    );

    // The same fingers on two sensors.
    let cross = dir.path().join("cross");
    let o = nhm(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&shared("neurotech/UareU")),
        "--probe-data",
        s(&shared("neurotech/CrossMatch")),
        "--dpi",
        "500",
        "--out",
        s(&cross),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cross.join("cross.json")).unwrap()).unwrap();
    assert_eq!(v["shared_subjects"], 39);
    let bin = &v["systems"][2]["figures"];
    assert_eq!(bin["genuine_pairs"], 39 * 8 * 8);
    // Two sets with no finger in common: refused, naming why.
    let o = nhm(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&db1),
        "--probe-data",
        s(&shared("neurotech/UareU")),
        "--out",
        s(&cross),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("share 0 subject label"), "{}", stderr(&o));
}

/// `nhm attack`, small: the offline attacks on the shipped model write the table, and each bad
/// input is refused with a message naming it.
/// An attack run small enough for a test: 10 victims, 20 public fingers, 5 targets, no defences.
const SMALL_ATTACK: [&str; 10] = [
    "--victim-subjects",
    "10",
    "--impressions",
    "3",
    "--public-subjects",
    "20",
    "--targets",
    "5",
    "--defences",
    "none",
];

#[test]
fn harden_then_attack_with_the_learned_defence() {
    let dir = tempfile::tempdir().unwrap();
    let hardened = dir.path().join("hardened");
    let data = [
        "--subjects",
        "6",
        "--impressions",
        "3",
        "--data-seed",
        "42",
        "--synth-view",
        "centre",
    ];
    let tiny = [
        "--rounds",
        "1",
        "--decoder-epochs",
        "1",
        "--decoder-samples",
        "12",
        "--encoder-steps",
        "2",
    ];
    let o = nhm(&[&["harden"][..], &data, &tiny, &["--out", s(&hardened)]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("round 1: recognition loss"), "{}", stdout(&o));
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(hardened.join("checkpoint.json")).unwrap()).unwrap();
    assert!(
        header["meta"]["data"]
            .as_str()
            .unwrap()
            .contains("hardened against inversion"),
        "{header}"
    );
    for (extra, needle) in [
        (vec!["--rounds", "0"], "rounds"),
        (vec!["--learning-rate", "0"], "learning_rate"),
        (vec!["--model", s(&hardened)], "the model's own folder"),
    ] {
        let args = [&["harden"][..], &data, &["--out", s(&hardened)], &extra].concat();
        let o = nhm(&args);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }

    // The learned defence's columns join the attack table.
    let out = dir.path().join("attack");
    let small = SMALL_ATTACK;
    let o = nhm(&[
        &[
            "attack",
            "linkage",
            "--out",
            s(&out),
            "--hardened-model",
            s(&hardened),
        ][..],
        &small,
    ]
    .concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let labels: Vec<&str> = report["report"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["none", "learned defence", "learned + defaults"]);
    let face = shipped_model("face");
    for (extra, needle) in [
        (vec!["--hardened-model", s(&face)], "loading"),
        (vec!["--whitening", "2"], "--whitening 2 is outside [0, 1]"),
    ] {
        let args = [&["attack", "linkage", "--out", s(&out)][..], &small, &extra].concat();
        let o = nhm(&args);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

/// A shipped model folder (`models/NAME` at the workspace root).
fn shipped_model(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name)
}

#[test]
fn attack_writes_the_table_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("attack");
    let small = SMALL_ATTACK;
    let mut args = vec!["attack", "linkage", "--out", s(&out)];
    args.extend(small);
    let o = nhm(&args);
    assert!(o.status.success(), "attack failed: {}", stderr(&o));
    assert!(
        stdout(&o).contains("| linkage | two services, templates of both |"),
        "{}",
        stdout(&o)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["report"]["runs"][0]["label"], "none");
    assert!(out.join("report.md").is_file());

    let o = nhm(&[
        "attack",
        "wolf",
        "--victim-seed",
        "5",
        "--public-seed",
        "5",
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--victim-seed and --public-seed are equal"),
        "{}",
        stderr(&o)
    );
    let o = nhm(&["attack", "wolf", "--targets", "0", "--out", s(&out)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--targets must be at least 1"),
        "{}",
        stderr(&o)
    );
    let missing = dir.path().join("no-such-set");
    let o = nhm(&["attack", "wolf", "--victims", s(&missing), "--out", s(&out)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("loading the victims"), "{}", stderr(&o));
    let o = nhm(&["attack", "telepathy"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("telepathy"), "{}", stderr(&o));
}

/// The face path end to end on the shipped face model: `nhm face find` shows the face and its
/// landmarks, `nhm face build` fits a head on a small folder of faces, `nhm encode` turns faces
/// into hashmaps with the model given (the modality comes from the checkpoint), `nhm eval`
/// reports a face set; a frame without a face, a corrupt file and a folder of images without
/// faces are refused by name, and the fingerprint-only commands refuse a face model.
#[test]
fn face_model_finds_encodes_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/face");
    let frame = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nhm-model/tests/fixtures/face/frame-0.png");
    let blank = dir.path().join("blank.png");
    image::GrayImage::from_pixel(120, 100, image::Luma([90]))
        .save(&blank)
        .unwrap();
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG not really").unwrap();

    let sheet = dir.path().join("chips.png");
    let o = nhm(&[
        "face",
        "find",
        "--model",
        s(&models),
        "--sheet",
        s(&sheet),
        s(&frame),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 face(s) found"), "{}", stdout(&o));
    assert_eq!(image::open(&sheet).unwrap().width(), 150);
    let o = nhm(&["face", "find", "--model", s(&models), s(&blank)]);
    assert!(!o.status.success());
    assert!(stdout(&o).contains("blank.png: no face found"), "{}", stdout(&o));
    let o = nhm(&["face", "find", "--model", s(&models), s(&corrupt)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("corrupt.png"), "{}", stderr(&o));

    // A client encodes a face with the face model and refuses a frame without one, by name.
    let key = dir.path().join("k.key");
    assert!(nhm(&["key", "new", "--seed", "3", "--out", s(&key)])
        .status
        .success());
    let out = dir.path().join("h.jsonl");
    let o = nhm(&[
        "encode",
        "--model",
        s(&models),
        "--key",
        s(&key),
        "--out",
        s(&out),
        s(&frame),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["kind"], "binary");
    let o = nhm(&[
        "encode",
        "--model",
        s(&models),
        "--key",
        s(&key),
        "--out",
        s(&out),
        s(&blank),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("blank.png") && stderr(&o).contains("no face"),
        "{}",
        stderr(&o)
    );

    // A face model is not a fingerprint encoder: the synthetic-print evaluation refuses it.
    let o = nhm(&["eval", "--model", s(&models), "--out", s(&dir.path().join("e"))]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("face dataset folder"), "{}", stderr(&o));

    let orl = shared("orl_faces");
    if !orl.is_dir() {
        eprintln!("skipping the ORL part: {} not found", orl.display());
        return;
    }
    // Six ORL identities as one folder per identity: a head is fitted, then five others are
    // evaluated as unseen subjects.
    let train = dir.path().join("train");
    let test = dir.path().join("test");
    for (folder, range) in [(&train, 1..=6), (&test, 7..=11)] {
        for id in range {
            let d = folder.join(format!("s{id}"));
            std::fs::create_dir_all(&d).unwrap();
            for k in 1..=4 {
                std::fs::copy(orl.join(format!("s{id}/{k}.pgm")), d.join(format!("{k}.pgm"))).unwrap();
            }
        }
    }
    let head = dir.path().join("head");
    let o = nhm(&[
        "face",
        "build",
        "--parts",
        s(&models),
        "--data",
        s(&train),
        "--epochs",
        "2",
        "--out",
        s(&head),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("6 identities, 24 samples"), "{}", stdout(&o));
    let header: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(head.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(header["format"], "nhm-face/1");
    assert_eq!(header["head"]["dim"], 128);
    let rep = dir.path().join("eval");
    let o = nhm(&[
        "eval",
        "--model",
        s(&head),
        "--data",
        s(&test),
        "--eval-fraction",
        "1",
        "--val-fraction",
        "0",
        "--hashmap-dim",
        "1024",
        "--out",
        s(&rep),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("report.json")).unwrap()).unwrap();
    let systems = report["systems"].as_array().unwrap();
    let eer = |name: &str| {
        systems
            .iter()
            .find(|x| x["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .and_then(|x| x["figures"]["eer"].as_f64())
            .unwrap()
    };
    // Five unseen identities, four faces each: the face model must beat raw pixels clearly.
    assert!(eer("binary hashmap (") < eer("raw pixels") / 2.0, "{systems:?}");
    assert_eq!(report["config"]["failures_to_acquire"], 0);
}
