//! The in-memory gallery index, rebuilt from the store at start: an exact scan (popcount over
//! u64 words via [`nhm_template::Gallery`] for binary hashmaps, cosine for dense ones).

use std::collections::HashMap;

use nhm_template::{BinaryHashmap, Candidate, DenseHashmap, Fusion, Gallery, Hashmap, HashmapKind};
use rand::seq::index::sample;
use rand::Rng;

use crate::error::{Error, Result};

/// Subjects and their (peppered) templates, for matching.
#[derive(Debug)]
pub struct Index {
    kind: HashmapKind,
    dim: usize,
    binary: Gallery,
    dense: HashMap<String, Vec<DenseHashmap>>,
    /// Subject ids (for sampling), and each id's position.
    ids: Vec<String>,
    pos: HashMap<String, usize>,
}

impl Index {
    /// An empty index of one kind and dimension.
    pub fn new(kind: HashmapKind, dim: usize) -> Index {
        Index {
            kind,
            dim,
            binary: Gallery::new(dim),
            dense: HashMap::new(),
            ids: Vec::new(),
            pos: HashMap::new(),
        }
    }

    /// Number of subjects.
    pub fn subjects(&self) -> usize {
        self.ids.len()
    }

    /// Whether `subject` is enrolled.
    pub fn contains(&self, subject: &str) -> bool {
        self.pos.contains_key(subject)
    }

    /// Sets a subject's templates (replacing any); an empty list removes it.
    pub fn set(&mut self, subject: &str, templates: &[Hashmap]) -> Result<()> {
        // Validate everything before changing anything.
        for t in templates {
            if t.kind() != self.kind || t.dim() != self.dim {
                return Err(Error::Config(format!(
                    "template of kind {} dim {} in a {} gallery of dim {}",
                    t.kind(),
                    t.dim(),
                    self.kind,
                    self.dim
                )));
            }
        }
        self.remove(subject);
        if templates.is_empty() {
            return Ok(());
        }
        match self.kind {
            HashmapKind::Binary => {
                for t in templates {
                    if let Some(b) = t.as_binary() {
                        self.binary.insert(subject, b)?;
                    }
                }
            }
            HashmapKind::Dense => {
                let v = templates.iter().filter_map(|t| t.as_dense().cloned()).collect();
                self.dense.insert(subject.to_owned(), v);
            }
        }
        self.pos.insert(subject.to_owned(), self.ids.len());
        self.ids.push(subject.to_owned());
        Ok(())
    }

    /// Removes a subject; false when absent.
    pub fn remove(&mut self, subject: &str) -> bool {
        let Some(p) = self.pos.remove(subject) else {
            return false;
        };
        self.ids.swap_remove(p);
        if let Some(moved) = self.ids.get(p) {
            self.pos.insert(moved.clone(), p);
        }
        match self.kind {
            HashmapKind::Binary => {
                self.binary.remove_subject(subject);
            }
            HashmapKind::Dense => {
                self.dense.remove(subject);
            }
        }
        true
    }

    /// Fused score of `probe` against `subject`; `None` when the subject is not enrolled.
    pub fn verify(&self, subject: &str, probe: &Hashmap, fusion: Fusion) -> Result<Option<f64>> {
        match (self.kind, probe) {
            (HashmapKind::Binary, Hashmap::Binary(b)) => Ok(self.binary.verify(subject, b, fusion)?),
            (HashmapKind::Dense, Hashmap::Dense(d)) => match self.dense.get(subject) {
                Some(ts) => Ok(Some(fuse_dense(ts, d, fusion)?)),
                None => Ok(None),
            },
            _ => Err(nhm_template::Error::KindMismatch {
                expected: self.kind,
                found: probe.kind(),
            }
            .into()),
        }
    }

    /// The `k` best subjects for `probe`, best first.
    pub fn identify(&self, probe: &Hashmap, k: usize, fusion: Fusion) -> Result<Vec<Candidate>> {
        match (self.kind, probe) {
            (HashmapKind::Binary, Hashmap::Binary(b)) => Ok(self.binary.identify(b, k, fusion)?),
            (HashmapKind::Dense, Hashmap::Dense(d)) => {
                let mut all = Vec::with_capacity(self.dense.len());
                for (s, ts) in &self.dense {
                    all.push(Candidate {
                        subject: s.clone(),
                        score: fuse_dense(ts, d, fusion)?,
                    });
                }
                all.sort_by(|a, b| {
                    b.score
                        .total_cmp(&a.score)
                        .then_with(|| a.subject.cmp(&b.subject))
                });
                all.truncate(k);
                Ok(all)
            }
            _ => Err(nhm_template::Error::KindMismatch {
                expected: self.kind,
                found: probe.kind(),
            }
            .into()),
        }
    }

