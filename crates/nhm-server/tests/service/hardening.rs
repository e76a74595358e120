//! The hardening rules of issue 13: attempt limits that identify cannot bypass and restarts do
//! not reset, a generated pepper, the audit trail, and JSON errors for every rejection.

use axum::http::StatusCode;
use nhm_server::Config;
use serde_json::json;

use crate::common::*;

async fn identify(app: &axum::Router, probe: &nhm_template::Hashmap) -> Reply {
    let body = json!({ "template": probe.to_base64(), "k": 3 }).to_string();
    call(app, "POST", "/v1/identify", Some(VERIFY), Some(body)).await
}

#[tokio::test]
async fn identify_is_limited_per_token_and_never_returns_a_locked_subject() {
    let s = service_with(
        Config {
            identify_max_failed_attempts: 4,
            ..config()
        },
        None,
    )
    .await;
    enrol(&s.app, "a", &[template(1)]).await;
    enrol(&s.app, "b", &[template(2)]).await;
    // Lock "a" with five failed verifications; its genuine probe then finds nobody by identify.
    for _ in 0..5 {
        verify(&s.app, "a", &template(9)).await;
    }
    assert_error(
        &verify(&s.app, "a", &template(1)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    let r = identify(&s.app, &noisy(1, 3)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["candidates"], json!([]), "a locked subject was identified");
    // "b" is still found; a success resets the token's count.
    let r = identify(&s.app, &template(2)).await;
    assert_eq!(r.json["candidates"][0]["subject"], "b");
    // Impostor searches: four that find nobody (the locked "a" one counted as such), then 429.
    for _ in 0..3 {
        assert_eq!(identify(&s.app, &template(50)).await.status, StatusCode::OK);
    }
    let r = identify(&s.app, &template(51)).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = identify(&s.app, &template(2)).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert!(r.headers.contains_key("retry-after"));
    // The limit is the token's: verification by the same token is not affected.
    assert_eq!(verify(&s.app, "b", &template(2)).await.json["match"], true);
}

#[tokio::test]
async fn a_burst_of_parallel_identifies_gets_no_more_tries_than_the_limit() {
    let s = service_with(
        Config {
            identify_max_failed_attempts: 10,
            ..config()
        },
        None,
    )
    .await;
    enrol(&s.app, "a", &[template(1)]).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = s.app.clone();
        tasks.push(tokio::spawn(async move {
            identify(&app, &template(100 + i)).await.status
        }));
    }
    let mut answered = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::OK {
            answered += 1;
        }
    }
    assert!(
        answered <= 10,
        "{answered} impostor identifies were answered; the limit is 10"
    );
    assert!(answered >= 1);
}

