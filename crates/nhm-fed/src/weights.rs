//! A model's weights as named float tensors, with the arithmetic federated averaging needs.

use safetensors::{Dtype, SafeTensors};

use crate::{FedError, Result};

/// One named tensor.
#[derive(Debug, Clone, PartialEq)]
struct Named {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// A model's weights (or an update to them): named `f32` tensors in name order, read from and
/// written to safetensors, the format models travel in between server and clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    tensors: Vec<Named>,
}

impl Weights {
    /// Parses safetensors bytes. Every tensor must be `F32`; there must be at least one.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Weights> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| FedError::NotSafetensors(e.to_string()))?;
        let mut tensors = Vec::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(FedError::NotF32 {
                    name,
                    dtype: format!("{:?}", view.dtype()),
                });
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.push(Named {
                name,
                shape: view.shape().to_vec(),
                values,
            });
        }
        if tensors.is_empty() {
            return Err(FedError::Empty);
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Weights { tensors })
    }

    /// Safetensors bytes of these weights (deterministic: name order, no metadata).
    pub fn to_safetensors(&self) -> Vec<u8> {
        let bytes: Vec<Vec<u8>> = self
            .tensors
            .iter()
            .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = self
            .tensors
            .iter()
            .zip(&bytes)
            .map(|(t, b)| {
                let view = safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), b)
                    .expect("shape and byte length agree by construction");
                (t.name.clone(), view)
            })
            .collect();
        safetensors::serialize(views, None).expect("serialising in-memory f32 tensors cannot fail")
    }

    /// Number of scalars.
    pub fn len(&self) -> usize {
        self.tensors.iter().map(|t| t.values.len()).sum()
    }

    /// Whether there is no scalar (never true for parsed weights).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `other` has the same tensor names and shapes, so that the two can be combined.
    pub fn same_layout(&self, other: &Weights) -> bool {
        self.tensors.len() == other.tensors.len()
            && self
                .tensors
                .iter()
                .zip(&other.tensors)
                .all(|(a, b)| a.name == b.name && a.shape == b.shape)
    }

    /// The first tensor whose name or shape differs from `other`'s, described for an error.
    pub fn layout_difference(&self, other: &Weights) -> Option<String> {
        if self.tensors.len() != other.tensors.len() {
            return Some(format!(
                "{} tensors where {} were expected",
                other.tensors.len(),
                self.tensors.len()
            ));
        }
        self.tensors.iter().zip(&other.tensors).find_map(|(a, b)| {
            (a.name != b.name || a.shape != b.shape).then(|| {
                format!(
                    "tensor {:?} {:?} where {:?} {:?} was expected",
                    b.name, b.shape, a.name, a.shape
                )
            })
        })
    }

    /// The name of the first tensor holding a NaN or infinity.
    pub fn first_non_finite(&self) -> Option<&str> {
        self.tensors
            .iter()
            .find(|t| t.values.iter().any(|v| !v.is_finite()))
            .map(|t| t.name.as_str())
    }

    /// Euclidean norm over all scalars.
    pub fn norm(&self) -> f64 {
        self.values().map(|v| (v as f64) * (v as f64)).sum::<f64>().sqrt()
    }

    /// All scalars, tensor after tensor.
    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.tensors.iter().flat_map(|t| t.values.iter().copied())
    }

    /// Weights of the same layout with every scalar 0.
    pub fn zeros_like(&self) -> Weights {
        Weights {
            tensors: self
                .tensors
                .iter()
                .map(|t| Named {
                    values: vec![0.0; t.values.len()],
                    ..t.clone()
                })
                .collect(),
        }
    }

    /// `self − other` (layouts must agree).
    pub fn minus(&self, other: &Weights) -> Weights {
        let mut out = self.clone();
        out.add_scaled(other, -1.0);
        out
    }

    /// `self += a · other` (layouts must agree; checked by the callers that take outside input).
    pub fn add_scaled(&mut self, other: &Weights, a: f32) {
        debug_assert!(self.same_layout(other));
        for (t, o) in self.tensors.iter_mut().zip(&other.tensors) {
            for (v, w) in t.values.iter_mut().zip(&o.values) {
                *v += a * w;
            }
        }
    }

    /// `self *= a`.
    pub fn scale(&mut self, a: f32) {
        for t in &mut self.tensors {
            for v in &mut t.values {
                *v *= a;
            }
        }
    }

    /// Adds `f(i)` to the `i`-th scalar (for noise drawn in a fixed order).
    pub fn add_each(&mut self, mut f: impl FnMut() -> f32) {
        for t in &mut self.tensors {
            for v in &mut t.values {
                *v += f();
            }
        }
    }

    /// One step of the server optimizer FedAdam (Reddi et al. 2021) with `g` the aggregated
    /// client update (a pseudo-gradient pointing downhill): `m ← β₁m + (1−β₁)g`,
    /// `v ← β₂v + (1−β₂)g²`, `self += lr · m / (√v + τ)`. Layouts must agree.
    #[allow(clippy::too_many_arguments)]
    pub fn adam_step(
        &mut self,
        m: &mut Weights,
        v: &mut Weights,
        g: &Weights,
        lr: f32,
        b1: f32,
        b2: f32,
        tau: f32,
    ) {
        debug_assert!(self.same_layout(g) && self.same_layout(m) && self.same_layout(v));
        for (((t, mt), vt), gt) in self
            .tensors
            .iter_mut()
            .zip(&mut m.tensors)
            .zip(&mut v.tensors)
            .zip(&g.tensors)
        {
            for (((x, mi), vi), gi) in t
                .values
                .iter_mut()
                .zip(&mut mt.values)
                .zip(&mut vt.values)
                .zip(&gt.values)
            {
                *mi = b1 * *mi + (1.0 - b1) * gi;
                *vi = b2 * *vi + (1.0 - b2) * gi * gi;
                *x += lr * *mi / (vi.sqrt() + tau);
            }
        }
    }

    /// Weights built from name, shape, values triples (tests and tools).
    pub fn from_parts(parts: Vec<(String, Vec<usize>, Vec<f32>)>) -> Result<Weights> {
        let mut tensors = Vec::with_capacity(parts.len());
        for (name, shape, values) in parts {
            if shape.iter().product::<usize>() != values.len() {
                return Err(FedError::Config(format!(
                    "tensor {name:?}: shape {shape:?} does not hold {} values",
                    values.len()
                )));
            }
            tensors.push(Named { name, shape, values });
        }
        if tensors.is_empty() {
            return Err(FedError::Empty);
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Weights { tensors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Weights {
        Weights::from_parts(vec![
            ("b".into(), vec![2], vec![1.0, -2.0]),
            ("a".into(), vec![2, 2], vec![0.5, 0.25, -1.0, 3.0]),
        ])
        .unwrap()
    }

    #[test]
    fn safetensors_round_trip_keeps_names_shapes_and_values() {
        let w = sample();
        let back = Weights::from_safetensors(&w.to_safetensors()).unwrap();
        assert_eq!(back, w);
        assert_eq!(w.len(), 6);
        assert!(w.same_layout(&back));
    }

    #[test]
    fn arithmetic_and_norm() {
        let w = sample();
        let mut d = w.minus(&w.zeros_like());
        assert_eq!(d, w);
        d.add_scaled(&w, -1.0);
        assert_eq!(d.norm(), 0.0);
        let expected = (0.25f64 + 0.0625 + 1.0 + 9.0 + 1.0 + 4.0).sqrt();
        assert!((w.norm() - expected).abs() < 1e-12);
    }

    #[test]
    fn bad_bytes_and_layouts_are_named() {
        assert!(matches!(
            Weights::from_safetensors(b"not a model"),
            Err(FedError::NotSafetensors(_))
        ));
        let other = Weights::from_parts(vec![("a".into(), vec![4], vec![0.0; 4])]).unwrap();
        let why = sample().layout_difference(&other).unwrap();
        assert!(why.contains("1 tensors where 2"), "{why}");
        let mut nan = sample();
        nan.add_each(|| f32::NAN);
        assert_eq!(nan.first_non_finite(), Some("a"));
        assert!(Weights::from_parts(vec![("x".into(), vec![3], vec![1.0])]).is_err());
    }
}
