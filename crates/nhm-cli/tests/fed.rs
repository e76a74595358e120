//! Federated training across processes: the real server binary and three `nhm fed client`
//! processes, each holding one synthetic finger, over loopback HTTP.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{nhm, s};

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path) -> (Server, String) {
    let (child, url) = common::start_server(dir);
    (Server(child), url)
}

#[test]
fn three_client_processes_train_two_rounds_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A starting model (one epoch on a few fingers) and three other fingers for the clients.
    let model = d.join("model");
    let o = nhm(&[
        "train",
        "--subjects",
        "6",
        "--impressions",
        "3",
        "--epochs",
        "1",
        "--eval-fraction",
        "0",
        "--val-fraction",
        "0",
        "--out",
        s(&model),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let prints = d.join("prints");
    let o = nhm(&[
        "synth",
        "--subjects",
        "3",
        "--impressions",
        "3",
        "--seed",
        "99",
        "--out",
        s(&prints),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut tokens = String::new();
    for i in 1..=3 {
        let hash = blake3::hash(format!("fed-token-{i}").as_bytes()).to_hex();
        tokens.push_str(&format!(
            "[[token]]\nname = \"client-{i}\"\nrole = \"enrol\"\nhash = \"blake3:{hash}\"\n"
        ));
    }
    std::fs::write(d.join("tokens.toml"), tokens).unwrap();
    std::fs::write(
        d.join("config.toml"),
        format!(
            "tokens = \"tokens.toml\"\n[fed]\ninitial_model = \"{}\"\ndim = 256\nmax_rounds = 2\n\
             min_clients = 3\nclients_per_round = 3\nnegatives = 2\nround_timeout_secs = 120\n",
            s(&model.join("encoder.safetensors"))
        ),
    )
    .unwrap();
    let (_server, url) = start(d);
    let initial = std::fs::read(model.join("encoder.safetensors")).unwrap();

    // A client with one image, or a token the server does not know, is refused with a reason.
    let one = nhm(&[
        "fed",
        "client",
        "--server",
        &url,
        "--token",
        "fed-token-1",
        "--model",
        s(&model),
        s(&prints.join("1_1.png")),
    ]);
    assert!(!one.status.success());
    assert!(
        String::from_utf8_lossy(&one.stderr).contains("at least 2"),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let stranger = nhm(&[
        "fed",
        "client",
        "--server",
        &url,
        "--token",
        "not-a-token",
        "--model",
        s(&model),
        s(&prints.join("1_1.png")),
        s(&prints.join("1_2.png")),
    ]);
    assert!(!stranger.status.success());
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );

    let clients: Vec<Child> = (1..=3)
        .map(|i| {
            let images: Vec<String> = (1..=3)
                .map(|k| s(&prints.join(format!("{i}_{k}.png"))).to_owned())
                .collect();
            Command::new(env!("CARGO_BIN_EXE_nhm"))
                .args(["--quiet", "fed", "client", "--server", &url, "--token"])
                .arg(format!("fed-token-{i}"))
                .args(["--model", s(&model), "--max-secs", "300", "--poll-ms", "100"])
                .args(&images)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a client")
        })
        .collect();
    for c in clients {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["rounds_answered"], 2, "{text}");
    }

    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let status: serde_json::Value = http
        .get(format!("{url}/v1/fed/status"))
        .bearer_auth("fed-token-1")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["rounds_closed"], 2, "{status}");
    assert_eq!(status["clients"], 3, "{status}");
    let trained = http
        .get(format!("{url}/v1/fed/model"))
        .bearer_auth("fed-token-2")
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let before = nhm_fed::Weights::from_safetensors(&initial).unwrap();
    let after = nhm_fed::Weights::from_safetensors(&trained).unwrap();
    assert!(before.same_layout(&after));
    assert!(
        after.minus(&before).norm() > 0.0,
        "two rounds of updates changed the model"
    );
    assert!(after.first_non_finite().is_none());
}

#[test]
fn simulate_writes_its_report_and_refuses_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let common = [
        "fed",
        "simulate",
        "--clients",
        "6",
        "--impressions",
        "3",
        "--eval-subjects",
        "3",
        "--rounds",
        "2",
        "--per-round",
        "3",
        "--negatives",
        "2",
        "--eval-every",
        "1",
    ];
    let mut args = common.to_vec();
    args.extend(["--dp-clip", "1", "--dp-epsilon", "8", "--out", s(&out)]);
    let o = nhm(&args);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["mode"], "federated-dp", "{r}");
    assert_eq!(
        r["curve"].as_array().unwrap().len(),
        3,
        "start and two rounds: {r}"
    );
    let eps = r["extra"]["epsilon"].as_f64().unwrap();
    assert!(eps > 0.0 && eps <= 8.0 + 1e-9, "{eps}");
    assert!(r["extra"]["events"]["accepted"].as_u64().unwrap() > 0, "{r}");
    assert!(r["relayed_hashmap_linkage"]["eer"].as_f64().is_some(), "{r}");
    assert!(out.join("eer_vs_round.png").exists() && out.join("model/encoder.safetensors").exists());

    let whitened = dir.path().join("whitened");
    let w = nhm(&[
        "whiten",
        "--subjects",
        "12",
        "--impressions",
        "3",
        "--out",
        s(&whitened),
    ]);
    assert!(w.status.success(), "{}", common::stderr(&w));
    for (bad, why) in [
        (vec!["--init", s(&whitened)], "whitens its embeddings"),
        (vec!["--clients", "1"], "--clients"),
        (vec!["--impressions", "1"], "--impressions"),
        (vec!["--loss", "nope"], "unknown --loss"),
        (vec!["--lr=-1"], "learning_rate"),
        (vec!["--dp-clip", "1"], "--dp-noise or --dp-epsilon"),
        (vec!["--server-momentum", "1.5"], "server_momentum"),
    ] {
        let mut args = vec!["fed", "simulate", "--rounds", "1", "--out", s(&out)];
        args.extend(bad.iter().copied());
        let o = nhm(&args);
        assert!(!o.status.success(), "{bad:?} was accepted");
        assert!(
            common::stderr(&o).contains(why),
            "{bad:?}: {}",
            common::stderr(&o)
        );
    }
}
