//! Hashmaps (protected templates): binary sign vectors matched by Hamming distance, and dense
//! float vectors matched by cosine, with one binary wire format for both.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{kernel, Error, Result};

/// Largest dimension a hashmap may have (bits for binary, floats for dense).
pub const MAX_DIM: usize = 65536;

/// Magic bytes that start every encoded hashmap.
pub const MAGIC: &[u8; 3] = b"NHM";

/// The wire-format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Length of the encoded header: magic, version, kind, dimension.
pub const HEADER_LEN: usize = 9;

/// Which kind of hashmap: the default compact binary one, or dense floats (research).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashmapKind {
    /// `sign(R_k e)`: one bit per dimension, matched by Hamming distance.
    Binary,
    /// `R_k e` as floats, matched by cosine similarity.
    Dense,
}

impl HashmapKind {
    /// The kind byte in the wire format.
    fn code(self) -> u8 {
        match self {
            HashmapKind::Binary => 0,
            HashmapKind::Dense => 1,
        }
    }
}

impl fmt::Display for HashmapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashmapKind::Binary => "binary",
            HashmapKind::Dense => "dense",
        })
    }
}

impl FromStr for HashmapKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "binary" => Ok(HashmapKind::Binary),
            "dense" => Ok(HashmapKind::Dense),
            _ => Err(Error::UnknownKindName { found: s.to_owned() }),
        }
    }
}

/// Checks that a dimension is within `1..=MAX_DIM`.
pub(crate) fn check_dim(dim: usize) -> Result<()> {
    if dim == 0 {
        return Err(Error::InvalidDimension {
            dim,
            reason: "must be at least 1",
        });
    }
    if dim > MAX_DIM {
        return Err(Error::InvalidDimension {
            dim,
            reason: "must be at most 65536",
        });
    }
    Ok(())
}

/// Number of u64 words that hold `dim` bits.
pub fn words_for(dim: usize) -> usize {
    dim.div_ceil(64)
}

/// Mask of the bits in use in the last word of a `dim`-bit hashmap.
fn last_word_mask(dim: usize) -> u64 {
    match dim % 64 {
        0 => u64::MAX,
        r => (1u64 << r) - 1,
    }
}

/// A binary hashmap: `dim` bits, bit `i` in word `i / 64` at position `i % 64` (little-endian),
/// bits beyond `dim` always zero (so Hamming distance needs no masking).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinaryHashmap {
    dim: usize,
    words: Vec<u64>,
}

impl BinaryHashmap {
    /// A hashmap from packed words; checks the word count and that padding bits are zero.
    pub fn from_words(dim: usize, words: Vec<u64>) -> Result<Self> {
        check_dim(dim)?;
        let expected = words_for(dim);
        if words.len() != expected {
            return Err(Error::WordCount {
                dim,
                expected,
                found: words.len(),
            });
        }
        if words[expected - 1] & !last_word_mask(dim) != 0 {
            return Err(Error::PaddingBitsSet);
        }
        Ok(BinaryHashmap { dim, words })
    }

    /// Binarises a vector: bit `i` is 1 iff `v[i] >= 0` (NaN gives 0).
    ///
    /// # Panics
    /// If `v` is empty or longer than [`MAX_DIM`]; use [`BinaryHashmap::try_from_signs`] for
    /// vectors that come from outside.
    pub fn from_signs(v: &[f32]) -> Self {
        match Self::try_from_signs(v) {
            Ok(h) => h,
            Err(e) => panic!("BinaryHashmap::from_signs: {e}"),
        }
    }

    /// Binarises a vector like [`BinaryHashmap::from_signs`], with an error for a bad length.
    pub fn try_from_signs(v: &[f32]) -> Result<Self> {
        check_dim(v.len())?;
        let mut words = vec![0u64; words_for(v.len())];
        for (w, chunk) in words.iter_mut().zip(v.chunks(64)) {
            for (j, &x) in chunk.iter().enumerate() {
                *w |= u64::from(x >= 0.0) << j;
            }
        }
        Ok(BinaryHashmap { dim: v.len(), words })
    }

    /// Number of bits.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The packed bits.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Bit `i` (false beyond the dimension).
    pub fn bit(&self, i: usize) -> bool {
        i < self.dim && (self.words[i / 64] >> (i % 64)) & 1 == 1
    }

    /// Number of differing bits.
    pub fn hamming(&self, o: &Self) -> Result<u32> {
        if self.dim != o.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                found: o.dim,
            });
        }
        Ok(kernel::hamming(&self.words, &o.words))
    }

    /// `1 - hamming / dim`, in [0, 1]: 1 for identical, about 0.5 for unrelated hashmaps.
    pub fn similarity(&self, o: &Self) -> Result<f64> {
        Ok(1.0 - f64::from(self.hamming(o)?) / self.dim as f64)
    }
}

