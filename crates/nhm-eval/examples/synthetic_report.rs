//! Draws the plots and writes a report from synthetic Gaussian scores, to look at them:
//! `cargo run -p nhm-eval --example synthetic_report -- <output folder>`.

use nhm_eval::{
    det_curve, plot_det, plot_score_distributions, plot_unlinkability, unlinkability, RecognitionFigures,
    Report, ScoreSet, SystemResult,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gaussian(rng: &mut ChaCha8Rng, n: usize, mean: f64, sd: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
            mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "synthetic-report".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // (name, genuine mean, impostor mean): made-up systems of falling quality, all with sd 0.1.
    let systems = [
        ("raw embedding", 0.75, 0.30),
        ("dense hashmap", 0.74, 0.30),
        ("binary hashmap", 0.70, 0.32),
        ("raw pixels", 0.55, 0.40),
    ];
    let mut results = Vec::new();
    let mut curves = Vec::new();
    for (k, (name, g, i)) in systems.iter().enumerate() {
        let s = ScoreSet::new(
            gaussian(&mut rng, 3_000, *g, 0.1),
            gaussian(&mut rng, 200_000, *i, 0.1),
        )?;
        let figures = RecognitionFigures::from_scores(&s, &[1e-2, 1e-3, 1e-4], 200)?;
        if k == 2 {
            plot_score_distributions(
                &dir.join("scores.png"),
                &s,
                "Binary hashmap: score distributions",
                Some(figures.eer_threshold),
            )?;
        }
        curves.push((name.to_string(), det_curve(&s, 200)));
        results.push(SystemResult {
            name: name.to_string(),
            figures,
        });
    }
    let refs: Vec<(&str, &[nhm_eval::DetPoint])> =
        curves.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
    plot_det(&dir.join("det.png"), &refs, "DET: synthetic Gaussian scores")?;
    let u = unlinkability(
        &gaussian(&mut rng, 5_000, 0.53, 0.05),
        &gaussian(&mut rng, 5_000, 0.5, 0.05),
        40,
    )?;
    plot_unlinkability(&dir.join("unlinkability.png"), &u, "Unlinkability across keys")?;
    let report = Report {
        title: "Synthetic Gaussian scores".into(),
        created: "2025-01-01T00:00:00Z".into(),
        config: serde_json::json!({"generator": "Gaussian, sd 0.1", "seed": 0}),
        systems: results,
        extra: serde_json::json!({"unlinkability": {"d_sys": u.d_sys}}),
        notes: vec!["Scores are synthetic: the figures show the report's layout, not any system.".into()],
        plots: vec![
            ("DET curves".into(), "det.png".into()),
            (
                "Score distributions of the binary hashmap".into(),
                "scores.png".into(),
            ),
            ("Unlinkability".into(), "unlinkability.png".into()),
        ],
    };
    report.write(&dir)?;
    println!("wrote {}", dir.display());
    Ok(())
}