    /// Up to `n` distinct subject ids drawn uniformly, never `exclude`.
    pub fn sample_subjects(&self, rng: &mut impl Rng, n: usize, exclude: Option<&str>) -> Vec<String> {
        let pool = self.ids.len();
        let want = (n + usize::from(exclude.is_some())).min(pool);
        sample(rng, pool, want)
            .into_iter()
            .map(|i| &self.ids[i])
            .filter(|s| Some(s.as_str()) != exclude)
            .take(n)
            .cloned()
            .collect()
    }
}

fn fuse_dense(ts: &[DenseHashmap], probe: &DenseHashmap, fusion: Fusion) -> Result<f64> {
    let mut best = f64::NEG_INFINITY;
    let mut sum = 0.0;
    for t in ts {
        let s = t.cosine(probe)?;
        best = best.max(s);
        sum += s;
    }
    Ok(match fusion {
        Fusion::Best => best,
        Fusion::Mean => sum / ts.len().max(1) as f64,
    })
}

/// A synthetic binary hashmap: random bits from `ChaCha8Rng(seed)` on stream `index`, so subject
/// `index` of a seeded gallery can be regenerated alone (for load tests).
pub fn synthetic_binary(seed: u64, index: u64, dim: usize) -> Result<BinaryHashmap> {
    use rand::{RngCore as _, SeedableRng as _};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    let n = dim.div_ceil(64);
    let mut words: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    if !dim.is_multiple_of(64) {
        if let Some(last) = words.last_mut() {
            *last &= (1u64 << (dim % 64)) - 1;
        }
    }
    Ok(BinaryHashmap::from_words(dim, words)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    fn bin(seed: u64, i: u64) -> Hashmap {
        Hashmap::Binary(synthetic_binary(seed, i, 256).unwrap())
    }

    #[test]
    fn set_replace_remove_and_sample() {
        let mut idx = Index::new(HashmapKind::Binary, 256);
        for i in 0..10 {
            idx.set(&format!("s{i}"), &[bin(1, i)]).unwrap();
        }
        assert_eq!(idx.subjects(), 10);
        assert_eq!(idx.verify("s3", &bin(1, 3), Fusion::Best).unwrap(), Some(1.0));
        idx.set("s3", &[bin(2, 3)]).unwrap();
        assert!(idx.verify("s3", &bin(1, 3), Fusion::Best).unwrap().unwrap() < 0.8);
        let top = idx.identify(&bin(1, 7), 2, Fusion::Best).unwrap();
        assert_eq!(top[0].subject, "s7");
        assert!(idx.remove("s7"));
        assert!(!idx.contains("s7"));
        assert_eq!(idx.subjects(), 9);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let s = idx.sample_subjects(&mut rng, 5, Some("s1"));
        assert_eq!(s.len(), 5);
        assert!(!s.contains(&"s1".to_string()));
        assert_eq!(idx.sample_subjects(&mut rng, 100, Some("s1")).len(), 8);
    }

    #[test]
    fn wrong_kind_or_dim_is_rejected_without_change() {
        let mut idx = Index::new(HashmapKind::Binary, 256);
        let d = Hashmap::Dense(DenseHashmap::new(vec![0.5; 256]).unwrap());
        assert!(idx.set("x", &[bin(1, 0), d.clone()]).is_err());
        assert!(!idx.contains("x"));
        assert!(idx.verify("x", &d, Fusion::Best).is_err());
        let short = Hashmap::Binary(synthetic_binary(1, 0, 128).unwrap());
        assert!(idx.set("x", &[short]).is_err());
    }

    #[test]
    fn dense_index_matches_by_cosine() {
        let mut idx = Index::new(HashmapKind::Dense, 4);
        let a = Hashmap::Dense(DenseHashmap::new(vec![1.0, 0.0, 0.0, 0.0]).unwrap());
        let b = Hashmap::Dense(DenseHashmap::new(vec![0.0, 1.0, 0.0, 0.0]).unwrap());
        idx.set("a", std::slice::from_ref(&a)).unwrap();
        idx.set("b", &[b]).unwrap();
        let s = idx.verify("a", &a, Fusion::Mean).unwrap().unwrap();
        assert!((s - 1.0).abs() < 1e-6);
        assert_eq!(idx.identify(&a, 1, Fusion::Best).unwrap()[0].subject, "a");
    }
}
