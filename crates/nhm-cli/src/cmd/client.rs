//! Client mode: `nhm enroll|verify|identify --server URL`. On the device: image → encoder →
//! embedding → key → hashmap; only the hashmap goes over HTTP. `--template FILE` sends
//! precomputed hashmaps instead (base64 lines, or the JSON lines of `nhm encode`), so no model
//! is needed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nhm_model::ClientPipeline;
use nhm_server::protocol::{
    EnrolRequest, ErrorBody, IdentifyRequest, IdentifyResponse, SubjectResponse, VerifyRequest,
    VerifyResponse, WriteMode,
};
use nhm_template::{Hashmap, HashmapKind};
use serde_json::Value;

/// Options shared by the client commands.
#[derive(Debug, clap::Args)]
pub struct ClientOpts {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "NHM_SERVER")]
    pub server: String,
    /// Bearer token.
    #[arg(long, env = "NHM_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The client's secret key file (with --model).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Derive the key for this application (one key per server: unlinkable templates).
    #[arg(long)]
    pub app: Option<String>,
    /// Encoder checkpoint folder (with images); default: the shipped fingerprint model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Hashmap kind to make from images.
    #[arg(long, default_value = "binary")]
    pub kind: HashmapKind,
    /// Length of the hashmaps made from images (see `nhm encode --hashmap-dim`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub hashmap_dim: Option<u32>,
    /// Precomputed hashmaps instead of images: a file of base64 lines or `nhm encode` JSON lines.
    #[arg(long = "template")]
    pub templates: Vec<PathBuf>,
    /// The resolution (dpi) of images whose file states none (see `nhm encode --dpi`).
    #[arg(long, value_parser = crate::source::parse_dpi)]
    pub dpi: Option<f32>,
    /// Images (with --model and --key).
    pub images: Vec<PathBuf>,
}

