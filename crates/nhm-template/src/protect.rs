//! The client's keyed protection transform `R_k` and the server's pepper.
//!
//! `R_k = H·D2·P2·H·D1·P1`: two rounds of a keyed permutation `P`, keyed ±1 sign flips `D` and
//! the normalised fast Walsh–Hadamard transform `H`. Every factor is orthogonal, so `R_k` is:
//! norms, inner products and angles survive exactly (up to rounding), and the bits of
//! `sign(R_k e)` differ between two embeddings with probability θ/π over keys.
//!
//! A hashmap may be longer than the embedding: `m` independent keyed rotations stacked
//! (`[R_k⁽⁰⁾; …; R_k⁽ᵐ⁻¹⁾]`, a tight frame: cosines still survive exactly). Their `m·d` sign bits
//! estimate the angle between two embeddings with `m` times less variance than `d` bits, which is
//! what binarisation costs once the embedding itself errs little. Block 0 is the `d`-bit
//! transform, so a key's `d`-bit hashmaps are the first `d` bits of its longer ones. All key
//! material comes from BLAKE3 in key-derivation mode and its extendable output, and the
//! shuffle is implemented here (not borrowed from `rand`), so a key gives the same transform
//! in every future build: enrolled templates never silently change.

use crate::hashmap::{check_dim, words_for};
use crate::{BinaryHashmap, DenseHashmap, Error, Hashmap, HashmapKind, Key, Result};

/// BLAKE3 key-derivation context for the protection transform.
const PROTECTOR_CONTEXT: &str = "neural-hashmaps 2026 protector v1";
/// BLAKE3 key-derivation context for the blocks after the first of a stacked transform.
const PROTECTOR_BLOCK_CONTEXT: &str = "neural-hashmaps 2026 protector block v1";
/// Most rotations stacked into one hashmap.
pub const MAX_BLOCKS: usize = 16;
/// BLAKE3 key-derivation context for the server pepper.
const PEPPER_CONTEXT: &str = "neural-hashmaps 2026 server pepper v1";

/// A stream of key-derived random numbers (BLAKE3 extendable output).
struct KeyStream(blake3::OutputReader);

impl KeyStream {
    /// The stream for `key`, a purpose and a dimension.
    fn new(context: &str, key: &Key, dim: usize) -> KeyStream {
        let mut material = [0u8; 40];
        material[..32].copy_from_slice(key.as_bytes());
        material[32..].copy_from_slice(&(dim as u64).to_le_bytes());
        let seed = blake3::derive_key(context, &material);
        material.fill(0);
        KeyStream(blake3::Hasher::new_keyed(&seed).finalize_xof())
    }

    /// The stream of block `block` ≥ 1 of a stacked transform (block 0 is [`KeyStream::new`]).
    fn block(context: &str, key: &Key, dim: usize, block: usize) -> KeyStream {
        let mut material = [0u8; 48];
        material[..32].copy_from_slice(key.as_bytes());
        material[32..40].copy_from_slice(&(dim as u64).to_le_bytes());
        material[40..].copy_from_slice(&(block as u64).to_le_bytes());
        let seed = blake3::derive_key(context, &material);
        material.fill(0);
        KeyStream(blake3::Hasher::new_keyed(&seed).finalize_xof())
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    /// Uniform in `0..n` (n ≥ 1), by rejection so there is no modulo bias.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n) - 1;
        loop {
            let x = self.next_u64();
            if x <= zone {
                return x % n;
            }
        }
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }

    /// `n` random signs, as ±1.
    fn signs(&mut self, n: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let bits = self.next_u64();
            out.extend(
                (0..64)
                    .take(n - out.len())
                    .map(|j| if (bits >> j) & 1 == 1 { -1.0 } else { 1.0 }),
            );
        }
        out
    }
}

/// In-place normalised fast Walsh–Hadamard transform (`x.len()` a power of two).
fn fwht(x: &mut [f64]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (a, b) = block.split_at_mut(h);
            for (u, v) in a.iter_mut().zip(b.iter_mut()) {
                let (s, d) = (*u + *v, *u - *v);
                *u = s;
                *v = d;
            }
        }
        h *= 2;
    }
    let scale = 1.0 / (n as f64).sqrt();
    x.iter_mut().for_each(|v| *v *= scale);
}

/// One keyed rotation: round r maps out[i] = sign[i] · in[perm[i]], then H.
type Rotation = [(Vec<u32>, Vec<f64>); 2];

/// The keyed orthogonal transform `R_k` for one dimension, or a stack of such rotations for
/// longer hashmaps (see the module docs).
#[derive(Clone)]
pub struct Protector {
    dim: usize,
    blocks: Vec<Rotation>,
}

