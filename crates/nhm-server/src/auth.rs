//! Bearer tokens with roles.
//!
//! The tokens file (TOML) holds only BLAKE3 hashes of the tokens, never a token:
//!
//! ```toml
//! [[token]]
//! name = "kiosk-1"
//! role = "verify"            # enrol | verify | admin
//! hash = "blake3:9f2c..."    # BLAKE3 of the token's UTF-8 bytes, hex
//! ```
//!
//! `nhm serve token new --role verify --tokens FILE` makes a token from the OS's random source,
//! prints it once and appends its hash. A presented token is hashed and compared with every entry
//! in constant time (`subtle`), so the comparison time says nothing about which bytes matched.

use std::path::Path;

use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::error::{Error, Result};

/// What a token may do. `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Enrol, replace and revoke subjects; list subjects; the negatives relay.
    #[serde(alias = "enroll")]
    Enrol,
    /// Verify (1:1) and identify (1:N).
    Verify,
    /// Everything, plus templates in subject metadata, the threshold and metrics.
    Admin,
}

impl Role {
    /// Whether a token with this role may act as `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "enrol" | "enroll" => Ok(Role::Enrol),
            "verify" => Ok(Role::Verify),
            "admin" => Ok(Role::Admin),
            other => Err(Error::Config(format!(
                "unknown role {other:?} (enrol, verify, admin)"
            ))),
        }
    }
}

/// One entry of the tokens file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who or what holds the token (for logs).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// `blake3:` followed by the 64-hex-digit BLAKE3 hash of the token.
    pub hash: String,
}

/// The tokens file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// The entries.
    #[serde(default)]
    pub token: Vec<TokenEntry>,
}

/// The caller a token identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The entry's name.
    pub name: String,
    /// The entry's role.
    pub role: Role,
}

/// The known tokens, as hashes, ready for constant-time lookup.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<(Principal, [u8; 32])>,
}

fn hash_token(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

fn parse_hash(s: &str) -> Result<[u8; 32]> {
    let hex = s
        .strip_prefix("blake3:")
        .ok_or_else(|| Error::Config(format!("token hash {s:?} must start with \"blake3:\"")))?;
    let h = blake3::Hash::from_hex(hex).map_err(|e| Error::Config(format!("token hash {s:?}: {e}")))?;
    Ok(*h.as_bytes())
}

impl Tokens {
    /// Builds the lookup table from parsed entries.
    pub fn from_file(file: &TokensFile) -> Result<Tokens> {
        let mut entries = Vec::with_capacity(file.token.len());
        for e in &file.token {
            entries.push((
                Principal {
                    name: e.name.clone(),
                    role: e.role,
                },
                parse_hash(&e.hash)?,
            ));
        }
        Ok(Tokens { entries })
    }

    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Tokens> {
        Tokens::from_file(&read_tokens_file(path)?)
    }

    /// A table with the given plain tokens (for tests and embedding).
    pub fn from_plain(list: &[(&str, Role, &str)]) -> Tokens {
        let entries = list
            .iter()
            .map(|(name, role, tok)| {
                (
                    Principal {
                        name: (*name).to_owned(),
                        role: *role,
                    },
                    hash_token(tok),
                )
            })
            .collect();
        Tokens { entries }
    }

    /// The principal of a presented token, or `None`. Every entry is compared (constant time).
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let h = hash_token(token);
        let mut found = None;
        for (p, stored) in &self.entries {
            if bool::from(stored.ct_eq(&h)) {
                found = Some(p.clone());
            }
        }
        found
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn read_tokens_file(path: &Path) -> Result<TokensFile> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Makes a new token (32 bytes from the OS random source, `nhm_` + base64url), appends its hash
/// to the tokens file (created if missing) and returns the token: the only time it is shown.
pub fn new_token(path: &Path, name: &str, role: Role) -> Result<String> {
    let mut file = if path.exists() {
        read_tokens_file(path)?
    } else {
        TokensFile::default()
    };
    if file.token.iter().any(|t| t.name == name) {
        return Err(Error::Config(format!(
            "a token named {name:?} already exists in {}",
            path.display()
        )));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "nhm_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = format!("blake3:{}", blake3::hash(token.as_bytes()).to_hex());
    file.token.push(TokenEntry {
        name: name.to_owned(),
        role,
        hash,
    });
    let text = toml::to_string(&file).map_err(|e| Error::Config(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|source| Error::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(Role::Admin.allows(Role::Verify));
        assert!(Role::Enrol.allows(Role::Enrol));
        assert!(!Role::Verify.allows(Role::Enrol));
        assert!(!Role::Enrol.allows(Role::Admin));
        assert!("nope".parse::<Role>().is_err());
    }

    #[test]
    fn new_token_stores_only_its_hash_and_authenticates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        let t1 = new_token(&p, "a", Role::Verify).unwrap();
        let t2 = new_token(&p, "b", Role::Admin).unwrap();
        assert_ne!(t1, t2);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains(&t1) && !text.contains(&t2[4..]));
        let tokens = Tokens::load(&p).unwrap();
        assert_eq!(tokens.authenticate(&t1).unwrap().role, Role::Verify);
        assert_eq!(tokens.authenticate(&t2).unwrap().name, "b");
        assert!(tokens.authenticate("nhm_wrong").is_none());
        assert!(
            new_token(&p, "a", Role::Enrol).is_err(),
            "duplicate names are refused"
        );
    }

    #[test]
    fn bad_tokens_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        std::fs::write(
            &p,
            "[[token]]\nname = \"x\"\nrole = \"verify\"\nhash = \"sha1:00\"\n",
        )
        .unwrap();
        assert!(matches!(Tokens::load(&p), Err(Error::Config(_))));
        std::fs::write(
            &p,
            "[[token]]\nname = \"x\"\nrole = \"root\"\nhash = \"blake3:00\"\n",
        )
        .unwrap();
        assert!(matches!(Tokens::load(&p), Err(Error::Config(_))));
    }
}