/// Arguments of `nhm enroll`.
#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// Subject id ([A-Za-z0-9._:@-], at most 128 characters).
    #[arg(long)]
    pub subject: String,
    /// When the subject exists: create (fail, 409), append, or replace (re-keying).
    #[arg(long, default_value = "create", value_parser = ["create", "append", "replace"])]
    pub mode: String,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Arguments of `nhm verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The claimed subject id.
    #[arg(long)]
    pub subject: String,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Arguments of `nhm identify`.
#[derive(Debug, clap::Args)]
pub struct IdentifyArgs {
    /// Most candidates to return.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Reads hashmaps from a template file: one per non-empty line, base64 or JSON with `template`.
fn read_template_file(path: &Path) -> Result<Vec<Hashmap>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line = line.trim();
        let b64 = if line.starts_with('{') {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: bad JSON", path.display(), n + 1))?;
            v["template"]
                .as_str()
                .with_context(|| format!("{}:{}: no \"template\" field", path.display(), n + 1))?
                .to_owned()
        } else {
            line.to_owned()
        };
        let h = Hashmap::from_base64(&b64)
            .with_context(|| format!("{}:{}: bad hashmap", path.display(), n + 1))?;
        out.push(h);
    }
    Ok(out)
}

/// The hashmaps to send: from template files, or made from images with the encoder and key.
fn hashmaps(c: &ClientOpts) -> Result<Vec<Hashmap>> {
    let mut out = Vec::new();
    for p in &c.templates {
        out.extend(read_template_file(p)?);
    }
    if !c.images.is_empty() {
        let Some(key) = &c.key else {
            bail!("images need --key KEYFILE (and --model CKPT_DIR, or the shipped model), or use --template FILE");
        };
        let model = super::encode::model_dir(c.model.as_deref())?;
        let key = super::encode::load_key(key, c.app.as_deref())?;
        let pipeline = ClientPipeline::load(&model, &key, c.hashmap_dim.map(|h| h as usize), c.kind)
            .with_context(|| format!("loading the encoder from {}", model.display()))?
            .with_user_dpi(c.dpi);
        let mut images = Vec::with_capacity(c.images.len());
        for p in &c.images {
            let prepared = pipeline
                .prepare_file(p)
                .with_context(|| format!("reading image {}", p.display()))?;
            images.push(prepared.image);
        }
        out.extend(pipeline.hashmaps(&images)?);
    }
    if out.is_empty() {
        bail!("nothing to send: give IMAGE... (with --model and --key) or --template FILE");
    }
    Ok(out)
}

/// `server` + path segments, each segment escaped.
pub(crate) fn url(server: &str, segments: &[&str]) -> Result<reqwest::Url> {
    let mut u = reqwest::Url::parse(server).with_context(|| format!("bad server URL {server:?}"))?;
    u.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("server URL {server:?} cannot take a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(u)
}

/// Sends a request body of the service's protocol to `server` with a bearer token and reads the
/// typed answer; a server error becomes an error with the server's code and message.
pub fn send_to<B: serde::Serialize, R: serde::de::DeserializeOwned>(
    server: &str,
    token: &str,
    method: reqwest::Method,
    segments: &[&str],
    body: &B,
) -> Result<R> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let u = url(server, segments)?;
    let resp = client
        .request(method, u.clone())
        .bearer_auth(token)
        .json(body)
        .send()
        .with_context(|| format!("sending to {u}"))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .with_context(|| format!("reading the answer of {u}"))?;
    if !status.is_success() {
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => bail!("server answered {status}: {}: {}", e.error.code, e.error.message),
            Err(_) => bail!("server answered {status} without the service's error body"),
        }
    }
    serde_json::from_slice(&bytes)
        .with_context(|| format!("the answer of {u} is not what this client expects"))
}

/// [`send_to`] with the server and token of the client options.
fn send<B: serde::Serialize, R: serde::de::DeserializeOwned>(
    c: &ClientOpts,
    method: reqwest::Method,
    segments: &[&str],
    body: &B,
) -> Result<R> {
    send_to(&c.server, &c.token, method, segments, body)
}

fn print(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Runs `nhm enroll`: prints the subject's metadata after the durable write.
pub fn enroll(a: EnrollArgs) -> Result<()> {
    let templates: Vec<String> = hashmaps(&a.client)?.iter().map(Hashmap::to_base64).collect();
    let mode: WriteMode = serde_json::from_value(Value::String(a.mode.clone()))
        .map_err(|_| anyhow::anyhow!("--mode {:?}: expected create, append or replace", a.mode))?;
    let body = EnrolRequest { templates, mode };
    let reply: SubjectResponse = send(
        &a.client,
        reqwest::Method::POST,
        &["v1", "subjects", &a.subject, "templates"],
        &body,
    )?;
    print(&reply)
}

/// Runs `nhm verify`: prints `{"match": bool}` (and the score when the server returns scores).
pub fn verify(a: VerifyArgs) -> Result<()> {
    let ts = hashmaps(&a.client)?;
    if ts.len() != 1 {
        bail!("verify takes exactly one probe, got {}", ts.len());
    }
    let body = VerifyRequest {
        template: ts[0].to_base64(),
    };
    let reply: VerifyResponse = send(
        &a.client,
        reqwest::Method::POST,
        &["v1", "subjects", &a.subject, "verify"],
        &body,
    )?;
    print(&reply)
}

/// Runs `nhm identify`: prints the candidates above the server's threshold, best first.
pub fn identify(a: IdentifyArgs) -> Result<()> {
    let ts = hashmaps(&a.client)?;
    if ts.len() != 1 {
        bail!("identify takes exactly one probe, got {}", ts.len());
    }
    let body = IdentifyRequest {
        template: ts[0].to_base64(),
        k: a.k,
    };
    let reply: IdentifyResponse = send(&a.client, reqwest::Method::POST, &["v1", "identify"], &body)?;
    print(&reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_escape_segments() {
        let u = url("http://127.0.0.1:8080/", &["v1", "subjects", "a/b c", "verify"]).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/v1/subjects/a%2Fb%20c/verify");
        assert!(url("not a url", &["v1"]).is_err());
    }

    #[test]
    fn template_files_take_base64_and_encode_lines() {
        let dir = tempfile::tempdir().unwrap();
        let h = Hashmap::Binary(nhm_server::index::synthetic_binary(1, 2, 256).unwrap());
        let p = dir.path().join("t.txt");
        let json_line = json!({ "template": h.to_base64(), "subject": "x" }).to_string();
        std::fs::write(&p, format!("{}\n\n{json_line}\n", h.to_base64())).unwrap();
        assert_eq!(read_template_file(&p).unwrap(), vec![h.clone(), h]);
        std::fs::write(&p, "garbage\n").unwrap();
        assert!(read_template_file(&p).is_err());
    }

    #[test]
    fn enroll_and_verify_against_a_running_server() {
        use nhm_server::{AppState, Config, EmbeddedStore, Role, Tokens};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let threshold = nhm_template::Threshold {
            score: 0.9,
            target_fmr: 1e-3,
            measured_fmr: 0.0,
            impostor_comparisons: 0,
        };
        let cfg = Config {
            threshold: Some(threshold),
            ..Config::default()
        };
        let tokens = Tokens::from_plain(&[("t", Role::Admin, "tok")]);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let state = rt
            .block_on(AppState::new(cfg, Arc::new(store), tokens, None))
            .unwrap();
        rt.spawn(nhm_server::server::serve_on(listener, state));
        let h = Hashmap::Binary(nhm_server::index::synthetic_binary(1, 2, 256).unwrap());
        let p = dir.path().join("t.txt");
        std::fs::write(&p, h.to_base64()).unwrap();
        let opts = |token: &str| ClientOpts {
            server: format!("http://{addr}"),
            token: token.into(),
            key: None,
            app: None,
            model: None,
            kind: HashmapKind::Binary,
            hashmap_dim: None,
            templates: vec![p.clone()],
            dpi: None,
            images: vec![],
        };
        enroll(EnrollArgs {
            subject: "alice".into(),
            mode: "create".into(),
            client: opts("tok"),
        })
        .unwrap();
        verify(VerifyArgs {
            subject: "alice".into(),
            client: opts("tok"),
        })
        .unwrap();
        identify(IdentifyArgs {
            k: 3,
            client: opts("tok"),
        })
        .unwrap();
        let dup = enroll(EnrollArgs {
            subject: "alice".into(),
            mode: "create".into(),
            client: opts("tok"),
        });
        assert!(format!("{:#}", dup.unwrap_err()).contains("409"));
        let bad = verify(VerifyArgs {
            subject: "alice".into(),
            client: opts("wrong"),
        });
        assert!(format!("{:#}", bad.unwrap_err()).contains("unauthorized"));
        let none = verify(VerifyArgs {
            subject: "alice".into(),
            client: ClientOpts {
                templates: vec![],
                ..opts("tok")
            },
        });
        assert!(none.is_err());
    }
}
