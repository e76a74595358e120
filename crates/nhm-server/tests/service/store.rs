//! One test suite for every `TemplateStore` backend.

use std::sync::Arc;

use nhm_server::store::{AttemptState, StoredSubject, SubjectInfo, TemplateStore, WriteMode};
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

/// The attempt counters every backend must keep (the embedded store is the reference).
async fn attempts_suite(store: Arc<dyn TemplateStore>) {
    assert_eq!(store.attempt_state("k").await.unwrap(), None);
    // Clearing a key without a counter is a no-op.
    store.clear_attempts("k").await.unwrap();
    for i in 1..=2 {
        let s = store.record_failure("k", 3, 60, 1000).await.unwrap();
        assert_eq!(
            s,
            AttemptState {
                failures: i,
                locked_until: 0
            }
        );
    }
    // The third failure locks until now + lock_secs; one while locked keeps the lock's end.
    let locked = store.record_failure("k", 3, 60, 1010).await.unwrap();
    assert_eq!(
        locked,
        AttemptState {
            failures: 3,
            locked_until: 1070
        }
    );
    let again = store.record_failure("k", 3, 60, 1020).await.unwrap();
    assert_eq!(
        again,
        AttemptState {
            failures: 4,
            locked_until: 1070
        }
    );
    assert_eq!(store.attempt_state("k").await.unwrap(), Some(again));
    store.record_failure("other", 3, 60, 1000).await.unwrap();
    let mut loaded = store.load_attempts(1030).await.unwrap();
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        loaded,
        vec![
            ("k".to_owned(), again),
            (
                "other".to_owned(),
                AttemptState {
                    failures: 1,
                    locked_until: 0
                }
            )
        ]
    );
    // An expired lock is not loaded, and the next failure starts a fresh budget.
    let loaded = store.load_attempts(1070).await.unwrap();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    let fresh = store.record_failure("k", 3, 60, 1071).await.unwrap();
    assert_eq!(
        fresh,
        AttemptState {
            failures: 1,
            locked_until: 0
        }
    );
    store.clear_attempts("k").await.unwrap();
    assert_eq!(store.attempt_state("k").await.unwrap(), None);
    // Pruning drops counters whose lock expired keep_secs ago, and keeps the others.
    store.record_failure("gone", 1, 10, 1000).await.unwrap();
    assert_eq!(store.prune(1500, 100).await.unwrap(), 1);
    assert_eq!(store.attempt_state("gone").await.unwrap(), None);
    assert!(store.attempt_state("other").await.unwrap().is_some());
}

#[tokio::test]
async fn embedded_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    store_suite(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
    attempts_suite(Arc::new(
        EmbeddedStore::open(&dir.path().join("attempts")).unwrap(),
    ))
    .await;
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
    let Some(store) = postgres("attempts").await else {
        return;
    };
    attempts_suite(Arc::new(store.clone())).await;
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

// ---- PostgreSQL: commit order of the change log, shared attempt counters, pruning, TLS ----

use std::collections::HashMap;
use std::time::Duration;

use nhm_server::config::{PostgresOptions, PostgresTls};
use nhm_server::store::{Change, ChangeBatch};

/// The test server's connection string (`None` when unset; asserted set under CI=true by
/// [`postgres`], which every test calls first).
fn pg_conn() -> Option<String> {
    std::env::var("NHM_TEST_PG").ok()
}

/// Another replica on the same schema as `store`: its own pool, as another process would have.
async fn replica(store: &PostgresStore) -> PostgresStore {
    let conn = pg_conn().expect("NHM_TEST_PG");
    PostgresStore::connect(&conn, store.schema(), 4).await.unwrap()
}

/// A raw driver connection to the test server with `schema` first on the search path (for what
/// the store does not expose: server settings, bulk log rows).
async fn raw_client(schema: &str) -> tokio_postgres::Client {
    let conn = pg_conn().expect("NHM_TEST_PG");
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path = {schema}"))
        .await
        .unwrap();
    client
}

/// Every change after `from`, following pages; panics on a reload.
async fn all_changes(store: &PostgresStore, from: u64) -> Vec<Change> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let b = store.changes_since(at).await.unwrap();
        assert!(!b.reload, "unexpected reload from {at}");
        if b.changes.is_empty() {
            return out;
        }
        out.extend(b.changes);
        at = b.last;
    }
}

