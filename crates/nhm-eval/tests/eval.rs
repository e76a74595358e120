//! Integration tests of nhm-eval: the protocol on hand-made templates with known answers,
//! score files, plots and reports.

use std::path::Path;

use nhm_eval::{
    det_curve, evaluate, identification, plot_det, plot_score_distributions, plot_unlinkability, read_bob4,
    read_csv, unlinkability, verification_scores, write_bob4, write_csv, Error, Fusion, Protocol, Report,
    ScoreSet, SystemResult,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 1-D templates: similarity is minus the distance.
fn sim(a: &f64, b: &f64) -> f64 {
    -(a - b).abs()
}

fn label(s: u32) -> String {
    format!("s{s}")
}

/// Subjects A = {0, 1}, B = {10, 11}, C = {20, 30}. Genuine distances 1, 1, 10; the 12 impostor
/// distances are 9, 9, 10, 10, 10, 11, 19, 19, 20, 20, 29, 30. Accepting d <= 9 gives FMR 2/12 and
/// FNMR 1/3, the closest pair of rates, so EER = (1/6 + 1/3) / 2 = 0.25 at threshold −9.
fn overlapping() -> (Vec<f64>, Vec<u32>, Vec<u32>) {
    (
        vec![0.0, 1.0, 10.0, 11.0, 20.0, 30.0],
        vec![1, 1, 2, 2, 3, 3],
        vec![0, 1, 0, 1, 0, 1],
    )
}

#[test]
fn evaluate_gives_the_hand_computed_eer() {
    let (items, subject, sample) = overlapping();
    let p = Protocol {
        enrolment_counts: vec![1],
        fmr_targets: vec![0.1, 0.2],
        ..Protocol::default()
    };
    let (f, c) = evaluate(&items, &subject, &sample, sim, &p).unwrap();
    assert_eq!(
        (f.genuine_pairs, f.impostor_pairs, f.impostor_pairs_available),
        (3, 12, 12)
    );
    assert!((f.eer - 0.25).abs() < 1e-12, "EER {}", f.eer);
    assert_eq!(f.eer_threshold, -9.0);
    assert_eq!(c.records.len(), 15);
    assert_eq!(c.records.iter().filter(|r| r.is_mated()).count(), 3);
    // FMR 0.2 allows 2 of 12 impostors (d <= 9): FNMR 1/3. FMR 0.1 allows 1, but the two at d = 9
    // tie, so none: threshold above −9, FNMR still 1/3.
    let at = &f.fnmr_at_fmr;
    assert_eq!(
        (at[1].fmr_target, at[1].threshold, at[1].fmr),
        (0.2, -9.0, 2.0 / 12.0)
    );
    assert!((at[1].fnmr - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(at[0].fmr, 0.0);
    assert!(at[0].resolvable && at[1].resolvable);
    // Identification at k = 1: each second sample finds its own subject first.
    assert_eq!(f.identification.len(), 1);
    assert_eq!(f.identification[0].rank1, 1.0);
    assert_eq!(f.identification[0].probes, 3);
}

#[test]
fn separated_templates_have_zero_eer() {
    let items = [0.0, 1.0, 2.0, 100.0, 101.0, 102.0, 200.0, 201.0];
    let (f, _) = evaluate(
        &items,
        &[1, 1, 1, 2, 2, 2, 3, 3],
        &[0, 1, 2, 0, 1, 2, 0, 1],
        sim,
        &Protocol::default(),
    )
    .unwrap();
    assert_eq!(f.eer, 0.0);
    assert!(f.fnmr_at_fmr.iter().all(|x| x.fnmr == 0.0));
    assert!(f.identification.iter().all(|r| r.rank1 == 1.0));
}

#[test]
fn unresolvable_fmr_targets_are_flagged() {
    let (items, subject, sample) = overlapping();
    let (f, _) = evaluate(&items, &subject, &sample, sim, &Protocol::default()).unwrap();
    // 12 impostor pairs: FMR below 1/12 cannot be measured.
    assert!(f.fnmr_at_fmr.iter().all(|x| !x.resolvable));
    assert!(f.fnmr_at_fmr.iter().all(|x| x.fmr == 0.0));
}

#[test]
fn identification_counts_misses_and_skips() {
    // A = {0, 1}, B = {10, 11}, C = {20, 13}, D = {40, 41, 42}, E = {50} (one sample).
    let items = [0.0, 1.0, 10.0, 11.0, 20.0, 13.0, 40.0, 41.0, 42.0, 50.0];
    let subject = [1, 1, 2, 2, 3, 3, 4, 4, 4, 5];
    let sample = [0, 1, 0, 1, 0, 1, 0, 1, 2, 0];
    let p = Protocol {
        enrolment_counts: vec![1, 2, 3],
        ..Protocol::default()
    };
    let r = identification(&items, &subject, &sample, sim, &p).unwrap();
    // k = 3: nobody has a fourth sample, so no entry.
    assert_eq!(r.len(), 2);
    // k = 1: E is skipped; probes 1, 11, 13, 41, 42. 13 is nearer B's 10 than C's 20: rank 2.
    assert_eq!(
        (
            r[0].enrolled,
            r[0].gallery_subjects,
            r[0].skipped_subjects,
            r[0].probes
        ),
        (1, 4, 1, 5)
    );
    assert!((r[0].rank1 - 4.0 / 5.0).abs() < 1e-12);
    assert_eq!(r[0].rank5, 1.0);
    // k = 2: only D has a sample left.
    assert_eq!(
        (
            r[1].enrolled,
            r[1].gallery_subjects,
            r[1].skipped_subjects,
            r[1].probes
        ),
        (2, 1, 4, 1)
    );
    assert_eq!(r[1].rank1, 1.0);
}

#[test]
fn enrolment_uses_the_first_samples_by_index_and_fusion_matters() {
    // Subject 1's samples are given out of order: index 0 is at 0.0, index 1 at 3.0, index 2 at 9.0.
    // Subject 2 has {6.0, 100.0, 200.0}. With k = 2, probe 9.0 (subject 1, index 2):
    // best: subject 1 at distance 6, subject 2 at 3 → miss; mean: subject 1 at 7.5, subject 2 at 47 → hit.
    // Probe 200.0 finds subject 2 either way.
    let items = [9.0, 3.0, 0.0, 6.0, 100.0, 200.0];
    let subject = [1, 1, 1, 2, 2, 2];
    let sample = [2, 1, 0, 0, 1, 2];
    let best = Protocol {
        enrolment_counts: vec![2],
        ..Protocol::default()
    };
    let mean = Protocol {
        fusion: Fusion::Mean,
        ..best.clone()
    };
    let r = identification(&items, &subject, &sample, sim, &best).unwrap();
    assert_eq!((r[0].probes, r[0].rank1, r[0].skipped_subjects), (2, 0.5, 0));
    let r = identification(&items, &subject, &sample, sim, &mean).unwrap();
    assert_eq!(r[0].rank1, 1.0);
}

#[test]
fn ties_count_against_the_probe() {
    // The probe 5.0 is equally near both subjects' enrolled templates.
    let items = [0.0, 5.0, 10.0, 11.0];
    let r = identification(&items, &[1, 1, 2, 2], &[0, 1, 0, 1], sim, &Protocol::default()).unwrap();
    assert_eq!(r[0].probes, 2);
    assert_eq!(r[0].rank1, 0.5);
}

#[test]
fn impostor_sampling_is_seeded_and_exact() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let items: Vec<f64> = (0..120).map(|_| rng.gen()).collect();
    let subject: Vec<u32> = (0..120).map(|i| i / 4).collect();
    let sample: Vec<u32> = (0..120).map(|i| i % 4).collect();
    let p = Protocol {
        max_impostor_pairs: 1000,
        seed: 3,
        ..Protocol::default()
    };
    let a = verification_scores(&items, &subject, &sample, sim, &p).unwrap();
    let b = verification_scores(&items, &subject, &sample, sim, &p).unwrap();
    let c = verification_scores(&items, &subject, &sample, sim, &Protocol { seed: 4, ..p.clone() }).unwrap();
    assert_eq!(a.records, b.records);
    assert_ne!(a.records, c.records);
    assert_eq!(a.scores.impostor().len(), 1000);
    assert_eq!(a.scores.genuine().len(), 30 * 6);
    assert_eq!(a.impostor_pairs_available, 120 * 119 / 2 - 180);
    let mut pairs: Vec<_> = a
        .records
        .iter()
        .map(|r| {
            (
                r.reference_subject,
                r.reference_sample,
                r.probe_subject,
                r.probe_sample,
            )
        })
        .collect();
    let n = pairs.len();
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len(), n, "a pair was drawn twice");
    // Without the cap every pair is compared.
    let all = verification_scores(&items, &subject, &sample, sim, &Protocol::default()).unwrap();
    assert_eq!(all.records.len(), 120 * 119 / 2);
}

#[test]
fn bad_protocol_input_is_rejected() {
    let (items, subject, sample) = overlapping();
    let p = Protocol::default();
    assert!(matches!(
        evaluate(&items, &subject[..5], &sample, sim, &p),
        Err(Error::LengthMismatch {
            what: "subject",
            got: 5,
            expected: 6
        })
    ));
    assert!(matches!(
        evaluate(&items, &subject, &sample[..2], sim, &p),
        Err(Error::LengthMismatch { what: "sample", .. })
    ));
    let dup = [0, 0, 0, 1, 0, 1];
    assert!(matches!(
        evaluate(&items, &subject, &dup, sim, &p),
        Err(Error::DuplicateSample {
            subject: 1,
            sample: 0,
            first: 0,
            second: 1
        })
    ));
    let zero = Protocol {
        max_impostor_pairs: 0,
        ..Protocol::default()
    };
    assert!(matches!(
        evaluate(&items, &subject, &sample, sim, &zero),
        Err(Error::InvalidParameter { .. })
    ));
    let target = Protocol {
        fmr_targets: vec![0.0],
        ..Protocol::default()
    };
    assert!(matches!(
        evaluate(&items, &subject, &sample, sim, &target),
        Err(Error::InvalidParameter { .. })
    ));
    let k0 = Protocol {
        enrolment_counts: vec![0],
        ..Protocol::default()
    };
    assert!(matches!(
        evaluate(&items, &subject, &sample, sim, &k0),
        Err(Error::InvalidParameter { .. })
    ));
    let nan = |_: &f64, _: &f64| f64::NAN;
    assert!(matches!(
        evaluate(&items, &subject, &sample, nan, &p),
        Err(Error::NonFiniteScore { .. })
    ));
    assert!(matches!(
        identification(&items, &subject, &sample, nan, &p),
        Err(Error::NonFiniteScore { .. })
    ));
    // One subject only: no impostor pairs.
    assert!(matches!(
        evaluate(&[0.0, 1.0], &[1, 1], &[0, 1], sim, &p),
        Err(Error::NoScores { which: "impostor" })
    ));
}

#[test]
fn score_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let items: Vec<f64> = (0..30).map(|_| rng.gen::<f64>() * 3.0).collect();
    let subject: Vec<u32> = (0..30).map(|i| i / 3).collect();
    let sample: Vec<u32> = (0..30).map(|i| i % 3).collect();
    let c = verification_scores(&items, &subject, &sample, sim, &Protocol::default()).unwrap();
    let bob = dir.path().join("scores.txt");
    write_bob4(&bob, &c.records, &label).unwrap();
    assert_eq!(read_bob4(&bob).unwrap(), c.scores);
    let first = std::fs::read_to_string(&bob).unwrap();
    let r = c.records[0];
    assert!(first.starts_with(&format!(
        "s{} s{} s{}/{} ",
        r.reference_subject, r.probe_subject, r.probe_subject, r.probe_sample
    )));
    let csv = dir.path().join("scores.csv");
    write_csv(&csv, &c.records, &|s| format!("subject, \"{s}\"")).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("reference_subject,probe_subject,probe_sample,score\n"));
    assert_eq!(text.lines().count(), c.records.len() + 1);
    assert_eq!(read_csv(&csv).unwrap(), c.scores);
}

