//! Weight files: [`to_bytes`] writes a model's weights as safetensors, [`load_from_bytes`]
//! reads them back after checking everything; `save` / `load` (with `std`) do the same with
//! files. `Model::save_weights` and friends call these.
//!
//! The format is the one Keras users meet through `safetensors`: one tensor per weight,
//! named by kiln's weight names (Keras 3's variable paths relative to the model,
//! `dense_1/kernel`), in Keras's shape and row-major layout, dtype F32. F16, BF16 and F64
//! tensors are converted on load. A trainer's optimizer state is not part of the file.

use crate::error::{first_non_finite, Error, ShapeDisplay};
use crate::model::Model;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// The model's weights as a safetensors file (F32 tensors named by `WEIGHT_NAMES`).
pub fn to_bytes<M: Model>(model: &M) -> Vec<u8> {
    let data: Vec<Vec<u8>> = (0..M::WEIGHT_NAMES.len())
        .map(|index| {
            let values = model.__weight(index);
            let mut bytes = alloc::vec![0u8; values.len() * 4];
            for (b, v) in bytes.chunks_exact_mut(4).zip(values) {
                b.copy_from_slice(&v.to_le_bytes());
            }
            bytes
        })
        .collect();
    let views =
        M::WEIGHT_NAMES
            .iter()
            .zip(M::WEIGHT_SHAPES)
            .zip(&data)
            .map(|((name, shape), bytes)| {
                // The byte count is the shape's element count times 4 by construction.
                let view = TensorView::new(Dtype::F32, shape.to_vec(), bytes)
                    .expect("a weight's values match its shape");
                (*name, view)
            });
    safetensors::serialize(views, None).expect("F32 views of matching sizes serialize")
}

/// Replaces every weight of `model` with the tensors of the safetensors file `bytes`.
///
/// Everything is checked before anything is written: the file's structure, that it holds
/// exactly the model's weights, each tensor's dtype and shape, and that every value is
/// finite (after conversion to f32). On an error the model is unchanged.
pub fn load_from_bytes<M: Model>(model: &mut M, bytes: &[u8]) -> Result<(), Error> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::WeightFile {
        reason: e.to_string(),
    })?;
    let mut tensors = Vec::with_capacity(M::WEIGHT_NAMES.len());
    // Each tensor is decoded here to check its values, then again into the model once
    // everything has passed, so a bad file never leaves a partly written model.
    let mut scratch = Vec::new();
    for (index, name) in M::WEIGHT_NAMES.iter().enumerate() {
        let tensor = file.tensor(name).map_err(|_| Error::MissingWeight {
            name: name.to_string(),
            expected: M::WEIGHT_NAMES.to_vec(),
            found: sorted_names(&file),
        })?;
        let shape = M::WEIGHT_SHAPES[index];
        if tensor.shape() != shape {
            return Err(Error::WeightShape {
                name: name.to_string(),
                expected: ShapeDisplay::from(shape),
                found: ShapeDisplay::from(tensor.shape()),
            });
        }
        let format = Format::of(tensor.dtype()).ok_or_else(|| Error::WeightDtype {
            name: name.to_string(),
            dtype: alloc::format!("{:?}", tensor.dtype()),
        })?;
        scratch.clear();
        scratch.resize(shape.iter().product(), 0.0);
        format.decode(tensor.data(), &mut scratch);
        if let Some((index, value)) = first_non_finite(&scratch) {
            return Err(Error::NonFiniteWeight {
                name: name.to_string(),
                index,
                value,
            });
        }
        tensors.push((format, tensor.data()));
    }
    if file.len() > M::WEIGHT_NAMES.len() {
        let unexpected = sorted_names(&file)
            .into_iter()
            .find(|n| !M::WEIGHT_NAMES.contains(&n.as_str()))
            .unwrap_or_default();
        return Err(Error::UnexpectedWeight {
            name: unexpected,
            expected: M::WEIGHT_NAMES.to_vec(),
        });
    }
    for (index, (format, data)) in tensors.into_iter().enumerate() {
        format.decode(data, model.__weight_mut(index));
    }
    Ok(())
}

/// The file's tensor names, sorted (safetensors keeps no order).
fn sorted_names(file: &SafeTensors) -> Vec<String> {
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    names
}

/// A tensor dtype kiln reads, and how its little-endian bytes become f32.
#[derive(Clone, Copy)]
enum Format {
    F32,
    F64,
    F16,
    BF16,
}

impl Format {
    fn of(dtype: Dtype) -> Option<Format> {
        match dtype {
            Dtype::F32 => Some(Format::F32),
            Dtype::F64 => Some(Format::F64),
            Dtype::F16 => Some(Format::F16),
            Dtype::BF16 => Some(Format::BF16),
            _ => None,
        }
    }

    /// Decodes little-endian `data` (exactly `out.len()` values) into `out`, one loop per
    /// dtype so that each vectorises.
    fn decode(self, data: &[u8], out: &mut [f32]) {
        match self {
            Format::F32 => {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Format::F64 => {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(8)) {
                    let v = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    *o = v as f32;
                }
            }
            Format::F16 => {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            Format::BF16 => {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                    *o = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
        }
    }
}

/// `to_bytes` written to `path`, through a temporary file renamed into place, so a failed
/// write never leaves a truncated file under the final name.
#[cfg(feature = "std")]
pub fn save<M: Model>(model: &M, path: &std::path::Path) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".kiln-tmp");
    let temporary = std::path::PathBuf::from(temporary);
    std::fs::write(&temporary, to_bytes(model)).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        io(e)
    })
}

/// `load_from_bytes` on the contents of the file at `path`.
#[cfg(feature = "std")]
pub fn load<M: Model>(model: &mut M, path: &std::path::Path) -> Result<(), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    load_from_bytes(model, &bytes)
}
