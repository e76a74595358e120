//! dlib's 5-point face landmark model (an ensemble of regression trees), read from safetensors
//! and run exactly as dlib's `shape_predictor::operator()` runs it.
//!
//! The model (Kazemi and Sullivan's cascade of regression trees) starts from a mean shape in the
//! face box's normalised frame (box top-left at (0, 0), bottom-right at (1, 1)) and refines it
//! over `C` cascades. Each cascade reads `F` grey pixels at positions fixed relative to the
//! current shape, then `T` trees each compare `S` pairs of those pixels to pick a leaf, whose
//! offsets are added to the shape. dlib's rules, followed here:
//!
//! * a feature pixel `i` of cascade `c` sits at `delta[c][i]`, turned and scaled by the
//!   similarity that best maps the initial shape onto the current one (least squares, cast to
//!   `f32` as dlib does), added to the current position of landmark `anchor_idx[c][i]`, mapped
//!   into the image by the box, and rounded to the nearest pixel (`floor(v + 0.5)`);
//! * a feature pixel outside the image reads 0;
//! * the image is 8-bit grey; dlib turns RGB into grey as `(r + g + b) / 3` in integers
//!   (truncating), which [`to_grey`] reproduces: convert with it before calling
//!   [`LandmarkModel::predict`] to get what dlib gets from the RGB image;
//! * tree node `i` goes to its left child `2i + 1` when `f[idx1] - f[idx2] > thresh` (in `f32`),
//!   else to `2i + 2`; a node `>= S` is leaf `node - S`;
//! * the final landmarks are mapped into the image and rounded to whole pixels, as dlib's
//!   `full_object_detection` holds them.

use super::{FaceBox, FaceError, Point};
use image::{GrayImage, RgbImage};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// The `format` tag in the metadata of a landmark model file this reader understands.
pub const LANDMARK_FORMAT: &str = "nhm-dlib-shape-predictor/1";

/// One split node of a regression tree: compare feature pixels `idx1` and `idx2`.
#[derive(Debug, Clone, Copy)]
struct Split {
    idx1: u32,
    idx2: u32,
    thresh: f32,
}

/// dlib's regression-tree face landmark model (`dlib::shape_predictor`), e.g. the 5-point model
/// `shape_predictor_5_face_landmarks.dat` converted to `models/face/landmarks.safetensors`.
///
/// Every index in the file is checked when the model is read, so [`predict`](Self::predict)
/// cannot index out of range whatever the file held.
#[derive(Clone)]
pub struct LandmarkModel {
    /// Number of landmarks N.
    num_parts: usize,
    /// Number of cascades C.
    cascades: usize,
    /// Feature pixels per cascade F.
    features: usize,
    /// Trees per cascade T.
    trees: usize,
    /// Split nodes per tree S (leaves per tree are S + 1).
    splits_per_tree: usize,
    /// Mean shape, x0, y0, x1, y1, … in the box's normalised frame, `[2N]`.
    initial_shape: Vec<f32>,
    /// Landmark each feature pixel hangs from, `[C, F]`, each `< N`.
    anchor_idx: Vec<u32>,
    /// Offset of each feature pixel from its landmark in the initial shape's frame, `[C, F]`.
    deltas: Vec<[f32; 2]>,
    /// Split nodes, `[C, T, S]`, each index `< F`.
    splits: Vec<Split>,
    /// Leaf offsets, `[C, T, S + 1, 2N]`.
    leaf_values: Vec<f32>,
}

impl std::fmt::Debug for LandmarkModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LandmarkModel")
            .field("num_parts", &self.num_parts)
            .field("cascades", &self.cascades)
            .field("features", &self.features)
            .field("trees", &self.trees)
            .field("splits_per_tree", &self.splits_per_tree)
            .finish_non_exhaustive()
    }
}