#[test]
fn malformed_score_files_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.txt");
    let cases = [
        (
            "a a a/1 0.9\n# comment\n\na b b/1 0.1\na b b/2\n",
            5,
            "expected 4 fields",
        ),
        ("a a a/1 0.9\na b b/1 zero\n", 2, "not a number"),
        ("a a a/1 inf\n", 1, "not a finite number"),
        ("a a a/1 0.9 extra\n", 1, "found 5"),
    ];
    for (text, line, reason) in cases {
        std::fs::write(&path, text).unwrap();
        match read_bob4(&path) {
            Err(e @ Error::ScoreFileLine { line: l, .. }) => {
                assert_eq!(l, line, "{text:?}");
                assert!(e.to_string().contains(reason), "{e}");
                assert!(e.to_string().contains(&format!("bad.txt:{line}:")), "{e}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    std::fs::write(&path, "a a a/1 0.9\n").unwrap();
    assert!(matches!(
        read_bob4(&path),
        Err(Error::NoScores { which: "impostor" })
    ));
    assert!(matches!(
        read_bob4(&dir.path().join("missing.txt")),
        Err(Error::Io { .. })
    ));
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "reference,probe\n").unwrap();
    assert!(matches!(
        read_csv(&csv),
        Err(Error::ScoreFileLine { line: 1, .. })
    ));
    std::fs::write(
        &csv,
        "reference_subject,probe_subject,probe_sample,score\na,a,1,0.5\n\"a,b,1,0.5\n",
    )
    .unwrap();
    assert!(matches!(
        read_csv(&csv),
        Err(Error::ScoreFileLine { line: 3, .. })
    ));
}

#[test]
fn bob4_rejects_labels_that_break_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let (items, subject, sample) = overlapping();
    let c = verification_scores(&items, &subject, &sample, sim, &Protocol::default()).unwrap();
    let path = dir.path().join("s.txt");
    for bad in ["two words", "", "#hash"] {
        let labels = move |s: u32| if s == 2 { bad.to_string() } else { label(s) };
        assert!(matches!(
            write_bob4(&path, &c.records, &labels),
            Err(Error::BadLabel { subject: 2, .. })
        ));
    }
    assert!(!path.exists(), "nothing is written when a label is bad");
}

/// Reads a PNG's signature and the width and height in its IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

fn gaussian_scores(seed: u64, n: usize, mean: f64, sd: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
            mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        })
        .collect()
}

