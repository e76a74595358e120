//! Samples, datasets, subject-disjoint splits.

use std::path::PathBuf;

use image::GrayImage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One biometric sample: a grayscale image of one subject, at the model's input size.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Dense subject index within its dataset (0..n_subjects), used as the class label.
    pub subject: u32,
    /// The subject's name in the source (FVC finger number, `s12`, a folder name, ...).
    pub subject_label: String,
    /// Index of this sample among the subject's samples (impression number, 0-based order in source).
    pub index: u32,
    /// The image, already preprocessed to the dataset's target size (see [`crate::preprocess`]).
    pub image: GrayImage,
    /// Size of the image as found in the source, before preprocessing (width, height).
    pub original_size: (u32, u32),
    /// The file it was read from; `None` for samples generated in memory.
    pub source: Option<PathBuf>,
    /// The resolution, in dots per inch, the sample was read at when the model's input contract
    /// normalises scale: the file header's ([`crate::loaders::image_dpi`], which leaves out
    /// implausible values such as a converter's 72 dpi), the user's, or the ridge-period estimate
    /// ([`crate::input::Resolution`]). `None` for synthetic samples and scale-free contracts.
    pub dpi: Option<f32>,
}

/// The on-disk layouts this crate recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Generated in memory by [`crate::synth`].
    Synthetic,
    /// FVC: `{finger}_{impression}.{tif,jpg,png,...}` in one folder (`101_1.tif`, `001_1.jpg`).
    Fvc,
    /// Neurotechnology sample databases: `{person}_{finger}_{scan}.png` in one folder, one
    /// identity per person and finger, labelled `{person}_{finger}` as the files spell it.
    PersonFingerScan,
    /// SOCOFing: `{subject}__{M|F}_{Left|Right}_{finger}_finger[_Alteration].BMP`, one identity per finger.
    Socofing,
    /// AT&T/ORL faces: `s{N}/{k}.pgm`.
    Orl,
    /// Any layout with one sub-folder per identity holding that identity's images.
    FolderPerIdentity,
    /// File names read by a user-given [`crate::loaders::NamingRule`] (never detected).
    Custom,
}

/// Something found wrong while reading a dataset that did not stop the read: the file was skipped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Problem {
    /// The file or folder concerned.
    pub path: PathBuf,
    /// What is wrong with it, in words.
    pub message: String,
}

/// A list of samples with where they came from.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The layout the samples were read from.
    pub layout: Layout,
    /// The folder read, if any.
    pub root: Option<PathBuf>,
    /// Subject labels, indexed by [`Sample::subject`].
    pub subjects: Vec<String>,
    /// All samples, grouped by subject, in subject then sample order.
    pub samples: Vec<Sample>,
    /// Files skipped while reading, each with its reason.
    pub problems: Vec<Problem>,
}

impl Dataset {
    /// Number of subjects.
    pub fn n_subjects(&self) -> usize {
        self.subjects.len()
    }

    /// The samples of subject `s`, in sample order.
    pub fn samples_of(&self, s: u32) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |x| x.subject == s)
    }

    /// Number of samples per subject, indexed by subject.
    pub fn samples_per_subject(&self) -> Vec<usize> {
        let mut n = vec![0usize; self.subjects.len()];
        for s in &self.samples {
            if let Some(c) = n.get_mut(s.subject as usize) {
                *c += 1;
            }
        }
        n
    }

    /// Keeps only the given subjects (by index), renumbering them densely in the given order.
    pub fn select_subjects(&self, keep: &[u32]) -> Dataset {
        let mut map = vec![None; self.subjects.len()];
        for (new, &old) in keep.iter().enumerate() {
            if let Some(m) = map.get_mut(old as usize) {
                *m = Some(new as u32);
            }
        }
        let mut samples: Vec<Sample> = self
            .samples
            .iter()
            .filter_map(|s| {
                map.get(s.subject as usize).copied().flatten().map(|new| Sample {
                    subject: new,
                    ..s.clone()
                })
            })
            .collect();
        samples.sort_by_key(|s| (s.subject, s.index));
        Dataset {
            layout: self.layout,
            root: self.root.clone(),
            subjects: keep
                .iter()
                .filter_map(|&k| self.subjects.get(k as usize).cloned())
                .collect(),
            samples,
            problems: self.problems.clone(),
        }
    }

    /// Splits subjects (not samples) into two disjoint datasets: the first `first_fraction` of
    /// subjects (in source order when `seed` is `None`, else a seeded shuffle) and the rest.
    /// DESIGN.md §4: train on the first 80% of subjects, evaluate on the remaining 20%.
    pub fn split_subjects(&self, first_fraction: f64, seed: Option<u64>) -> (Dataset, Dataset) {
        let mut ids: Vec<u32> = (0..self.subjects.len() as u32).collect();
        if let Some(seed) = seed {
            ids.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        let cut = ((ids.len() as f64) * first_fraction.clamp(0.0, 1.0)).round() as usize;
        let (a, b) = ids.split_at(cut.min(ids.len()));
        (self.select_subjects(a), self.select_subjects(b))
    }

    /// Appends the subjects of `other` after this dataset's, as new subjects (renumbered densely,
    /// labels prefixed with `prefix/` so that two sources' `101` stay apart): training on several
    /// sources at once. The layout and root stay this dataset's; problems are kept from both.
    pub fn append_subjects(&mut self, other: &Dataset, prefix: &str) {
        let offset = self.subjects.len() as u32;
        self.subjects
            .extend(other.subjects.iter().map(|l| format!("{prefix}/{l}")));
        self.samples.extend(other.samples.iter().map(|s| Sample {
            subject: s.subject + offset,
            subject_label: format!("{prefix}/{}", s.subject_label),
            ..s.clone()
        }));
        self.problems.extend(other.problems.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n_subjects: u32, per: u32) -> Dataset {
        let mut samples = vec![];
        for s in 0..n_subjects {
            for i in 0..per {
                samples.push(Sample {
                    subject: s,
                    subject_label: format!("{s}"),
                    index: i,
                    image: GrayImage::new(4, 4),
                    original_size: (4, 4),
                    source: None,
                    dpi: None,
                });
            }
        }
        Dataset {
            layout: Layout::Synthetic,
            root: None,
            subjects: (0..n_subjects).map(|s| format!("{s}")).collect(),
            samples,
            problems: vec![],
        }
    }

    #[test]
    fn split_is_subject_disjoint_and_complete() {
        let d = toy(10, 3);
        let (a, b) = d.split_subjects(0.8, Some(7));
        assert_eq!(a.n_subjects(), 8);
        assert_eq!(b.n_subjects(), 2);
        assert_eq!(a.samples.len() + b.samples.len(), 30);
        for l in &a.subjects {
            assert!(!b.subjects.contains(l));
        }
        assert_eq!(b.samples_per_subject(), vec![3, 3]);
    }

    #[test]
    fn split_without_seed_keeps_source_order() {
        let d = toy(5, 2);
        let (a, b) = d.split_subjects(0.6, None);
        assert_eq!(a.subjects, vec!["0", "1", "2"]);
        assert_eq!(b.subjects, vec!["3", "4"]);
    }

    #[test]
    fn appended_subjects_stay_apart() {
        let mut a = toy(3, 2);
        a.append_subjects(&toy(2, 4), "real");
        assert_eq!(a.n_subjects(), 5);
        assert_eq!(a.samples_per_subject(), vec![2, 2, 2, 4, 4]);
        assert_eq!(a.subjects[3], "real/0");
        assert!(a.samples_of(4).all(|s| s.subject_label == "real/1"));
    }
}
