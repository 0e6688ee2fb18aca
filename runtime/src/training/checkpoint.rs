//! Trainer checkpoints that resume bit for bit: [`Trainer::to_bytes`] / [`Trainer::save`]
//! write the weights, the optimizer's state (learning rate, step count and so the
//! schedule's position, moments, EMA averages), the trainer's step count (Dropout's
//! randomness) and the shuffling stream's position; [`Trainer::load_from_bytes`] /
//! [`Trainer::load`] put them back into a trainer compiled the same way.
//!
//! The file is safetensors: `model/<weight name>` (F32, Keras's shapes, as the weight
//! files), `optimizer/<state name>` (F32, or U64 for counts), `trainer/step`,
//! `trainer/shuffle/{seed,word_pos,order}` (U64), and metadata naming the format and the
//! optimizer.

use super::fit::Shuffle;
use super::{Trainable, Trainer};
use crate::error::Error;
use crate::optimizers::{Optimizer, StateRef};
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// One tensor of a checkpoint, decoded.
#[derive(Clone, Debug)]
enum Tensor {
    F32(Vec<usize>, Vec<f32>),
    U64(Vec<u64>),
}

fn checkpoint_error(reason: String) -> Error {
    Error::Checkpoint { reason }
}

/// The optimizer's state as named tensors.
fn optimizer_state(optimizer: &mut dyn Optimizer) -> Result<BTreeMap<String, Tensor>, Error> {
    let mut out = BTreeMap::new();
    let supported = optimizer.visit_state(&mut |name, value| {
        let tensor = match value {
            StateRef::Values(v) => Tensor::F32(vec![v.len()], v.clone()),
            StateRef::Count(c) => Tensor::U64(vec![*c]),
            StateRef::Scalar(s) => Tensor::F32(vec![], vec![*s]),
        };
        out.insert(alloc::format!("optimizer/{name}"), tensor);
    });
    if !supported {
        return Err(checkpoint_error(alloc::format!(
            "cannot hold the state of optimizer `{}`, which does not implement \
             `Optimizer::visit_state`",
            optimizer.name()
        )));
    }
    Ok(out)
}