#[test]
fn plots_are_valid_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let a = ScoreSet::new(
        gaussian_scores(1, 2000, 0.8, 0.1),
        gaussian_scores(2, 20_000, 0.3, 0.1),
    )
    .unwrap();
    let b = ScoreSet::new(
        gaussian_scores(3, 2000, 0.7, 0.1),
        gaussian_scores(4, 20_000, 0.4, 0.1),
    )
    .unwrap();
    let (ca, cb) = (det_curve(&a, 200), det_curve(&b, 200));
    let det = dir.path().join("det.png");
    plot_det(&det, &[("strong", &ca), ("weak", &cb)], "DET").unwrap();
    assert_eq!(png_size(&det), (860, 800));
    let dist = dir.path().join("dist.png");
    plot_score_distributions(&dist, &a, "Scores", Some(a.eer().threshold)).unwrap();
    assert_eq!(png_size(&dist), (900, 600));
    let u = unlinkability(
        &gaussian_scores(5, 3000, 0.52, 0.05),
        &gaussian_scores(6, 3000, 0.5, 0.05),
        40,
    )
    .unwrap();
    let ul = dir.path().join("unlink.png");
    plot_unlinkability(&ul, &u, "Unlinkability").unwrap();
    assert_eq!(png_size(&ul), (900, 600));
    // A folder that does not exist cannot hold the file.
    let missing = dir.path().join("no/such/dir/det.png");
    assert!(matches!(
        plot_det(&missing, &[("a", &ca)], "x"),
        Err(Error::Plot { .. })
    ));
}