/// A dense hashmap: finite floats, not all zero.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseHashmap {
    values: Vec<f32>,
}

impl DenseHashmap {
    /// A dense hashmap; rejects an empty or too long vector, NaN/infinite values and the
    /// zero vector (whose cosine is undefined).
    pub fn new(values: Vec<f32>) -> Result<Self> {
        check_dim(values.len())?;
        if let Some(index) = values.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite { index });
        }
        if values.iter().all(|&x| x == 0.0) {
            return Err(Error::ZeroNorm);
        }
        Ok(DenseHashmap { values })
    }

    /// The values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Number of values.
    pub fn dim(&self) -> usize {
        self.values.len()
    }

    /// Cosine similarity in [-1, 1], computed in f64.
    pub fn cosine(&self, o: &Self) -> Result<f64> {
        if self.dim() != o.dim() {
            return Err(Error::DimensionMismatch {
                expected: self.dim(),
                found: o.dim(),
            });
        }
        let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
        for (&a, &b) in self.values.iter().zip(&o.values) {
            let (a, b) = (f64::from(a), f64::from(b));
            ab += a * b;
            aa += a * a;
            bb += b * b;
        }
        // Values are finite and not all zero, but their squares may underflow to zero.
        if aa == 0.0 || bb == 0.0 {
            return Err(Error::ZeroNorm);
        }
        Ok((ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0))
    }
}

/// A protected template of either kind: what a client sends and a server stores.
///
/// With serde it is the base64 text of its wire format (see [`Hashmap::to_bytes`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Hashmap {
    /// Bits, matched by Hamming distance.
    Binary(BinaryHashmap),
    /// Floats, matched by cosine.
    Dense(DenseHashmap),
}

impl Hashmap {
    /// Its kind.
    pub fn kind(&self) -> HashmapKind {
        match self {
            Hashmap::Binary(_) => HashmapKind::Binary,
            Hashmap::Dense(_) => HashmapKind::Dense,
        }
    }

    /// Its dimension (bits or values).
    pub fn dim(&self) -> usize {
        match self {
            Hashmap::Binary(h) => h.dim(),
            Hashmap::Dense(h) => h.dim(),
        }
    }

    /// Similarity, higher is more similar: binary `1 - hamming/dim` in [0, 1], dense cosine in
    /// [-1, 1]. Hashmaps of different kinds or dimensions are an error.
    pub fn similarity(&self, o: &Hashmap) -> Result<f64> {
        match (self, o) {
            (Hashmap::Binary(a), Hashmap::Binary(b)) => a.similarity(b),
            (Hashmap::Dense(a), Hashmap::Dense(b)) => a.cosine(b),
            _ => Err(Error::KindMismatch {
                expected: self.kind(),
                found: o.kind(),
            }),
        }
    }

    /// The wire format: `NHM`, version 1, kind (0 binary, 1 dense), dim as u32 LE, then the
    /// payload: binary `ceil(dim/64)` u64 LE words, dense `dim` f32 LE.
    pub fn to_bytes(&self) -> Vec<u8> {
        let dim = self.dim();
        let payload = match self {
            Hashmap::Binary(h) => 8 * h.words.len(),
            Hashmap::Dense(h) => 4 * h.values.len(),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + payload);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(self.kind().code());
        // Dimensions are at most MAX_DIM, so they fit in u32.
        out.extend_from_slice(&(dim as u32).to_le_bytes());
        match self {
            Hashmap::Binary(h) => h
                .words
                .iter()
                .for_each(|w| out.extend_from_slice(&w.to_le_bytes())),
            Hashmap::Dense(h) => h
                .values
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        }
        out
    }

