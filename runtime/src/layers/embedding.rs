//! Keras's `Embedding`: [`Embedding::forward`] looks up one row of the table per id,
//! [`Embedding::check_ids`] is the slice APIs' validation, [`Embedding::backward`] adds the
//! table's gradient.

use super::Weights;
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::param::Param;
#[cfg(feature = "alloc")]
use alloc::vec;

/// A lookup table from integer ids to dense vectors: `(timesteps,)` ids -> `(timesteps,
/// output_dim)`.
///
/// Ids arrive as `f32` values. The typed `predict` cannot fail, so it does what Keras 3 on
/// JAX does: the id is truncated towards zero (`cast(x, "int32")`), a negative id in
/// `-input_dim..0` counts from the end (`jnp.take`), and an id outside the table gives a
/// row of NaN. The slice APIs (`predict_slice`, `predict_batch`, `train_on_batch`, `fit`)
/// instead refuse any id that is not a whole number in `0..input_dim` with
/// [`crate::Error::InvalidId`].
///
/// With `mask_zero`, id `0.0` is masked (Keras: `not_equal(inputs, 0)` on the input as
/// given).
///
/// # Weights
/// `embeddings` `(input_dim, output_dim)`, row-major: row `i` is id `i`'s vector.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// `(input_dim, output_dim)`, row-major.
    pub embeddings: Param<[f32]>,
    input_dim: usize,
    output_dim: usize,
}

impl Embedding {
    /// A table initialised from `seed` (stream `first_weight`).
    #[cfg(feature = "alloc")]
    pub fn new(
        input_dim: usize,
        output_dim: usize,
        initializer: Initializer,
        seed: u64,
        first_weight: usize,
    ) -> Self {
        let mut table = vec![0.0; input_dim * output_dim];
        initializer.fill(
            &mut table,
            &[input_dim, output_dim],
            &mut weight_rng(seed, first_weight),
        );
        Embedding {
            embeddings: Param::heap(&table[..]),
            input_dim,
            output_dim,
        }
    }

    /// A table that stays in static memory (a model's `pretrained()`).
    pub const fn baked(input_dim: usize, output_dim: usize, embeddings: &'static [f32]) -> Self {
        Embedding {
            embeddings: Param::baked(embeddings),
            input_dim,
            output_dim,
        }
    }

    /// The row of `id` as Keras on JAX picks it, `None` outside the table.
    fn row(&self, id: f32) -> Option<usize> {
        let n = self.input_dim as i64;
        // `as` saturates and maps NaN to 0, as XLA's float-to-int conversion does.
        let i = id as i64;
        let i = if i < 0 { i + n } else { i };
        (0..n).contains(&i).then_some(i as usize)
    }

    /// Looks up every id of `ids` into `y` (`output_dim` values per id); with `mask`, writes
    /// `id != 0` per id.
    pub fn forward(&self, ids: &[f32], y: &mut [f32], mask: Option<&mut [bool]>) {
        let d = self.output_dim;
        for (&id, out) in ids.iter().zip(y.chunks_exact_mut(d.max(1))) {
            match self.row(id) {
                Some(r) => out.copy_from_slice(&self.embeddings[r * d..(r + 1) * d]),
                None => out.fill(f32::NAN),
            }
        }
        if let Some(mask) = mask {
            for (m, &id) in mask.iter_mut().zip(ids) {
                *m = id != 0.0;
            }
        }
    }

    /// The first value of `ids` that is not a whole number in `0..input_dim`, with its
    /// index.
    pub fn check_ids(input_dim: usize, ids: &[f32]) -> Result<(), (usize, f32)> {
        match ids
            .iter()
            .position(|&id| !(id >= 0.0 && id < input_dim as f32 && id == (id as u32) as f32))
        {
            Some(i) => Err((i, ids[i])),
            None => Ok(()),
        }
    }

    /// Adds each id's output gradient to its row of `grad` (Keras's `take` gradient: a
    /// scatter-add). Ids outside the table contribute nothing.
    pub fn backward(&self, ids: &[f32], dy: &[f32], grad: &mut [f32]) {
        let d = self.output_dim;
        for (&id, g) in ids.iter().zip(dy.chunks_exact(d.max(1))) {
            if let Some(r) = self.row(id) {
                for (w, g) in grad[r * d..(r + 1) * d].iter_mut().zip(g) {
                    *w += g;
                }
            }
        }
    }
}

impl Weights for Embedding {
    fn weight(&self, _index: usize) -> &[f32] {
        &self.embeddings
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, _index: usize) -> &mut [f32] {
        self.embeddings.make_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_keras_on_jax() {
        static TABLE: [f32; 8] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let e = Embedding::baked(4, 2, &TABLE);
        // Keras 3.15 on JAX: [0, 1.7, -1, 4, -5] -> rows 0, 1, 3, NaN, NaN.
        let mut y = [0.0; 10];
        let mut mask = [false; 5];
        e.forward(&[0.0, 1.7, -1.0, 4.0, -5.0], &mut y, Some(&mut mask));
        assert_eq!(y[..6], [0.0, 1.0, 2.0, 3.0, 6.0, 7.0]);
        assert!(y[6..].iter().all(|v| v.is_nan()));
        assert_eq!(mask, [false, true, true, true, true]);
        // [2.5, -0.5, 3.9, -4, -3] -> rows 2, 0, 3, 0, 1.
        e.forward(&[2.5, -0.5, 3.9, -4.0, -3.0], &mut y, None);
        assert_eq!(y, [4.0, 5.0, 0.0, 1.0, 6.0, 7.0, 0.0, 1.0, 2.0, 3.0]);
        assert_eq!(Embedding::check_ids(4, &[0.0, 3.0]), Ok(()));
        assert_eq!(Embedding::check_ids(4, &[0.0, 1.5]), Err((1, 1.5)));
        assert_eq!(Embedding::check_ids(4, &[4.0]), Err((0, 4.0)));
        assert!(Embedding::check_ids(4, &[f32::NAN]).is_err());
    }
}
