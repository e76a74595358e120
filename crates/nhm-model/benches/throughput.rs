//! Training and encoding throughput of the default encoder (and the base one with `base`).
//!
//! `cargo bench -p nhm-model --bench throughput [-- base|small|both] [steps]`

use nhm_model::{benchmark, EncoderConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let which = args.first().map(String::as_str).unwrap_or("small");
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut configs = Vec::new();
    if which == "small" || which == "both" {
        configs.push(("small", EncoderConfig::default()));
    }
    if which == "base" || which == "both" {
        configs.push(("base", EncoderConfig::base()?));
    }
    for (name, cfg) in configs {
        let t = benchmark(&cfg, 64, steps, 0)?;
        println!(
            "encoder-{name} (input {}, channels {:?}, d {}, {} params): train {:.1} img/s (batch 64), \
             encode {:.1} img/s (batch 64), latency batch 1 {:.2} ms",
            cfg.input_size,
            cfg.channels,
            cfg.embedding_dim,
            t.parameters,
            t.train_images_per_sec,
            t.encode_images_per_sec,
            t.latency_b1_ms
        );
    }
    Ok(())
}
