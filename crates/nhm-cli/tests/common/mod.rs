//! Helpers shared by the binary's integration tests: running `nhm`, reading its output, and
//! starting the real server binary on a free port.
#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Runs `nhm ARGS --quiet` to completion.
pub fn nhm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nhm"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("the nhm binary runs")
}

/// A finished command's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A finished command's standard output, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A path under `../shared/data`.
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

/// A temporary path as `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Starts `nhm-server --bind 127.0.0.1:0 --data DIR/data --config DIR/config.toml` and returns
/// the process and its base URL (read from its first line, "listening on URL").
pub fn start_server(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nhm-server"))
        .args(["--bind", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nhm-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line:?}"))
        .to_owned();
    (child, url)
}