impl LandmarkModel {
    /// Reads the model from a safetensors file, as written by `scripts/convert-dlib-face.py`.
    /// Errors name the path.
    pub fn load(path: &Path) -> Result<Self, FaceError> {
        let bytes = std::fs::read(path).map_err(|source| FaceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|e| FaceError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Reads the model from the bytes of a safetensors file and checks it completely: format
    /// tag, every tensor's dtype and shape against the others, every index in range, every
    /// value finite.
    ///
    /// Tensors (all `F32` unless said): `initial_shape` `[2N]`, `anchor_idx` `[C, F]` `I32`,
    /// `deltas` `[C, F, 2]`, `split_idx1` and `split_idx2` `[C, T, S]` `I32`, `split_thresh`
    /// `[C, T, S]`, `leaf_values` `[C, T, S + 1, 2N]`; metadata `format` =
    /// [`LANDMARK_FORMAT`] and `num_parts` = N.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FaceError> {
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|source| FaceError::Corrupt { source })?;
        let st = SafeTensors::deserialize(bytes).map_err(|source| FaceError::Corrupt { source })?;
        let meta = header.metadata().as_ref();
        let meta_get = |key: &'static str| meta.and_then(|m| m.get(key));

        let format = meta_get("format").ok_or(FaceError::MissingMetadata { key: "format" })?;
        if format != LANDMARK_FORMAT {
            return Err(FaceError::WrongFormat {
                expected: LANDMARK_FORMAT,
                found: format.clone(),
            });
        }

        // initial_shape fixes N.
        let initial = Tensor::read(&st, "initial_shape", Dtype::F32, 1)?;
        let shape_len = initial.shape[0];
        if shape_len == 0 || shape_len % 2 != 0 {
            return Err(FaceError::WrongShape {
                name: "initial_shape",
                expected: vec![2 * (shape_len / 2).max(1)],
                actual: initial.shape.clone(),
            });
        }
        let num_parts = shape_len / 2;
        let initial_shape = initial.f32s()?;

        let declared = meta_get("num_parts").ok_or(FaceError::MissingMetadata { key: "num_parts" })?;
        match declared.trim().parse::<usize>() {
            Ok(n) if n == num_parts => {}
            Ok(_) => {
                return Err(FaceError::BadMetadata {
                    key: "num_parts",
                    value: declared.clone(),
                    reason: format!("initial_shape holds {num_parts} landmarks"),
                })
            }
            Err(e) => {
                return Err(FaceError::BadMetadata {
                    key: "num_parts",
                    value: declared.clone(),
                    reason: format!("not a count: {e}"),
                })
            }
        }

        // anchor_idx fixes C and F.
        let anchors = Tensor::read(&st, "anchor_idx", Dtype::I32, 2)?;
        let (cascades, features) = (anchors.shape[0], anchors.shape[1]);
        let anchor_idx = anchors.indices(num_parts)?;

        let deltas_t = Tensor::read(&st, "deltas", Dtype::F32, 3)?;
        deltas_t.expect_shape(&[cascades, features, 2])?;
        let deltas = deltas_t.f32s()?.chunks_exact(2).map(|d| [d[0], d[1]]).collect();

        // split_idx1 fixes T and S.
        let idx1_t = Tensor::read(&st, "split_idx1", Dtype::I32, 3)?;
        if idx1_t.shape[0] != cascades {
            return Err(FaceError::WrongShape {
                name: "split_idx1",
                expected: vec![cascades, idx1_t.shape[1], idx1_t.shape[2]],
                actual: idx1_t.shape.clone(),
            });
        }
        let (trees, splits_per_tree) = (idx1_t.shape[1], idx1_t.shape[2]);
        let split_shape = [cascades, trees, splits_per_tree];
        let idx1 = idx1_t.indices(features)?;
        let idx2_t = Tensor::read(&st, "split_idx2", Dtype::I32, 3)?;
        idx2_t.expect_shape(&split_shape)?;
        let idx2 = idx2_t.indices(features)?;
        let thresh_t = Tensor::read(&st, "split_thresh", Dtype::F32, 3)?;
        thresh_t.expect_shape(&split_shape)?;
        let thresh = thresh_t.f32s()?;
        let splits = idx1
            .iter()
            .zip(&idx2)
            .zip(&thresh)
            .map(|((&idx1, &idx2), &thresh)| Split { idx1, idx2, thresh })
            .collect();

        let leaves_t = Tensor::read(&st, "leaf_values", Dtype::F32, 4)?;
        leaves_t.expect_shape(&[cascades, trees, splits_per_tree + 1, shape_len])?;
        let leaf_values = leaves_t.f32s()?;

        Ok(Self {
            num_parts,
            cascades,
            features,
            trees,
            splits_per_tree,
            initial_shape,
            anchor_idx,
            deltas,
            splits,
            leaf_values,
        })
    }

    /// Number of landmarks the model places (5 for dlib's 5-point model).
    pub fn num_parts(&self) -> usize {
        self.num_parts
    }

    /// Number of cascades (15 in dlib's 5-point model).
    pub fn num_cascades(&self) -> usize {
        self.cascades
    }

