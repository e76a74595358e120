//! Whitening of the embedding: a linear map fitted on public data that makes the embeddings'
//! covariance (nearly) isotropic before they are protected.
//!
//! Why: a protected template is `sign(R_k·e)` under a key-derived orthogonal `R_k`. Two services
//! with independent keys see `R_A·e` and `R_B·e`; across them a mated pair's expected score
//! moves by about `tr(R_Aᵀ·R_B·Σ)`, which is far from zero when the covariance `Σ` of the
//! embeddings has a few large directions, so an attacker holding both services' templates can
//! tell mated from non-mated pairs (D↔sys above the floor). With `Σ` proportional to the identity
//! that term is `tr(R_Aᵀ·R_B)`, which is small for random rotations. Full whitening also
//! magnifies the directions the encoder hardly uses (noise), so the covariance is shrunk towards
//! the isotropic one (Ledoit–Wolf style): `shrinkage` 0 whitens fully, 1 only centres.

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use nalgebra::{DMatrix, SymmetricEigen};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::encoder::{read_file, write_atomic};
use crate::net::l2_normalize;
use crate::{Error, Result};

/// File of a checkpoint folder holding the whitening's mean and matrix (safetensors).
pub const WHITENING_FILE: &str = "whitening.safetensors";

/// Smallest eigenvalue kept, relative to the largest: below it the covariance counts as singular.
const MIN_RELATIVE_EIGENVALUE: f64 = 1e-9;

/// What a checkpoint header records about its whitening (the numbers are in [`WHITENING_FILE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhiteningSpec {
    /// Weight of the isotropic target in the shrunk covariance, in [0, 1].
    pub shrinkage: f64,
    /// How many embeddings it was fitted on.
    pub samples: usize,
    /// What it was fitted on, in words (the data set; never the subjects a figure is reported on).
    pub fitted_on: String,
}

/// A fitted whitening: `e ↦ normalise(W·(e − μ))`, with `W` symmetric.
#[derive(Debug, Clone, PartialEq)]
pub struct Whitening {
    spec: WhiteningSpec,
    mean: Vec<f32>,
    /// `dim × dim`, row-major.
    matrix: Vec<f32>,
}

