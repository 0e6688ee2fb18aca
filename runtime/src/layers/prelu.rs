//! Keras's `PReLU`: [`PReLU::new`] initialises the learned slopes, [`PReLU::forward`]
//! applies `x if x >= 0 else alpha * x` with `alpha` broadcast over the shared axes.

use super::Weights;
use crate::initializers::{weight_rng, Initializer};
use alloc::vec;
use alloc::vec::Vec;

/// A parametric ReLU: `f(x) = x` for `x >= 0`, `alpha * x` otherwise, with one learned
/// `alpha` per value of the input, except along `shared_axes`, where one `alpha` serves the
/// whole axis.
///
/// Keras computes `relu(x) - alpha * relu(-x)`, which is the same number for every `x`.
///
/// # Shapes
/// Output shape = input shape, any rank.
///
/// # Weights
/// - `alpha`: the input's per-sample shape with every shared axis set to 1 (Keras's
///   `shared_axes = [1, 2]` on a `(h, w, c)` input gives `(1, 1, c)`), row-major. It lives
///   on the heap, so a PReLU after a large feature map fits any stack.
#[derive(Debug, Clone)]
pub struct PReLU {
    /// The slopes, row-major in their Keras shape.
    pub alpha: Vec<f32>,
    input_shape: &'static [usize],
    alpha_shape: &'static [usize],
}

impl PReLU {
    /// A layer for per-sample inputs of `input_shape` whose `alpha` has Keras shape
    /// `alpha_shape` (same rank; each axis equal to the input's or 1), filled by
    /// `initializer` from stream `first_weight` of `seed` (see [`weight_rng`]).
    pub fn new(
        input_shape: &'static [usize],
        alpha_shape: &'static [usize],
        initializer: Initializer,
        seed: u64,
        first_weight: usize,
    ) -> Self {
        debug_assert_eq!(input_shape.len(), alpha_shape.len());
        debug_assert!(input_shape
            .iter()
            .zip(alpha_shape)
            .all(|(d, a)| *a == *d || *a == 1));
        let mut alpha = vec![0.0; alpha_shape.iter().product()];
        initializer.fill(&mut alpha, alpha_shape, &mut weight_rng(seed, first_weight));
        PReLU {
            alpha,
            input_shape,
            alpha_shape,
        }
    }

    /// Applies the layer in place to `values`: whole samples, each row-major in the input
    /// shape (one sample or a batch alike).
    pub fn forward(&self, values: &mut [f32]) {
        let sample_len: usize = self.input_shape.iter().product();
        if sample_len == 0 {
            return;
        }
        for sample in values.chunks_exact_mut(sample_len) {
            if self.alpha.len() == sample_len {
                // No shared axis: one slope per value.
                for (x, &a) in sample.iter_mut().zip(&self.alpha) {
                    *x = prelu(*x, a);
                }
            } else {
                broadcast(sample, &self.alpha, self.input_shape, self.alpha_shape);
            }
        }
    }
}

#[inline]
fn prelu(x: f32, alpha: f32) -> f32 {
    if x >= 0.0 {
        x
    } else {
        alpha * x
    }
}

/// Applies `prelu` to `x` (row-major in `dims`) with `alpha` (row-major in `alpha_dims`)
/// broadcast along the axes where `alpha_dims` is 1. Recursing on the leading axis keeps the
/// kernel allocation-free for any rank.
fn broadcast(x: &mut [f32], alpha: &[f32], dims: &[usize], alpha_dims: &[usize]) {
    match (dims, alpha_dims) {
        ([_], [1]) => {
            let a = alpha[0];
            x.iter_mut().for_each(|v| *v = prelu(*v, a));
        }
        ([_], [_]) => {
            for (v, &a) in x.iter_mut().zip(alpha) {
                *v = prelu(*v, a);
            }
        }
        ([d, rest @ ..], [a, alpha_rest @ ..]) => {
            let chunk = x.len() / d;
            let alpha_chunk = alpha.len() / a;
            for (i, xs) in x.chunks_exact_mut(chunk).enumerate() {
                let alpha_part = if *a == 1 {
                    alpha
                } else {
                    &alpha[i * alpha_chunk..(i + 1) * alpha_chunk]
                };
                broadcast(xs, alpha_part, rest, alpha_rest);
            }
        }
        _ => {}
    }
}

impl Weights for PReLU {
    fn weight(&self, _index: usize) -> &[f32] {
        &self.alpha
    }
    fn weight_mut(&mut self, _index: usize) -> &mut [f32] {
        &mut self.alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initializer_fills_alpha() {
        let p = PReLU::new(&[2, 3], &[1, 3], Initializer::Constant(0.25), 0, 0);
        assert_eq!(p.alpha, [0.25; 3]);
        let zeros = PReLU::new(&[2, 3], &[2, 3], Initializer::Zeros, 0, 0);
        assert_eq!(zeros.alpha, [0.0; 6]);
    }

    #[test]
    fn alpha_broadcasts_over_shared_axes() {
        // Input (2, 3), alpha (1, 3): both rows use slopes [1, 2, 3].
        let mut p = PReLU::new(&[2, 3], &[1, 3], Initializer::Zeros, 0, 0);
        p.alpha.copy_from_slice(&[1.0, 2.0, 3.0]);
        let mut x = [-1.0, -1.0, -1.0, -2.0, 5.0, -2.0];
        p.forward(&mut x);
        assert_eq!(x, [-1.0, -2.0, -3.0, -2.0, 5.0, -6.0]);

        // Alpha (2, 1): one slope per row.
        let mut p = PReLU::new(&[2, 3], &[2, 1], Initializer::Zeros, 0, 0);
        p.alpha.copy_from_slice(&[10.0, 100.0]);
        // Two samples: the batch repeats the per-sample broadcast.
        let mut x = [
            -1.0, 0.0, 1.0, -1.0, 0.0, 1.0, -2.0, -2.0, -2.0, -3.0, -3.0, 3.0,
        ];
        p.forward(&mut x);
        assert_eq!(
            x,
            [-10.0, 0.0, 1.0, -100.0, 0.0, 1.0, -20.0, -20.0, -20.0, -300.0, -300.0, 3.0]
        );
    }
}