    /// Decodes and validates the wire format; every malformation has its own error.
    pub fn from_bytes(b: &[u8]) -> Result<Hashmap> {
        let magic_len = b.len().min(3);
        if b[..magic_len] != MAGIC[..magic_len] {
            return Err(Error::BadMagic {
                found: b[..magic_len].to_vec(),
            });
        }
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated {
                needed: HEADER_LEN,
                found: b.len(),
            });
        }
        if b[3] != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { found: b[3] });
        }
        let kind = match b[4] {
            0 => HashmapKind::Binary,
            1 => HashmapKind::Dense,
            found => return Err(Error::UnknownKind { found }),
        };
        let dim = u32::from_le_bytes([b[5], b[6], b[7], b[8]]) as usize;
        check_dim(dim)?;
        let payload_len = match kind {
            HashmapKind::Binary => 8 * words_for(dim),
            HashmapKind::Dense => 4 * dim,
        };
        let needed = HEADER_LEN + payload_len;
        if b.len() < needed {
            return Err(Error::Truncated {
                needed,
                found: b.len(),
            });
        }
        if b.len() > needed {
            return Err(Error::TrailingBytes { n: b.len() - needed });
        }
        let payload = &b[HEADER_LEN..];
        match kind {
            HashmapKind::Binary => {
                let words = payload
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect();
                Ok(Hashmap::Binary(BinaryHashmap::from_words(dim, words)?))
            }
            HashmapKind::Dense => {
                let values = payload
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Ok(Hashmap::Dense(DenseHashmap::new(values)?))
            }
        }
    }

    /// Standard (padded) base64 of [`Hashmap::to_bytes`].
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_bytes())
    }

    /// Decodes [`Hashmap::to_base64`] text.
    pub fn from_base64(s: &str) -> Result<Hashmap> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(Error::Base64)?;
        Hashmap::from_bytes(&bytes)
    }

    /// The binary hashmap inside, if it is one.
    pub fn as_binary(&self) -> Option<&BinaryHashmap> {
        match self {
            Hashmap::Binary(h) => Some(h),
            Hashmap::Dense(_) => None,
        }
    }

    /// The dense hashmap inside, if it is one.
    pub fn as_dense(&self) -> Option<&DenseHashmap> {
        match self {
            Hashmap::Dense(h) => Some(h),
            Hashmap::Binary(_) => None,
        }
    }
}

impl From<BinaryHashmap> for Hashmap {
    fn from(h: BinaryHashmap) -> Self {
        Hashmap::Binary(h)
    }
}

impl From<DenseHashmap> for Hashmap {
    fn from(h: DenseHashmap) -> Self {
        Hashmap::Dense(h)
    }
}

