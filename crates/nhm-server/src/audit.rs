//! The audit trail: one JSON object per line for every enrolment, replacement, deletion,
//! template export, threshold change, authentication failure, refused role and lockout: who,
//! what, which subject, the outcome. Never a template, a token or a score.
//!
//! Lines go to a file opened for appending (mode 0600; each event one `write`, so concurrent
//! events never interleave) and to the log under the `nhm::audit` target. The file is written
//! after the store committed the change it records; it is not fsynced per line (the store is the
//! source of truth, the trail its account), so a crash can lose the last lines the OS had not
//! written yet.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::error::{Error, Result};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Templates enrolled for a new subject.
    Enrol,
    /// Templates added to a subject.
    Append,
    /// A subject's templates replaced (re-keying).
    Replace,
    /// A subject revoked.
    Delete,
    /// A subject's stored templates sent to an admin.
    ExportTemplates,
    /// The decision threshold changed.
    SetThreshold,
    /// A request without a valid token.
    AuthFailure,
    /// A token used beyond its role.
    Forbidden,
    /// A subject locked after failed verifications.
    SubjectLocked,
    /// A token locked after failed identifications.
    IdentifyLocked,
    /// A federated client registered (or replaced) its training hashmap.
    FedJoin,
    /// A federated client sent a model update (accepted or refused).
    FedUpdate,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done (and durable).
    Ok,
    /// Refused by a rule (conflict, unknown subject, bad input).
    Refused,
    /// Failed inside the server.
    Error,
}

/// One line of the trail.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    /// Unix time in milliseconds.
    pub ts_ms: u128,
    /// The token's name (`-` without a valid token).
    pub who: &'a str,
    /// What.
    pub action: Action,
    /// The subject, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// How it ended.
    pub outcome: Outcome,
    /// A short reason (an error code, the route of an auth failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
}

/// The audit sink.
#[derive(Debug, Default)]
pub struct AuditLog {
    file: Option<(PathBuf, Mutex<std::fs::File>)>,
}

impl AuditLog {
    /// A trail that goes to the log only.
    pub fn log_only() -> AuditLog {
        AuditLog::default()
    }

    /// A trail appended to `path` (created 0600 if missing) and to the log.
    pub fn open(path: &Path) -> Result<AuditLog> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let file = opts.open(path).map_err(io)?;
        Ok(AuditLog {
            file: Some((path.to_owned(), Mutex::new(file))),
        })
    }

    /// The file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    /// Records one event. A failing write is logged, not returned: the change it records is
    /// already durable and must not be answered as failed.
    pub fn record(
        &self,
        who: &str,
        action: Action,
        subject: Option<&str>,
        outcome: Outcome,
        detail: Option<&str>,
    ) {
        let event = Event {
            ts_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            who,
            action,
            subject,
            outcome,
            detail,
        };
        let Ok(mut line) = serde_json::to_vec(&event) else {
            return;
        };
        line.push(b'\n');
        tracing::info!(target: "nhm::audit", "{}", String::from_utf8_lossy(&line[..line.len() - 1]));
        if let Some((path, file)) = &self.file {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = f.write_all(&line) {
                tracing::error!(path = %path.display(), error = %e, "audit trail write failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_lines_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        log.record("e", Action::Enrol, Some("alice"), Outcome::Ok, None);
        log.record(
            "-",
            Action::AuthFailure,
            None,
            Outcome::Refused,
            Some("/v1/identify"),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "enrol");
        assert_eq!(lines[0]["subject"], "alice");
        assert_eq!(lines[1]["who"], "-");
        assert!(lines[1].get("subject").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Reopening appends.
        AuditLog::open(&path)
            .unwrap()
            .record("a", Action::Delete, Some("alice"), Outcome::Ok, None);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = AuditLog::open(&blocker.join("audit.jsonl")).unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }
}
