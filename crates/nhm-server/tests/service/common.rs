//! Shared helpers: a service over a temporary embedded store, tokens, requests.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use nhm_server::index::synthetic_binary;
use nhm_server::{AppState, Config, EmbeddedStore, Role, Tokens};
use nhm_template::{BinaryHashmap, Hashmap, Key, Threshold};
use serde_json::Value;
use tower::ServiceExt as _;

pub const ENROL: &str = "tok-enrol";
pub const VERIFY: &str = "tok-verify";
pub const ADMIN: &str = "tok-admin";

pub fn tokens() -> Tokens {
    Tokens::from_plain(&[
        ("e", Role::Enrol, ENROL),
        ("v", Role::Verify, VERIFY),
        ("a", Role::Admin, ADMIN),
    ])
}

/// A threshold chosen, as in production, for FMR 1e-3 on impostor scores of a development set:
/// here pairs of independent seeded synthetic templates.
pub fn dev_threshold() -> Threshold {
    let ts: Vec<BinaryHashmap> = (0..120).map(|i| synthetic_binary(99, i, 256).unwrap()).collect();
    let mut scores = Vec::new();
    for i in 0..ts.len() {
        for j in i + 1..ts.len() {
            scores.push(ts[i].similarity(&ts[j]).unwrap());
        }
    }
    Threshold::for_target_fmr(&scores, 1e-3).unwrap()
}

pub fn config() -> Config {
    Config {
        threshold: Some(dev_threshold()),
        ..Config::default()
    }
}

/// Template `i` of the test gallery (seed 7).
pub fn template(i: u64) -> Hashmap {
    Hashmap::Binary(synthetic_binary(7, i, 256).unwrap())
}

/// Template `i` with `flips` bits flipped: a genuine probe.
pub fn noisy(i: u64, flips: usize) -> Hashmap {
    let Hashmap::Binary(b) = template(i) else {
        unreachable!()
    };
    let mut words = b.words().to_vec();
    for k in 0..flips {
        let bit = (k * 37) % 256;
        words[bit / 64] ^= 1 << (bit % 64);
    }
    Hashmap::Binary(BinaryHashmap::from_words(256, words).unwrap())
}

pub struct Service {
    pub dir: tempfile::TempDir,
    pub state: AppState,
    pub app: Router,
}

pub async fn open(dir: &std::path::Path, cfg: Config, pepper: Option<&Key>) -> nhm_server::Result<AppState> {
    let store = EmbeddedStore::open(dir)?;
    AppState::new(cfg, Arc::new(store), tokens(), pepper).await
}

pub async fn service_with(cfg: Config, pepper: Option<&Key>) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path(), cfg, pepper).await.unwrap();
    let app = nhm_server::app(state.clone());
    Service { dir, state, app }
}

pub async fn service() -> Service {
    service_with(config(), None).await
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

/// Sends a request; `body` is sent verbatim as JSON text.
pub async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>, body: Option<String>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
        text,
    }
}

pub async fn enrol(app: &Router, id: &str, ts: &[Hashmap]) -> Reply {
    let body = serde_json::json!({ "templates": ts.iter().map(Hashmap::to_base64).collect::<Vec<_>>() });
    call(
        app,
        "POST",
        &format!("/v1/subjects/{id}/templates"),
        Some(ENROL),
        Some(body.to_string()),
    )
    .await
}

pub async fn verify(app: &Router, id: &str, probe: &Hashmap) -> Reply {
    let body = serde_json::json!({ "template": probe.to_base64() });
    call(
        app,
        "POST",
        &format!("/v1/subjects/{id}/verify"),
        Some(VERIFY),
        Some(body.to_string()),
    )
    .await
}

/// Asserts the standard error body with `code`.
pub fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.text);
    assert_eq!(r.json["error"]["code"], code, "body: {}", r.text);
    assert!(r.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}
