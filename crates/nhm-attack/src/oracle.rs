//! The running service as the attacker sees it: an [`Oracle`] answering verify and identify
//! queries, a [`ServiceHarness`] that runs a real nhm-server (embedded store in a temporary data
//! directory, its own tokio runtime on a background thread) configured from [`Defences`], and
//! the [`HttpOracle`] that queries it over HTTP like any client holding a verify token.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nhm_server::protocol::{
    EnrolRequest, IdentifyRequest, IdentifyResponse, SubjectResponse, VerifyRequest, VerifyResponse,
    WriteMode,
};
use nhm_server::{AppState, Config, Role, Tokens};
use nhm_template::{BinaryHashmap, Hashmap, HashmapKind, Key, Threshold};
use rand::{Rng, RngCore};
use reqwest::StatusCode;

use crate::{Defences, Error, Result};

/// Consecutive failures allowed when the attempt-limit defence is off: so many that no attack
/// in this crate comes near them.
pub const UNLIMITED_ATTEMPTS: u32 = 1_000_000_000;

/// How long one HTTP request to the harness may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The service's answer to one verification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    /// The probe matched the subject at the service's threshold.
    pub accepted: bool,
    /// The similarity, when the service returns scores.
    pub score: Option<f64>,
    /// The service refused to answer (429: the subject or the token is locked after too many
    /// failed attempts); `accepted` is then false and `score` absent.
    pub refused: bool,
}

/// What an attacker can ask a running service.
pub trait Oracle {
    /// 1:1 verification of `probe` against `subject`.
    fn verify(&mut self, subject: &str, probe: &BinaryHashmap) -> Result<Answer>;

    /// 1:N identification: the subjects (at most `k`, best first) `probe` matches. A refused
    /// search (429: the token is locked) finds nobody.
    fn identify(&mut self, probe: &BinaryHashmap, k: usize) -> Result<Vec<String>>;
}

/// The service configuration a deployment with `defences` runs: binary hashmaps of
/// `defences.hashmap_bits`, the pepper on or off, attempt limits as shipped (5 failed
/// verifications of a subject, 100 fruitless identifications of a token, then 15 minutes
/// locked) or [`UNLIMITED_ATTEMPTS`], scores returned unless hidden, and `threshold`.
pub fn service_config(defences: &Defences, threshold: Threshold) -> Config {
    let shipped = Config::default();
    let (verify_max, identify_max) = if defences.attempt_limits {
        (shipped.max_failed_attempts, shipped.identify_max_failed_attempts)
    } else {
        (UNLIMITED_ATTEMPTS, UNLIMITED_ATTEMPTS)
    };
    Config {
        kind: HashmapKind::Binary,
        dim: defences.hashmap_bits,
        pepper: defences.pepper,
        return_scores: !defences.hide_scores,
        max_failed_attempts: verify_max,
        identify_max_failed_attempts: identify_max,
        threshold: Some(threshold),
        ..shipped
    }
}

/// A random bearer token (64 hex digits).
fn new_token(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn oracle_err(context: &str) -> impl Fn(reqwest::Error) -> Error + '_ {
    move |e| Error::Oracle(format!("{context}: {e}"))
}

/// A real nhm-server on `127.0.0.1` (an ephemeral port) over an embedded store in a temporary
/// data directory, served by its own tokio runtime on a background thread until the harness is
/// dropped (or [`ServiceHarness::shutdown`]). The pepper key, when on, lives outside the data
/// directory (as the server's documentation asks), so stealing the data directory does not
/// steal the pepper.
///
/// Call it from synchronous code only (its HTTP client is `reqwest::blocking`).
#[derive(Debug)]
pub struct ServiceHarness {
    base: String,
    admin_token: String,
    verify_token: String,
    bits: usize,
    client: reqwest::blocking::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    subjects: Vec<String>,
    // Dropped after the server thread has ended (see `Drop`).
    data_dir: tempfile::TempDir,
    _secrets: tempfile::TempDir,
}

