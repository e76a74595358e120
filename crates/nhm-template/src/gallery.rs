//! An in-memory 1:N index over binary hashmaps of one dimension: an exact scan with the
//! fastest Hamming kernel.
//!
//! The scan is single-threaded on purpose: a server answers many requests at once, each on
//! its own core, and one scan of a million 256-bit templates reads 32 MB and takes a few
//! milliseconds (see `benches/matching.rs`), so splitting a request over threads would add
//! synchronisation for little gain under load. A caller that serves one request at a time
//! over a much larger gallery can shard galleries across threads itself.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

use crate::hashmap::words_for;
use crate::{kernel, BinaryHashmap, Error, Result};

/// How a probe is scored against a subject's several enrolled templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// The best (highest) score over the subject's templates.
    #[default]
    Best,
    /// The mean score over the subject's templates.
    Mean,
}

/// One answer of [`Gallery::identify`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The subject id.
    pub subject: String,
    /// Its fused score, `1 - hamming/dim` (higher is more similar).
    pub score: f64,
}

/// The index: all templates' words in one contiguous vector (structure of arrays), a subject
/// per row.
#[derive(Debug, Clone)]
pub struct Gallery {
    dim: usize,
    words_per_row: usize,
    /// Row `r` is `words[r * words_per_row..(r + 1) * words_per_row]`.
    words: Vec<u64>,
    /// Subject index of each row.
    row_subject: Vec<u32>,
    /// Subject ids by index.
    names: Vec<String>,
    /// Rows of each subject, by subject index.
    rows_of: Vec<Vec<u32>>,
    /// Subject index by id.
    index: HashMap<String, u32>,
}

/// A heap entry ordered so that the *worst* candidate is the greatest: lower score, then
/// larger subject id (ties are broken by id so answers do not depend on insertion order).
struct Worst<'a> {
    score: f64,
    subject: &'a str,
}

impl PartialEq for Worst<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Worst<'_> {}
impl PartialOrd for Worst<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Worst<'_> {
    fn cmp(&self, o: &Self) -> Ordering {
        o.score
            .total_cmp(&self.score)
            .then_with(|| self.subject.cmp(o.subject))
    }
}

/// Keeps the best `k` of a stream of (score, subject) with a small heap.
struct TopK<'a> {
    k: usize,
    heap: BinaryHeap<Worst<'a>>,
}

impl<'a> TopK<'a> {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    #[inline]
    fn push(&mut self, score: f64, subject: &'a str) {
        if self.heap.len() < self.k {
            self.heap.push(Worst { score, subject });
        } else if let Some(top) = self.heap.peek() {
            let cand = Worst { score, subject };
            if cand < *top {
                self.heap.pop();
                self.heap.push(cand);
            }
        }
    }

    fn into_sorted(self) -> Vec<Candidate> {
        // Ascending "worst" order is best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|w| Candidate {
                subject: w.subject.to_owned(),
                score: w.score,
            })
            .collect()
    }
}