    /// The landmarks of the face in `face`, in image pixels, rounded to whole pixels exactly as
    /// dlib's `shape_predictor` returns them (dlib's face chips and descriptors start from these
    /// rounded points).
    ///
    /// `img` is grey; for an RGB image pass [`to_grey`]`(&rgb)`, which is the conversion dlib
    /// applies when given RGB. Feature pixels outside the image read 0, as in dlib. For the
    /// 5-point model the order is dlib's: 0, 1 the outer and inner corner of the eye on the
    /// image's right, 2, 3 the outer and inner corner of the eye on the image's left, 4 the base
    /// of the nose.
    pub fn predict(&self, img: &GrayImage, face: &FaceBox) -> Result<Vec<Point>, FaceError> {
        let (shape, frame) = self.run(img, face)?;
        Ok(shape
            .chunks_exact(2)
            .map(|p| {
                let (x, y) = frame.to_image(p[0], p[1]);
                // dlib converts the double position to a `point` (long) with floor(v + 0.5).
                Point::new((x + 0.5).floor() as f32, (y + 0.5).floor() as f32)
            })
            .collect())
    }

    /// Like [`predict`](Self::predict) but without dlib's final rounding to whole pixels: the
    /// cascade's own sub-pixel estimate. Not what dlib returns; use it where dlib agreement does
    /// not matter and half a pixel does.
    pub fn predict_subpixel(&self, img: &GrayImage, face: &FaceBox) -> Result<Vec<Point>, FaceError> {
        let (shape, frame) = self.run(img, face)?;
        Ok(shape
            .chunks_exact(2)
            .map(|p| {
                let (x, y) = frame.to_image(p[0], p[1]);
                Point::new(x as f32, y as f32)
            })
            .collect())
    }

    /// Runs the cascade; returns the final shape in the box's normalised frame and the frame.
    fn run(&self, img: &GrayImage, face: &FaceBox) -> Result<(Vec<f32>, BoxFrame), FaceError> {
        if !face.is_proper() {
            return Err(FaceError::DegenerateBox { face: *face });
        }
        let frame = BoxFrame::new(face);
        let (width, height) = (img.width() as i64, img.height() as i64);
        let pixels = img.as_raw();
        let (f, t, s, n2) = (
            self.features,
            self.trees,
            self.splits_per_tree,
            2 * self.num_parts,
        );
        let leaves_per_tree = s + 1;

        let mut current = self.initial_shape.clone();
        let mut values = vec![0.0f32; f];
        for c in 0..self.cascades {
            // extract_feature_pixel_values
            let m = shape_similarity(&self.initial_shape, &current);
            let anchors = &self.anchor_idx[c * f..(c + 1) * f];
            let deltas = &self.deltas[c * f..(c + 1) * f];
            for ((value, &anchor), d) in values.iter_mut().zip(anchors).zip(deltas) {
                let a = anchor as usize;
                let px = m[0] * d[0] + m[1] * d[1] + current[2 * a];
                let py = m[2] * d[0] + m[3] * d[1] + current[2 * a + 1];
                let (x, y) = frame.to_image(px, py);
                let (x, y) = ((x + 0.5).floor() as i64, (y + 0.5).floor() as i64);
                *value = if x >= 0 && x < width && y >= 0 && y < height {
                    // In range by the test above; (y * width + x) < pixels.len().
                    pixels[(y * width + x) as usize] as f32
                } else {
                    0.0
                };
            }
            // Evaluate every tree of the cascade against the same feature values.
            for tree in 0..t {
                let node_base = (c * t + tree) * s;
                let nodes = &self.splits[node_base..node_base + s];
                let mut i = 0usize;
                while i < s {
                    let split = nodes[i];
                    i = if values[split.idx1 as usize] - values[split.idx2 as usize] > split.thresh {
                        2 * i + 1
                    } else {
                        2 * i + 2
                    };
                }
                // i is in s..=2s, so the leaf is in 0..=s, within the s + 1 leaves.
                let leaf = i - s;
                let start = ((c * t + tree) * leaves_per_tree + leaf) * n2;
                for (v, delta) in current.iter_mut().zip(&self.leaf_values[start..start + n2]) {
                    *v += delta;
                }
            }
        }
        Ok((current, frame))
    }
}

/// dlib's `unnormalizing_tform`: box frame (0..1) to image pixels.
#[derive(Debug, Clone, Copy)]
struct BoxFrame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl BoxFrame {
    fn new(face: &FaceBox) -> Self {
        Self {
            left: face.left as f64,
            top: face.top as f64,
            width: face.right as f64 - face.left as f64,
            height: face.bottom as f64 - face.top as f64,
        }
    }

    /// Maps a normalised point into the image (in `f64`, as dlib's `point_transform_affine`).
    fn to_image(self, x: f32, y: f32) -> (f64, f64) {
        (
            self.width * x as f64 + self.left,
            self.height * y as f64 + self.top,
        )
    }
}