impl ServiceHarness {
    /// Starts a service configured by [`service_config`] with an admin token (the operator:
    /// enrols, exports templates) and a verify token (the attacker's client); the pepper, when
    /// on, is made from `seed`.
    pub fn start(defences: &Defences, threshold: Threshold, seed: u64) -> Result<ServiceHarness> {
        let io = |what: &str, e: std::io::Error| Error::Oracle(format!("{what}: {e}"));
        let data_dir = tempfile::tempdir().map_err(|e| io("creating the data directory", e))?;
        let secrets = tempfile::tempdir().map_err(|e| io("creating the secrets directory", e))?;
        let mut config = service_config(defences, threshold);
        config.audit_log = Some(data_dir.path().join(nhm_server::server::AUDIT_FILE));
        if config.pepper {
            let path = secrets.path().join("pepper.key");
            Key::from_seed(seed ^ 0x9E99_E125_EC2E)
                .save(&path)
                .map_err(|e| Error::Oracle(format!("writing the pepper key: {e}")))?;
            config.pepper_key = Some(path);
        }
        config
            .validate()
            .and_then(|()| config.check_threshold(&threshold))
            .map_err(|e| Error::Oracle(format!("service configuration: {e}")))?;
        let mut rng = rand::thread_rng();
        let admin_token = new_token(&mut rng);
        let verify_token = new_token(&mut rng);
        let tokens = Tokens::from_plain(&[
            ("operator", Role::Admin, admin_token.as_str()),
            ("attacker-client", Role::Verify, verify_token.as_str()),
        ]);

        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let dir = data_dir.path().to_owned();
        let thread = std::thread::Builder::new()
            .name("nhm-attack-service".into())
            .spawn(move || serve_thread(config, dir, tokens, ready_tx, stop_rx))
            .map_err(|e| io("starting the service thread", e))?;
        let addr = match ready_rx.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(Error::Oracle(format!("starting the service: {e}")));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(Error::Oracle(
                    "the service thread ended before it was ready".into(),
                ));
            }
        };
        let client = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(oracle_err("building the HTTP client"))?;
        Ok(ServiceHarness {
            base: format!("http://{addr}"),
            admin_token,
            verify_token,
            bits: defences.hashmap_bits,
            client,
            stop: Some(stop_tx),
            thread: Some(thread),
            subjects: Vec::new(),
            data_dir,
            _secrets: secrets,
        })
    }

    /// The service's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The data directory the service stores in (what a thief of the server's disk takes).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Length of the hashmaps the service accepts.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The subjects enrolled through [`ServiceHarness::enrol`], in enrolment order.
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// Enrols each `(subject id, hashmap)` over HTTP (`POST /v1/subjects/{id}/templates`, admin
    /// token), as a client that computed the hashmaps would.
    pub fn enrol(&mut self, templates: &[(String, BinaryHashmap)]) -> Result<()> {
        for (id, h) in templates {
            let body = EnrolRequest {
                templates: vec![Hashmap::Binary(h.clone()).to_base64()],
                mode: WriteMode::Create,
            };
            let context = format!("enrolling {id}");
            let resp = self
                .client
                .post(format!("{}/v1/subjects/{id}/templates", self.base))
                .bearer_auth(&self.admin_token)
                .json(&body)
                .send()
                .map_err(oracle_err(&context))?;
            let status = resp.status();
            if status != StatusCode::CREATED && status != StatusCode::OK {
                let text = resp.text().unwrap_or_default();
                return Err(Error::Oracle(format!("{context}: HTTP {status}: {text}")));
            }
            self.subjects.push(id.clone());
        }
        Ok(())
    }

    /// The enrolled templates as the store holds them (peppered when the pepper is on), read
    /// the way a thief of the store or of an admin token reads them: the admin template export
    /// (`GET /v1/subjects/{id}?include_templates=true`) of every enrolled subject.
    pub fn store_templates(&self) -> Result<Vec<(String, BinaryHashmap)>> {
        let mut out = Vec::with_capacity(self.subjects.len());
        for id in &self.subjects {
            let context = format!("exporting the templates of {id}");
            let resp = self
                .client
                .get(format!("{}/v1/subjects/{id}", self.base))
                .query(&[("include_templates", "true")])
                .bearer_auth(&self.admin_token)
                .send()
                .map_err(oracle_err(&context))?;
            let status = resp.status();
            if status != StatusCode::OK {
                let text = resp.text().unwrap_or_default();
                return Err(Error::Oracle(format!("{context}: HTTP {status}: {text}")));
            }
            let info: SubjectResponse = resp.json().map_err(oracle_err(&context))?;
            let hashmaps = info
                .hashmaps
                .ok_or_else(|| Error::Oracle(format!("{context}: no templates in the answer")))?;
            for b64 in hashmaps {
                let h = Hashmap::from_base64(&b64).map_err(|e| Error::Oracle(format!("{context}: {e}")))?;
                match h {
                    Hashmap::Binary(b) => out.push((id.clone(), b)),
                    Hashmap::Dense(_) => {
                        return Err(Error::Oracle(format!(
                            "{context}: the store holds a dense hashmap"
                        )))
                    }
                }
            }
        }
        Ok(out)
    }

    /// A client of the service holding the verify token (what an attacker with a kiosk's or an
    /// app's credentials has).
    pub fn oracle(&self) -> HttpOracle {
        HttpOracle {
            base: self.base.clone(),
            token: self.verify_token.clone(),
            client: self.client.clone(),
            queries: 0,
            refusals: 0,
        }
    }

    /// Stops the service and removes its data directory.
    pub fn shutdown(mut self) {
        self.stop_server();
    }

    fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServiceHarness {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// The service thread: builds the state (as `nhm_server::server::build_state` does, with the
/// harness's tokens), binds an ephemeral port, reports it and serves until told to stop.
fn serve_thread(
    config: Config,
    data_dir: std::path::PathBuf,
    tokens: Tokens,
    ready: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("building the runtime: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let setup = async {
            let store = nhm_server::server::open_store(&config, &data_dir).await?;
            let pepper = nhm_server::server::resolve_pepper(&config, &data_dir, &*store).await?;
            let state = AppState::new(config, Arc::clone(&store), tokens, pepper.as_ref()).await?;
            Ok::<_, nhm_server::Error>(state)
        };
        let state = match setup.await {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("binding 127.0.0.1:0: {e}")));
                return;
            }
        };
        match listener.local_addr() {
            Ok(a) => {
                if ready.send(Ok(a)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = ready.send(Err(format!("reading the bound address: {e}")));
                return;
            }
        }
        tokio::select! {
            r = nhm_server::server::serve_on(listener, state) => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "the attacked service stopped");
                }
            }
            _ = stop => {}
        }
    });
}