impl std::fmt::Debug for Protector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The permutations and signs are key material.
        write!(
            f,
            "Protector {{ dim: {}, output_dim: {}, .. }}",
            self.dim,
            self.output_dim()
        )
    }
}

impl Protector {
    /// The transform for `key` and dimension `dim` (a power of two, at most 65536): hashmaps of
    /// `dim` values or bits.
    pub fn new(key: &Key, dim: usize) -> Result<Protector> {
        Self::with_output_dim(key, dim, dim)
    }

    /// The transform for `key` and embeddings of `dim` values that makes hashmaps of
    /// `output_dim` values or bits: `output_dim / dim` stacked rotations, so `output_dim` must be
    /// `dim` times 1 to [`MAX_BLOCKS`] (and at most 65536).
    pub fn with_output_dim(key: &Key, dim: usize, output_dim: usize) -> Result<Protector> {
        check_dim(dim)?;
        if !dim.is_power_of_two() {
            return Err(Error::InvalidDimension {
                dim,
                reason: "the protection transform needs a power of two",
            });
        }
        check_dim(output_dim)?;
        if !output_dim.is_multiple_of(dim) || !(1..=MAX_BLOCKS).contains(&(output_dim / dim)) {
            return Err(Error::InvalidDimension {
                dim: output_dim,
                reason: "a hashmap's length must be the embedding dimension times 1 to 16",
            });
        }
        let rotation = |mut s: KeyStream| -> Rotation {
            let mut round = || (s.permutation(dim), s.signs(dim));
            [round(), round()]
        };
        let blocks = (0..output_dim / dim)
            .map(|b| match b {
                0 => rotation(KeyStream::new(PROTECTOR_CONTEXT, key, dim)),
                _ => rotation(KeyStream::block(PROTECTOR_BLOCK_CONTEXT, key, dim, b)),
            })
            .collect();
        Ok(Protector { dim, blocks })
    }

    /// The embedding dimension it transforms.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The length of the hashmaps it makes (`dim` times the number of stacked rotations).
    pub fn output_dim(&self) -> usize {
        self.dim * self.blocks.len()
    }

    /// `R_k · e` (each block's rotation of `e`, concatenated), computed in f64. Errors on a wrong
    /// length or a NaN/infinite value.
    pub fn transform(&self, e: &[f32]) -> Result<Vec<f32>> {
        if e.len() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                found: e.len(),
            });
        }
        if let Some(index) = e.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite { index });
        }
        let mut out = Vec::with_capacity(self.output_dim());
        for rounds in &self.blocks {
            let mut x: Vec<f64> = e.iter().map(|&v| f64::from(v)).collect();
            let mut y = vec![0f64; self.dim];
            for (perm, signs) in rounds {
                for ((o, &p), &s) in y.iter_mut().zip(perm).zip(signs) {
                    *o = s * x[p as usize];
                }
                fwht(&mut y);
                std::mem::swap(&mut x, &mut y);
            }
            out.extend(x.into_iter().map(|v| v as f32));
        }
        Ok(out)
    }

    /// The adjoint `R_kᵀ · y` of [`Protector::transform`] (`y` of `output_dim` values): each
    /// block's inverse rotation of its slice, summed. For one block it inverts the transform; for
    /// `m` stacked blocks `adjoint(transform(e)) = m·e`. Whoever holds the key can therefore map
    /// a hashmap back into embedding space; the attack suite (`nhm-attack`) measures what that
    /// gives a thief of both.
    pub fn adjoint(&self, y: &[f32]) -> Result<Vec<f32>> {
        if y.len() != self.output_dim() {
            return Err(Error::DimensionMismatch {
                expected: self.output_dim(),
                found: y.len(),
            });
        }
        if let Some(index) = y.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite { index });
        }
        let mut out = vec![0f64; self.dim];
        for (rounds, slice) in self.blocks.iter().zip(y.chunks_exact(self.dim)) {
            let mut x: Vec<f64> = slice.iter().map(|&v| f64::from(v)).collect();
            let mut z = vec![0f64; self.dim];
            for (perm, signs) in rounds.iter().rev() {
                // Forward: out[i] = H(s ⊙ x[perm])[i]; H is its own inverse.
                fwht(&mut x);
                for ((&p, &s), &v) in perm.iter().zip(signs).zip(&x) {
                    z[p as usize] = s * v;
                }
                std::mem::swap(&mut x, &mut z);
            }
            out.iter_mut().zip(&x).for_each(|(o, v)| *o += v);
        }
        Ok(out.into_iter().map(|v| v as f32).collect())
    }

    /// The dense hashmap `R_k · e` (errors also on the zero vector).
    pub fn dense(&self, e: &[f32]) -> Result<DenseHashmap> {
        DenseHashmap::new(self.transform(e)?)
    }

    /// The binary hashmap `sign(R_k · e)`.
    pub fn binary(&self, e: &[f32]) -> Result<BinaryHashmap> {
        BinaryHashmap::try_from_signs(&self.transform(e)?)
    }

    /// The hashmap of the requested kind.
    pub fn protect(&self, e: &[f32], kind: HashmapKind) -> Result<Hashmap> {
        Ok(match kind {
            HashmapKind::Binary => Hashmap::Binary(self.binary(e)?),
            HashmapKind::Dense => Hashmap::Dense(self.dense(e)?),
        })
    }
}