fn subject(id: &str) -> Change {
    Change::Subject(id.to_owned())
}

/// The reviewer's reproduction: a writer draws its change-log number and commits late while
/// another replica's write commits; a reader polling meanwhile (moving its position past all it
/// was given, as a replica does) must still get both changes.
#[tokio::test]
async fn postgres_a_late_commit_is_not_skipped_by_a_polling_replica() {
    let Some(a) = postgres("late").await else {
        return;
    };
    let b = replica(&a).await;
    let reader = replica(&a).await;
    let start = reader.latest_change().await.unwrap();
    let slow = {
        let a = a.clone();
        tokio::spawn(async move {
            a.put_templates_with_commit_delay(
                "slow",
                vec![template(1)],
                WriteMode::Create,
                10,
                Duration::from_millis(700),
            )
            .await
        })
    };
    // Let the slow writer draw its number first.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let fast = {
        let b = b.clone();
        tokio::spawn(async move {
            b.put_templates("fast", vec![template(2)], WriteMode::Create, 11)
                .await
        })
    };
    let mut seen = Vec::new();
    let mut at = start;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(slow.is_finished() && fast.is_finished()) {
        assert!(tokio::time::Instant::now() < deadline, "writers did not finish");
        let batch = reader.changes_since(at).await.unwrap();
        assert!(!batch.reload);
        seen.extend(batch.changes);
        at = batch.last;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    slow.await.unwrap().unwrap();
    fast.await.unwrap().unwrap();
    // One more poll after both commits: what a replica ends up with.
    let batch = reader.changes_since(at).await.unwrap();
    seen.extend(batch.changes);
    assert!(
        seen.contains(&subject("slow")),
        "the late commit was skipped: {seen:?}"
    );
    assert!(seen.contains(&subject("fast")), "{seen:?}");
    // The incremental reader saw exactly the log, in its order.
    assert_eq!(seen, all_changes(&reader, start).await);
    a.drop_schema().await.unwrap();
}

/// Two replicas write concurrently (enrolments and deletions of random subjects, some with late
/// commits) while a third polls and applies the changes as a replica does; at the end its view
/// equals the store and it received every logged change: none missed.
#[tokio::test]
async fn postgres_two_writers_and_a_polling_reader_miss_no_change() {
    use rand::{Rng as _, SeedableRng as _};
    let Some(a) = postgres("random").await else {
        return;
    };
    let b = replica(&a).await;
    let reader = replica(&a).await;
    let seed: u64 = rand::random();
    eprintln!("postgres_two_writers_and_a_polling_reader_miss_no_change: seed {seed}");
    let start = reader.latest_change().await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (reader, done) = (reader.clone(), done.clone());
        tokio::spawn(async move {
            let mut view: HashMap<String, Vec<nhm_template::Hashmap>> = HashMap::new();
            let (mut at, mut received) = (start, 0usize);
            loop {
                // Read the flag before polling: a poll that starts after every writer returned
                // sees all their commits.
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let batch = reader.changes_since(at).await.unwrap();
                assert!(!batch.reload);
                if batch.changes.is_empty() && finished {
                    return (view, received);
                }
                for c in batch.changes {
                    let Change::Subject(id) = c else {
                        panic!("only subjects change here: {c:?}")
                    };
                    received += 1;
                    match reader.get_subject(&id).await.unwrap() {
                        Some(s) => view.insert(id, s.templates),
                        None => view.remove(&id),
                    };
                }
                at = batch.last;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // 2 replicas × 4 tasks × 180 operations = 1440 writes (some deletions find nothing).
    let mut writers = Vec::new();
    for (w, store) in [a.clone(), b.clone()].into_iter().enumerate() {
        for t in 0..4u64 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (w as u64 * 16 + t));
                let mut logged = 0usize;
                for _ in 0..180 {
                    let id = format!("s{}", rng.gen_range(0..48));
                    let delay = if rng.gen_bool(0.3) {
                        Duration::from_millis(rng.gen_range(0..=20))
                    } else {
                        Duration::ZERO
                    };
                    if rng.gen_bool(0.65) {
                        let t = template(rng.gen_range(0..1000));
                        store
                            .put_templates_with_commit_delay(&id, vec![t], WriteMode::Replace, 1, delay)
                            .await
                            .unwrap();
                        logged += 1;
                    } else if store.delete_subject_with_commit_delay(&id, delay).await.unwrap() {
                        logged += 1;
                    }
                }
                logged
            }));
        }
    }
    let started = std::time::Instant::now();
    let mut logged = 0;
    for w in writers {
        logged += w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let (view, received) = poller.await.unwrap();
    eprintln!("{logged} changes written in {:?}", started.elapsed());
    assert!(logged >= 1000, "too few changes to mean much: {logged}");
    assert_eq!(received, logged, "the reader missed changes (seed {seed})");
    let truth: HashMap<String, Vec<nhm_template::Hashmap>> = a
        .load_all()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.info.id, s.templates))
        .collect();
    assert_eq!(
        view, truth,
        "the reader's view differs from the store (seed {seed})"
    );
    a.drop_schema().await.unwrap();
}

