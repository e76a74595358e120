//! Durability under SIGKILL: run the real server binary, stream enrolments, kill it at a seeded
//! random moment, restart it on the same data directory, and check that every acknowledged
//! enrolment is there. A few cycles by default; `NHM_CRASH_CYCLES=200` for a stress run.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nhm_server::index::synthetic_binary;
use nhm_template::Hashmap;
use rand::{Rng as _, SeedableRng as _};

const TOKEN: &str = "crash-test-token";

fn listed(client: &reqwest::blocking::Client, url: &str) -> std::collections::HashSet<String> {
    let mut all = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = format!("{url}/v1/subjects?limit=1000");
        if let Some(a) = &after {
            q.push_str(&format!("&after={a}"));
        }
        let v: serde_json::Value = client.get(&q).bearer_auth(TOKEN).send().unwrap().json().unwrap();
        for s in v["subjects"].as_array().unwrap() {
            all.insert(s["id"].as_str().unwrap().to_owned());
        }
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return all,
        }
    }
}

#[test]
fn acknowledged_enrolments_survive_sigkill() {
    let cycles: usize = std::env::var("NHM_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let hash = blake3::hash(TOKEN.as_bytes()).to_hex();
    std::fs::write(
        dir.path().join("tokens.toml"),
        format!("[[token]]\nname = \"crash\"\nrole = \"admin\"\nhash = \"blake3:{hash}\"\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("config.toml"), "tokens = \"tokens.toml\"\n").unwrap();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    for cycle in 0..cycles {
        let (mut child, url) = common::start_server(dir.path());
        // Everything acknowledged before is still there after the restart.
        let present = listed(&client, &url);
        let before = acked.lock().unwrap().clone();
        let missing: Vec<_> = before.iter().filter(|id| !present.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: acknowledged but lost: {missing:?}"
        );
        // Two writers stream enrolments until the server dies.
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
                std::thread::spawn(move || {
                    for i in 0u64.. {
                        let id = format!("c{cycle}w{w}n{i}");
                        let t = Hashmap::Binary(synthetic_binary(cycle as u64, i * 2 + w, 256).unwrap());
                        let body = serde_json::json!({ "templates": [t.to_base64()] });
                        let resp = client
                            .post(format!("{url}/v1/subjects/{id}/templates"))
                            .bearer_auth(TOKEN)
                            .json(&body)
                            .send();
                        match resp {
                            Ok(r) if r.status().as_u16() == 201 => acked.lock().unwrap().push(id),
                            Ok(r) => panic!("enrolment refused: {}", r.status()),
                            Err(_) => return, // the server is gone
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for w in writers {
            w.join().unwrap();
        }
    }
    let (mut child, url) = common::start_server(dir.path());
    let present = listed(&client, &url);
    let acked = acked.lock().unwrap();
    assert!(
        acked.iter().all(|id| present.contains(id)),
        "an acknowledged enrolment was lost"
    );
    // Loud, past the output capture: the count of cycles and enrolments checked.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr().lock(),
        "crash test: {cycles} SIGKILL cycles, {} acknowledged enrolments all present",
        acked.len()
    );
    assert!(!acked.is_empty(), "no enrolment was acknowledged at all");
    child.kill().unwrap();
    child.wait().unwrap();
}