impl Gallery {
    /// An empty gallery for `dim`-bit hashmaps.
    pub fn new(dim: usize) -> Gallery {
        Gallery {
            dim,
            words_per_row: words_for(dim),
            words: Vec::new(),
            row_subject: Vec::new(),
            names: Vec::new(),
            rows_of: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The dimension of its hashmaps.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.row_subject.len()
    }

    /// Number of subjects.
    pub fn subjects(&self) -> usize {
        self.names.len()
    }

    /// Whether it holds no template.
    pub fn is_empty(&self) -> bool {
        self.row_subject.is_empty()
    }

    /// Whether `subject` has at least one template.
    pub fn contains(&self, subject: &str) -> bool {
        self.index.contains_key(subject)
    }

    /// Adds one template of `subject` (a subject may have several).
    pub fn insert(&mut self, subject: &str, h: &BinaryHashmap) -> Result<()> {
        if h.dim() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                found: h.dim(),
            });
        }
        let s = match self.index.get(subject) {
            Some(&s) => s,
            None => {
                let s = self.names.len() as u32;
                self.names.push(subject.to_owned());
                self.rows_of.push(Vec::new());
                self.index.insert(subject.to_owned(), s);
                s
            }
        };
        let row = self.row_subject.len() as u32;
        self.words.extend_from_slice(h.words());
        self.row_subject.push(s);
        self.rows_of[s as usize].push(row);
        Ok(())
    }

    /// Removes all templates of `subject`; returns how many. Takes time linear in the
    /// gallery size (it compacts the arrays), which is fine for the rare deletion.
    pub fn remove_subject(&mut self, subject: &str) -> usize {
        let Some(s) = self.index.remove(subject) else {
            return 0;
        };
        let removed = self.rows_of[s as usize].len();
        let w = self.words_per_row;
        let mut keep = 0;
        for r in 0..self.row_subject.len() {
            if self.row_subject[r] != s {
                self.words.copy_within(r * w..(r + 1) * w, keep * w);
                self.row_subject[keep] = self.row_subject[r];
                keep += 1;
            }
        }
        self.words.truncate(keep * w);
        self.row_subject.truncate(keep);
        // Move the last subject into the freed index.
        let last = (self.names.len() - 1) as u32;
        self.names.swap_remove(s as usize);
        self.rows_of.swap_remove(s as usize);
        if s != last {
            self.index.insert(self.names[s as usize].clone(), s);
            self.row_subject
                .iter_mut()
                .filter(|x| **x == last)
                .for_each(|x| *x = s);
        }
        self.rows_of.iter_mut().for_each(Vec::clear);
        for (r, &subj) in self.row_subject.iter().enumerate() {
            self.rows_of[subj as usize].push(r as u32);
        }
        removed
    }

    fn check_probe(&self, probe: &BinaryHashmap) -> Result<()> {
        if probe.dim() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                found: probe.dim(),
            });
        }
        Ok(())
    }

    fn row(&self, r: u32) -> &[u64] {
        let w = self.words_per_row;
        &self.words[r as usize * w..(r as usize + 1) * w]
    }

    /// Score of `probe` against `subject`'s templates (1:1), or `None` for an unknown subject.
    pub fn verify(&self, subject: &str, probe: &BinaryHashmap, fusion: Fusion) -> Result<Option<f64>> {
        self.check_probe(probe)?;
        let Some(&s) = self.index.get(subject) else {
            return Ok(None);
        };
        let rows = &self.rows_of[s as usize];
        let dists = rows.iter().map(|&r| kernel::hamming(probe.words(), self.row(r)));
        let d = match fusion {
            Fusion::Best => f64::from(dists.min().unwrap_or(self.dim as u32)),
            Fusion::Mean => dists.map(f64::from).sum::<f64>() / rows.len() as f64,
        };
        Ok(Some(1.0 - d / self.dim as f64))
    }

    /// The top `k` subjects for `probe` (1:N), best first; each subject's score is fused
    /// over its templates. Ties are broken by subject id.
    pub fn identify(&self, probe: &BinaryHashmap, k: usize, fusion: Fusion) -> Result<Vec<Candidate>> {
        self.check_probe(probe)?;
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let dim = self.dim as f64;
        let mut top = TopK::new(k);
        if self.len() == self.subjects() {
            // One template per subject: both fusions are the row's own score, and rows
            // that cannot enter the top k are rejected on their integer distance.
            let mut worst_kept = u32::MAX;
            let mut kept = 0usize;
            kernel::scan(probe.words(), &self.words, |r, d| {
                if d <= worst_kept {
                    top.push(
                        1.0 - f64::from(d) / dim,
                        &self.names[self.row_subject[r] as usize],
                    );
                    kept += 1;
                    if kept >= k {
                        if let Some(w) = top.heap.peek() {
                            worst_kept = ((1.0 - w.score) * dim).round() as u32;
                        }
                    }
                }
            });
            return Ok(top.into_sorted());
        }
        match fusion {
            Fusion::Best => {
                let mut best = vec![u32::MAX; self.subjects()];
                kernel::scan(probe.words(), &self.words, |r, d| {
                    let b = &mut best[self.row_subject[r] as usize];
                    *b = (*b).min(d);
                });
                for (s, &d) in best.iter().enumerate() {
                    top.push(1.0 - f64::from(d) / dim, &self.names[s]);
                }
            }
            Fusion::Mean => {
                let mut sum = vec![0u64; self.subjects()];
                kernel::scan(probe.words(), &self.words, |r, d| {
                    sum[self.row_subject[r] as usize] += u64::from(d);
                });
                for (s, &d) in sum.iter().enumerate() {
                    let n = self.rows_of[s].len() as f64;
                    top.push(1.0 - d as f64 / (n * dim), &self.names[s]);
                }
            }
        }
        Ok(top.into_sorted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(bits: u64) -> BinaryHashmap {
        BinaryHashmap::from_words(64, vec![bits]).unwrap()
    }

    #[test]
    fn verify_and_identify_small() {
        let mut g = Gallery::new(64);
        assert!(g.is_empty());
        g.insert("alice", &h(0)).unwrap();
        g.insert("alice", &h(0xff)).unwrap();
        g.insert("bob", &h(0x7f)).unwrap();
        assert_eq!((g.len(), g.subjects()), (3, 2));
        let probe = h(0xff);
        assert_eq!(g.verify("alice", &probe, Fusion::Best).unwrap(), Some(1.0));
        assert_eq!(
            g.verify("alice", &probe, Fusion::Mean).unwrap(),
            Some(1.0 - 4.0 / 64.0)
        );
        assert_eq!(g.verify("carol", &probe, Fusion::Best).unwrap(), None);
        let c = g.identify(&probe, 5, Fusion::Best).unwrap();
        assert_eq!(
            c.iter().map(|c| c.subject.as_str()).collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        let c = g.identify(&probe, 1, Fusion::Mean).unwrap();
        assert_eq!(
            c,
            vec![Candidate {
                subject: "bob".into(),
                score: 1.0 - 1.0 / 64.0
            }]
        );
        assert!(g.identify(&probe, 0, Fusion::Best).unwrap().is_empty());
    }

    #[test]
    fn rejects_wrong_dimension() {
        let mut g = Gallery::new(64);
        let wrong = BinaryHashmap::from_words(128, vec![0, 0]).unwrap();
        assert!(matches!(
            g.insert("a", &wrong),
            Err(Error::DimensionMismatch {
                expected: 64,
                found: 128
            })
        ));
        assert!(matches!(
            g.verify("a", &wrong, Fusion::Best),
            Err(Error::DimensionMismatch { .. })
        ));
        assert!(matches!(
            g.identify(&wrong, 1, Fusion::Best),
            Err(Error::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn remove_subject_compacts() {
        let mut g = Gallery::new(64);
        g.insert("a", &h(1)).unwrap();
        g.insert("b", &h(2)).unwrap();
        g.insert("a", &h(3)).unwrap();
        g.insert("c", &h(4)).unwrap();
        assert_eq!(g.remove_subject("a"), 2);
        assert_eq!(g.remove_subject("a"), 0);
        assert!(!g.contains("a") && g.contains("b") && g.contains("c"));
        assert_eq!((g.len(), g.subjects()), (2, 2));
        assert_eq!(g.verify("c", &h(4), Fusion::Best).unwrap(), Some(1.0));
        assert_eq!(g.verify("b", &h(2), Fusion::Mean).unwrap(), Some(1.0));
        assert_eq!(g.identify(&h(4), 1, Fusion::Best).unwrap()[0].subject, "c");
        assert_eq!(g.remove_subject("c"), 1);
        assert_eq!(g.remove_subject("b"), 1);
        assert!(g.is_empty() && g.subjects() == 0);
        assert!(g.identify(&h(4), 3, Fusion::Best).unwrap().is_empty());
    }

    #[test]
    fn ties_break_by_subject_id() {
        let mut g = Gallery::new(64);
        for s in ["d", "b", "c", "a"] {
            g.insert(s, &h(0)).unwrap();
        }
        let c = g.identify(&h(0), 3, Fusion::Best).unwrap();
        assert_eq!(
            c.iter().map(|c| c.subject.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