impl Serialize for Hashmap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Hashmap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hashmap::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(dim: usize, words: Vec<u64>) -> Hashmap {
        Hashmap::Binary(BinaryHashmap::from_words(dim, words).unwrap())
    }

    #[test]
    fn kind_names_round_trip() {
        for k in [HashmapKind::Binary, HashmapKind::Dense] {
            assert_eq!(k.to_string().parse::<HashmapKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert!(matches!(
            "Binary".parse::<HashmapKind>(),
            Err(Error::UnknownKindName { .. })
        ));
    }

    #[test]
    fn from_signs_packs_little_endian() {
        let mut v = vec![-1.0f32; 70];
        v[0] = 0.0;
        v[65] = 2.0;
        let h = BinaryHashmap::from_signs(&v);
        assert_eq!(h.words(), &[1, 2]);
        assert!(h.bit(0) && h.bit(65) && !h.bit(1) && !h.bit(70));
        assert!(matches!(
            BinaryHashmap::try_from_signs(&[]),
            Err(Error::InvalidDimension { dim: 0, .. })
        ));
    }

    #[test]
    fn from_words_rejects_bad_input() {
        assert!(matches!(
            BinaryHashmap::from_words(65, vec![0]),
            Err(Error::WordCount { expected: 2, .. })
        ));
        assert!(matches!(
            BinaryHashmap::from_words(65, vec![0, 2]),
            Err(Error::PaddingBitsSet)
        ));
        assert!(BinaryHashmap::from_words(65, vec![u64::MAX, 1]).is_ok());
        assert!(matches!(
            BinaryHashmap::from_words(0, vec![]),
            Err(Error::InvalidDimension { .. })
        ));
        assert!(matches!(
            BinaryHashmap::from_words(MAX_DIM + 64, vec![0; MAX_DIM / 64 + 1]),
            Err(Error::InvalidDimension { .. })
        ));
    }

    #[test]
    fn similarities() {
        let a = BinaryHashmap::from_words(128, vec![0, 0]).unwrap();
        let b = BinaryHashmap::from_words(128, vec![u64::MAX, 0]).unwrap();
        assert_eq!(a.hamming(&b).unwrap(), 64);
        assert_eq!(a.similarity(&b).unwrap(), 0.5);
        let c = BinaryHashmap::from_words(64, vec![0]).unwrap();
        assert!(matches!(
            a.hamming(&c),
            Err(Error::DimensionMismatch {
                expected: 128,
                found: 64
            })
        ));

        let x = DenseHashmap::new(vec![1.0, 0.0]).unwrap();
        let y = DenseHashmap::new(vec![1.0, 1.0]).unwrap();
        assert!((x.cosine(&y).unwrap() - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        let z = DenseHashmap::new(vec![1.0, 0.0, 0.0]).unwrap();
        assert!(matches!(x.cosine(&z), Err(Error::DimensionMismatch { .. })));
        let tiny = DenseHashmap::new(vec![1e-45, 0.0]).unwrap();
        assert_eq!(tiny.cosine(&x).unwrap(), 1.0);
        let hx = Hashmap::Dense(x);
        let hb = Hashmap::Binary(a);
        assert!(matches!(hx.similarity(&hb), Err(Error::KindMismatch { .. })));
    }

    #[test]
    fn dense_rejects_bad_values() {
        assert!(matches!(
            DenseHashmap::new(vec![]),
            Err(Error::InvalidDimension { .. })
        ));
        assert!(matches!(
            DenseHashmap::new(vec![1.0, f32::NAN]),
            Err(Error::NonFinite { index: 1 })
        ));
        assert!(matches!(
            DenseHashmap::new(vec![f32::INFINITY]),
            Err(Error::NonFinite { index: 0 })
        ));
        assert!(matches!(DenseHashmap::new(vec![0.0, -0.0]), Err(Error::ZeroNorm)));
    }

    #[test]
    fn codec_layout() {
        let h = bin(3, vec![0b101]);
        let b = h.to_bytes();
        assert_eq!(&b[..9], &[b'N', b'H', b'M', 1, 0, 3, 0, 0, 0]);
        assert_eq!(&b[9..], &5u64.to_le_bytes());
        assert_eq!(Hashmap::from_bytes(&b).unwrap(), h);
        let d = Hashmap::Dense(DenseHashmap::new(vec![1.5]).unwrap());
        let b = d.to_bytes();
        assert_eq!(&b[..9], &[b'N', b'H', b'M', 1, 1, 1, 0, 0, 0]);
        assert_eq!(&b[9..], &1.5f32.to_le_bytes());
        assert_eq!(Hashmap::from_base64(&d.to_base64()).unwrap(), d);
    }

    #[test]
    fn codec_rejects_every_malformation() {
        let good = bin(70, vec![1, 0b11]).to_bytes();
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            Hashmap::from_bytes(&b)
        };
        assert!(matches!(with(0, b'X'), Err(Error::BadMagic { .. })));
        assert!(matches!(Hashmap::from_bytes(b"NX"), Err(Error::BadMagic { .. })));
        assert!(matches!(
            Hashmap::from_bytes(b""),
            Err(Error::Truncated { needed: 9, found: 0 })
        ));
        assert!(matches!(
            Hashmap::from_bytes(&good[..5]),
            Err(Error::Truncated { needed: 9, found: 5 })
        ));
        assert!(matches!(with(3, 2), Err(Error::UnsupportedVersion { found: 2 })));
        assert!(matches!(with(4, 7), Err(Error::UnknownKind { found: 7 })));
        let mut zero_dim = good[..9].to_vec();
        zero_dim[5] = 0;
        assert!(matches!(
            Hashmap::from_bytes(&zero_dim),
            Err(Error::InvalidDimension { dim: 0, .. })
        ));
        let mut huge = good.clone();
        huge[5..9].copy_from_slice(&(MAX_DIM as u32 + 1).to_le_bytes());
        assert!(matches!(
            Hashmap::from_bytes(&huge),
            Err(Error::InvalidDimension { .. })
        ));
        assert!(matches!(
            Hashmap::from_bytes(&good[..good.len() - 1]),
            Err(Error::Truncated {
                needed: 25,
                found: 24
            })
        ));
        let mut long = good.clone();
        long.extend_from_slice(&[0, 0]);
        assert!(matches!(
            Hashmap::from_bytes(&long),
            Err(Error::TrailingBytes { n: 2 })
        ));
        // Bit 70 is beyond the dimension: byte 9 + 8 holds bits 64..72.
        assert!(matches!(with(17, 0b0100_0011), Err(Error::PaddingBitsSet)));
        let mut nan = Hashmap::Dense(DenseHashmap::new(vec![1.0, 2.0]).unwrap()).to_bytes();
        nan[13..17].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            Hashmap::from_bytes(&nan),
            Err(Error::NonFinite { index: 1 })
        ));
        let zero = [b'N', b'H', b'M', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(Hashmap::from_bytes(&zero), Err(Error::ZeroNorm)));
        assert!(matches!(
            Hashmap::from_base64("not base64!"),
            Err(Error::Base64(_))
        ));
    }

    #[test]
    fn serde_uses_base64() {
        let h = bin(3, vec![0b101]);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{}\"", h.to_base64()));
        assert_eq!(serde_json::from_str::<Hashmap>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hashmap>("\"AAAA\"").is_err());
    }
}
