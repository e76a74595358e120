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
use crate::state::AppState;
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

/// Reads the pepper key named by the configuration, if any.
pub fn load_pepper(config: &Config) -> Result<Option<Key>> {
    config
        .pepper_key
        .as_deref()
        .map(Key::load)
        .transpose()
        .map_err(Error::from)
}

/// Builds the state from a configuration: store, tokens, pepper, threshold, index.
pub async fn build_state(config: Config, data_dir: &Path) -> Result<AppState> {
    let tokens = match &config.tokens {
        Some(p) => Tokens::load(p)?,
        None => {
            tracing::warn!("no tokens file configured: every request but /healthz will be refused");
            Tokens::default()
        }
    };
    let pepper = load_pepper(&config)?;
    let store = open_store(&config, data_dir).await?;
    AppState::new(config, store, tokens, pepper.as_ref()).await
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
    serve_http(listener, crate::api::app(state), limits, std::future::pending()).await
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
    if state.config().is_postgres() {
        // Other replicas write to the same store: refresh the index from the change log.
        let st = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Err(e) = st.sync_from_store().await {
                    tracing::warn!(error = %e, "gallery sync failed");
                }
            }
        });
    }
    let limits = ConnectionLimits::of(state.config());
    let app = crate::api::app(state);
    let listener = std::net::TcpListener::bind(bind).map_err(|source| Error::Io {
        path: format!("bind {bind}").into(),
        source,
    })?;
    listener.set_nonblocking(true).map_err(|source| Error::Io {
        path: "socket".into(),
        source,
    })?;
    let addr: SocketAddr = listener.local_addr().map_err(|source| Error::Io {
        path: "socket".into(),
        source,
    })?;
    match tls {
        None => {
            println!("listening on http://{addr}");
            let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| Error::Io {
                path: "socket".into(),
                source,
            })?;
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
                .map_err(|source| Error::Io {
                    path: "serve".into(),
                    source,
                })
        }
    }
}