/// Threshold (meta) and attempt-counter changes reach the log with their own kinds; clearing a
/// counter that is not there writes nothing.
#[tokio::test]
async fn postgres_meta_and_attempt_changes_are_logged() {
    let Some(store) = postgres("kinds").await else {
        return;
    };
    let start = store.latest_change().await.unwrap();
    store.put_meta("threshold", "{}").await.unwrap();
    store.record_failure("alice", 5, 60, 100).await.unwrap();
    store.clear_attempts("alice").await.unwrap();
    let before = store.latest_change().await.unwrap();
    store.clear_attempts("alice").await.unwrap();
    store.clear_attempts("nobody").await.unwrap();
    assert_eq!(
        store.latest_change().await.unwrap(),
        before,
        "a no-op clear logged a change"
    );
    assert_eq!(
        all_changes(&store, start).await,
        vec![
            Change::Meta("threshold".into()),
            Change::Attempts("alice".into()),
            Change::Attempts("alice".into()),
        ]
    );
    store.drop_schema().await.unwrap();
}

/// 2 replicas × 20 concurrent failures on one key: every one counted once (each call sees a
/// distinct count, the last 40), and the lock set by the one reaching the maximum.
#[tokio::test]
async fn postgres_concurrent_failures_on_two_replicas_are_counted_exactly() {
    let Some(a) = postgres("failures").await else {
        return;
    };
    let b = replica(&a).await;
    let mut calls = Vec::new();
    for store in [a.clone(), b.clone()] {
        for _ in 0..20 {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                store.record_failure("k", 30, 60, 1000).await.unwrap()
            }));
        }
    }
    let mut counts = Vec::new();
    for c in calls {
        let s = c.await.unwrap();
        assert_eq!(s.locked_until != 0, s.failures >= 30, "{s:?}");
        counts.push(s.failures);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<u32>>());
    assert_eq!(
        b.attempt_state("k").await.unwrap(),
        Some(AttemptState {
            failures: 40,
            locked_until: 1060
        })
    );
    a.drop_schema().await.unwrap();
}

