//! The HTTP API, driven in-process with `tower::ServiceExt::oneshot`.

use axum::http::StatusCode;
use base64::Engine as _;
use nhm_server::Config;
use nhm_template::{DenseHashmap, Hashmap, HashmapKind, Key};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn enrol_verify_identify_list_delete() {
    let s = service().await;
    for i in 0..5 {
        let r = enrol(&s.app, &format!("p{i}"), &[template(i)]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["templates"], 1);
    }
    let r = verify(&s.app, "p2", &noisy(2, 10)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["match"], true);
    assert!(r.json.get("score").is_none(), "scores are off by default");
    let r = verify(&s.app, "p2", &template(3)).await;
    assert_eq!(r.json["match"], false);

    let body = json!({ "template": noisy(4, 8).to_base64(), "k": 3 }).to_string();
    let r = call(&s.app, "POST", "/v1/identify", Some(VERIFY), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let c = r.json["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 1, "only subjects above the threshold: {}", r.text);
    assert_eq!(c[0]["subject"], "p4");

    let r = call(&s.app, "GET", "/v1/subjects?limit=2", Some(ENROL), None).await;
    assert_eq!(r.json["subjects"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["next"], "p1");
    let r = call(&s.app, "GET", "/v1/subjects?limit=2&after=p3", Some(ENROL), None).await;
    assert_eq!(r.json["subjects"][0]["id"], "p4");
    assert!(r.json.get("next").is_none());

    let r = call(&s.app, "GET", "/v1/subjects/p1", Some(ENROL), None).await;
    assert_eq!(r.json["templates"], 1);
    assert!(
        r.json.get("hashmaps").is_none(),
        "templates only for admins who ask"
    );
    let r = call(
        &s.app,
        "GET",
        "/v1/subjects/p1?include_templates=true",
        Some(ENROL),
        None,
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = call(
        &s.app,
        "GET",
        "/v1/subjects/p1?include_templates=true",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.json["hashmaps"].as_array().unwrap().len(), 1);

    let r = call(&s.app, "DELETE", "/v1/subjects/p2", Some(ENROL), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // A revoked subject is answered like any non-match: its own template no longer matches.
    let r = verify(&s.app, "p2", &template(2)).await;
    assert_eq!((r.status, &r.json["match"]), (StatusCode::OK, &json!(false)));
    let r = call(&s.app, "DELETE", "/v1/subjects/p2", Some(ENROL), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(s.state.subjects(), 4);
}

#[tokio::test]
async fn duplicate_enrolment_policy() {
    let s = service().await;
    enrol(&s.app, "a", &[template(1)]).await;
    let r = enrol(&s.app, "a", &[template(2)]).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        verify(&s.app, "a", &template(1)).await.json["match"],
        true,
        "unchanged after 409"
    );
    assert_eq!(verify(&s.app, "a", &template(2)).await.json["match"], false);

    let body = json!({ "templates": [template(2).to_base64()], "mode": "append" }).to_string();
    let r = call(
        &s.app,
        "POST",
        "/v1/subjects/a/templates",
        Some(ENROL),
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["templates"], 2);
    assert_eq!(verify(&s.app, "a", &template(2)).await.json["match"], true);

    // Re-keying: PUT replaces every template.
    let body = json!({ "templates": [template(3).to_base64()] }).to_string();
    let r = call(&s.app, "PUT", "/v1/subjects/a/templates", Some(ENROL), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["templates"], 1);
    assert_eq!(
        verify(&s.app, "a", &template(1)).await.json["match"],
        false,
        "old template revoked"
    );
    assert_eq!(verify(&s.app, "a", &template(3)).await.json["match"], true);
}

#[tokio::test]
async fn malformed_requests_are_400_and_change_nothing() {
    let s = service().await;
    let uri = "/v1/subjects/x/templates";
    let cases = [
        ("{not json", "bad_request"),
        ("{\"templates\": \"AAAA\"}", "bad_request"),
        ("{\"templates\": [], \"mode\": \"create\"}", "bad_request"),
        ("{\"templates\": [\"!!!not base64!!!\"]}", "bad_template"),
        ("{\"templates\": [\"QUJD\"]}", "bad_template"),
        ("{\"templates\": [\"x\"], \"surprise\": 1}", "bad_request"),
    ];
    for (body, code) in cases {
        let r = call(&s.app, "POST", uri, Some(ENROL), Some(body.into())).await;
        assert_error(&r, StatusCode::BAD_REQUEST, code);
    }
    let r = enrol(&s.app, "bad%20id%3Bwith%20spaces", &[template(1)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.state.subjects(), 0);
    let r = call(&s.app, "GET", "/v1/subjects?limit=0", Some(ENROL), None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn wrong_dimension_kind_or_version_is_rejected() {
    let s = service().await;
    let short = Hashmap::Binary(nhm_server::index::synthetic_binary(1, 1, 128).unwrap());
    assert_error(
        &enrol(&s.app, "x", std::slice::from_ref(&short)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_template",
    );
    let dense = Hashmap::Dense(DenseHashmap::new(vec![0.1; 256]).unwrap());
    assert_error(
        &enrol(&s.app, "x", &[dense]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_template",
    );
    // Wire format version 99.
    let mut bytes = template(1).to_bytes();
    bytes[3] = 99;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let body = json!({ "templates": [b64] }).to_string();
    let r = call(
        &s.app,
        "POST",
        "/v1/subjects/x/templates",
        Some(ENROL),
        Some(body),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_template");
    // A probe of the wrong dimension is refused too, and is not counted as a failed attempt.
    enrol(&s.app, "y", &[template(2)]).await;
    for _ in 0..10 {
        assert_error(
            &verify(&s.app, "y", &short).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_template",
        );
    }
    assert_eq!(verify(&s.app, "y", &template(2)).await.json["match"], true);
    assert_eq!(s.state.subjects(), 1);
}

#[tokio::test]
async fn dense_templates_reject_non_finite_values() {
    let cfg = Config {
        kind: HashmapKind::Dense,
        ..config()
    };
    let s = service_with(cfg, None).await;
    let good = Hashmap::Dense(DenseHashmap::new((0..256).map(|i| (i as f32).sin()).collect()).unwrap());
    assert_eq!(
        enrol(&s.app, "d", std::slice::from_ref(&good)).await.status,
        StatusCode::CREATED
    );
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut bytes = good.to_bytes();
        bytes[9..13].copy_from_slice(&bad.to_le_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let body = json!({ "templates": [b64], "mode": "replace" }).to_string();
        let r = call(
            &s.app,
            "POST",
            "/v1/subjects/d/templates",
            Some(ENROL),
            Some(body),
        )
        .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_template");
    }
    assert_eq!(
        verify(&s.app, "d", &good).await.json["match"],
        true,
        "state unchanged"
    );
}

#[tokio::test]
async fn oversized_body_is_413() {
    let cfg = Config {
        body_limit_bytes: 4096,
        ..config()
    };
    let s = service_with(cfg, None).await;
    let big = json!({ "templates": vec![template(1).to_base64(); 200] }).to_string();
    assert!(big.len() > 4096);
    let r = call(&s.app, "POST", "/v1/subjects/x/templates", Some(ENROL), Some(big)).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(s.state.subjects(), 0);
}

#[tokio::test]
async fn unknown_subject_verify_is_a_counted_non_match_and_unknown_routes_are_404() {
    let s = service().await;
    enrol(&s.app, "known", &[template(1)]).await;
    // Verify cannot tell an unknown subject from a non-match: same status, same body.
    let ghost = verify(&s.app, "ghost", &template(1)).await;
    let miss = verify(&s.app, "known", &template(9)).await;
    assert_eq!(ghost.status, StatusCode::OK);
    assert_eq!(ghost.text, miss.text);
    // ... and it counts against the same limit: five tries, then the same 429 as for a subject.
    for _ in 0..4 {
        assert_eq!(verify(&s.app, "ghost", &template(1)).await.json["match"], false);
    }
    let r = verify(&s.app, "ghost", &template(1)).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    let r = call(&s.app, "GET", "/v1/subjects/ghost", Some(ENROL), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = call(&s.app, "GET", "/v2/nothing", Some(ADMIN), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn tokens_and_roles_are_enforced() {
    let s = service().await;
    let body = json!({ "templates": [template(1).to_base64()] }).to_string();
    let uri = "/v1/subjects/a/templates";
    let r = call(&s.app, "POST", uri, None, Some(body.clone())).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = call(&s.app, "POST", uri, Some("tok-enrolX"), Some(body.clone())).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = call(&s.app, "POST", uri, Some(VERIFY), Some(body.clone())).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(s.state.subjects(), 0);
    assert_eq!(
        call(&s.app, "POST", uri, Some(ADMIN), Some(body)).await.status,
        StatusCode::CREATED
    );
    let probe = json!({ "template": template(1).to_base64() }).to_string();
    let r = call(&s.app, "POST", "/v1/subjects/a/verify", Some(ENROL), Some(probe)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // The API document is public.
    let r = call(&s.app, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["paths"].is_object(), "{}", r.text);
    for uri in ["/v1/subjects", "/metrics", "/v1/admin/threshold"] {
        assert_error(
            &call(&s.app, "GET", uri, None, None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    assert_error(
        &call(&s.app, "GET", "/metrics", Some(VERIFY), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Health is public and tells nothing about the gallery.
    let r = call(&s.app, "GET", "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({ "status": "ok" }));
}

#[tokio::test]
async fn too_many_failed_attempts_lock_the_subject() {
    let s = service().await;
    enrol(&s.app, "a", &[template(1)]).await;
    enrol(&s.app, "b", &[template(2)]).await;
    // Failures interrupted by a success do not accumulate.
    for _ in 0..4 {
        assert_eq!(verify(&s.app, "a", &template(9)).await.json["match"], false);
    }
    assert_eq!(verify(&s.app, "a", &template(1)).await.json["match"], true);
    for _ in 0..5 {
        assert_eq!(verify(&s.app, "a", &template(9)).await.json["match"], false);
    }
    let r = verify(&s.app, "a", &template(1)).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
    // Other subjects are unaffected.
    assert_eq!(verify(&s.app, "b", &template(2)).await.json["match"], true);
    let m = call(&s.app, "GET", "/metrics", Some(ADMIN), None).await;
    assert!(m.text.contains("nhm_lockouts_total 1"), "{}", m.text);
    assert!(m.text.contains("nhm_locked_subjects 1"));
}

#[tokio::test]
async fn scores_only_when_enabled() {
    let s = service_with(
        Config {
            return_scores: true,
            ..config()
        },
        None,
    )
    .await;
    enrol(&s.app, "a", &[template(1)]).await;
    let r = verify(&s.app, "a", &noisy(1, 16)).await;
    let score = r.json["score"].as_f64().unwrap();
    assert!((score - (1.0 - 16.0 / 256.0)).abs() < 1e-9);
    let body = json!({ "template": template(1).to_base64() }).to_string();
    let r = call(&s.app, "POST", "/v1/identify", Some(VERIFY), Some(body)).await;
    assert_eq!(r.json["candidates"][0]["score"], 1.0);
}

#[tokio::test]
async fn threshold_is_required_settable_and_stored_with_the_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        threshold: None,
        ..Config::default()
    };
    let state = open(dir.path(), cfg.clone(), None).await.unwrap();
    let app = nhm_server::app(state.clone());
    enrol(&app, "a", &[template(1)]).await;
    assert_error(
        &verify(&app, "a", &template(1)).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "no_threshold",
    );
    let body = json!({ "template": template(1).to_base64() }).to_string();
    let r = call(&app, "POST", "/v1/identify", Some(VERIFY), Some(body)).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "no_threshold");
    let t = dev_threshold();
    let body = serde_json::to_string(&t).unwrap();
    let r = call(
        &app,
        "PUT",
        "/v1/admin/threshold",
        Some(ENROL),
        Some(body.clone()),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let bad = json!({ "score": 0.7, "target_fmr": 2.0, "measured_fmr": 0.0, "impostor_comparisons": 1 });
    let r = call(
        &app,
        "PUT",
        "/v1/admin/threshold",
        Some(ADMIN),
        Some(bad.to_string()),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    // Thresholds that every unrelated binary hashmap (or none) passes are refused by name.
    for score in [0.0, -1.0, 0.5, 1.5] {
        let bad =
            json!({ "score": score, "target_fmr": 0.001, "measured_fmr": 0.0, "impostor_comparisons": 1 });
        let r = call(
            &app,
            "PUT",
            "/v1/admin/threshold",
            Some(ADMIN),
            Some(bad.to_string()),
        )
        .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
        assert!(r.text.contains("outside"), "{score}: {}", r.text);
    }
    assert_eq!(state.threshold(), None);
    let r = call(&app, "PUT", "/v1/admin/threshold", Some(ADMIN), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(verify(&app, "a", &template(1)).await.json["match"], true);
    drop((app, state));
    // A configuration whose threshold accepts unrelated templates wholesale does not start.
    let other = tempfile::tempdir().unwrap();
    let wholesale = Config {
        threshold: Some(nhm_template::Threshold { score: 0.2, ..t }),
        ..Config::default()
    };
    let err = open(other.path(), wholesale, None).await.unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    // A restart without a threshold in the configuration finds the stored one, and the gallery.
    let state = open(dir.path(), cfg, None).await.unwrap();
    assert_eq!(state.threshold(), Some(t));
    assert_eq!(state.subjects(), 1);
    let app = nhm_server::app(state);
    assert_eq!(verify(&app, "a", &noisy(1, 5)).await.json["match"], true);
}

#[tokio::test]
async fn store_refuses_another_dimension_or_pepper() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), config(), None).await.unwrap());
    let r = open(dir.path(), Config { dim: 128, ..config() }, None).await;
    assert!(matches!(r, Err(nhm_server::Error::GalleryMismatch(_))));
    let r = open(dir.path(), config(), Some(&Key::from_seed(1))).await;
    assert!(matches!(r, Err(nhm_server::Error::GalleryMismatch(_))));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn pepper_keeps_raw_templates_out_of_the_store_and_stops_replay() {
    let pepper = Key::from_seed(42);
    let s = service_with(config(), Some(&pepper)).await;
    let enrolled: Vec<Hashmap> = (0..20).map(template).collect();
    for (i, t) in enrolled.iter().enumerate() {
        assert_eq!(
            enrol(&s.app, &format!("p{i}"), std::slice::from_ref(t))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    // Genuine probes still match: the pepper is applied before matching too.
    assert_eq!(verify(&s.app, "p3", &noisy(3, 10)).await.json["match"], true);
    // The database file never holds an enrolled template as sent (payload bytes).
    let db = std::fs::read(s.dir.path().join(nhm_server::store::DB_FILE)).unwrap();
    for t in &enrolled {
        let bytes = t.to_bytes();
        assert!(!contains(&db, &bytes[9..]), "raw template found in the store");
    }
    // Sanity of the scan: the stored (peppered) form is in the file.
    let r = call(
        &s.app,
        "GET",
        "/v1/subjects/p3?include_templates=true",
        Some(ADMIN),
        None,
    )
    .await;
    let stolen = Hashmap::from_base64(r.json["hashmaps"][0].as_str().unwrap()).unwrap();
    assert!(contains(&db, &stolen.to_bytes()[9..]));
    // Replaying the stolen stored template does not match.
    assert_eq!(verify(&s.app, "p3", &stolen).await.json["match"], false);
}

#[tokio::test]
async fn relay_is_off_by_default_and_samples_others_when_on() {
    let s = service().await;
    for i in 0..6 {
        enrol(&s.app, &format!("p{i}"), &[template(i)]).await;
    }
    let r = call(&s.app, "GET", "/v1/relay/negatives?n=3", Some(ENROL), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let relay = Config {
        relay_enabled: true,
        ..config()
    };
    // Without a pepper a relayed hashmap would verify as its owner: such a server does not start.
    let dir = tempfile::tempdir().unwrap();
    let err = open(dir.path(), relay.clone(), None).await.unwrap_err();
    assert!(err.to_string().contains("relay_enabled needs a pepper"), "{err}");
    let key = Key::from_seed(5);
    let s2 = service_with(relay, Some(&key)).await;
    for i in 0..6 {
        enrol(&s2.app, &format!("p{i}"), &[template(i)]).await;
    }
    let stored = |i: u64| {
        nhm_template::Pepper::new(&key, 256)
            .apply_hashmap(&template(i))
            .unwrap()
            .to_base64()
    };
    let r = call(
        &s2.app,
        "GET",
        "/v1/relay/negatives?n=10&exclude=p0&seed=3",
        Some(ENROL),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got: Vec<String> = serde_json::from_value(r.json["hashmaps"].clone()).unwrap();
    assert_eq!(got.len(), 5);
    assert!(!got.contains(&stored(0)), "the excluded subject is never relayed");
    assert!(
        got.contains(&stored(1)),
        "relayed hashmaps are the stored (peppered) ones"
    );
    // A relayed hashmap replayed as a probe does not match its owner.
    for i in 1..6 {
        let h = Hashmap::from_base64(&stored(i)).unwrap();
        assert_eq!(verify(&s2.app, &format!("p{i}"), &h).await.json["match"], false);
    }
    let again = call(
        &s2.app,
        "GET",
        "/v1/relay/negatives?n=10&exclude=p0&seed=3",
        Some(ENROL),
        None,
    )
    .await;
    assert_eq!(again.json, r.json, "same seed, same sample");
    let r = call(&s2.app, "GET", "/v1/relay/negatives?n=0", Some(ENROL), None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = call(&s2.app, "GET", "/v1/relay/negatives?n=2", Some(VERIFY), None).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn openapi_and_metrics() {
    let s = service().await;
    enrol(&s.app, "a", &[template(1)]).await;
    let r = call(&s.app, "GET", "/v1/openapi.json", Some(VERIFY), None).await;
    assert_eq!(r.status, StatusCode::OK);
    for p in [
        "/v1/subjects/{id}/templates",
        "/v1/subjects/{id}/verify",
        "/v1/identify",
        "/v1/relay/negatives",
    ] {
        assert!(r.json["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    let m = call(&s.app, "GET", "/metrics", Some(ADMIN), None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.text.contains(
        "nhm_http_requests_total{method=\"POST\",route=\"/v1/subjects/{id}/templates\",status=\"201\"} 1"
    ));
    assert!(m.text.contains("nhm_gallery_subjects 1"));
    let public = service_with(
        Config {
            metrics_public: true,
            ..config()
        },
        None,
    )
    .await;
    assert_eq!(
        call(&public.app, "GET", "/metrics", None, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_dot_ids_are_refused() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;
    let s = service().await;
    let body = json!({ "templates": [template(1).to_base64()] }).to_string();
    for (i, scheme) in ["bearer", "BEARER", "Bearer", "bEaReR"].iter().enumerate() {
        let req = Request::builder()
            .method("POST")
            .uri(format!("/v1/subjects/case{i}/templates"))
            .header("authorization", format!("{scheme} {ENROL}"))
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "scheme {scheme}");
    }
    // Another scheme, or no token after the scheme: unauthorized.
    for value in ["Basic abc", "Bearer", "Bearertok"] {
        let req = Request::builder()
            .method("GET")
            .uri("/v1/subjects")
            .header("authorization", value)
            .body(Body::empty())
            .unwrap();
        let resp = s.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{value}");
    }
    let before = s.state.subjects();
    for id in [".", ".."] {
        let r = call(
            &s.app,
            "POST",
            &format!("/v1/subjects/{id}/templates"),
            Some(ENROL),
            Some(body.clone()),
        )
        .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(s.state.subjects(), before);
}