/// An [`Oracle`] over HTTP: `POST /v1/subjects/{id}/verify` and `POST /v1/identify` with a
/// verify token, the bodies of `nhm_server::protocol`.
#[derive(Debug, Clone)]
pub struct HttpOracle {
    base: String,
    token: String,
    client: reqwest::blocking::Client,
    queries: usize,
    refusals: usize,
}

impl HttpOracle {
    /// A client of the service at `base` (`http://host:port`) presenting `token`.
    pub fn new(base: &str, token: &str) -> Result<HttpOracle> {
        let client = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(oracle_err("building the HTTP client"))?;
        Ok(HttpOracle {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client,
            queries: 0,
            refusals: 0,
        })
    }

    /// Queries sent so far (verify and identify, refused ones included).
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// Queries the service refused (429) so far.
    pub fn refusals(&self) -> usize {
        self.refusals
    }

    fn post<B: serde::Serialize>(
        &mut self,
        path: &str,
        body: &B,
        context: &str,
    ) -> Result<Option<reqwest::blocking::Response>> {
        self.queries += 1;
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .map_err(oracle_err(context))?;
        match resp.status() {
            StatusCode::OK => Ok(Some(resp)),
            StatusCode::TOO_MANY_REQUESTS => {
                self.refusals += 1;
                Ok(None)
            }
            status => {
                let text = resp.text().unwrap_or_default();
                Err(Error::Oracle(format!("{context}: HTTP {status}: {text}")))
            }
        }
    }
}