/// After pruning, a position from before it is told to reload (continuing from the latest
/// position); a position at the latest is not, and new changes still arrive after it.
#[tokio::test]
async fn postgres_pruned_positions_reload_and_fresh_ones_do_not() {
    let Some(store) = postgres("prune").await else {
        return;
    };
    let reader = replica(&store).await;
    for id in ["a", "b"] {
        store
            .put_templates(id, vec![template(1)], WriteMode::Create, 1)
            .await
            .unwrap();
    }
    let old = reader.latest_change().await.unwrap();
    store
        .put_templates("c", vec![template(3)], WriteMode::Create, 1)
        .await
        .unwrap();
    let fresh = reader.latest_change().await.unwrap();
    assert!(fresh > old);
    // Nothing is older than a day: nothing goes, nobody reloads.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(store.prune(now, 86_400).await.unwrap(), 0);
    assert_eq!(all_changes(&reader, old).await, vec![subject("c")]);
    // An hour from now with a minute kept, all of the log is old.
    assert_eq!(store.prune(now + 3600, 60).await.unwrap(), 3);
    assert_eq!(
        reader.changes_since(old).await.unwrap(),
        ChangeBatch {
            last: fresh,
            changes: vec![],
            reload: true
        }
    );
    assert_eq!(
        reader.changes_since(0).await.unwrap(),
        ChangeBatch {
            last: fresh,
            changes: vec![],
            reload: true
        }
    );
    assert_eq!(
        reader.changes_since(fresh).await.unwrap(),
        ChangeBatch {
            last: fresh,
            changes: vec![],
            reload: false
        }
    );
    // The position does not go back with the rows gone.
    assert_eq!(reader.latest_change().await.unwrap(), fresh);
    store.delete_subject("a").await.unwrap();
    let b = reader.changes_since(fresh).await.unwrap();
    assert_eq!((b.changes, b.reload), (vec![subject("a")], false));
    assert!(b.last > fresh);
    store.drop_schema().await.unwrap();
}

/// A bulk load logs one reload marker rather than a row per subject.
#[tokio::test]
async fn postgres_bulk_load_tells_replicas_to_reload() {
    let Some(store) = postgres("bulk").await else {
        return;
    };
    let start = store.latest_change().await.unwrap();
    store
        .put_templates("x", vec![template(1)], WriteMode::Create, 1)
        .await
        .unwrap();
    let bulk = (0..5)
        .map(|i| StoredSubject {
            info: SubjectInfo {
                id: format!("bulk{i}"),
                templates: 1,
                created: 2,
                updated: 2,
            },
            templates: vec![template(i)],
        })
        .collect();
    store.bulk_put(bulk).await.unwrap();
    let latest = store.latest_change().await.unwrap();
    assert_eq!(
        store.changes_since(start).await.unwrap(),
        ChangeBatch {
            last: latest,
            changes: vec![],
            reload: true
        }
    );
    assert_eq!(all_changes(&store, latest).await, vec![]);
    store.drop_schema().await.unwrap();
}

/// A long log comes in pages of 100 000 rows, each ending at the last row it returns.
#[tokio::test]
async fn postgres_changes_come_in_pages() {
    let Some(store) = postgres("pages").await else {
        return;
    };
    let start = store.latest_change().await.unwrap();
    raw_client(store.schema())
        .await
        .batch_execute(
            "INSERT INTO subject_changes (kind, subject)
             SELECT 'subject', 's' || g FROM generate_series(1, 100005) AS g",
        )
        .await
        .unwrap();
    let first = store.changes_since(start).await.unwrap();
    assert_eq!(first.changes.len(), 100_000);
    assert_eq!(first.changes[99_999], subject("s100000"));
    assert_eq!(first.last, start + 100_000);
    let second = store.changes_since(first.last).await.unwrap();
    assert_eq!(
        second.changes,
        (100_001..=100_005)
            .map(|i| subject(&format!("s{i}")))
            .collect::<Vec<_>>()
    );
    assert_eq!(second.last, store.latest_change().await.unwrap());
    store.drop_schema().await.unwrap();
}