#[tokio::test]
async fn lockouts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let state = open(dir.path(), config(), None).await.unwrap();
        let app = nhm_server::app(state);
        enrol(&app, "a", &[template(1)]).await;
        for _ in 0..3 {
            verify(&app, "a", &template(9)).await;
        }
        enrol(&app, "b", &[template(2)]).await;
        for _ in 0..5 {
            verify(&app, "b", &template(9)).await;
        }
    }
    let state = open(dir.path(), config(), None).await.unwrap();
    let app = nhm_server::app(state);
    // "b" is still locked after the restart, for its genuine probe too.
    assert_error(
        &verify(&app, "b", &template(2)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    // "a" had three failures: two more lock it, not five.
    for _ in 0..2 {
        assert_eq!(verify(&app, "a", &template(9)).await.json["match"], false);
    }
    assert_error(
        &verify(&app, "a", &template(1)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
}

#[tokio::test]
async fn the_stored_threshold_wins_over_the_configuration_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t = dev_threshold();
    {
        let state = open(dir.path(), config(), None).await.unwrap();
        let app = nhm_server::app(state);
        let body =
            json!({ "score": 0.9, "target_fmr": 1e-4, "measured_fmr": 0.0, "impostor_comparisons": 7 });
        let r = call(
            &app,
            "PUT",
            "/v1/admin/threshold",
            Some(ADMIN),
            Some(body.to_string()),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // The configuration still names the old threshold: the admin's change is kept.
    let state = open(dir.path(), config(), None).await.unwrap();
    let now = state.threshold().unwrap();
    assert_eq!(now.score, 0.9);
    assert_ne!(now.score, t.score);
}

#[tokio::test]
async fn a_pepper_is_generated_on_first_start_and_required_after() {
    let data = tempfile::tempdir().unwrap();
    let state = nhm_server::server::build_state(config(), data.path())
        .await
        .unwrap();
    let key_file = data.path().join(nhm_server::server::PEPPER_FILE);
    assert!(key_file.exists(), "no pepper generated");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for f in [key_file.clone(), data.path().join(nhm_server::store::DB_FILE)] {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }
    let key = nhm_template::Key::load(&key_file).unwrap();
    drop(state);
    // The same pepper is used at the next start...
    let again = nhm_server::server::build_state(config(), data.path())
        .await
        .unwrap();
    drop(again);
    assert_eq!(
        nhm_template::Key::load(&key_file).unwrap().fingerprint(),
        key.fingerprint()
    );
    // ... and without its file the store is refused instead of silently never matching.
    std::fs::remove_file(&key_file).unwrap();
    let err = nhm_server::server::build_state(config(), data.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pepper.key"), "{err}");
    assert!(!key_file.exists(), "a new pepper must not replace the lost one");
    // pepper = false on a peppered store is refused too (the fingerprints differ).
    let off = Config {
        pepper: false,
        ..config()
    };
    assert!(nhm_server::server::build_state(off, data.path()).await.is_err());
}

#[tokio::test]
async fn the_audit_trail_records_who_did_what_and_never_a_template() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let s = service_with(
        Config {
            audit_log: Some(audit.clone()),
            ..config()
        },
        None,
    )
    .await;
    enrol(&s.app, "a", &[template(1)]).await;
    enrol(&s.app, "a", &[template(1)]).await; // 409
    let body = json!({ "templates": [template(3).to_base64()] }).to_string();
    call(&s.app, "PUT", "/v1/subjects/a/templates", Some(ENROL), Some(body)).await;
    call(
        &s.app,
        "GET",
        "/v1/subjects/a?include_templates=true",
        Some(ADMIN),
        None,
    )
    .await;
    call(&s.app, "GET", "/v1/subjects", Some("wrong-token"), None).await;
    call(&s.app, "DELETE", "/v1/subjects/a", Some(VERIFY), None).await;
    enrol(&s.app, "b", &[template(2)]).await;
    for _ in 0..5 {
        verify(&s.app, "b", &template(9)).await;
    }
    call(&s.app, "DELETE", "/v1/subjects/a", Some(ENROL), None).await;
    let text = std::fs::read_to_string(&audit).unwrap();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let has = |who: &str, action: &str, subject: Option<&str>, outcome: &str| {
        events.iter().any(|e| {
            e["who"] == who
                && e["action"] == action
                && e["outcome"] == outcome
                && subject.is_none_or(|s| e["subject"] == s)
        })
    };
    assert!(has("e", "enrol", Some("a"), "ok"), "{text}");
    assert!(has("e", "enrol", Some("a"), "refused"), "{text}");
    assert!(has("e", "replace", Some("a"), "ok"), "{text}");
    assert!(has("a", "export_templates", Some("a"), "ok"), "{text}");
    assert!(has("-", "auth_failure", None, "refused"), "{text}");
    assert!(has("v", "forbidden", Some("a"), "refused"), "{text}");
    assert!(has("v", "subject_locked", Some("b"), "ok"), "{text}");
    assert!(has("e", "delete", Some("a"), "ok"), "{text}");
    for t in [template(1), template(2), template(3)] {
        assert!(!text.contains(&t.to_base64()), "a template is in the audit trail");
    }
    assert!(
        !text.contains("wrong-token") && !text.contains(ENROL),
        "a token is in the audit trail"
    );
}

#[tokio::test]
async fn every_rejection_is_the_json_error() {
    let s = service().await;
    // 405 on a known route.
    let r = call(&s.app, "PATCH", "/v1/subjects/a", Some(ENROL), None).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    // A query that does not parse.
    let r = call(&s.app, "GET", "/v1/subjects?limit=many", Some(ENROL), None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = call(&s.app, "GET", "/v1/subjects?colour=red", Some(ENROL), None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    // A path segment that is not valid UTF-8.
    let r = call(&s.app, "GET", "/v1/subjects/%FF%FE", Some(ENROL), None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    // A URI over the limit.
    let long = format!("/v1/subjects?after={}", "x".repeat(10_000));
    let r = call(&s.app, "GET", &long, Some(ENROL), None).await;
    assert_error(&r, StatusCode::URI_TOO_LONG, "uri_too_long");
}
