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
        let s =
            PostgresStore::connect(&config.store, &config.postgres_schema, config.postgres_pool_size).await?;
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
    axum::serve(listener, crate::api::app(state))
        .await
        .map_err(|source| Error::Io {
            path: "serve".into(),
            source,
        })
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
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .map_err(|source| Error::Io {
                    path: "serve".into(),
                    source,
                })
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