/// The chain of an error's messages, for assertions on what an operator would read.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// `postgres_tls = "require"` against a server that answers the TLS request with "no" (as a
/// PostgreSQL without `ssl = on` does) fails with an error saying so, not a panic and not a
/// silent plain-text session.
#[tokio::test]
async fn postgres_tls_require_is_refused_by_a_server_without_tls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        // Answer each connection attempt's SSLRequest (8 bytes) with 'N', then wait for the close.
        loop {
            let Ok(Ok((mut sock, _))) =
                tokio::time::timeout(Duration::from_secs(10), listener.accept()).await
            else {
                return;
            };
            let mut req = [0u8; 8];
            if sock.read_exact(&mut req).await.is_ok() {
                assert_eq!(&req[4..], &[0x04, 0xd2, 0x16, 0x2f], "not an SSLRequest");
                let _ = sock.write_all(b"N").await;
                let mut rest = Vec::new();
                let _ = sock.read_to_end(&mut rest).await;
                assert!(rest.is_empty(), "the client went on in plain text");
            }
        }
    });
    let opts = PostgresOptions {
        tls: PostgresTls::Require,
        ..PostgresOptions::new(
            &format!("host=127.0.0.1 port={port} user=nobody dbname=none"),
            "nhm_t_tls",
            1,
        )
    };
    let err = PostgresStore::connect_with(&opts).await.unwrap_err();
    let msg = chain(&err);
    assert!(matches!(err, Error::Postgres { .. }), "{msg}");
    assert!(
        msg.contains("postgres_tls = \"require\"") && msg.contains("TLS"),
        "{msg}"
    );
    server.abort();
}

/// Against the test server: with `ssl = on` "require" connects (encrypted), and "verify-full"
/// with the webpki roots refuses its self-signed certificate; with `ssl = off` "require" fails.
#[tokio::test]
async fn postgres_tls_modes_against_the_test_server() {
    let Some(store) = postgres("tlsmodes").await else {
        return;
    };
    let conn = pg_conn().expect("NHM_TEST_PG");
    let raw = raw_client(store.schema()).await;
    let ssl: String = raw.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let opts = |tls| PostgresOptions {
        tls,
        ..PostgresOptions::new(&conn, store.schema(), 1)
    };
    let require = PostgresStore::connect_with(&opts(PostgresTls::Require)).await;
    if ssl != "on" {
        let msg = chain(&require.unwrap_err());
        assert!(msg.contains("TLS"), "{msg}");
        store.drop_schema().await.unwrap();
        return;
    }
    let tls_store = require.unwrap();
    assert_eq!(tls_store.count().await.unwrap(), 0);
    let err = PostgresStore::connect_with(&opts(PostgresTls::VerifyFull))
        .await
        .unwrap_err();
    let msg = chain(&err);
    assert!(
        msg.contains("postgres_tls = \"verify-full\"") && msg.contains("certificate"),
        "{msg}"
    );
    // With the server's own (self-signed) certificate as the root, verify-full connects to the
    // name in it: here "localhost", the name Debian's snakeoil certificate carries.
    let cert_file: String = raw.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    let (plain, password) = without_password(&conn);
    let local = plain.replace("host=127.0.0.1", "host=localhost");
    let local = match password {
        Some(p) => format!("{local} password={}", String::from_utf8_lossy(&p)),
        None => local,
    };
    let pinned = PostgresOptions {
        tls: PostgresTls::VerifyFull,
        ca_file: Some(cert_file.clone().into()),
        ..PostgresOptions::new(&local, store.schema(), 1)
    };
    match PostgresStore::connect_with(&pinned).await {
        Ok(s) => assert_eq!(s.count().await.unwrap(), 0),
        // Another machine's certificate may carry another name, or be unreadable to the tests.
        Err(e)
            if ["not valid for name", "NotValidForName"]
                .iter()
                .any(|m| chain(&e).contains(m))
                || std::fs::File::open(&cert_file).is_err() =>
        {
            loud(&format!("SKIPPED verify-full with {cert_file}: {}", chain(&e)));
        }
        Err(e) => panic!("verify-full with the server's certificate: {}", chain(&e)),
    }
    store.drop_schema().await.unwrap();
}

