//! Named float tensors read from a safetensors file (the converted dlib models and the learned
//! head), each checked for its shape before a network is built from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// The tensors of one file, by name, with the file's metadata.
pub(crate) struct TensorFile {
    path: PathBuf,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Reads `path`.
    ///
    /// Errors: [`Error::MissingFile`] when absent, [`Error::Weights`] for a file that is not
    /// safetensors or holds a tensor that is not 32-bit float.
    pub(crate) fn read(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::MissingFile { path: path.into() });
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses safetensors bytes; `path` names them in errors.
    pub(crate) fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::Weights {
            path: path.into(),
            reason,
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("tensor {name} is {:?}, expected F32", view.dtype())));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(bad(format!("tensor {name} holds a non-finite value")));
            }
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(TensorFile {
            path: path.into(),
            tensors,
            metadata,
        })
    }

    /// The file's `__metadata__` entry `key`.
    pub(crate) fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// The values of tensor `name`, which must have `shape`.
    ///
    /// Errors: [`Error::ConfigMismatch`] naming the tensor when it is absent or shaped otherwise.
    pub(crate) fn values(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (found, values) = self.tensors.get(name).ok_or_else(|| Error::ConfigMismatch {
            tensor: name.into(),
            detail: format!("absent from {}", self.path.display()),
        })?;
        if found != shape {
            return Err(Error::ConfigMismatch {
                tensor: name.into(),
                detail: format!("shape {found:?} in {}, expected {shape:?}", self.path.display()),
            });
        }
        Ok(values)
    }

    /// Tensor `name` of shape `[D]`-dimensional `shape` on `device`.
    pub(crate) fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>> {
        let v = self.values(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(v.to_vec(), shape), device))
    }
}