/// Writes `tensors` into the optimizer; the first missing or misshapen one is an error
/// (the caller restores the state it had).
fn set_optimizer_state(
    optimizer: &mut dyn Optimizer,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<(), Error> {
    let mut problem = None;
    optimizer.visit_state(&mut |name, value| {
        if problem.is_some() {
            return;
        }
        let key = alloc::format!("optimizer/{name}");
        match (tensors.get(&key), value) {
            (Some(Tensor::F32(_, v)), StateRef::Values(target)) => {
                target.clear();
                target.extend_from_slice(v);
            }
            (Some(Tensor::F32(_, v)), StateRef::Scalar(target)) if v.len() == 1 => *target = v[0],
            (Some(Tensor::U64(v)), StateRef::Count(target)) if v.len() == 1 => *target = v[0],
            (None, _) => problem = Some(alloc::format!("has no `{key}`")),
            _ => problem = Some(alloc::format!("has `{key}` in another form")),
        }
    });
    match problem {
        Some(reason) => Err(checkpoint_error(reason)),
        None => Ok(()),
    }
}

fn u64_bytes(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl<M: Trainable, O: Optimizer> Trainer<M, O> {
    /// Everything training needs to resume, as a safetensors file in memory (see the
    /// module docs). An error only for an optimizer from outside kiln that does not show
    /// its state ([`Optimizer::visit_state`]).
    pub fn to_bytes(&mut self) -> Result<Vec<u8>, Error> {
        let mut tensors = optimizer_state(&mut self.optimizer)?;
        for (index, name) in M::WEIGHT_NAMES.iter().enumerate() {
            tensors.insert(
                alloc::format!("model/{name}"),
                Tensor::F32(
                    M::WEIGHT_SHAPES[index].to_vec(),
                    self.model.__weight(index).to_vec(),
                ),
            );
        }
        tensors.insert("trainer/step".into(), Tensor::U64(vec![self.step]));
        if let Some(shuffle) = &self.shuffle {
            let pos = shuffle.rng.get_word_pos();
            tensors.insert(
                "trainer/shuffle/seed".into(),
                Tensor::U64(vec![shuffle.seed]),
            );
            tensors.insert(
                "trainer/shuffle/word_pos".into(),
                Tensor::U64(vec![pos as u64, (pos >> 64) as u64]),
            );
            tensors.insert(
                "trainer/shuffle/order".into(),
                Tensor::U64(shuffle.order.iter().map(|&i| i as u64).collect()),
            );
        }
        let data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
            .into_iter()
            .map(|(name, tensor)| match tensor {
                Tensor::F32(shape, values) => (name, Dtype::F32, shape, f32_bytes(&values)),
                Tensor::U64(values) => (name, Dtype::U64, vec![values.len()], u64_bytes(&values)),
            })
            .collect();
        let views = data.iter().map(|(name, dtype, shape, bytes)| {
            // Each byte count is the shape's element count times the dtype's size.
            let view = TensorView::new(*dtype, shape.clone(), bytes).expect("consistent tensor");
            (name.as_str(), view)
        });
        let metadata = [
            ("format".to_string(), "kiln-trainer".to_string()),
            ("optimizer".to_string(), self.optimizer.name().to_string()),
        ];
        safetensors::serialize(views, Some(metadata.into_iter().collect()))
            .map_err(|e| checkpoint_error(e.to_string()))
    }

    /// Puts back everything [`Trainer::to_bytes`] wrote into this trainer, compiled with the
    /// same model type and optimizer type (its settings come from the code, its state from
    /// the file). Everything is checked before the weights change; on an error the trainer
    /// is as it was.
    pub fn load_from_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| Error::WeightFile {
            reason: e.to_string(),
        })?;
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| Error::WeightFile {
            reason: e.to_string(),
        })?;
        let meta = metadata.metadata();
        let get = |key: &str| meta.as_ref().and_then(|m| m.get(key)).map(String::as_str);
        if get("format") != Some("kiln-trainer") {
            return Err(checkpoint_error(
                "is not a kiln trainer checkpoint (a weight file? load it with `load_weights`)"
                    .into(),
            ));
        }
        if get("optimizer") != Some(self.optimizer.name()) {
            return Err(checkpoint_error(alloc::format!(
                "was written with optimizer `{}`, this trainer's is `{}`",
                get("optimizer").unwrap_or("?"),
                self.optimizer.name()
            )));
        }
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let tensor = match view.dtype() {
                Dtype::F32 => Tensor::F32(
                    view.shape().to_vec(),
                    view.data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                Dtype::U64 => Tensor::U64(
                    view.data()
                        .chunks_exact(8)
                        .map(|b| {
                            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect(),
                ),
                other => {
                    return Err(checkpoint_error(alloc::format!(
                        "holds `{name}` as {other:?}"
                    )))
                }
            };
            tensors.insert(name, tensor);
        }
        let mut weights = Vec::with_capacity(M::WEIGHT_NAMES.len());
        for (index, name) in M::WEIGHT_NAMES.iter().enumerate() {
            match tensors.get(&alloc::format!("model/{name}")) {
                Some(Tensor::F32(shape, values)) if shape.as_slice() == M::WEIGHT_SHAPES[index] => {
                    if let Some((i, value)) = crate::error::first_non_finite(values) {
                        return Err(Error::NonFiniteWeight {
                            name: name.to_string(),
                            index: i,
                            value,
                        });
                    }
                    weights.push(values);
                }
                _ => {
                    return Err(checkpoint_error(alloc::format!(
                        "has no weight `{name}` of shape {:?}",
                        M::WEIGHT_SHAPES[index]
                    )))
                }
            }
        }
        let u64s = |key: &str| match tensors.get(key) {
            Some(Tensor::U64(v)) => Some(v.clone()),
            _ => None,
        };
        let step = u64s("trainer/step")
            .and_then(|v| v.first().copied())
            .ok_or_else(|| checkpoint_error("has no `trainer/step`".into()))?;
        let shuffle = match (
            u64s("trainer/shuffle/seed"),
            u64s("trainer/shuffle/word_pos"),
            u64s("trainer/shuffle/order"),
        ) {
            (Some(seed), Some(pos), Some(order)) if seed.len() == 1 && pos.len() == 2 => {
                let mut shuffle = Shuffle::new(seed[0], 0);
                shuffle
                    .rng
                    .set_word_pos(u128::from(pos[0]) | (u128::from(pos[1]) << 64));
                shuffle.order = order.iter().map(|&i| i as usize).collect();
                Some(shuffle)
            }
            _ => None,
        };
        let before = optimizer_state(&mut self.optimizer)?;
        if let Err(e) = set_optimizer_state(&mut self.optimizer, &tensors) {
            set_optimizer_state(&mut self.optimizer, &before)?;
            return Err(e);
        }
        for (index, values) in weights.into_iter().enumerate() {
            self.model.__weight_mut(index).copy_from_slice(values);
        }
        self.step = step;
        self.shuffle = shuffle;
        Ok(())
    }

    /// [`Trainer::to_bytes`] written to `path` (through a temporary file renamed into
    /// place).
    pub fn save(&mut self, path: impl AsRef<std::path::Path>) -> Result<(), Error> {
        let bytes = self.to_bytes()?;
        let path = path.as_ref();
        super::callbacks::write_file(&path.display().to_string(), &bytes)
    }

    /// [`Trainer::load_from_bytes`] on the file at `path`.
    pub fn load(&mut self, path: impl AsRef<std::path::Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.load_from_bytes(&bytes)
    }
}
