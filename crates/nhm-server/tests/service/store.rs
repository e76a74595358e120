//! One test suite for every `TemplateStore` backend.

use std::sync::Arc;

use nhm_server::store::{StoredSubject, SubjectInfo, TemplateStore, WriteMode};
use nhm_server::{EmbeddedStore, Error, PostgresStore};

use crate::common::template;

/// The behaviour every backend must have.
async fn store_suite(store: Arc<dyn TemplateStore>) {
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.get_subject("a").await.unwrap().is_none());
    let r = store
        .put_templates("a", vec![template(1)], WriteMode::Create, 100)
        .await
        .unwrap();
    assert_eq!(
        r.info,
        SubjectInfo {
            id: "a".into(),
            templates: 1,
            created: 100,
            updated: 100
        }
    );
    let dup = store
        .put_templates("a", vec![template(2)], WriteMode::Create, 101)
        .await;
    assert!(matches!(dup, Err(Error::SubjectExists(_))));
    let r = store
        .put_templates("a", vec![template(2)], WriteMode::Append, 102)
        .await
        .unwrap();
    assert_eq!((r.info.templates, r.info.created, r.info.updated), (2, 100, 102));
    let got = store.get_subject("a").await.unwrap().unwrap();
    assert_eq!(got.templates, vec![template(1), template(2)]);
    let r = store
        .put_templates("a", vec![template(3)], WriteMode::Replace, 103)
        .await
        .unwrap();
    assert_eq!(r.templates, vec![template(3)]);
    assert_eq!(
        store.get_subject("a").await.unwrap().unwrap().templates,
        vec![template(3)]
    );
    // Append and replace create missing subjects.
    store
        .put_templates("c", vec![template(4)], WriteMode::Append, 104)
        .await
        .unwrap();
    store
        .put_templates("b", vec![template(5)], WriteMode::Replace, 105)
        .await
        .unwrap();
    // Listing is in id order with keyset paging.
    let ids = |v: Vec<SubjectInfo>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_subjects(None, 2).await.unwrap()), ["a", "b"]);
    assert_eq!(ids(store.list_subjects(Some("b"), 10).await.unwrap()), ["c"]);
    assert_eq!(store.count().await.unwrap(), 3);
    assert!(store.delete_subject("b").await.unwrap());
    assert!(!store.delete_subject("b").await.unwrap());
    let bulk: Vec<StoredSubject> = (10..30)
        .map(|i| StoredSubject {
            info: SubjectInfo {
                id: format!("bulk{i}"),
                templates: 1,
                created: 7,
                updated: 7,
            },
            templates: vec![template(i)],
        })
        .collect();
    store.bulk_put(bulk).await.unwrap();
    let all = store.load_all().await.unwrap();
    assert_eq!(all.len(), 22);
    let b12 = all.iter().find(|s| s.info.id == "bulk12").unwrap();
    assert_eq!(b12.templates, vec![template(12)]);
    assert_eq!(store.get_meta("k").await.unwrap(), None);
    store.put_meta("k", "v1").await.unwrap();
    store.put_meta("k", "v2").await.unwrap();
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v2"));
}

#[tokio::test]
async fn embedded_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    store_suite(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
    // Everything survives reopening.
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.count().await.unwrap(), 22);
    // The database file is readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "nhm.redb mode {:o}", mode & 0o777);
    }
}

/// Prints past the test harness's output capture, so a skip is seen even when tests pass.
fn loud(msg: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "\n*** {msg} ***\n");
}

/// A PostgreSQL store in a fresh schema, or `None` (with a loud message) when no server is
/// reachable; under CI=true a missing server fails the test instead.
async fn postgres(tag: &str) -> Option<PostgresStore> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Ok(conn) = std::env::var("NHM_TEST_PG") else {
        assert!(!ci, "CI=true but NHM_TEST_PG is not set");
        loud("SKIPPED: PostgreSQL not available (set NHM_TEST_PG)");
        return None;
    };
    let schema = format!("nhm_t_{tag}_{}", std::process::id());
    match PostgresStore::connect(&conn, &schema, 4).await {
        Ok(s) => {
            s.drop_schema().await.unwrap();
            Some(PostgresStore::connect(&conn, &schema, 4).await.unwrap())
        }
        Err(e) => {
            assert!(!ci, "CI=true but PostgreSQL at NHM_TEST_PG is unreachable: {e}");
            loud(&format!(
                "SKIPPED: PostgreSQL not available (set NHM_TEST_PG): {e}"
            ));
            None
        }
    }
}

#[tokio::test]
async fn postgres_store_suite() {
    let Some(store) = postgres("suite").await else {
        return;
    };
    store_suite(Arc::new(store.clone())).await;
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn postgres_replicas_see_each_others_writes() {
    use nhm_server::{AppState, Config};
    let Some(store) = postgres("replicas").await else {
        return;
    };
    let cfg = Config {
        threshold: Some(crate::common::dev_threshold()),
        ..Config::default()
    };
    let a = AppState::new(
        cfg.clone(),
        Arc::new(store.clone()),
        crate::common::tokens(),
        None,
    )
    .await
    .unwrap();
    let b = AppState::new(cfg, Arc::new(store.clone()), crate::common::tokens(), None)
        .await
        .unwrap();
    let app_a = nhm_server::app(a);
    let app_b = nhm_server::app(b.clone());
    assert_eq!(
        crate::common::enrol(&app_a, "x", &[template(1)]).await.status,
        axum::http::StatusCode::CREATED
    );
    assert_eq!(b.subjects(), 0);
    assert_eq!(b.sync_from_store().await.unwrap(), 1);
    assert_eq!(
        crate::common::verify(&app_b, "x", &template(1)).await.json["match"],
        true
    );
    let r = crate::common::call(
        &app_a,
        "DELETE",
        "/v1/subjects/x",
        Some(crate::common::ENROL),
        None,
    )
    .await;
    assert_eq!(r.status, axum::http::StatusCode::NO_CONTENT);
    b.sync_from_store().await.unwrap();
    assert_eq!(b.subjects(), 0);
    store.drop_schema().await.unwrap();
}
