//! `nhm key`: make, inspect and derive secret keys. Key bytes are never printed.

use std::path::PathBuf;

use anyhow::Context;
use nhm_template::Key;

/// Subcommands of `nhm key`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a new random key file (64 hex characters, mode 0600); never overwrites.
    New {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
        /// Derive the key from this number instead of the OS random generator.
        /// TESTING ONLY: anyone who knows the number has the key.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Print a key's public fingerprint (never the key).
    Show {
        /// The key file.
        file: PathBuf,
    },
    /// Write the per-application key derived from a key file; never overwrites.
    Derive {
        /// The key file.
        file: PathBuf,
        /// Application name (for example the server's name).
        #[arg(long)]
        app: String,
        /// Where to write the derived key.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `nhm key`.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::New { out, seed } => {
            let key = match seed {
                Some(s) => {
                    eprintln!("warning: --seed makes a predictable key; use it for tests only");
                    Key::from_seed(s)
                }
                None => Key::random(),
            };
            key.save(&out)
                .with_context(|| format!("writing key to {}", out.display()))?;
            println!("wrote {} (fingerprint {})", out.display(), key.fingerprint());
        }
        Command::Show { file } => {
            let key = Key::load(&file).with_context(|| format!("reading key {}", file.display()))?;
            println!("{}", key.fingerprint());
        }
        Command::Derive { file, app, out } => {
            let key = Key::load(&file).with_context(|| format!("reading key {}", file.display()))?;
            let derived = key.for_application(&app);
            derived
                .save(&out)
                .with_context(|| format!("writing key to {}", out.display()))?;
            println!(
                "wrote {} for application {app:?} (fingerprint {})",
                out.display(),
                derived.fingerprint()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_show_derive() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("k");
        run(Command::New {
            out: k.clone(),
            seed: Some(3),
        })
        .unwrap();
        assert_eq!(Key::load(&k).unwrap(), Key::from_seed(3));
        assert!(
            run(Command::New {
                out: k.clone(),
                seed: None
            })
            .is_err(),
            "must not overwrite"
        );
        run(Command::Show { file: k.clone() }).unwrap();
        let d = dir.path().join("d");
        run(Command::Derive {
            file: k.clone(),
            app: "bank".into(),
            out: d.clone(),
        })
        .unwrap();
        assert_eq!(Key::load(&d).unwrap(), Key::from_seed(3).for_application("bank"));
        assert!(run(Command::Show {
            file: dir.path().join("missing")
        })
        .is_err());
    }
}