/// dlib's `find_tform_between_shapes(from, to).get_m()` cast to `f32`: the linear part
/// `[m00, m01, m10, m11]` of the least-squares similarity (Umeyama) taking `from` onto `to`.
///
/// In 2-D the Umeyama solution has a closed form: with `cov` the cross-covariance of the
/// centred points and `σ²` the variance of `from`, the scaled rotation is
/// `[[a, -b], [b, a]]` with `a = (cov_xx + cov_yy) / σ²`, `b = (cov_yx - cov_xy) / σ²`, which
/// is what dlib's SVD route yields (reflections excluded) up to rounding in the last bit.
fn shape_similarity(from: &[f32], to: &[f32]) -> [f32; 4] {
    let n = from.len() / 2;
    if n <= 1 {
        return [1.0, 0.0, 0.0, 1.0];
    }
    let (a, b) = similarity_linear(
        from.chunks_exact(2).map(|p| (p[0] as f64, p[1] as f64)),
        to.chunks_exact(2).map(|p| (p[0] as f64, p[1] as f64)),
    );
    [a as f32, -b as f32, b as f32, a as f32]
}

/// The least-squares similarity taking the points `from` onto `to` (dlib's
/// `find_similarity_transform`): returns `(a, b, tx, ty)` with
/// `to ≈ [[a, -b], [b, a]] · from + (tx, ty)`. Identity when `from` has no spread.
pub(super) fn fit_similarity(
    from: impl Iterator<Item = (f64, f64)> + Clone,
    to: impl Iterator<Item = (f64, f64)> + Clone,
) -> (f64, f64, f64, f64) {
    let (mf, mt, _) = means(from.clone(), to.clone());
    let (a, b) = similarity_linear(from, to);
    (a, b, mt.0 - (a * mf.0 - b * mf.1), mt.1 - (b * mf.0 + a * mf.1))
}

fn means(
    from: impl Iterator<Item = (f64, f64)>,
    to: impl Iterator<Item = (f64, f64)>,
) -> ((f64, f64), (f64, f64), f64) {
    let (mut fx, mut fy, mut tx, mut ty, mut n) = (0.0, 0.0, 0.0, 0.0, 0usize);
    for ((x, y), (u, v)) in from.zip(to) {
        fx += x;
        fy += y;
        tx += u;
        ty += v;
        n += 1;
    }
    let n = n.max(1) as f64;
    ((fx / n, fy / n), (tx / n, ty / n), n)
}

/// The linear part `(a, b)` of the least-squares similarity, see [`shape_similarity`].
fn similarity_linear(
    from: impl Iterator<Item = (f64, f64)> + Clone,
    to: impl Iterator<Item = (f64, f64)> + Clone,
) -> (f64, f64) {
    let ((mfx, mfy), (mtx, mty), n) = means(from.clone(), to.clone());
    let (mut sigma, mut cxx, mut cxy, mut cyx, mut cyy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for ((x, y), (u, v)) in from.zip(to) {
        let (dfx, dfy, dtx, dty) = (x - mfx, y - mfy, u - mtx, v - mty);
        sigma += dfx * dfx + dfy * dfy;
        cxx += dtx * dfx;
        cxy += dtx * dfy;
        cyx += dty * dfx;
        cyy += dty * dfy;
    }
    let sigma = sigma / n;
    if sigma == 0.0 {
        // dlib: scale 1 and the rotation of an all-zero covariance, i.e. the identity.
        return (1.0, 0.0);
    }
    (((cxx + cyy) / n) / sigma, ((cyx - cxy) / n) / sigma)
}

/// RGB to grey exactly as dlib converts an `rgb_pixel` to `unsigned char` (and so what dlib's
/// shape predictor reads from an RGB image): `(r + g + b) / 3` in integers, truncating.
pub fn to_grey(img: &RgbImage) -> GrayImage {
    let data = img
        .as_raw()
        .chunks_exact(3)
        .map(|p| ((p[0] as u32 + p[1] as u32 + p[2] as u32) / 3) as u8)
        .collect();
    // The buffer has exactly width * height bytes, so this cannot fail.
    GrayImage::from_raw(img.width(), img.height(), data)
        .unwrap_or_else(|| GrayImage::new(img.width(), img.height()))
}

/// A tensor of the file with its dtype and rank checked.
struct Tensor<'a> {
    name: &'static str,
    shape: Vec<usize>,
    data: &'a [u8],
}

