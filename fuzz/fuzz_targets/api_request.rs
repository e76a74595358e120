//! Fuzz the HTTP API's request parsing: arbitrary paths, subject ids and bodies sent through the
//! whole router (authentication, extractors, JSON and template decoding, the store) with a valid
//! admin token. No request may panic or end in a 5xx: bad input is the client's error (4xx).
//! Run: `cargo +nightly fuzz run api_request` from the repository root.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use nhm_server::{AppState, Config, EmbeddedStore, Role, Tokens};
use nhm_template::Threshold;
use tower::ServiceExt as _;

/// One service for the whole run (the store keeps what earlier inputs enrolled, so later ones
/// meet a populated gallery).
struct Fixture {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temporary folder");
        let scores: Vec<f64> = (0..1000).map(|i| 0.4 + 0.0002 * i as f64).collect();
        let cfg = Config {
            threshold: Some(Threshold::for_target_fmr(&scores, 1e-2).expect("threshold")),
            ..Config::default()
        };
        let state = rt.block_on(async {
            let store = EmbeddedStore::open(dir.path()).expect("store");
            let tokens = Tokens::from_plain(&[("fuzz", Role::Admin, "tok-fuzz")]);
            AppState::new(cfg, Arc::new(store), tokens, None).await.expect("state")
        });
        Fixture {
            app: nhm_server::app(state),
            rt,
            _dir: dir,
        }
    })
}

/// Method and path pattern of every route (`{}` takes the fuzzed id or query), plus a miss.
const ROUTES: [(&str, &str); 12] = [
    ("POST", "/v1/subjects/{}/templates"),
    ("PUT", "/v1/subjects/{}/templates"),
    ("POST", "/v1/subjects/{}/verify"),
    ("GET", "/v1/subjects/{}"),
    ("DELETE", "/v1/subjects/{}"),
    ("POST", "/v1/identify{}"),
    ("GET", "/v1/subjects{}"),
    ("GET", "/v1/relay/negatives{}"),
    ("PUT", "/v1/admin/threshold{}"),
    ("GET", "/v1/admin/threshold{}"),
    ("GET", "/metrics{}"),
    ("PATCH", "/v1/{}"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else {
        return;
    };
    // The bytes before the first NUL fill the path's hole; the rest is the body.
    let (hole, body) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let (method, pattern) = ROUTES[route as usize % ROUTES.len()];
    let uri = pattern.replace("{}", &String::from_utf8_lossy(hole));
    let Ok(req) = Request::builder()
        .method(method)
        .uri(&uri)
        .header("authorization", "Bearer tok-fuzz")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return; // not a valid URI: never reaches a server
    };
    let fx = fixture();
    let resp = fx
        .rt
        .block_on(fx.app.clone().oneshot(req))
        .expect("the router is infallible");
    assert!(
        !resp.status().is_server_error(),
        "{method} {uri} -> {}",
        resp.status()
    );
});