impl Whitening {
    /// Fits on `embeddings` (all of one dimension): their mean, and the inverse square root of
    /// their covariance shrunk towards `tr(Σ)/d · I` by `shrinkage`, scaled so that an already
    /// isotropic covariance gives the identity.
    ///
    /// Errors: [`Error::InvalidParameter`] for a shrinkage outside [0, 1], fewer than two
    /// embeddings, embeddings of different dimensions or with non-finite values, and a singular
    /// covariance (fewer embeddings than dimensions, say) with no shrinkage to regularise it.
    pub fn fit(embeddings: &[Vec<f32>], shrinkage: f64, fitted_on: impl Into<String>) -> Result<Whitening> {
        if !(0.0..=1.0).contains(&shrinkage) {
            return Err(Error::invalid(
                "shrinkage",
                format!("{shrinkage} is outside [0, 1] (0 whitens fully, 1 only centres)"),
            ));
        }
        let n = embeddings.len();
        if n < 2 {
            return Err(Error::invalid(
                "embeddings",
                format!("{n} embedding(s); a covariance needs at least 2"),
            ));
        }
        let d = embeddings[0].len();
        if d == 0 {
            return Err(Error::invalid("embeddings", "the embeddings are empty"));
        }
        for (i, e) in embeddings.iter().enumerate() {
            if e.len() != d {
                return Err(Error::invalid(
                    "embeddings",
                    format!("embedding {i} has {} values, embedding 0 has {d}", e.len()),
                ));
            }
            if e.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid(
                    "embeddings",
                    format!("embedding {i} is not finite"),
                ));
            }
        }
        let mut mean = vec![0f64; d];
        for e in embeddings {
            for (m, v) in mean.iter_mut().zip(e) {
                *m += f64::from(*v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let centred = DMatrix::from_fn(n, d, |i, j| f64::from(embeddings[i][j]) - mean[j]);
        let mut cov = centred.transpose() * &centred / (n - 1) as f64;
        let target = cov.trace() / d as f64;
        if !(target.is_finite() && target > 0.0) {
            return Err(Error::invalid("embeddings", "all embeddings are the same point"));
        }
        cov *= 1.0 - shrinkage;
        for k in 0..d {
            cov[(k, k)] += shrinkage * target;
        }
        let eig = SymmetricEigen::new(cov);
        let largest = eig.eigenvalues.max();
        let smallest = eig.eigenvalues.min();
        if smallest <= MIN_RELATIVE_EIGENVALUE * largest {
            return Err(Error::invalid(
                "embeddings",
                format!(
                    "the covariance of {n} embeddings in {d} dimensions is singular (eigenvalues \
                     {smallest:.3e} to {largest:.3e}); fit on more embeddings or with shrinkage > 0"
                ),
            ));
        }
        let scale = eig.eigenvalues.map(|l| (target / l).sqrt());
        let w = &eig.eigenvectors * DMatrix::from_diagonal(&scale) * eig.eigenvectors.transpose();
        Ok(Whitening {
            spec: WhiteningSpec {
                shrinkage,
                samples: n,
                fitted_on: fitted_on.into(),
            },
            mean: mean.iter().map(|&m| m as f32).collect(),
            // Row-major: nalgebra stores column-major, and W is symmetric, so either order
            // reads the same; transposing keeps it exact under rounding asymmetry.
            matrix: w.transpose().iter().map(|&v| v as f32).collect(),
        })
    }

    /// The embedding dimension it maps.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// How it was fitted.
    pub fn spec(&self) -> &WhiteningSpec {
        &self.spec
    }

    /// Whitens one embedding on the host and normalises it to unit length (the same map the
    /// encoder's forward pass applies).
    ///
    /// Errors: [`Error::InvalidParameter`] when `e` is not of [`Whitening::dim`] values.
    pub fn apply(&self, e: &[f32]) -> Result<Vec<f32>> {
        let d = self.dim();
        if e.len() != d {
            return Err(Error::invalid(
                "embedding",
                format!("{} values, the whitening maps {d}", e.len()),
            ));
        }
        let c: Vec<f64> = e.iter().zip(&self.mean).map(|(v, m)| f64::from(v - m)).collect();
        let mut out: Vec<f64> = self
            .matrix
            .chunks(d)
            .map(|row| row.iter().zip(&c).map(|(w, x)| f64::from(*w) * x).sum())
            .collect();
        let norm = out.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        out.iter_mut().for_each(|v| *v /= norm);
        Ok(out.into_iter().map(|v| v as f32).collect())
    }

    /// The same map on a `[n, dim]` batch of embeddings, differentiable (the white-box
    /// attacker's gradients and the decoder's identity loss run through it).
    pub(crate) fn apply_tensor(&self, e: Tensor<2>) -> Tensor<2> {
        let d = self.dim();
        let device = e.device();
        let mean = Tensor::<2>::from_data(TensorData::new(self.mean.clone(), [1, d]), &device);
        // Row-major W read as [d, d] and used as Wᵀ on row vectors (W is symmetric).
        let w = Tensor::<2>::from_data(TensorData::new(self.matrix.clone(), [d, d]), &device);
        l2_normalize((e - mean).matmul(w.transpose()))
    }

    /// Writes the mean and matrix to `path` (safetensors, atomically).
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let d = self.dim();
        let mean = f32_bytes(&self.mean);
        let matrix = f32_bytes(&self.matrix);
        let tensors = [
            ("mean", TensorView::new(Dtype::F32, vec![d], &mean)),
            ("matrix", TensorView::new(Dtype::F32, vec![d, d], &matrix)),
        ];
        let mut views = Vec::with_capacity(2);
        for (name, view) in tensors {
            let view = view.map_err(|e| Error::Weights {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            views.push((name, view));
        }
        let bytes = safetensors::serialize(views, None).map_err(|e| Error::Weights {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_atomic(path, &bytes)
    }

    /// Reads what [`Whitening::save`] wrote, for an encoder of `dim` dimensions.
    ///
    /// Errors: [`Error::MissingFile`], and [`Error::Weights`] naming a missing tensor, a wrong
    /// shape or type, or non-finite values.
    pub(crate) fn load(path: &Path, dim: usize, spec: WhiteningSpec) -> Result<Whitening> {
        let bytes = read_file(path)?;
        let bad = |reason: String| Error::Weights {
            path: path.to_path_buf(),
            reason,
        };
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st.tensor(name).map_err(|_| bad(format!("no tensor {name:?}")))?;
            if t.dtype() != Dtype::F32 || t.shape() != shape {
                return Err(bad(format!(
                    "tensor {name:?} is {:?} {:?}, expected F32 {shape:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(bad(format!("tensor {name:?} holds a non-finite value")));
            }
            Ok(v)
        };
        Ok(Whitening {
            spec,
            mean: read("mean", &[dim])?,
            matrix: read("matrix", &[dim, dim])?,
        })
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Anisotropic, correlated points: a few large directions, as a trained encoder makes.
    fn skewed(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let z: Vec<f32> = (0..d)
                    .map(|k| rng.gen_range(-1.0..1.0) * (1.0 + 4.0 / (1 + k) as f32))
                    .collect();
                (0..d).map(|k| z[k] + 0.5 * z[(k + 1) % d] + 0.3).collect()
            })
            .collect()
    }

    fn covariance(x: &[Vec<f32>]) -> DMatrix<f64> {
        let (n, d) = (x.len(), x[0].len());
        let m = DMatrix::from_fn(n, d, |i, j| f64::from(x[i][j]));
        let mean = m.row_mean();
        let c = DMatrix::from_fn(n, d, |i, j| m[(i, j)] - mean[j]);
        c.transpose() * &c / (n - 1) as f64
    }

    #[test]
    fn full_whitening_makes_the_covariance_isotropic() {
        let x = skewed(4000, 8, 1);
        let w = Whitening::fit(&x, 0.0, "test").unwrap();
        // Before normalisation the whitened covariance is target·I; normalising rows of an
        // isotropic cloud keeps it isotropic.
        let y: Vec<Vec<f32>> = x.iter().map(|e| w.apply(e).unwrap()).collect();
        let c = covariance(&y);
        let eig = SymmetricEigen::new(c.clone()).eigenvalues;
        assert!(
            eig.max() / eig.min() < 1.3,
            "eigenvalue spread {}",
            eig.max() / eig.min()
        );
        let before = SymmetricEigen::new(covariance(&x)).eigenvalues;
        assert!(before.max() / before.min() > 5.0);
    }

    #[test]
    fn shrinkage_one_only_centres() {
        let x = skewed(500, 6, 2);
        let w = Whitening::fit(&x, 1.0, "test").unwrap();
        let e = &x[3];
        let mean: Vec<f32> = (0..6)
            .map(|j| x.iter().map(|r| r[j]).sum::<f32>() / 500.0)
            .collect();
        let c: Vec<f32> = e.iter().zip(&mean).map(|(a, b)| a - b).collect();
        let n = c.iter().map(|v| v * v).sum::<f32>().sqrt();
        for (a, b) in w.apply(e).unwrap().iter().zip(&c) {
            assert!((a - b / n).abs() < 1e-4);
        }
    }

    #[test]
    fn bad_fits_are_refused_with_the_reason() {
        let x = skewed(10, 4, 3);
        fn msg<T: std::fmt::Debug>(r: Result<T>) -> String {
            r.unwrap_err().to_string()
        }
        assert!(msg(Whitening::fit(&x, 1.5, "t")).contains("outside [0, 1]"));
        assert!(msg(Whitening::fit(&x, f64::NAN, "t")).contains("outside [0, 1]"));
        assert!(msg(Whitening::fit(&x[..1], 0.5, "t")).contains("at least 2"));
        let mut ragged = x.clone();
        ragged[4].pop();
        assert!(msg(Whitening::fit(&ragged, 0.5, "t")).contains("embedding 4 has 3 values"));
        let mut nan = x.clone();
        nan[2][1] = f32::NAN;
        assert!(msg(Whitening::fit(&nan, 0.5, "t")).contains("embedding 2 is not finite"));
        // 3 points in 8 dimensions: singular without shrinkage, fine with it.
        let few = skewed(3, 8, 4);
        assert!(msg(Whitening::fit(&few, 0.0, "t")).contains("singular"));
        assert!(Whitening::fit(&few, 0.3, "t").is_ok());
        let same = vec![vec![1.0f32; 4]; 5];
        assert!(msg(Whitening::fit(&same, 0.5, "t")).contains("same point"));
        let w = Whitening::fit(&x, 0.5, "t").unwrap();
        assert!(msg(w.apply(&[1.0, 2.0])).contains("2 values, the whitening maps 4"));
    }

    #[test]
    fn saved_and_loaded_it_is_the_same_map() {
        let x = skewed(200, 5, 5);
        let w = Whitening::fit(&x, 0.2, "test data").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WHITENING_FILE);
        w.save(&path).unwrap();
        let back = Whitening::load(&path, 5, w.spec().clone()).unwrap();
        assert_eq!(back, w);
        let err = Whitening::load(&path, 6, w.spec().clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected F32 [6]"), "{err}");
        std::fs::write(&path, b"not safetensors").unwrap();
        assert!(Whitening::load(&path, 5, w.spec().clone()).is_err());
    }

    #[test]
    fn the_tensor_map_matches_the_host_map() {
        let x = skewed(100, 6, 6);
        let w = Whitening::fit(&x, 0.1, "t").unwrap();
        let flat: Vec<f32> = x[..4].iter().flatten().copied().collect();
        let device = crate::compute_device();
        let t = Tensor::<2>::from_data(TensorData::new(flat, [4, 6]), &device);
        let got = crate::encoder::read_f32(w.apply_tensor(t)).unwrap();
        for (row, e) in got.chunks(6).zip(&x[..4]) {
            for (a, b) in row.iter().zip(w.apply(e).unwrap()) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn an_encoder_saves_loads_and_applies_its_whitening() {
        let cfg = crate::EncoderConfig {
            input_size: 32,
            channels: vec![4, 8],
            embedding_dim: 16,
            ..Default::default()
        };
        let encoder = crate::Encoder::new(&cfg, 3).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let images: Vec<image::GrayImage> = (0..40)
            .map(|_| image::GrayImage::from_fn(32, 32, |_, _| image::Luma([rng.gen::<u8>()])))
            .collect();
        let raw = encoder.embed(&images).unwrap();
        let w = encoder.fit_whitening(&images, 0.2, "noise").unwrap();
        let whitened = encoder.clone().with_whitening(w.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let meta = crate::CheckpointMeta::new(None, "test", 0, None);
        whitened.save(dir.path(), &meta).unwrap();
        let back = crate::Encoder::load(dir.path()).unwrap();
        assert_eq!(back.whitening(), Some(&w));
        for (got, e) in back.embed(&images[..5]).unwrap().iter().zip(&raw) {
            for (a, b) in got.iter().zip(w.apply(e).unwrap()) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
        // The white-box gradient runs through the whitening: its cosine is the whitened one.
        let pixels: Vec<f32> = images[0].as_raw().iter().map(|&p| f32::from(p) / 255.0).collect();
        let target = w.apply(&raw[0]).unwrap();
        let (cos, _) = back.cosine_gradient(&pixels, &[target]).unwrap();
        assert!((cos[0] - 1.0).abs() < 1e-3, "{}", cos[0]);
        // Saving it without the whitening removes the file; a header naming a whitening whose
        // file is missing is refused.
        back.clone().without_whitening().save(dir.path(), &meta).unwrap();
        assert!(!dir.path().join(WHITENING_FILE).exists());
        assert!(crate::Encoder::load(dir.path()).unwrap().whitening().is_none());
        whitened.save(dir.path(), &meta).unwrap();
        std::fs::remove_file(dir.path().join(WHITENING_FILE)).unwrap();
        let err = crate::Encoder::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(WHITENING_FILE), "{err}");
        let other = Whitening::fit(&skewed(50, 8, 1), 0.5, "t").unwrap();
        let err = encoder.with_whitening(other).unwrap_err().to_string();
        assert!(
            err.contains("maps 8 dimensions, the encoder embeds in 16"),
            "{err}"
        );
    }
}