/// The server's own secret (DESIGN.md §1): a keyed bit permutation and a keyed XOR mask
/// applied to every binary template before it is stored and to every probe before matching
/// (dense: a keyed permutation and sign flips).
///
/// Both are isometries, so the distance between two peppered templates equals the distance
/// between the originals; but a template stolen from the store and sent back as a probe is
/// peppered a second time and no longer matches. The XOR mask also hides each template's
/// bit count, which a permutation alone would keep.
#[derive(Clone)]
pub struct Pepper {
    dim: usize,
    /// Output bit `i` is input bit `perm[i]`.
    perm: Vec<u32>,
    /// XOR mask (padding bits zero).
    mask: Vec<u64>,
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pepper {{ dim: {}, .. }}", self.dim)
    }
}

impl Pepper {
    /// The pepper for `key` and dimension `dim` (any dimension; hashmaps of another dimension
    /// are rejected by [`Pepper::apply`]).
    pub fn new(key: &Key, dim: usize) -> Pepper {
        let mut s = KeyStream::new(PEPPER_CONTEXT, key, dim);
        let perm = s.permutation(dim);
        let mut mask: Vec<u64> = (0..words_for(dim)).map(|_| s.next_u64()).collect();
        if !dim.is_multiple_of(64) {
            if let Some(last) = mask.last_mut() {
                *last &= (1u64 << (dim % 64)) - 1;
            }
        }
        Pepper { dim, perm, mask }
    }

