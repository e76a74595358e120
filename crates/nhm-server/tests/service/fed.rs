//! Federated training over the HTTP API (`/v1/fed/...`): rounds, update checks, timeouts,
//! outliers, restarts. The coordinator keeps its state in files, not in the template store, so
//! the embedded store stands for both.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::Router;
use base64::Engine as _;
use nhm_fed::wire::UpdateRequest;
use nhm_fed::{ClientUpdate, Weights};
use nhm_server::config::FedSettings;
use nhm_server::{AppState, Config, EmbeddedStore, Role, Tokens};
use serde_json::{json, Value};

use crate::common::{assert_error, call, config, Reply};

const C1: &str = "tok-c1";
const C2: &str = "tok-c2";
const C3: &str = "tok-c3";
const VERIFY: &str = "tok-v";
const ADMIN: &str = "tok-a";

fn tokens() -> Tokens {
    Tokens::from_plain(&[
        ("c1", Role::Enrol, C1),
        ("c2", Role::Enrol, C2),
        ("c3", Role::Enrol, C3),
        ("v", Role::Verify, VERIFY),
        ("a", Role::Admin, ADMIN),
    ])
}

/// The starting model: two tiny tensors.
fn initial() -> Weights {
    Weights::from_parts(vec![
        ("w".into(), vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
        ("b".into(), vec![2], vec![0.1, -0.2]),
    ])
    .unwrap()
}

/// An update of the model's layout: `w` filled with `x`, `b` with `-x`.
fn delta(x: f32) -> Weights {
    Weights::from_parts(vec![
        ("w".into(), vec![2, 2], vec![x; 4]),
        ("b".into(), vec![2], vec![-x; 2]),
    ])
    .unwrap()
}

fn hashmap(i: usize) -> Vec<f32> {
    let mut h = vec![0.1f32; 4];
    h[i % 4] = 1.0;
    h
}

struct Fed {
    state: AppState,
    app: Router,
    _store: tempfile::TempDir,
}

/// A server over a fresh store in `root`, with federated training in `root/fed` from
/// `root/init.safetensors` (written when missing).
async fn start(root: &Path, tweak: impl FnOnce(&mut Config)) -> Fed {
    let init = root.join("init.safetensors");
    if !init.exists() {
        std::fs::write(&init, initial().to_safetensors()).unwrap();
    }
    let mut cfg = Config {
        body_limit_bytes: 4096,
        fed: Some(FedSettings {
            initial_model: init,
            dim: 4,
            state_dir: Some(root.join("fed")),
            max_rounds: 5,
            min_clients: 2,
            round_timeout_secs: 60,
            update_limit_bytes: 64 << 10,
            clients_per_round: 3,
            negatives: 2,
            max_norm_ratio: 0.0,
            seed: 7,
            ..FedSettings::default()
        }),
        ..config()
    };
    tweak(&mut cfg);
    let store_dir = tempfile::tempdir_in(root).unwrap();
    let store = EmbeddedStore::open(store_dir.path()).unwrap();
    let state = AppState::new(cfg, Arc::new(store), tokens(), None).await.unwrap();
    let app = nhm_server::app(state.clone());
    Fed {
        state,
        app,
        _store: store_dir,
    }
}

fn fed(cfg: &mut Config) -> &mut FedSettings {
    cfg.fed.as_mut().unwrap()
}

async fn get(app: &Router, uri: &str, token: &str) -> Reply {
    call(app, "GET", uri, Some(token), None).await
}

async fn join(app: &Router, token: &str, h: Vec<f32>) -> Reply {
    let body = json!({ "hashmap": h }).to_string();
    call(app, "POST", "/v1/fed/join", Some(token), Some(body)).await
}

fn update_body(round: u64, delta: &Weights, samples: u32) -> String {
    let u = ClientUpdate {
        round,
        delta: delta.clone(),
        samples,
        hashmap: hashmap(1),
    };
    serde_json::to_string(&UpdateRequest::from_update(&u)).unwrap()
}

async fn update(app: &Router, token: &str, body: String) -> Reply {
    call(app, "POST", "/v1/fed/update", Some(token), Some(body)).await
}

/// The model's bytes and version header.
async fn model(app: &Router, token: &str) -> (Vec<u8>, String) {
    let r = get(app, "/v1/fed/model", token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    let round = r.headers["x-nhm-fed-round"].to_str().unwrap().to_owned();
    // The body is binary: fetch the raw bytes again without the lossy text conversion.
    let bytes = raw_model(app, token).await;
    (bytes, round)
}

async fn raw_model(app: &Router, token: &str) -> Vec<u8> {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let req = axum::http::Request::get("/v1/fed/model")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    resp.into_body().collect().await.unwrap().to_bytes().to_vec()
}

/// `base + Σ a_i d_i`, as the coordinator computes it (FedAvg, server_lr 1).
fn expected(base: &Weights, parts: &[(f32, &Weights)]) -> Weights {
    let mut step = base.zeros_like();
    for (a, d) in parts {
        step.add_scaled(d, *a);
    }
    let mut w = base.clone();
    w.add_scaled(&step, 1.0);
    w
}

fn assert_close(got: &[u8], want: &Weights) {
    let got = Weights::from_safetensors(got).unwrap();
    assert!(got.same_layout(want));
    for (g, w) in got.values().zip(want.values()) {
        assert!((g - w).abs() < 1e-5, "got {g}, want {w}");
    }
}

async fn metric(app: &Router, name: &str) -> u64 {
    let r = get(app, "/metrics", ADMIN).await;
    assert_eq!(r.status, StatusCode::OK);
    r.text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{}", r.text))
}

fn event(kind: &str) -> String {
    format!("nhm_fed_events_total{{event=\"{kind}\"}}")
}

#[tokio::test]
async fn a_round_runs_from_join_to_an_averaged_model_and_bad_updates_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let s = start(root.path(), |_| {}).await;
    let app = &s.app;

    let r = join(app, C1, hashmap(0)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.json["clients"].as_u64(), r.json["dim"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(r.json["open_round"], Value::Null);
    join(app, C2, hashmap(1)).await;
    // Two clients are registered: the next request opens round 1, sampling both.
    let r = get(app, "/v1/fed/status", C1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["open_round"], 1);
    assert_eq!(r.json["rounds_closed"], 0);
    assert_eq!(r.json["max_rounds"], 5);
    assert_eq!(r.json["has_task"], true);
    // A client joining now was not sampled.
    let r = join(app, C3, hashmap(2)).await;
    assert_eq!(
        (r.json["clients"].as_u64(), &r.json["has_task"]),
        (Some(3), &json!(false))
    );
    let r = get(app, "/v1/fed/task", C3).await;
    assert_eq!((r.status, &r.json), (StatusCode::OK, &Value::Null));
    let r = update(app, C3, update_body(1, &delta(1.0), 1)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    let r = get(app, "/v1/fed/task", C1).await;
    assert_eq!(r.json["round"], 1, "{}", r.text);
    let negatives = r.json["negatives"].as_array().unwrap();
    assert_eq!(negatives.len(), 2);
    assert!(negatives.iter().all(|n| n.as_array().unwrap().len() == 4));
    let (before, version) = model(app, C1).await;
    assert_eq!(version, "0");
    assert_eq!(before, initial().to_safetensors());

    // Refused updates: the round goes on and the model is unchanged.
    let wrong_shape = Weights::from_parts(vec![("w".into(), vec![4], vec![1.0; 4])]).unwrap();
    let r = update(app, C1, update_body(1, &wrong_shape, 1)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.text.contains("malformed"), "{}", r.text);
    let mut nan = delta(1.0);
    nan.add_each(|| f32::NAN);
    let r = update(app, C1, update_body(1, &nan, 1)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.text.contains("non-finite"), "{}", r.text);
    let mut body: Value = serde_json::from_str(&update_body(1, &delta(1.0), 1)).unwrap();
    body["delta"] = json!("*** not base64 ***");
    let r = update(app, C1, body.to_string()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.text.contains("base64"), "{}", r.text);
    body["delta"] = json!(base64::engine::general_purpose::STANDARD.encode(b"not a model"));
    let r = update(app, C1, body.to_string()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = update(app, C1, update_body(7, &delta(1.0), 1)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(r.text.contains("round 7"), "{}", r.text);
    let r = update(app, C1, "{\"round\": 1}".into()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(raw_model(app, C1).await, before);

    // The update route has its own body limit: a body over body_limit_bytes gets past it (and is
    // refused for its content), one over update_limit_bytes does not.
    let long = vec![0.5f32; 2000];
    let r = join(app, C1, long.clone()).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let mut big: Value = serde_json::from_str(&update_body(1, &delta(1.0), 1)).unwrap();
    big["hashmap"] = json!(long);
    let r = update(app, C1, big.to_string()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    assert!(r.text.contains("hashmap"), "{}", r.text);
    big["hashmap"] = json!(vec![0.5f32; 20_000]);
    let r = update(app, C1, big.to_string()).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let (d1, d2) = (delta(1.0), delta(-0.5));
    let r = update(app, C1, update_body(1, &d1, 1)).await;
    assert_eq!(
        (r.status, &r.json),
        (StatusCode::OK, &json!({ "accepted": true })),
        "{}",
        r.text
    );
    let r = update(app, C1, update_body(1, &d1, 1)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(r.text.contains("already"), "{}", r.text);
    assert_eq!(raw_model(app, C1).await, before, "the round is still open");
    let r = update(app, C2, update_body(1, &d2, 3)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Every sampled client answered: round 1 closed with the sample-weighted mean.
    let (after, version) = model(app, C2).await;
    assert_eq!(version, "1");
    assert_close(&after, &expected(&initial(), &[(0.25, &d1), (0.75, &d2)]));
    let r = get(app, "/v1/fed/status", C3).await;
    assert_eq!(r.json["rounds_closed"], 1);
    assert_eq!(
        r.json["open_round"], 2,
        "three clients now: the next round opened"
    );

    assert_eq!(metric(app, &event("accepted")).await, 2);
    assert_eq!(metric(app, &event("malformed")).await, 3);
    assert_eq!(metric(app, &event("non_finite")).await, 1);
    assert_eq!(metric(app, &event("wrong_round")).await, 1);
    assert_eq!(metric(app, &event("duplicate")).await, 1);
    assert_eq!(metric(app, &event("not_sampled")).await, 1);
    assert_eq!(metric(app, &event("bad_fields")).await, 1);
    assert_eq!(metric(app, &event("dropped")).await, 0);
    assert_eq!(metric(app, "nhm_fed_rounds_closed").await, 1);
    assert_eq!(metric(app, "nhm_fed_clients").await, 3);
}

#[tokio::test]
async fn callers_need_an_enrol_token_and_the_routes_need_fed_on() {
    let root = tempfile::tempdir().unwrap();
    let s = start(root.path(), |_| {}).await;
    for (method, uri) in [
        ("GET", "/v1/fed/status"),
        ("GET", "/v1/fed/model"),
        ("GET", "/v1/fed/task"),
        ("POST", "/v1/fed/join"),
        ("POST", "/v1/fed/update"),
    ] {
        let body = (method == "POST").then(|| "{}".to_owned());
        let r = call(&s.app, method, uri, None, body.clone()).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        let r = call(&s.app, method, uri, Some(VERIFY), body).await;
        if method == "GET" {
            assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
        } else {
            // The body is checked first ("{}" is not a valid request) or the role: never served.
            assert!(
                matches!(r.status, StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST),
                "{}",
                r.text
            );
        }
    }
    let r = join(&s.app, VERIFY, hashmap(0)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = join(&s.app, ADMIN, hashmap(0)).await;
    assert_eq!(r.status, StatusCode::OK, "admin tokens may act as clients");
    let r = join(&s.app, C1, vec![0.0; 4]).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = join(&s.app, C1, vec![1.0; 3]).await;
    assert!(r.text.contains("3 values"), "{}", r.text);

    let off = crate::common::service().await;
    let r = get(&off.app, "/v1/fed/status", crate::common::ENROL).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert!(r.text.contains("[fed]"), "{}", r.text);
    let r = get(&off.app, "/v1/openapi.json", crate::common::ENROL).await;
    for path in [
        "/v1/fed/join",
        "/v1/fed/status",
        "/v1/fed/model",
        "/v1/fed/task",
        "/v1/fed/update",
    ] {
        assert!(
            r.json["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn a_silent_client_is_dropped_when_the_round_times_out() {
    // Over TCP, with the server's own ticker closing the round (no request after the update).
    let root = tempfile::tempdir().unwrap();
    let s = start(root.path(), |c| fed(c).round_timeout_secs = 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(nhm_server::server::serve_on(listener, s.state.clone()));
    let http = reqwest::Client::new();
    for (token, i) in [(C1, 0), (C2, 1)] {
        let r = http
            .post(format!("{base}/v1/fed/join"))
            .bearer_auth(token)
            .json(&json!({ "hashmap": hashmap(i) }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let task: Value = http
        .get(format!("{base}/v1/fed/task"))
        .bearer_auth(C1)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["round"], 1);
    let d1 = delta(2.0);
    let r = http
        .post(format!("{base}/v1/fed/update"))
        .bearer_auth(C1)
        .header("content-type", "application/json")
        .body(update_body(1, &d1, 5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // c2 never answers: the ticker closes the round after about a second.
    let fed_state = s.state.service().fed().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fed_state.snapshot().await.rounds_closed == 0 {
        assert!(
            Instant::now() < deadline,
            "the round did not close at its timeout"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snap = fed_state.snapshot().await;
    assert_eq!((snap.counts.dropped, snap.counts.accepted), (1, 1));
    let r = http
        .get(format!("{base}/v1/fed/model"))
        .bearer_auth(C2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-nhm-fed-round"], "1");
    assert_close(&r.bytes().await.unwrap(), &expected(&initial(), &[(1.0, &d1)]));
    assert_eq!(metric(&s.app, &event("dropped")).await, 1);
    server.abort();
}

#[tokio::test]
async fn an_update_far_larger_than_the_others_is_rejected_as_an_outlier() {
    let root = tempfile::tempdir().unwrap();
    let s = start(root.path(), |c| {
        let f = fed(c);
        f.min_clients = 3;
        f.max_norm_ratio = 3.0;
    })
    .await;
    let app = &s.app;
    for (i, t) in [C1, C2, C3].into_iter().enumerate() {
        assert_eq!(join(app, t, hashmap(i)).await.status, StatusCode::OK);
    }
    let (d1, d2, huge) = (delta(1.0), delta(1.2), delta(1000.0));
    for (t, d) in [(C1, &d1), (C2, &d2), (C3, &huge)] {
        let r = update(app, t, update_body(1, d, 2)).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "outliers are found when the round closes: {}",
            r.text
        );
    }
    let (after, version) = model(app, C1).await;
    assert_eq!(version, "1");
    assert_close(&after, &expected(&initial(), &[(0.5, &d1), (0.5, &d2)]));
    assert_eq!(metric(app, &event("outlier")).await, 1);
    assert_eq!(metric(app, &event("accepted")).await, 2);
}

#[tokio::test]
async fn a_restarted_server_resumes_at_the_same_round_with_the_same_model() {
    let root = tempfile::tempdir().unwrap();
    let (bytes, clients) = {
        let s = start(root.path(), |_| {}).await;
        join(&s.app, C1, hashmap(0)).await;
        join(&s.app, C2, hashmap(1)).await;
        for (t, x) in [(C1, 0.5), (C2, 0.25)] {
            let r = update(&s.app, t, update_body(1, &delta(x), 1)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let (bytes, version) = model(&s.app, C1).await;
        assert_eq!(version, "1");
        assert_ne!(bytes, initial().to_safetensors());
        let r = get(&s.app, "/v1/fed/status", C1).await;
        assert_eq!(r.json["open_round"], 2);
        (bytes, r.json["clients"].clone())
    };
    // Another initial model: a resumed coordinator must not read it.
    std::fs::write(root.path().join("init.safetensors"), delta(9.0).to_safetensors()).unwrap();
    let s = start(root.path(), |_| {}).await;
    let (again, version) = model(&s.app, C2).await;
    assert_eq!(version, "1");
    assert_eq!(again, bytes);
    let r = get(&s.app, "/v1/fed/status", C2).await;
    assert_eq!(r.json["rounds_closed"], 1);
    assert_eq!(r.json["clients"], clients);
    assert_eq!(r.json["open_round"], 2, "the open round is opened again");
    assert_eq!(r.json["has_task"], true);
}

#[tokio::test]
async fn registrations_survive_a_restart_before_the_first_round() {
    let root = tempfile::tempdir().unwrap();
    {
        let s = start(root.path(), |c| fed(c).min_clients = 3).await;
        join(&s.app, C1, hashmap(0)).await;
        join(&s.app, C2, hashmap(1)).await;
        // A later tick saves them (at most once per tick interval).
        tokio::time::sleep(nhm_server::fed::TICK_INTERVAL).await;
        s.state.service().fed_tick().await;
    }
    let s = start(root.path(), |c| fed(c).min_clients = 3).await;
    let r = join(&s.app, C3, hashmap(2)).await;
    assert_eq!(r.json["clients"], 3, "{}", r.text);
    let r = get(&s.app, "/v1/fed/status", C1).await;
    assert_eq!(
        (&r.json["open_round"], &r.json["has_task"]),
        (&json!(1), &json!(true))
    );
}
