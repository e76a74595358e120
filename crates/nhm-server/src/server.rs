//! Start-up: open the store named by the configuration, build the state, serve HTTP or HTTPS
//! until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nhm_template::Key;

use crate::auth::Tokens;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::store::{EmbeddedStore, PostgresStore, TemplateStore};

/// Opens the configured store: the embedded one in `data_dir`, or PostgreSQL.
pub async fn open_store(config: &Config, data_dir: &Path) -> Result<Arc<dyn TemplateStore>> {
    if config.is_postgres() {
        let s = PostgresStore::connect_with(&config.postgres_options()).await?;
        Ok(Arc::new(s))
    } else {
        let dir = data_dir.to_owned();
        let s = tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir)).await??;
        Ok(Arc::new(s))
    }
}

/// File name of the generated pepper inside the data directory.
pub const PEPPER_FILE: &str = "pepper.key";

/// File name of the default audit trail inside the data directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// Default federated-training state directory inside the data directory.
pub const FED_DIR: &str = "fed";

/// Stops the federated-round ticker when dropped (with the server that started it).
#[derive(Debug)]
pub struct FedTicker(tokio::task::AbortHandle);

impl Drop for FedTicker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Drives the federated rounds every [`crate::fed::TICK_INTERVAL`] (closing timed-out rounds even
/// when no client calls), until the returned guard is dropped or the service is gone. `None`
/// when federated training is off.
pub fn spawn_fed_ticker(state: &AppState) -> Option<FedTicker> {
    state.service().fed()?;
    let service = Arc::downgrade(state.service());
    let task = tokio::spawn(async move {
        let mut every = tokio::time::interval(crate::fed::TICK_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(service) = service.upgrade() else {
                break;
            };
            service.fed_tick().await;
        }
    });
    Some(FedTicker(task.abort_handle()))
}

/// The pepper to serve `store` with: the configured key file; else `DATA/pepper.key`,
/// generated (mode 0600) when the store is new. A store written with a pepper whose file is
/// missing, or written without one while the configuration wants one, is refused: serving it
/// would make every stored template fail to match (or replay).
///
/// Rotation: stop the servers, re-pepper every stored template offline (the pepper is an
/// invertible keyed permutation and mask: unapply the old, apply the new), record the new
/// pepper's fingerprint, start with the new key file. Until such a tool ships, rotating means
/// re-enrolling into a new store.
pub async fn resolve_pepper(
    config: &Config,
    data_dir: &Path,
    store: &dyn TemplateStore,
) -> Result<Option<Key>> {
    if !config.pepper {
        tracing::warn!(
            "pepper = false: a template read from the store (or exported by an admin) is accepted when replayed"
        );
        return Ok(None);
    }
    if let Some(p) = &config.pepper_key {
        return Ok(Some(Key::load(p)?));
    }
    let path = data_dir.join(PEPPER_FILE);
    if path.exists() {
        return Ok(Some(Key::load(&path)?));
    }
    match crate::service::stored_pepper(store).await? {
        None => {
            std::fs::create_dir_all(data_dir).map_err(|source| Error::Io {
                path: data_dir.to_owned(),
                source,
            })?;
            let key = Key::random();
            key.save(&path)?;
            tracing::warn!(
                path = %path.display(),
                "generated a server pepper: back it up apart from the store; without it no stored template matches"
            );
            Ok(Some(key))
        }
        Some(fp) if fp == "none" => Err(Error::GalleryMismatch(
            "the store was written without a pepper: serve it with `pepper = false` (stored templates then \
             replay), or re-enrol into a new store"
                .into(),
        )),
        Some(fp) => Err(Error::GalleryMismatch(format!(
            "the store was written with pepper {fp}, but {} does not exist: copy the pepper file of the \
             server that created the store, or set pepper_key",
            path.display()
        ))),
    }
}

/// Builds the state from a configuration: store, tokens, pepper, audit trail, threshold, index.
pub async fn build_state(mut config: Config, data_dir: &Path) -> Result<AppState> {
    let tokens = match &config.tokens {
        Some(p) => Tokens::load(p)?,
        None => {
            tracing::warn!("no tokens file configured: every request but /healthz will be refused");
            Tokens::default()
        }
    };
    if config.audit_log.is_none() {
        config.audit_log = Some(data_dir.join(AUDIT_FILE));
    }
    if let Some(fed) = config.fed.as_mut() {
        fed.state_dir.get_or_insert_with(|| data_dir.join(FED_DIR));
    }
    let store = open_store(&config, data_dir).await?;
    let pepper = resolve_pepper(&config, data_dir, &*store).await?;
    AppState::new(config, store, tokens, pepper.as_ref()).await
}

/// Raises the soft limit on open files towards what `max_connections` needs (the hard limit
/// caps it) and returns the number of connections it allows, keeping descriptors in reserve for
/// the store, the audit trail and the listener.
fn connection_budget(max_connections: usize) -> usize {
    const RESERVE: u64 = 64;
    let want = max_connections as u64 + RESERVE;
    match rlimit::increase_nofile_limit(want) {
        Ok(have) if have >= want => max_connections,
        Ok(have) => {
            let allowed = have.saturating_sub(RESERVE).max(1) as usize;
            tracing::warn!(
                max_connections,
                allowed,
                "the open-file limit is too low for max_connections: lowering the connection cap"
            );
            allowed
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the open-file limit");
            max_connections
        }
    }
}

/// Every `sync_interval_ms`, applies the other replicas' changes; every hour, prunes the
/// change log. Single-process stores only prune (their expired lockouts).
fn spawn_maintenance(state: &AppState) {
    let service = state.service().clone();
    let shared = state.config().is_postgres();
    let interval = Duration::from_millis(state.config().sync_interval_ms);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        let mut last_prune = std::time::Instant::now();
        let prune_every = Duration::from_secs(3600);
        loop {
            tick.tick().await;
            if shared {
                if let Err(e) = service.sync_from_store().await {
                    tracing::warn!(error = %e, "gallery sync failed");
                }
            }
            if last_prune.elapsed() >= prune_every {
                last_prune = std::time::Instant::now();
                match service.prune().await {
                    Ok(n) => tracing::debug!(rows = n, "pruned"),
                    Err(e) => tracing::warn!(error = %e, "pruning failed"),
                }
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Serves `state` over plain HTTP on an already bound listener until the task is dropped
/// (for embedding the service in tests and other programs).
pub async fn serve_on(listener: tokio::net::TcpListener, state: AppState) -> Result<()> {
    let limits = ConnectionLimits::of(state.config());
    let _ticker = spawn_fed_ticker(&state);
    serve_http(listener, crate::http::app(state), limits, std::future::pending()).await
}

/// What one plain-HTTP listener allows its clients (from [`Config`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request's head must arrive within this.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits a configuration sets.
    pub fn of(config: &Config) -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            max_connections: config.max_connections,
        }
    }
}

/// Serves `app` over plain HTTP/1.1 and HTTP/2 until `shutdown` completes, then lets the open
/// connections finish. Unlike `axum::serve` it bounds what slow clients can hold: a connection
/// that has not sent a request head within the header timeout is closed, and connections above
/// the cap are closed as soon as they are accepted (the client sees a reset, not a hang).
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a reset before accept: wait a little, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection limit reached: closing");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// Serves until SIGINT/SIGTERM. Prints `listening on ADDR` (the real port when `bind` asks for
/// port 0) on stdout once the socket is bound, so scripts and tests can wait for it.
pub async fn serve(config: Config, bind: &str, data_dir: &Path) -> Result<()> {
    let tls = config.tls.clone();
    let state = build_state(config, data_dir).await?;
    tracing::info!(subjects = state.subjects(), "gallery loaded");
    spawn_maintenance(&state);
    let _ticker = spawn_fed_ticker(&state);
    let mut limits = ConnectionLimits::of(state.config());
    limits.max_connections = connection_budget(limits.max_connections);
    let app = crate::http::app(state);
    let socket = |context: String| move |source| Error::Socket { context, source };
    let listener = std::net::TcpListener::bind(bind).map_err(socket(format!("binding {bind}")))?;
    listener
        .set_nonblocking(true)
        .map_err(socket(format!("configuring the socket on {bind}")))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(socket(format!("reading the address bound for {bind}")))?;
    match tls {
        None => {
            println!("listening on http://{addr}");
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(socket(format!("listening on {addr}")))?;
            serve_http(listener, app, limits, shutdown_signal()).await
        }
        Some(tls) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rc = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(|source| Error::Io {
                    path: tls.cert.clone(),
                    source,
                })?;
            println!("listening on https://{addr}");
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                h.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener, rc)
                .handle(handle)
                .serve(app.into_make_service())
                .await
                .map_err(socket(format!("serving HTTPS on {addr}")))
        }
    }
}
