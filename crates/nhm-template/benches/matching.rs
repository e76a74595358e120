//! Matching benchmark: Hamming comparisons per second per core (each kernel), 1:N identify
//! latency over 10k and 1M templates, and protection (transform + binarise) throughput.
//!
//! Run: `cargo bench -p nhm-template --bench matching` (single-threaded throughout).

use std::hint::black_box;
use std::time::{Duration, Instant};

use nhm_template::{kernel, BinaryHashmap, Fusion, Gallery, Key, Protector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SourceAFIS, an unprotected fingerprint matcher: about 12 500 comparisons/s per core.
const SOURCEAFIS_PER_CORE: f64 = 12_500.0;
const DIM: usize = 256;

fn random_hashmap(rng: &mut ChaCha8Rng) -> BinaryHashmap {
    BinaryHashmap::from_words(DIM, (0..DIM / 64).map(|_| rng.gen()).collect()).expect("valid words")
}

/// Median and 99th percentile of some durations.
fn percentiles(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let p99 = ((d.len() as f64 * 0.99).ceil() as usize).clamp(1, d.len()) - 1;
    (d[d.len() / 2], d[p99])
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    println!("nhm-template matching benchmark, dim {DIM}, one core");
    println!(
        "kernels available: {:?}, default {:?}",
        kernel::available(),
        kernel::best()
    );

    // Raw scan throughput per kernel over 1M rows (32 MB: memory-bound, as in a real gallery).
    let rows = 1_000_000usize;
    let words: Vec<u64> = (0..rows * DIM / 64).map(|_| rng.gen()).collect();
    let probe: Vec<u64> = (0..DIM / 64).map(|_| rng.gen()).collect();
    let mut best_rate = 0.0f64;
    for k in kernel::available() {
        let mut times = Vec::new();
        for _ in 0..15 {
            let mut acc = 0u64;
            let t = Instant::now();
            kernel::scan_with(k, &probe, &words, |_, d| acc += u64::from(d));
            times.push(t.elapsed());
            black_box(acc);
        }
        let (med, _) = percentiles(times);
        let rate = rows as f64 / med.as_secs_f64();
        best_rate = best_rate.max(rate);
        println!(
            "scan 1M x 256 bit  kernel {:<17} {:>8.2} ms  {:>8.1} M comparisons/s  ({:.0}x SourceAFIS)",
            k.name(),
            med.as_secs_f64() * 1e3,
            rate / 1e6,
            rate / SOURCEAFIS_PER_CORE
        );
    }
    // Cache-resident (10k rows, 320 KB) to separate compute from memory bandwidth.
    for k in kernel::available() {
        let small = &words[..10_000 * DIM / 64];
        let reps = 200;
        let t = Instant::now();
        let mut acc = 0u64;
        for _ in 0..reps {
            kernel::scan_with(k, &probe, small, |_, d| acc += u64::from(d));
        }
        black_box(acc);
        let rate = (reps * 10_000) as f64 / t.elapsed().as_secs_f64();
        println!(
            "scan 10k (in cache) kernel {:<17} {:>8.1} M comparisons/s",
            k.name(),
            rate / 1e6
        );
    }

    // Wider templates (1024 bits, in cache): where vector popcounts may pay off.
    for k in kernel::available() {
        let wide_probe: Vec<u64> = words[..16].to_vec();
        let wide = &words[..10_000 * 16];
        let reps = 100;
        let t = Instant::now();
        let mut acc = 0u64;
        for _ in 0..reps {
            kernel::scan_with(k, &wide_probe, wide, |_, d| acc += u64::from(d));
        }
        black_box(acc);
        let rate = (reps * 10_000) as f64 / t.elapsed().as_secs_f64();
        println!(
            "scan 10k x 1024 bit kernel {:<17} {:>8.1} M comparisons/s",
            k.name(),
            rate / 1e6
        );
    }
    println!(
        "default kernel for 4 words {:?}, for 16 words {:?}",
        kernel::best_for(4),
        kernel::best_for(16)
    );

    // One-pair API (as a 1:1 verify does): includes dimension checks and dispatch.
    let a = random_hashmap(&mut rng);
    let b = random_hashmap(&mut rng);
    let n = 20_000_000u32;
    let t = Instant::now();
    let mut acc = 0u32;
    for _ in 0..n {
        acc = acc.wrapping_add(black_box(&a).hamming(black_box(&b)).expect("same dim"));
    }
    black_box(acc);
    let pair_rate = f64::from(n) / t.elapsed().as_secs_f64();
    println!(
        "BinaryHashmap::hamming (one pair)          {:>8.1} M comparisons/s  ({:.0}x SourceAFIS)",
        pair_rate / 1e6,
        pair_rate / SOURCEAFIS_PER_CORE
    );

    // Identify latency.
    for (templates, per_subject) in [(10_000usize, 1usize), (1_000_000, 1), (1_000_000, 5)] {
        let mut g = Gallery::new(DIM);
        for i in 0..templates {
            g.insert(
                &format!("subject-{:07}", i / per_subject),
                &random_hashmap(&mut rng),
            )
            .expect("dim");
        }
        for fusion in [Fusion::Best, Fusion::Mean] {
            if per_subject == 1 && fusion == Fusion::Mean {
                continue; // same code path as Best
            }
            let queries = if templates > 100_000 { 101 } else { 1001 };
            let mut times = Vec::with_capacity(queries);
            for _ in 0..queries {
                let p = random_hashmap(&mut rng);
                let t = Instant::now();
                black_box(g.identify(&p, 10, fusion).expect("dim"));
                times.push(t.elapsed());
            }
            let (med, p99) = percentiles(times);
            println!(
                "identify top-10 {:>9} templates / {:>9} subjects ({:?}): median {:>7.3} ms, p99 {:>7.3} ms",
                templates,
                g.subjects(),
                fusion,
                med.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }

    // Protection: transform + binarise.
    let p = Protector::new(&Key::from_seed(1), DIM).expect("power of two");
    let embeddings: Vec<Vec<f32>> = (0..1000)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    let reps = 200;
    let t = Instant::now();
    for _ in 0..reps {
        for e in &embeddings {
            black_box(p.binary(black_box(e)).expect("valid"));
        }
    }
    let rate = (reps * embeddings.len()) as f64 / t.elapsed().as_secs_f64();
    println!(
        "protect (R_k e, sign) d=256: {:>8.0} per second ({:.2} us each)",
        rate,
        1e6 / rate
    );
    let t = Instant::now();
    for i in 0..200u64 {
        black_box(Protector::new(&Key::from_seed(i), DIM).expect("power of two"));
    }
    println!(
        "Protector::new (key derivation) d=256: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / 200.0
    );
    println!(
        "best scan rate / SourceAFIS anchor: {:.0}x ({:.1} M/s vs {:.0}/s per core)",
        best_rate / SOURCEAFIS_PER_CORE,
        best_rate / 1e6,
        SOURCEAFIS_PER_CORE
    );
}