impl Oracle for HttpOracle {
    fn verify(&mut self, subject: &str, probe: &BinaryHashmap) -> Result<Answer> {
        let body = VerifyRequest {
            template: Hashmap::Binary(probe.clone()).to_base64(),
        };
        let context = format!("verifying against {subject}");
        let path = format!("/v1/subjects/{subject}/verify");
        match self.post(&path, &body, &context)? {
            None => Ok(Answer {
                accepted: false,
                score: None,
                refused: true,
            }),
            Some(resp) => {
                let v: VerifyResponse = resp.json().map_err(oracle_err(&context))?;
                Ok(Answer {
                    accepted: v.matched,
                    score: v.score,
                    refused: false,
                })
            }
        }
    }

    fn identify(&mut self, probe: &BinaryHashmap, k: usize) -> Result<Vec<String>> {
        let body = IdentifyRequest {
            template: Hashmap::Binary(probe.clone()).to_base64(),
            k,
        };
        match self.post("/v1/identify", &body, "identifying")? {
            None => Ok(Vec::new()),
            Some(resp) => {
                let r: IdentifyResponse = resp.json().map_err(oracle_err("identifying"))?;
                Ok(r.candidates.into_iter().map(|c| c.subject).collect())
            }
        }
    }
}

/// A uniformly random hashmap of `bits` bits.
pub(crate) fn random_hashmap(bits: usize, rng: &mut impl Rng) -> Result<BinaryHashmap> {
    let mut words: Vec<u64> = (0..bits.div_ceil(64)).map(|_| rng.gen()).collect();
    if !bits.is_multiple_of(64) {
        if let Some(last) = words.last_mut() {
            *last &= (1u64 << (bits % 64)) - 1;
        }
    }
    Ok(BinaryHashmap::from_words(bits, words)?)
}

/// `h` with bit `i` flipped.
pub(crate) fn flipped(h: &BinaryHashmap, i: usize) -> Result<BinaryHashmap> {
    if i >= h.dim() {
        return Err(Error::InvalidParameter {
            name: "bit",
            reason: format!("bit {i} of a {}-bit hashmap", h.dim()),
        });
    }
    let mut words = h.words().to_vec();
    if let Some(w) = words.get_mut(i / 64) {
        *w ^= 1u64 << (i % 64);
    }
    Ok(BinaryHashmap::from_words(h.dim(), words)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn random_hashmaps_keep_padding_clear_and_a_flip_moves_one_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for bits in [1, 63, 64, 65, 200, 256] {
            let h = random_hashmap(bits, &mut rng).unwrap();
            assert_eq!(h.dim(), bits);
            for i in [0, bits / 2, bits - 1] {
                let f = flipped(&h, i).unwrap();
                assert_eq!(h.hamming(&f).unwrap(), 1);
                assert_ne!(h.bit(i), f.bit(i));
            }
            assert!(flipped(&h, bits).is_err());
        }
    }

    #[test]
    fn the_config_follows_the_defences() {
        let t = Threshold {
            score: 0.7,
            target_fmr: 0.001,
            measured_fmr: 0.001,
            impostor_comparisons: 1000,
        };
        let off = service_config(&Defences::none(128), t);
        assert_eq!((off.dim, off.kind), (128, HashmapKind::Binary));
        assert!(!off.pepper && off.return_scores);
        assert_eq!(off.max_failed_attempts, UNLIMITED_ATTEMPTS);
        assert_eq!(off.identify_max_failed_attempts, UNLIMITED_ATTEMPTS);
        assert_eq!(off.threshold.map(|t| t.score), Some(0.7));
        off.validate().unwrap();
        let on = service_config(&Defences::default(), t);
        assert!(on.pepper && !on.return_scores);
        assert_eq!(on.max_failed_attempts, Config::default().max_failed_attempts);
        assert_eq!(
            on.identify_max_failed_attempts,
            Config::default().identify_max_failed_attempts
        );
        on.validate().unwrap();
    }
}
