//! The service state shared by all requests: store, in-memory index, pepper, threshold, tokens,
//! lockouts and metrics; and the start-up checks that tie the configuration to the stored gallery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nhm_template::{Hashmap, Key, Pepper, Threshold};

use crate::auth::Tokens;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::lockout::Lockouts;
use crate::metrics::Metrics;
use crate::store::TemplateStore;

/// Meta key of the gallery's template kind and dimension.
pub const META_GALLERY: &str = "gallery";
/// Meta key of the pepper's fingerprint ("none" without a pepper).
pub const META_PEPPER: &str = "pepper";
/// Meta key of the decision threshold (JSON).
pub const META_THRESHOLD: &str = "threshold";

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: Config,
    pub store: Arc<dyn TemplateStore>,
    pub index: RwLock<Index>,
    /// Serialises writes so the index sees them in the store's order.
    pub write_lock: tokio::sync::Mutex<()>,
    pub pepper: Option<Pepper>,
    pub threshold: RwLock<Option<Threshold>>,
    pub tokens: Tokens,
    pub lockouts: Lockouts,
    pub metrics: Metrics,
    pub change_seq: AtomicU64,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("subjects", &self.subjects())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the service over `store`: checks the stored gallery configuration (kind, dimension,
    /// pepper) against `config`, settles the threshold (the configuration's, saved with the
    /// gallery, else the one stored), and rebuilds the in-memory index.
    pub async fn new(
        config: Config,
        store: Arc<dyn TemplateStore>,
        tokens: Tokens,
        pepper_key: Option<&Key>,
    ) -> Result<AppState> {
        config.validate()?;
        let pepper = pepper_key.map(|k| Pepper::new(k, config.dim));
        check_meta(&*store, &config, pepper_key).await?;
        let threshold = match config.load_threshold()? {
            Some(t) => {
                let json = serde_json::to_string(&t).map_err(|e| Error::Config(e.to_string()))?;
                store.put_meta(META_THRESHOLD, &json).await?;
                Some(t)
            }
            None => match store.get_meta(META_THRESHOLD).await? {
                Some(json) => Some(
                    serde_json::from_str(&json)
                        .map_err(|e| Error::Config(format!("stored threshold does not parse: {e}")))?,
                ),
                None => None,
            },
        };
        if let Some(t) = &threshold {
            config.check_threshold(t)?;
        }
        let seq = store.latest_change().await?;
        let mut index = Index::new(config.kind, config.dim);
        for s in store.load_all().await? {
            index.set(&s.info.id, &s.templates)?;
        }
        let lockouts = Lockouts::new(
            config.max_failed_attempts,
            Duration::from_secs(config.lockout_secs),
        );
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                store,
                index: RwLock::new(index),
                write_lock: tokio::sync::Mutex::new(()),
                pepper,
                threshold: RwLock::new(threshold),
                tokens,
                lockouts,
                metrics: Metrics::default(),
                change_seq: AtomicU64::new(seq),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Number of enrolled subjects in the index.
    pub fn subjects(&self) -> usize {
        self.inner
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .subjects()
    }

    /// The decision threshold, if one is set.
    pub fn threshold(&self) -> Option<Threshold> {
        *self.inner.threshold.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies the server pepper (identity without one).
    pub fn pepper(&self, h: Hashmap) -> Result<Hashmap> {
        match &self.inner.pepper {
            Some(p) => Ok(p.apply_hashmap(&h)?),
            None => Ok(h),
        }
    }

    /// Re-reads subjects changed in the store by other replicas; returns how many.
    pub async fn sync_from_store(&self) -> Result<usize> {
        let since = self.inner.change_seq.load(Ordering::Acquire);
        let batch = self.inner.store.changes_since(since).await?;
        let last = batch.last;
        let changed: Vec<String> = batch
            .changes
            .into_iter()
            .filter_map(|c| match c {
                crate::store::Change::Subject(s) => Some(s),
                _ => None,
            })
            .collect();
        if changed.is_empty() {
            return Ok(0);
        }
        let _w = self.inner.write_lock.lock().await;
        for s in &changed {
            let rec = self.inner.store.get_subject(s).await?;
            let mut idx = self.inner.index.write().unwrap_or_else(|p| p.into_inner());
            match rec {
                Some(r) => idx.set(s, &r.templates)?,
                None => {
                    idx.remove(s);
                }
            }
        }
        self.inner.change_seq.store(last, Ordering::Release);
        Ok(changed.len())
    }
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct GalleryMeta {
    kind: nhm_template::HashmapKind,
    dim: usize,
}

/// Refuses to serve a gallery with another template kind, dimension or pepper than the
/// configuration's: its templates would silently never match. Records them on first start.
async fn check_meta(store: &dyn TemplateStore, config: &Config, pepper_key: Option<&Key>) -> Result<()> {
    let want = GalleryMeta {
        kind: config.kind,
        dim: config.dim,
    };
    match store.get_meta(META_GALLERY).await? {
        Some(json) => {
            let have: GalleryMeta = serde_json::from_str(&json)
                .map_err(|e| Error::Config(format!("stored gallery configuration does not parse: {e}")))?;
            if have != want {
                return Err(Error::Config(format!(
                    "the store holds {} templates of dim {}, the configuration says {} of dim {}",
                    have.kind, have.dim, want.kind, want.dim
                )));
            }
        }
        None => {
            let json = serde_json::to_string(&want).map_err(|e| Error::Config(e.to_string()))?;
            store.put_meta(META_GALLERY, &json).await?;
        }
    }
    let fp = pepper_key.map_or_else(|| "none".to_owned(), Key::fingerprint);
    match store.get_meta(META_PEPPER).await? {
        Some(have) if have != fp => Err(Error::Config(format!(
            "the store was written with pepper {have}, the configured pepper is {fp}"
        ))),
        Some(_) => Ok(()),
        None => store.put_meta(META_PEPPER, &fp).await,
    }
}