#[test]
fn report_writes_three_files_with_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let (items, subject, sample) = overlapping();
    let (f, c) = evaluate(&items, &subject, &sample, sim, &Protocol::default()).unwrap();
    plot_det(&dir.path().join("det.png"), &[("1-D", &f.det)], "DET").unwrap();
    plot_score_distributions(
        &dir.path().join("scores.png"),
        &c.scores,
        "Scores",
        Some(f.eer_threshold),
    )
    .unwrap();
    let report = Report {
        title: "Hand-made | test".into(),
        created: "2025-01-01T00:00:00Z".into(),
        config: serde_json::json!({"dataset": "hand-made", "seed": 0}),
        systems: vec![SystemResult {
            name: "1-D".into(),
            figures: f.clone(),
        }],
        extra: serde_json::json!({"unlinkability": {"d_sys": 0.01}}),
        notes: vec!["a note".into()],
        plots: vec![
            ("DET curve".into(), "det.png".into()),
            ("Scores".into(), "scores.png".into()),
        ],
    };
    report.write(dir.path()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["schema_version"], 1);
    let fig = &json["systems"][0]["figures"];
    assert_eq!(fig["eer"].as_f64(), Some(f.eer));
    assert_eq!(fig["genuine_pairs"], 3);
    assert_eq!(fig["fnmr_at_fmr"][2]["resolvable"], false);
    assert_eq!(fig["identification"][0]["rank1"].as_f64(), Some(1.0));
    assert_eq!(fig["det"].as_array().unwrap().len(), f.det.len());
    assert_eq!(json["plots"][0][1], "det.png");
    // The JSON reads back into the same report.
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);

    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains(
        "| System | EER | FNMR @ FMR 1% | FNMR @ FMR 0.1% | FNMR @ FMR 0.01% | Rank-1, 1 enrolled |"
    ));
    assert!(md.contains("| 1-D | 25.0% | n/r | n/r | n/r | 100.0% |"), "{md}");
    assert!(md.contains("smallest measurable FMR is 1/12"));
    assert!(md.contains("![DET curve](det.png)"));
    assert!(md.contains("Hand-made \\| test"));

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 2);
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<link"));
    assert!(html.contains("Hand-made | test"));

    // Same inputs, same files.
    let json1 = std::fs::read(dir.path().join("report.json")).unwrap();
    report.write(dir.path()).unwrap();
    assert_eq!(std::fs::read(dir.path().join("report.json")).unwrap(), json1);

    // A missing plot file is an error, not a broken page.
    let broken = Report {
        plots: vec![("gone".into(), "gone.png".into())],
        ..report
    };
    assert!(matches!(broken.write(dir.path()), Err(Error::Io { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn figures_stay_in_range(points in proptest::collection::vec(-10.0f64..10.0, 6..40),
                             subjects in 2u32..6, k in 1usize..4) {
        let subject: Vec<u32> = (0..points.len() as u32).map(|i| i % subjects).collect();
        let sample: Vec<u32> = (0..points.len() as u32).map(|i| i / subjects).collect();
        let p = Protocol { enrolment_counts: vec![k], fmr_targets: vec![1e-3, 1e-2, 0.05, 0.1, 0.3], ..Protocol::default() };
        let (f, _) = evaluate(&points, &subject, &sample, sim, &p).unwrap();
        prop_assert!((0.0..=1.0).contains(&f.eer));
        for r in &f.identification {
            prop_assert!((0.0..=1.0).contains(&r.rank1) && r.rank1 <= r.rank5 && r.rank5 <= 1.0);
        }
        for w in f.fnmr_at_fmr.windows(2) {
            prop_assert!(w[0].fnmr >= w[1].fnmr, "{:?}", f.fnmr_at_fmr);
            prop_assert!(w[0].fmr <= w[0].fmr_target && w[1].fmr <= w[1].fmr_target);
        }
    }
}

#[test]
fn cross_comparison_pairs_only_shared_subjects_across_sides() {
    use nhm_eval::protocol::{cross_comparison, Protocol};
    // Side A: subjects 0, 1, 2 (two templates each); side B: subjects 1, 2, 9 (one each).
    let a = [0.0, 0.1, 1.0, 1.1, 2.0, 2.1];
    let a_subj = [0, 0, 1, 1, 2, 2];
    let b = [1.05, 2.05, 9.0];
    let b_subj = [1, 2, 9];
    let score = |x: &f64, y: &f64| -(x - y).abs();
    let f = cross_comparison(&a, &a_subj, &b, &b_subj, score, &Protocol::default()).unwrap();
    // Only subjects 1 and 2 take part: 2 probes x 4 references.
    assert_eq!(f.probes, 2);
    assert_eq!(f.genuine_pairs, 4);
    assert_eq!(f.impostor_pairs, 4);
    assert_eq!(f.rank1, 1.0);
    assert_eq!(f.verification.eer, 0.0);
    // Probes closer to another subject are rank-1 misses.
    let f = cross_comparison(&a, &a_subj, &[2.0, 1.0], &[1, 2], score, &Protocol::default()).unwrap();
    assert_eq!(f.rank1, 0.0);
    assert_eq!(f.verification.eer, 1.0);
    // One shared subject only: no impostor comparison, a clear error.
    assert!(cross_comparison(&a, &a_subj, &[2.0], &[1], score, &Protocol::default()).is_err());
    // No shared subject: no genuine score, a clear error.
    assert!(cross_comparison(&a, &a_subj, &[5.0], &[7], score, &Protocol::default()).is_err());
    // A NaN score is refused.
    assert!(cross_comparison(&a, &a_subj, &b, &b_subj, |_, _| f64::NAN, &Protocol::default()).is_err());
}
