//! Secret keys: 32 random bytes held by the client, from which protection transforms and
//! per-application keys are derived (DESIGN.md §1).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use zeroize::Zeroize;

use crate::{Error, Result};

/// BLAKE3 key-derivation context for per-application keys.
const APPLICATION_CONTEXT: &str = "neural-hashmaps 2026 application key";
/// BLAKE3 key-derivation context for deterministic test keys.
const SEED_CONTEXT: &str = "neural-hashmaps 2026 test key from seed (not secret)";

/// A 32-byte secret key.
///
/// `Debug` never prints the bytes, and the bytes are overwritten with zeros when the key is
/// dropped, so a key does not linger in freed memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    /// Length of a key in bytes.
    pub const LEN: usize = 32;

    /// A fresh key from the operating system's random number generator.
    pub fn random() -> Key {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        Key(b)
    }

    /// A deterministic key derived from a number: for tests and simulations only.
    ///
    /// Anyone who knows (or guesses) the seed has the key, so such a key protects nothing.
    pub fn from_seed(seed: u64) -> Key {
        Key(blake3::derive_key(SEED_CONTEXT, &seed.to_le_bytes()))
    }

    /// A key from exactly 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Key> {
        let arr: [u8; 32] = b.try_into().map_err(|_| Error::KeyLength { found: b.len() })?;
        Ok(Key(arr))
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key for one application (server, purpose), derived with BLAKE3 in key-derivation
    /// mode from this key and the application name. Templates made with keys of two
    /// applications cannot be linked, and one application's key does not reveal this key.
    pub fn for_application(&self, app: &str) -> Key {
        let mut material = Vec::with_capacity(32 + app.len());
        material.extend_from_slice(&self.0);
        material.extend_from_slice(app.as_bytes());
        let k = Key(blake3::derive_key(APPLICATION_CONTEXT, &material));
        material.zeroize();
        k
    }

    /// A short public identifier of the key: the first 8 bytes of BLAKE3(key), in hex.
    ///
    /// Safe to print and log: it tells keys apart without revealing them.
    pub fn fingerprint(&self) -> String {
        to_hex(&blake3::hash(&self.0).as_bytes()[..8])
    }

    /// Reads a key file: 64 hexadecimal characters, optionally followed by a newline.
    pub fn load(path: &Path) -> Result<Key> {
        let mut raw = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let result = parse_key_text(&raw, path);
        raw.zeroize();
        result
    }

    /// Writes the key as 64 hex characters and a newline, atomically, readable by the owner
    /// only (mode 0600 on Unix). Refuses to overwrite an existing file.
    ///
    /// The key is written to a temporary file in the same folder, flushed to disk, then
    /// hard-linked to `path` (which fails if `path` exists, so a concurrent writer cannot be
    /// clobbered either) and the temporary name removed. On file systems without hard links
    /// it falls back to checking for `path` and renaming.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        if path.exists() {
            return Err(Error::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let tmp = temp_path(path);
        let mut text = to_hex(&self.0);
        text.push('\n');
        let written = write_private(&tmp, text.as_bytes());
        text.zeroize();
        written.map_err(|source| Error::Io {
            path: tmp.clone(),
            source,
        })?;
        let linked = match std::fs::hard_link(&tmp, path) {
            Ok(()) => std::fs::remove_file(&tmp).map_err(io),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists {
                path: path.to_owned(),
            }),
            Err(_) if !path.exists() => std::fs::rename(&tmp, path).map_err(io),
            Err(_) => Err(Error::AlreadyExists {
                path: path.to_owned(),
            }),
        };
        if linked.is_err() {
            // Best effort: the temporary copy of the key must not stay behind.
            let _ = std::fs::remove_file(&tmp);
        }
        linked?;
        sync_parent(path);
        Ok(())
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Parses the contents of a key file (see [`Key::load`]).
fn parse_key_text(raw: &[u8], path: &Path) -> Result<Key> {
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    if body.len() != 64 {
        return Err(Error::KeyFileLength {
            path: path.to_owned(),
            found: body.len(),
        });
    }
    let mut b = [0u8; 32];
    for (i, pair) in body.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(Error::KeyFileNotHex {
            path: path.to_owned(),
            position: 2 * i,
        })?;
        let lo = hex_value(pair[1]).ok_or(Error::KeyFileNotHex {
            path: path.to_owned(),
            position: 2 * i + 1,
        })?;
        b[i] = (hi << 4) | lo;
    }
    let k = Key(b);
    b.zeroize();
    Ok(k)
}

/// Value of one hexadecimal digit (either case).
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex of some bytes.
fn to_hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * b.len());
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// A fresh temporary name beside `path` (same folder, so a link or rename stays atomic).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce = rand::rngs::OsRng.next_u64();
    path.with_file_name(format!(".{name}.{}.{nonce:016x}.tmp", std::process::id()))
}

/// Creates a new file (never an existing one) readable only by its owner, writes and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Syncs the folder holding `path` so the new name survives a crash (best effort).
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = Key::from_seed(1);
        let s = format!("{k:?}");
        assert_eq!(s, "Key(<redacted>)");
        assert!(!s.contains(&to_hex(k.as_bytes())[..8]));
    }

    #[test]
    fn from_bytes_checks_length() {
        assert!(matches!(
            Key::from_bytes(&[0; 31]),
            Err(Error::KeyLength { found: 31 })
        ));
        assert!(matches!(
            Key::from_bytes(&[0; 33]),
            Err(Error::KeyLength { found: 33 })
        ));
        let k = Key::from_bytes(&[7; 32]).unwrap();
        assert_eq!(k.as_bytes(), &[7; 32]);
    }

    #[test]
    fn seeds_and_applications_give_distinct_keys() {
        assert_eq!(Key::from_seed(3), Key::from_seed(3));
        assert_ne!(Key::from_seed(3), Key::from_seed(4));
        let k = Key::from_seed(3);
        assert_eq!(k.for_application("bank"), k.for_application("bank"));
        assert_ne!(k.for_application("bank"), k.for_application("gym"));
        assert_ne!(k.for_application("bank"), k);
        assert_ne!(Key::random(), Key::random());
    }

    #[test]
    fn fingerprint_is_short_hex_and_not_the_key() {
        let k = Key::from_seed(9);
        let fp = k.fingerprint();
        assert_eq!(fp.len(), 16);
        assert!(fp.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(!to_hex(k.as_bytes()).contains(&fp));
        assert_ne!(fp, Key::from_seed(10).fingerprint());
    }

    #[test]
    fn hex_parsing_accepts_case_and_newlines() {
        let k = Key::from_seed(5);
        let hex = to_hex(k.as_bytes());
        let p = Path::new("k");
        for text in [
            hex.clone(),
            hex.to_uppercase(),
            format!("{hex}\n"),
            format!("{hex}\r\n"),
        ] {
            assert_eq!(parse_key_text(text.as_bytes(), p).unwrap(), k);
        }
        assert!(matches!(
            parse_key_text(format!("{hex}\n\n").as_bytes(), p),
            Err(Error::KeyFileLength { found: 65, .. })
        ));
        let mut bad = hex.into_bytes();
        bad[10] = b'g';
        assert!(matches!(
            parse_key_text(&bad, p),
            Err(Error::KeyFileNotHex { position: 10, .. })
        ));
    }
}
