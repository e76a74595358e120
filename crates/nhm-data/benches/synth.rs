//! Synthesis rate on one core: `cargo bench -p nhm-data --bench synth [-- FINGERS IMPRESSIONS SIZE]`.
//!
//! Generates FINGERS × IMPRESSIONS impressions (default 20 × 8 at 96×96) with rayon limited to one
//! thread and prints impressions per second, plus the cost of a master print and of one impression.

use std::time::Instant;

use nhm_data::synth::SynthConfig;

fn main() {
    let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let fingers = args.first().copied().unwrap_or(20);
    let impressions = args.get(1).copied().unwrap_or(8);
    let size = args.get(2).copied().unwrap_or(96);
    let cfg = SynthConfig {
        subjects: fingers,
        impressions,
        size,
        ..SynthConfig::default()
    };
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot build a one-thread pool: {e}");
            std::process::exit(1);
        }
    };
    // Warm-up (filter bank, page faults).
    let _ = pool.install(|| {
        SynthConfig {
            subjects: 1,
            impressions: 1,
            ..cfg.clone()
        }
        .generate()
    });

    let t0 = Instant::now();
    let ds = match pool.install(|| cfg.generate()) {
        Ok(ds) => ds,
        Err(e) => {
            eprintln!("generation failed: {e}");
            std::process::exit(1);
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let n = ds.samples.len();
    println!(
        "synth {fingers} fingers x {impressions} impressions at {size}x{size}, 1 thread: {:.3} s, {:.1} impressions/s",
        secs,
        n as f64 / secs
    );

    // Split the cost: master prints alone (one impression each, but impression() rebuilds the master).
    let t1 = Instant::now();
    for f in 0..fingers {
        std::hint::black_box(cfg.impression(f, 0));
    }
    let per_master_and_one = t1.elapsed().as_secs_f64() / fingers as f64;
    let per_impression = (secs - per_master_and_one * fingers as f64) / (n as f64 - fingers as f64).max(1.0);
    println!(
        "  master + 1 impression: {:.2} ms; each further impression: {:.3} ms",
        1e3 * per_master_and_one,
        1e3 * per_impression
    );
}