impl<'a> Tensor<'a> {
    fn read(st: &SafeTensors<'a>, name: &'static str, dtype: Dtype, rank: usize) -> Result<Self, FaceError> {
        let view = st.tensor(name).map_err(|_| FaceError::MissingTensor { name })?;
        if view.dtype() != dtype {
            return Err(FaceError::WrongDtype {
                name,
                expected: if dtype == Dtype::I32 { "I32" } else { "F32" },
                actual: format!("{:?}", view.dtype()),
            });
        }
        let shape = view.shape().to_vec();
        if shape.len() != rank {
            return Err(FaceError::WrongRank {
                name,
                expected: rank,
                actual: shape,
            });
        }
        let data = view.data();
        let elements = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if elements.and_then(|e| e.checked_mul(4)) != Some(data.len()) {
            // safetensors checks this on parsing; kept so a reader bug cannot slip through.
            return Err(FaceError::Corrupt {
                source: safetensors::SafeTensorError::TensorInvalidInfo,
            });
        }
        Ok(Self { name, shape, data })
    }

    fn expect_shape(&self, expected: &[usize]) -> Result<(), FaceError> {
        if self.shape != expected {
            return Err(FaceError::WrongShape {
                name: self.name,
                expected: expected.to_vec(),
                actual: self.shape.clone(),
            });
        }
        Ok(())
    }