/// `conn` with its password taken out (rebuilt from the parsed settings, so URLs work too).
fn without_password(conn: &str) -> (String, Option<Vec<u8>>) {
    let cfg: tokio_postgres::Config = conn.parse().unwrap();
    let mut parts = Vec::new();
    for h in cfg.get_hosts() {
        match h {
            tokio_postgres::config::Host::Tcp(h) => parts.push(format!("host={h}")),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => parts.push(format!("host={}", p.display())),
        }
    }
    if let Some(p) = cfg.get_ports().first() {
        parts.push(format!("port={p}"));
    }
    if let Some(u) = cfg.get_user() {
        parts.push(format!("user={u}"));
    }
    if let Some(d) = cfg.get_dbname() {
        parts.push(format!("dbname={d}"));
    }
    (parts.join(" "), cfg.get_password().map(<[u8]>::to_vec))
}

#[cfg(unix)]
fn write_mode(path: &std::path::Path, text: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A password file others may read is refused, by name, before any connection is tried.
#[cfg(unix)]
#[tokio::test]
async fn postgres_password_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pg-password");
    write_mode(&pw, b"postgres\n", 0o644);
    let opts = PostgresOptions {
        password_file: Some(pw.clone()),
        ..PostgresOptions::new("host=127.0.0.1 port=1 user=postgres dbname=none", "nhm_t_pw", 1)
    };
    let err = PostgresStore::connect_with(&opts).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{msg}");
    assert!(
        msg.contains(&pw.display().to_string()) && msg.contains("0644"),
        "{msg}"
    );
    // A password in both places is ambiguous: refused too.
    write_mode(&pw, b"postgres\n", 0o600);
    let both = PostgresOptions {
        conn: "host=127.0.0.1 port=1 user=postgres password=x dbname=none".into(),
        ..opts
    };
    assert!(matches!(
        PostgresStore::connect_with(&both).await,
        Err(Error::Config(_))
    ));
}

/// The password from an owner-only file logs in (the connection string has none), and a wrong
/// one in such a file does not.
#[cfg(unix)]
#[tokio::test]
async fn postgres_password_file_logs_in() {
    let Some(store) = postgres("pwfile").await else {
        return;
    };
    let (conn, password) = without_password(&pg_conn().expect("NHM_TEST_PG"));
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pg-password");
    // Without a password in NHM_TEST_PG the server trusts the test user: any password does.
    let mut text = password.clone().unwrap_or_else(|| b"unused".to_vec());
    text.push(b'\n');
    write_mode(&pw, &text, 0o600);
    let opts = PostgresOptions {
        password_file: Some(pw.clone()),
        ..PostgresOptions::new(&conn, store.schema(), 1)
    };
    let s = PostgresStore::connect_with(&opts).await.unwrap();
    assert_eq!(s.count().await.unwrap(), 0);
    if password.is_some() {
        write_mode(&pw, b"not-the-password", 0o600);
        let err = PostgresStore::connect_with(&opts).await.unwrap_err();
        assert!(matches!(err, Error::Postgres { .. }), "{}", chain(&err));
    }
    store.drop_schema().await.unwrap();
}

// ---- PostgreSQL: two service replicas (the reviewer's reproductions, end to end) ----

/// Two services on one schema, each with its own pool (as two processes would have).
async fn two_replicas(tag: &str) -> Option<(PostgresStore, nhm_server::AppState, nhm_server::AppState)> {
    let store = postgres(tag).await?;
    let cfg = nhm_server::Config {
        threshold: Some(crate::common::dev_threshold()),
        ..nhm_server::Config::default()
    };
    let pepper = nhm_template::Key::from_seed(11);
    let a = nhm_server::AppState::new(
        cfg.clone(),
        Arc::new(store.clone()),
        crate::common::tokens(),
        Some(&pepper),
    )
    .await
    .unwrap();
    let b = nhm_server::AppState::new(
        cfg,
        Arc::new(replica(&store).await),
        crate::common::tokens(),
        Some(&pepper),
    )
    .await
    .unwrap();
    Some((store, a, b))
}

