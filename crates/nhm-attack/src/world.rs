//! The world an attack runs in: the white-box encoder, the victims (subjects the encoder never
//! saw, enrolled under the service's keys) and the attacker's public data (disjoint from them),
//! and the operating threshold every success is judged at.

use image::GrayImage;
use nhm_data::Dataset;
use nhm_model::Encoder;
use nhm_template::{BinaryHashmap, Key, Pepper, Protector, Threshold};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{Defences, Error, KeyPolicy, Result, Tally};

/// The false-match rate the operating threshold is chosen at (ISO/IEC 30136 reports attack
/// success at a stated operating point; the anchors use FAR 0.1%).
pub const OPERATING_FMR: f64 = 0.001;

/// Most impostor comparisons the operating threshold is chosen from.
const MAX_IMPOSTOR_PAIRS: usize = 400_000;

/// Samples of one group of subjects with their white-box embeddings.
#[derive(Debug, Clone)]
pub struct Population {
    /// Subject of each sample (dense ids within the group).
    pub subjects: Vec<u32>,
    /// The encoder's input images (already prepared by the model's input contract).
    pub images: Vec<GrayImage>,
    /// The encoder's L2-normalised embedding of each image.
    pub embeddings: Vec<Vec<f32>>,
}

impl Population {
    /// Embeds every sample of `data` with `encoder`.
    pub fn new(encoder: &Encoder, data: &Dataset) -> Result<Population> {
        let images: Vec<GrayImage> = data.samples.iter().map(|s| s.image.clone()).collect();
        let embeddings = encoder.embed(&images)?;
        Ok(Population {
            subjects: data.samples.iter().map(|s| s.subject).collect(),
            images,
            embeddings,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// Number of distinct subjects.
    pub fn subject_count(&self) -> usize {
        let mut s = self.subjects.clone();
        s.sort_unstable();
        s.dedup();
        s.len()
    }

    /// Indices of the other samples of sample `i`'s subject (its type II targets).
    pub fn mates(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let s = self.subjects[i];
        (0..self.len()).filter(move |&j| j != i && self.subjects[j] == s)
    }

    /// The first sample index of each subject, in subject order: the enrolled template of a
    /// subject in the attacks that need one per subject.
    pub fn first_of_each_subject(&self) -> Vec<usize> {
        let mut seen = std::collections::BTreeMap::new();
        for (i, &s) in self.subjects.iter().enumerate() {
            seen.entry(s).or_insert(i);
        }
        seen.into_values().collect()
    }
}

/// The similarity threshold at [`OPERATING_FMR`] for hashmaps of one length.
#[derive(Debug, Clone)]
pub struct OperatingPoint {
    /// Hashmap length in bits.
    pub bits: usize,
    /// The threshold, with the FMR it was measured at.
    pub threshold: Threshold,
}

impl OperatingPoint {
    /// Whether two hashmaps match at this operating point.
    pub fn accepts(&self, a: &BinaryHashmap, b: &BinaryHashmap) -> Result<bool> {
        Ok(self.threshold.accepts(a.similarity(b)?))
    }
}

/// Everything an attack needs.
#[derive(Debug)]
pub struct World {
    /// The white-box encoder (the attacker has it: it ships with every client).
    pub encoder: Encoder,
    /// Subjects the encoder never saw, enrolled in the service: the victims.
    pub victims: Population,
    /// Public data the attacker trains on, disjoint from the victims.
    pub public: Population,
    /// Seed of keys and of every random choice of the attacks.
    pub seed: u64,
}

impl World {
    /// Embeds both populations; errors when the victims have fewer than 2 subjects with at least
    /// 2 samples (no type II comparison) or the public data is empty.
    pub fn new(encoder: Encoder, victims: &Dataset, public: &Dataset, seed: u64) -> Result<World> {
        let victims = Population::new(&encoder, victims)?;
        let public = Population::new(&encoder, public)?;
        World::from_populations(encoder, victims, public, seed)
    }

    /// A world of populations already embedded (by `encoder`, or made up for a test of an
    /// attack that works on embeddings alone); the same checks as [`World::new`].
    pub fn from_populations(
        encoder: Encoder,
        victims: Population,
        public: Population,
        seed: u64,
    ) -> Result<World> {
        let with_mates = victims
            .first_of_each_subject()
            .iter()
            .filter(|&&i| victims.mates(i).next().is_some())
            .count();
        if with_mates < 2 {
            return Err(Error::TooFewSubjects {
                which: "victims",
                got: with_mates,
                need: 2,
                min_samples: 2,
            });
        }
        if public.is_empty() {
            return Err(Error::TooFewSubjects {
                which: "public",
                got: 0,
                need: 1,
                min_samples: 1,
            });
        }
        Ok(World {
            encoder,
            victims,
            public,
            seed,
        })
    }

    /// The same world behind a whitened encoder: a [`nhm_model::Whitening`] with `shrinkage`
    /// fitted on the public population's embeddings (the deployment's public data; the attacker
    /// holds it too, as part of the white-box client pipeline). The whitening follows the
    /// network, so both populations' whitened embeddings are their embeddings mapped by it.
    ///
    /// Errors: [`Error::InvalidParameter`] when this world's encoder already whitens, and the
    /// whitening's own, for a shrinkage outside [0, 1] or a singular covariance.
    pub fn whitened(&self, shrinkage: f64) -> Result<World> {
        if self.encoder.whitening().is_some() {
            return Err(Error::InvalidParameter {
                name: "encoder",
                reason: "the encoder already whitens its embeddings; build the world on the \
                         network's own embeddings (Encoder::without_whitening)"
                    .into(),
            });
        }
        let whitening = nhm_model::Whitening::fit(
            &self.public.embeddings,
            shrinkage,
            format!("the attack's public data ({} samples)", self.public.len()),
        )?;
        let map = |p: &Population| -> Result<Population> {
            Ok(Population {
                subjects: p.subjects.clone(),
                images: p.images.clone(),
                embeddings: p
                    .embeddings
                    .iter()
                    .map(|e| whitening.apply(e))
                    .collect::<nhm_model::Result<_>>()?,
            })
        };
        let (victims, public) = (map(&self.victims)?, map(&self.public)?);
        let encoder = self.encoder.clone().with_whitening(whitening)?;
        World::from_populations(encoder, victims, public, self.seed)
    }

    /// The embedding dimension.
    pub fn embedding_dim(&self) -> usize {
        self.victims.embeddings[0].len()
    }

    /// The victims' key at application `app` under the defences' key policy: one key for
    /// every application, or one derived per application.
    pub fn victim_key(&self, defences: &Defences, app: &str) -> Key {
        let master = Key::from_seed(self.seed ^ 0x005E_ED0F_71C7);
        match defences.keys {
            KeyPolicy::Shared => master,
            KeyPolicy::PerApplication => master.for_application(app),
        }
    }

    /// A key the attacker makes up when it holds none (its guess of the victims' transform).
    pub fn attacker_key(&self, salt: u64) -> Key {
        Key::from_seed(self.seed ^ 0xA77A_C4E5 ^ salt.rotate_left(17))
    }

    /// Application A's server pepper for hashmaps of `bits` (a server secret no attack here
    /// holds).
    pub fn server_pepper(&self, bits: usize) -> Pepper {
        self.server_pepper_of("app-a", bits)
    }

    /// The server pepper of application `app` (each service has its own).
    pub fn server_pepper_of(&self, app: &str, bits: usize) -> Pepper {
        Pepper::new(
            &Key::from_seed(self.seed ^ 0x0050_E5E7_BE99).for_application(app),
            bits,
        )
    }

    /// `templates` as the store holds them under the defences: peppered when the pepper is on.
    pub fn at_rest(&self, defences: &Defences, templates: &[BinaryHashmap]) -> Result<Vec<BinaryHashmap>> {
        if !defences.pepper {
            return Ok(templates.to_vec());
        }
        let Some(first) = templates.first() else {
            return Ok(Vec::new());
        };
        let pepper = self.server_pepper(first.dim());
        Ok(templates
            .iter()
            .map(|h| pepper.apply(h))
            .collect::<nhm_template::Result<_>>()?)
    }

    /// The protection transform of `key` at the defences' hashmap length.
    pub fn protector(&self, key: &Key, defences: &Defences) -> Result<Protector> {
        Ok(Protector::with_output_dim(
            key,
            self.embedding_dim(),
            defences.hashmap_bits,
        )?)
    }

    /// Binary hashmaps of `embeddings` under `p`.
    pub fn hashmaps(p: &Protector, embeddings: &[Vec<f32>]) -> Result<Vec<BinaryHashmap>> {
        Ok(embeddings
            .par_iter()
            .map(|e| p.binary(e))
            .collect::<nhm_template::Result<Vec<_>>>()?)
    }

    /// The operating point for the victims' hashmaps under `p`: the threshold at
    /// [`OPERATING_FMR`] on the victims' impostor comparisons (all pairs, or a seeded sample of
    /// [`MAX_IMPOSTOR_PAIRS`]).
    pub fn operating_point(&self, p: &Protector) -> Result<OperatingPoint> {
        let h = World::hashmaps(p, &self.victims.embeddings)?;
        let s = &self.victims.subjects;
        let n = h.len();
        let all = n * (n - 1) / 2;
        let mut scores = Vec::with_capacity(all.min(MAX_IMPOSTOR_PAIRS));
        if all <= MAX_IMPOSTOR_PAIRS {
            for i in 0..n {
                for j in i + 1..n {
                    if s[i] != s[j] {
                        scores.push(h[i].similarity(&h[j])?);
                    }
                }
            }
        } else {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x0FE7);
            while scores.len() < MAX_IMPOSTOR_PAIRS {
                let (i, j) = (rng.gen_range(0..n), rng.gen_range(0..n));
                if s[i] != s[j] {
                    scores.push(h[i].similarity(&h[j])?);
                }
            }
        }
        Ok(OperatingPoint {
            bits: p.output_dim(),
            threshold: Threshold::for_target_fmr(&scores, OPERATING_FMR)?,
        })
    }

    /// Judges an attacker's `candidate` hashmap for victim sample `source` against the victims'
    /// `templates`: type I (the source sample's own template) and type II (each other sample of
    /// the victim, one attempt per pair).
    pub fn judge(
        &self,
        op: &OperatingPoint,
        templates: &[BinaryHashmap],
        source: usize,
        candidate: &BinaryHashmap,
    ) -> Result<(bool, Tally)> {
        let type_i = op.accepts(candidate, &templates[source])?;
        let mut type_ii = Tally::default();
        for j in self.victims.mates(source) {
            type_ii.record(op.accepts(candidate, &templates[j])?);
        }
        Ok((type_i, type_ii))
    }

    /// Sample indices of `count` victims (one stolen template each: the first sample of a
    /// seeded choice of subjects that have mates).
    pub fn targets(&self, count: usize) -> Vec<usize> {
        let mut firsts: Vec<usize> = self
            .victims
            .first_of_each_subject()
            .into_iter()
            .filter(|&i| self.victims.mates(i).next().is_some())
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x7A26);
        rand::seq::SliceRandom::shuffle(&mut firsts[..], &mut rng);
        firsts.truncate(count.max(1));
        firsts.sort_unstable();
        firsts
    }
}

/// Cosine of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let d = n(a) * n(b);
    if d > 0.0 {
        dot / d
    } else {
        0.0
    }
}

/// `v` scaled to unit length (unchanged when zero).
pub fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x = (f64::from(*x) / n) as f32);
    }
    v
}