    fn words(&self) -> impl Iterator<Item = [u8; 4]> + 'a {
        self.data.chunks_exact(4).map(|w| [w[0], w[1], w[2], w[3]])
    }

    /// The values as `f32` (little-endian), all finite.
    fn f32s(&self) -> Result<Vec<f32>, FaceError> {
        self.words()
            .map(f32::from_le_bytes)
            .enumerate()
            .map(|(at, v)| {
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(FaceError::NonFinite { name: self.name, at })
                }
            })
            .collect()
    }

    /// The values as indices (little-endian `i32`), each in `0..bound`.
    fn indices(&self, bound: usize) -> Result<Vec<u32>, FaceError> {
        self.words()
            .map(i32::from_le_bytes)
            .enumerate()
            .map(|(at, v)| match usize::try_from(v) {
                Ok(i) if i < bound => Ok(v as u32),
                _ => Err(FaceError::IndexOutOfRange {
                    name: self.name,
                    at,
                    index: v as i64,
                    bound,
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use std::collections::HashMap;

    /// The tensors of a model, as (name, dtype, shape, little-endian bytes).
    type Parts = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

    /// A malformed-model case: what it is, its bytes, and the error it must give.
    type Case = (&'static str, Vec<u8>, fn(&FaceError) -> bool);

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn i32_bytes(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// A two-landmark, two-cascade model with one single-split tree per cascade, small enough
    /// to follow by hand (see `tiny_model_predicts_hand_computation`).
    fn tiny_parts() -> Parts {
        vec![
            (
                "initial_shape".into(),
                Dtype::F32,
                vec![4],
                f32_bytes(&[0.25, 0.25, 0.75, 0.75]),
            ),
            (
                "anchor_idx".into(),
                Dtype::I32,
                vec![2, 2],
                i32_bytes(&[0, 1, 0, 1]),
            ),
            (
                "deltas".into(),
                Dtype::F32,
                vec![2, 2, 2],
                // cascade 0: both on their landmark; cascade 1: 0.25 right of landmark 0, and on landmark 1
                f32_bytes(&[0.0, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0]),
            ),
            ("split_idx1".into(), Dtype::I32, vec![2, 1, 1], i32_bytes(&[0, 0])),
            ("split_idx2".into(), Dtype::I32, vec![2, 1, 1], i32_bytes(&[1, 1])),
            (
                "split_thresh".into(),
                Dtype::F32,
                vec![2, 1, 1],
                f32_bytes(&[100.0, 100.0]),
            ),
            (
                "leaf_values".into(),
                Dtype::F32,
                vec![2, 1, 2, 4],
                f32_bytes(&[
                    // cascade 0 leaf 0: turn the shape by +90° about its centre
                    0.5, 0.0, -0.5, 0.0, //
                    // cascade 0 leaf 1: nothing
                    0.0, 0.0, 0.0, 0.0, //
                    // cascade 1 leaf 0: landmark 0 right by 0.25
                    0.25, 0.0, 0.0, 0.0, //
                    // cascade 1 leaf 1: landmark 1 down by 0.25
                    0.0, 0.0, 0.0, 0.25,
                ]),
            ),
        ]
    }

    fn tiny_meta() -> HashMap<String, String> {
        HashMap::from([
            ("format".into(), LANDMARK_FORMAT.into()),
            ("num_parts".into(), "2".into()),
        ])
    }

    fn build(parts: &Parts, meta: Option<HashMap<String, String>>) -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = parts
            .iter()
            .map(|(name, dtype, shape, data)| {
                (
                    name.clone(),
                    TensorView::new(*dtype, shape.clone(), data).expect("consistent test tensor"),
                )
            })
            .collect();
        safetensors::serialize(views, meta).expect("serialise test model")
    }

    fn tiny_model_bytes() -> Vec<u8> {
        build(&tiny_parts(), Some(tiny_meta()))
    }

    /// The tiny model's bytes with one tensor replaced (or removed when `replacement` is None).
    fn with_tensor(name: &str, replacement: Option<(Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
        let mut parts = tiny_parts();
        let i = parts.iter().position(|p| p.0 == name).expect("known tensor");
        match replacement {
            Some((dtype, shape, data)) => parts[i] = (name.into(), dtype, shape, data),
            None => {
                parts.remove(i);
            }
        }
        build(&parts, Some(tiny_meta()))
    }

    fn grey(width: u32, height: u32, set: &[(u32, u32, u8)]) -> GrayImage {
        let mut img = GrayImage::new(width, height);
        for &(x, y, v) in set {
            img.put_pixel(x, y, image::Luma([v]));
        }
        img
    }

    #[test]
    fn tiny_model_predicts_hand_computation() {
        let model = LandmarkModel::from_bytes(&tiny_model_bytes()).expect("valid tiny model");
        assert_eq!(model.num_parts(), 2);
        assert_eq!(model.num_cascades(), 2);
        let face = FaceBox::new(0.0, 0.0, 4.0, 4.0); // normalised (u, v) -> pixel (4u, 4v)

        // Cascade 0 reads landmark 0 at (1, 1) = 200 and landmark 1 at (3, 3) = 50:
        // 200 - 50 > 100, leaf 0 turns the shape +90°: (0.75, 0.25), (0.25, 0.75).
        // Cascade 1: the similarity initial -> current is that +90° turn, so landmark 0's delta
        // (0.25, 0) becomes (0, 0.25): pixel (4·0.75, 4·0.5) = (3, 2) = 180; landmark 1 sits at
        // (1, 3) = 20. 180 - 20 > 100: leaf 0 moves landmark 0 to (1.0, 0.25) -> (4, 1).
        // (Ignoring the turn would read (4, 1) = 0 and take leaf 1.)
        let img = grey(5, 5, &[(1, 1, 200), (3, 3, 50), (3, 2, 180), (1, 3, 20)]);
        let got = model.predict(&img, &face).expect("predict");
        assert_eq!(got, vec![Point::new(4.0, 1.0), Point::new(1.0, 3.0)]);

        // Cascade 0 takes leaf 1 (no turn): cascade 1 reads (2, 1) = 0 and (3, 3) = 50,
        // -50 <= 100: leaf 1 moves landmark 1 down to (0.75, 1.0) -> (3, 4).
        let img = grey(5, 5, &[(1, 1, 100), (3, 3, 50), (3, 2, 180)]);
        let got = model.predict(&img, &face).expect("predict");
        assert_eq!(got, vec![Point::new(1.0, 1.0), Point::new(3.0, 4.0)]);
    }

    #[test]
    fn pixels_outside_the_image_read_zero() {
        let model = LandmarkModel::from_bytes(&tiny_model_bytes()).expect("valid tiny model");
        // The box reaches past the 3 × 3 image: landmark 1 at (3, 3) is outside and reads 0,
        // so 120 - 0 > 100 takes the turn even though nothing bright is at (3, 3).
        let img = grey(3, 3, &[(1, 1, 120)]);
        let got = model
            .predict(&img, &FaceBox::new(0.0, 0.0, 4.0, 4.0))
            .expect("predict");
        // After the turn, cascade 1 reads (3, 2) and (1, 3), both outside: 0 - 0 <= 100, leaf 1.
        assert_eq!(got, vec![Point::new(3.0, 1.0), Point::new(1.0, 4.0)]);
    }

    #[test]
    fn subpixel_is_the_unrounded_prediction() {
        let model = LandmarkModel::from_bytes(&tiny_model_bytes()).expect("valid tiny model");
        let img = grey(8, 8, &[]);
        // No feature fires: both cascades take leaf 1; landmark 1 ends at (0.75, 1.0).
        let face = FaceBox::new(1.0, 2.0, 4.0, 5.0); // (u, v) -> (1 + 3u, 2 + 3v)
        let sub = model.predict_subpixel(&img, &face).expect("predict");
        assert_eq!(sub, vec![Point::new(1.75, 2.75), Point::new(3.25, 5.0)]);
        let rounded = model.predict(&img, &face).expect("predict");
        assert_eq!(rounded, vec![Point::new(2.0, 3.0), Point::new(3.0, 5.0)]);
    }

    #[test]
    fn degenerate_boxes_are_refused() {
        let model = LandmarkModel::from_bytes(&tiny_model_bytes()).expect("valid tiny model");
        let img = grey(4, 4, &[]);
        for face in [
            FaceBox::new(2.0, 0.0, 2.0, 3.0),
            FaceBox::new(0.0, 3.0, 3.0, 1.0),
            FaceBox::new(f32::NAN, 0.0, 3.0, 3.0),
            FaceBox::new(0.0, 0.0, f32::INFINITY, 3.0),
        ] {
            assert!(
                matches!(model.predict(&img, &face), Err(FaceError::DegenerateBox { .. })),
                "{face:?}"
            );
        }
    }

    #[test]
    fn grey_conversion_is_dlibs_truncated_mean() {
        let mut rgb = RgbImage::new(3, 1);
        rgb.put_pixel(0, 0, image::Rgb([255, 255, 255]));
        rgb.put_pixel(1, 0, image::Rgb([10, 20, 31])); // 61 / 3 = 20.33 -> 20
        rgb.put_pixel(2, 0, image::Rgb([0, 1, 1])); // 2 / 3 -> 0
        assert_eq!(to_grey(&rgb).as_raw(), &vec![255, 20, 0]);
    }

    #[test]
    fn similarity_fit_recovers_a_turn_and_scale() {
        let from = [(0.0, 0.0), (1.0, 0.0), (0.0, 2.0)];
        // to = 2·R(30°)·from + (3, -1)
        let (c, s) = (2.0 * 30f64.to_radians().cos(), 2.0 * 30f64.to_radians().sin());
        let to: Vec<_> = from
            .iter()
            .map(|&(x, y)| (c * x - s * y + 3.0, s * x + c * y - 1.0))
            .collect();
        let (a, b, tx, ty) = fit_similarity(from.iter().copied(), to.iter().copied());
        for (got, want) in [(a, c), (b, s), (tx, 3.0), (ty, -1.0)] {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn malformed_models_give_their_own_errors() {
        use FaceError as E;
        let cases: Vec<Case> = vec![
            ("truncated", tiny_model_bytes()[..40].to_vec(), |e| {
                matches!(e, E::Corrupt { .. })
            }),
            ("garbage", b"not a model at all".to_vec(), |e| {
                matches!(e, E::Corrupt { .. })
            }),
            ("no metadata", build(&tiny_parts(), None), |e| {
                matches!(e, E::MissingMetadata { key: "format" })
            }),
            (
                "wrong format",
                build(
                    &tiny_parts(),
                    Some(HashMap::from([
                        ("format".into(), "nhm-dlib-resnet/1".into()),
                        ("num_parts".into(), "2".into()),
                    ])),
                ),
                |e| matches!(e, E::WrongFormat { .. }),
            ),
            (
                "no num_parts",
                build(
                    &tiny_parts(),
                    Some(HashMap::from([("format".into(), LANDMARK_FORMAT.into())])),
                ),
                |e| matches!(e, E::MissingMetadata { key: "num_parts" }),
            ),
            (
                "num_parts disagrees",
                build(
                    &tiny_parts(),
                    Some(HashMap::from([
                        ("format".into(), LANDMARK_FORMAT.into()),
                        ("num_parts".into(), "5".into()),
                    ])),
                ),
                |e| matches!(e, E::BadMetadata { key: "num_parts", .. }),
            ),
            ("missing deltas", with_tensor("deltas", None), |e| {
                matches!(e, E::MissingTensor { name: "deltas" })
            }),
            (
                "f64 initial shape",
                with_tensor("initial_shape", Some((Dtype::F64, vec![2], vec![0; 16]))),
                |e| {
                    matches!(
                        e,
                        E::WrongDtype {
                            name: "initial_shape",
                            ..
                        }
                    )
                },
            ),
            (
                "f32 anchors",
                with_tensor("anchor_idx", Some((Dtype::F32, vec![2, 2], f32_bytes(&[0.0; 4])))),
                |e| {
                    matches!(
                        e,
                        E::WrongDtype {
                            name: "anchor_idx",
                            ..
                        }
                    )
                },
            ),
            (
                "odd initial shape",
                with_tensor("initial_shape", Some((Dtype::F32, vec![3], f32_bytes(&[0.0; 3])))),
                |e| {
                    matches!(
                        e,
                        E::WrongShape {
                            name: "initial_shape",
                            ..
                        }
                    )
                },
            ),
            (
                "flat anchors",
                with_tensor("anchor_idx", Some((Dtype::I32, vec![4], i32_bytes(&[0; 4])))),
                |e| {
                    matches!(
                        e,
                        E::WrongRank {
                            name: "anchor_idx",
                            expected: 2,
                            ..
                        }
                    )
                },
            ),
            (
                "deltas with 3 coordinates",
                with_tensor("deltas", Some((Dtype::F32, vec![2, 2, 3], f32_bytes(&[0.0; 12])))),
                |e| matches!(e, E::WrongShape { name: "deltas", .. }),
            ),
            (
                "one cascade of splits for two of anchors",
                with_tensor("split_idx1", Some((Dtype::I32, vec![1, 1, 1], i32_bytes(&[0])))),
                |e| {
                    matches!(
                        e,
                        E::WrongShape {
                            name: "split_idx1",
                            ..
                        }
                    )
                },
            ),
            (
                "thresholds of another tree size",
                with_tensor(
                    "split_thresh",
                    Some((Dtype::F32, vec![2, 1, 2], f32_bytes(&[0.0; 4]))),
                ),
                |e| {
                    matches!(
                        e,
                        E::WrongShape {
                            name: "split_thresh",
                            ..
                        }
                    )
                },
            ),
            (
                "leaves without the extra leaf",
                with_tensor(
                    "leaf_values",
                    Some((Dtype::F32, vec![2, 1, 1, 4], f32_bytes(&[0.0; 8]))),
                ),
                |e| {
                    matches!(
                        e,
                        E::WrongShape {
                            name: "leaf_values",
                            ..
                        }
                    )
                },
            ),
            (
                "anchor past the landmarks",
                with_tensor(
                    "anchor_idx",
                    Some((Dtype::I32, vec![2, 2], i32_bytes(&[0, 1, 2, 0]))),
                ),
                |e| {
                    matches!(
                        e,
                        E::IndexOutOfRange {
                            name: "anchor_idx",
                            at: 2,
                            index: 2,
                            bound: 2
                        }
                    )
                },
            ),
            (
                "negative split index",
                with_tensor(
                    "split_idx2",
                    Some((Dtype::I32, vec![2, 1, 1], i32_bytes(&[1, -1]))),
                ),
                |e| {
                    matches!(
                        e,
                        E::IndexOutOfRange {
                            name: "split_idx2",
                            at: 1,
                            index: -1,
                            ..
                        }
                    )
                },
            ),
            (
                "split index past the feature pixels",
                with_tensor(
                    "split_idx1",
                    Some((Dtype::I32, vec![2, 1, 1], i32_bytes(&[2, 0]))),
                ),
                |e| {
                    matches!(
                        e,
                        E::IndexOutOfRange {
                            name: "split_idx1",
                            at: 0,
                            index: 2,
                            bound: 2
                        }
                    )
                },
            ),
            (
                "NaN leaf",
                with_tensor(
                    "leaf_values",
                    Some((
                        Dtype::F32,
                        vec![2, 1, 2, 4],
                        f32_bytes(&[
                            0.0,
                            f32::NAN,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                            0.0,
                        ]),
                    )),
                ),
                |e| {
                    matches!(
                        e,
                        E::NonFinite {
                            name: "leaf_values",
                            at: 1
                        }
                    )
                },
            ),
        ];
        for (what, bytes, expected) in cases {
            match LandmarkModel::from_bytes(&bytes) {
                Ok(_) => panic!("{what}: malformed model accepted"),
                Err(e) => {
                    assert!(expected(&e), "{what}: wrong error {e:?}");
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn load_names_the_path() {
        let missing = Path::new("/nonexistent/landmarks.safetensors");
        let err = LandmarkModel::load(missing).expect_err("no such file");
        assert!(matches!(err, FaceError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/landmarks.safetensors"));

        let dir = std::env::temp_dir().join(format!("nhm-face-landmarks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bad = dir.join("bad.safetensors");
        std::fs::write(&bad, b"truncated").expect("write");
        let err = LandmarkModel::load(&bad).expect_err("corrupt");
        assert!(
            matches!(&err, FaceError::InFile { source, .. } if matches!(**source, FaceError::Corrupt { .. }))
        );
        assert!(err.to_string().contains("bad.safetensors"));
        let good = dir.join("good.safetensors");
        std::fs::write(&good, tiny_model_bytes()).expect("write");
        assert_eq!(LandmarkModel::load(&good).expect("valid").num_parts(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