#[tokio::test]
async fn postgres_a_revocation_committed_late_is_applied_by_every_replica() {
    use crate::common::{enrol, verify};
    let Some((store, a, b)) = two_replicas("late_revoke").await else {
        return;
    };
    let (app_a, app_b) = (nhm_server::app(a.clone()), nhm_server::app(b.clone()));
    enrol(&app_a, "victim", &[template(1)]).await;
    b.sync_from_store().await.unwrap();
    assert_eq!(verify(&app_b, "victim", &template(1)).await.json["match"], true);
    // The revocation holds its transaction open for 1.5 s, while another enrolment goes through
    // replica B and both replicas keep polling.
    let slow = replica(&store).await;
    let late = tokio::spawn(async move {
        slow.delete_subject_with_commit_delay("victim", Duration::from_millis(1500))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    enrol(&app_b, "other", &[template(2)]).await;
    for _ in 0..5 {
        a.sync_from_store().await.unwrap();
        b.sync_from_store().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(late.await.unwrap(), "the delete found the subject");
    a.sync_from_store().await.unwrap();
    b.sync_from_store().await.unwrap();
    for app in [&app_a, &app_b] {
        assert_eq!(verify(app, "victim", &template(1)).await.json["match"], false);
        let body = serde_json::json!({ "template": template(1).to_base64() }).to_string();
        let r = crate::common::call(
            app,
            "POST",
            "/v1/identify",
            Some(crate::common::VERIFY),
            Some(body),
        )
        .await;
        assert_eq!(
            r.json["candidates"],
            serde_json::json!([]),
            "the revoked subject was identified"
        );
        assert_eq!(verify(app, "other", &template(2)).await.json["match"], true);
    }
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn postgres_thresholds_and_lockouts_are_shared_by_replicas() {
    use crate::common::{call, enrol, verify, ADMIN};
    let Some((store, a, b)) = two_replicas("shared_rules").await else {
        return;
    };
    let (app_a, app_b) = (nhm_server::app(a.clone()), nhm_server::app(b.clone()));
    // A threshold set through replica A is in force on B after B's next sync.
    let body = serde_json::json!({ "score": 0.93, "target_fmr": 1e-4, "measured_fmr": 0.0, "impostor_comparisons": 9 });
    let r = call(
        &app_a,
        "PUT",
        "/v1/admin/threshold",
        Some(ADMIN),
        Some(body.to_string()),
    )
    .await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text);
    b.sync_from_store().await.unwrap();
    assert_eq!(b.threshold().unwrap().score, 0.93);
    // Failed verifications alternate between the replicas, with no sync in between: the shared
    // count locks the subject after five evaluated failures in all, not five on each.
    enrol(&app_a, "s", &[template(1)]).await;
    b.sync_from_store().await.unwrap();
    let mut evaluated = 0;
    for i in 0..12 {
        let app = if i % 2 == 0 { &app_a } else { &app_b };
        let r = verify(app, "s", &template(9)).await;
        if r.status == axum::http::StatusCode::OK {
            evaluated += 1;
        }
    }
    assert_eq!(evaluated, 5, "failures evaluated across two replicas");
    // Both refuse the genuine probe now, and so does a replica started afterwards.
    for app in [&app_a, &app_b] {
        assert_eq!(
            verify(app, "s", &template(1)).await.status,
            axum::http::StatusCode::TOO_MANY_REQUESTS
        );
    }
    let c = nhm_server::AppState::new(
        a.config().clone(),
        Arc::new(replica(&store).await),
        crate::common::tokens(),
        Some(&nhm_template::Key::from_seed(11)),
    )
    .await
    .unwrap();
    let app_c = nhm_server::app(c);
    assert_eq!(
        verify(&app_c, "s", &template(1)).await.status,
        axum::http::StatusCode::TOO_MANY_REQUESTS
    );
    store.drop_schema().await.unwrap();
}