    /// The dimension it applies to.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Peppers a binary hashmap.
    pub fn apply(&self, h: &BinaryHashmap) -> Result<BinaryHashmap> {
        if h.dim() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                found: h.dim(),
            });
        }
        let mut words = self.mask.clone();
        for (i, &p) in self.perm.iter().enumerate() {
            words[i / 64] ^= u64::from(h.bit(p as usize)) << (i % 64);
        }
        BinaryHashmap::from_words(self.dim, words)
    }

    /// Peppers a hashmap of either kind (dense: permuted values with sign flips from the mask).
    pub fn apply_hashmap(&self, h: &Hashmap) -> Result<Hashmap> {
        match h {
            Hashmap::Binary(b) => Ok(Hashmap::Binary(self.apply(b)?)),
            Hashmap::Dense(d) => {
                if d.dim() != self.dim {
                    return Err(Error::DimensionMismatch {
                        expected: self.dim,
                        found: d.dim(),
                    });
                }
                let v = d.values();
                let values = self
                    .perm
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        let flip = (self.mask[i / 64] >> (i % 64)) & 1 == 1;
                        if flip {
                            -v[p as usize]
                        } else {
                            v[p as usize]
                        }
                    })
                    .collect();
                Ok(Hashmap::Dense(DenseHashmap::new(values)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adjoint_inverts_one_rotation_and_sums_stacked_ones() {
        let k = Key::from_seed(9);
        let e: Vec<f32> = (0..128).map(|i| ((i * 29 % 17) as f32 - 8.0) / 9.0).collect();
        for blocks in [1usize, 3] {
            let p = Protector::with_output_dim(&k, 128, 128 * blocks).unwrap();
            let back = p.adjoint(&p.transform(&e).unwrap()).unwrap();
            for (b, x) in back.iter().zip(&e) {
                assert!((b - blocks as f32 * x).abs() < 1e-4, "{b} vs {blocks}·{x}");
            }
        }
        let p = Protector::new(&k, 128).unwrap();
        assert!(matches!(
            p.adjoint(&e[..64]),
            Err(Error::DimensionMismatch { .. })
        ));
        let mut bad = e.clone();
        bad[3] = f32::NAN;
        assert!(matches!(p.adjoint(&bad), Err(Error::NonFinite { index: 3 })));
    }

    #[test]
    fn stacked_rotations_extend_the_short_hashmap_and_keep_cosines() {
        let k = Key::from_seed(5);
        let short = Protector::new(&k, 64).unwrap();
        let long = Protector::with_output_dim(&k, 64, 256).unwrap();
        assert_eq!((long.dim(), long.output_dim()), (64, 256));
        let e: Vec<f32> = (0..64).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
        let f: Vec<f32> = (0..64).map(|i| ((i * 13 % 7) as f32 - 3.0) / 5.0).collect();
        let (te, tf) = (long.transform(&e).unwrap(), long.transform(&f).unwrap());
        assert_eq!(te.len(), 256);
        // Block 0 is the d-value transform: existing templates keep their meaning.
        assert_eq!(&te[..64], &short.transform(&e).unwrap()[..]);
        // The other blocks are other rotations, not copies.
        assert_ne!(&te[64..128], &te[..64]);
        let cos = |a: &[f32], b: &[f32]| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            dot / (n(a) * n(b))
        };
        assert!((cos(&te, &tf) - cos(&e, &f)).abs() < 1e-6);
        assert_eq!(long.binary(&e).unwrap().dim(), 256);
        for bad in [96, 64 * 17, 32] {
            assert!(
                matches!(
                    Protector::with_output_dim(&k, 64, bad),
                    Err(Error::InvalidDimension { .. })
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn rejects_bad_dimensions_and_inputs() {
        let k = Key::from_seed(1);
        assert!(matches!(
            Protector::new(&k, 0),
            Err(Error::InvalidDimension { .. })
        ));
        assert!(matches!(
            Protector::new(&k, 100),
            Err(Error::InvalidDimension { dim: 100, .. })
        ));
        assert!(matches!(
            Protector::new(&k, 131072),
            Err(Error::InvalidDimension { .. })
        ));
        let p = Protector::new(&k, 8).unwrap();
        assert!(matches!(
            p.transform(&[0.0; 7]),
            Err(Error::DimensionMismatch {
                expected: 8,
                found: 7
            })
        ));
        let mut e = [0.5f32; 8];
        e[3] = f32::NAN;
        assert!(matches!(p.binary(&e), Err(Error::NonFinite { index: 3 })));
        assert!(matches!(p.dense(&[0.0; 8]), Err(Error::ZeroNorm)));
        let pep = Pepper::new(&k, 8);
        let h = BinaryHashmap::from_signs(&[1.0; 16]);
        assert!(matches!(
            pep.apply(&h),
            Err(Error::DimensionMismatch {
                expected: 8,
                found: 16
            })
        ));
        let d = Hashmap::Dense(DenseHashmap::new(vec![1.0; 4]).unwrap());
        assert!(matches!(
            pep.apply_hashmap(&d),
            Err(Error::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn fwht_is_an_involution_and_matches_hadamard() {
        let mut x = vec![1.0, 0.0, 0.0, 0.0];
        fwht(&mut x);
        assert_eq!(x, vec![0.5; 4]);
        fwht(&mut x);
        assert!((x[0] - 1.0).abs() < 1e-15 && x[1..].iter().all(|v| v.abs() < 1e-15));
    }

    #[test]
    fn key_stream_permutations_are_permutations() {
        let mut s = KeyStream::new("test", &Key::from_seed(2), 5);
        for n in [1usize, 2, 10, 257] {
            let mut p = s.permutation(n);
            p.sort_unstable();
            assert_eq!(p, (0..n as u32).collect::<Vec<_>>());
        }
        assert!(s.signs(70).iter().all(|&v| v == 1.0 || v == -1.0));
    }

    #[test]
    fn same_key_same_transform_other_key_other_transform() {
        let e: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let a = Protector::new(&Key::from_seed(1), 64).unwrap();
        let b = Protector::new(&Key::from_seed(1), 64).unwrap();
        let c = Protector::new(&Key::from_seed(2), 64).unwrap();
        assert_eq!(a.transform(&e).unwrap(), b.transform(&e).unwrap());
        assert_ne!(a.binary(&e).unwrap(), c.binary(&e).unwrap());
        assert_eq!(format!("{a:?}"), "Protector { dim: 64, output_dim: 64, .. }");
    }

    #[test]
    fn pepper_changes_dense_but_keeps_cosine() {
        let k = Key::from_seed(4);
        let pep = Pepper::new(&k, 70);
        let a = Hashmap::Dense(DenseHashmap::new((0..70).map(|i| i as f32 - 20.0).collect()).unwrap());
        let b = Hashmap::Dense(DenseHashmap::new((0..70).map(|i| (i as f32).cos()).collect()).unwrap());
        let (pa, pb) = (pep.apply_hashmap(&a).unwrap(), pep.apply_hashmap(&b).unwrap());
        assert_ne!(pa, a);
        assert!((pa.similarity(&pb).unwrap() - a.similarity(&b).unwrap()).abs() < 1e-12);
        assert!(pa.similarity(&a).unwrap() < 0.5);
    }
}
