//! Keras's `PReLU`: [`PReLU::new`] initialises the learned slopes, [`PReLU::forward`]
//! applies `x if x >= 0 else alpha * x` with `alpha` broadcast over the shared axes, and
//! [`PReLU::backward`] computes the gradients of the input and of `alpha`.

use super::Weights;
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::param::Param;
#[cfg(feature = "alloc")]
use alloc::vec;

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
    pub alpha: Param<[f32]>,
    input_shape: &'static [usize],
    alpha_shape: &'static [usize],
}

impl PReLU {
    /// A layer for per-sample inputs of `input_shape` whose `alpha` has Keras shape
    /// `alpha_shape` (same rank; each axis equal to the input's or 1), filled by
    /// `initializer` from stream `first_weight` of `seed` (see [`weight_rng`]).
    #[cfg(feature = "alloc")]
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
            alpha: Param::heap(&alpha[..]),
            input_shape,
            alpha_shape,
        }
    }

    /// A layer whose slopes stay in static memory (a model's `pretrained()`).
    pub const fn baked(
        input_shape: &'static [usize],
        alpha_shape: &'static [usize],
        alpha: &'static [f32],
    ) -> Self {
        PReLU {
            alpha: Param::baked(alpha),
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
                for (x, &a) in sample.iter_mut().zip(self.alpha.iter()) {
                    *x = prelu(*x, a);
                }
            } else {
                broadcast(sample, &self.alpha, self.input_shape, self.alpha_shape);
            }
        }
    }
}

impl PReLU {
    /// One timestep of a layer whose `alpha` is the same at every timestep (a rank-1 input,
    /// or a `(timesteps, features)` one with the timesteps shared, `shared_axes = [1]`), for
    /// streaming: `x` holds that timestep's features, changed in place with `alpha`'s
    /// values for them (one per feature, or one for all when the features are shared too).
    ///
    /// ```
    /// use kiln_runtime::{initializers::Initializer, layers::PReLU};
    /// // Keras: PReLU(shared_axes = [1]) on (5, 2): alpha (1, 2).
    /// let p = PReLU::new(&[5, 2], &[1, 2], Initializer::Constant(0.5), 0, 0);
    /// let mut x = [-2.0, 3.0];
    /// p.forward_timestep(&mut x);
    /// assert_eq!(x, [-1.0, 3.0]);
    /// ```
    pub fn forward_timestep(&self, x: &mut [f32]) {
        match &self.alpha[..] {
            [a] => x.iter_mut().for_each(|v| *v = prelu(*v, *a)),
            alpha => {
                for (v, &a) in x.iter_mut().zip(alpha) {
                    *v = prelu(*v, a);
                }
            }
        }
    }

    /// The backward pass on whole samples: `x` is the forward input, `dy` the gradient with
    /// respect to the output. Adds `sum(dy * min(x, 0))` over the batch and the shared axes
    /// into `grad_alpha` (Keras layout), then, when `input_grad`, turns `dy` in place into
    /// the gradient with respect to `x`: `dy * 1` where `x > 0`, `dy * alpha` where `x < 0`.
    ///
    /// At `x == 0` the input gradient is 0: Keras computes `relu(x) - alpha * relu(-x)` and
    /// JAX gives `relu` a derivative of 0 at 0, in both terms.
    ///
    /// ```
    /// use kiln_runtime::{initializers::Initializer, layers::PReLU};
    /// let p = PReLU::new(&[3], &[3], Initializer::Constant(0.25), 0, 0);
    /// let mut dy = [1.0, 1.0, 1.0];
    /// let mut grad_alpha = [0.0; 3];
    /// p.backward(&[-2.0, 0.0, 3.0], &mut dy, &mut grad_alpha, true);
    /// assert_eq!(dy, [0.25, 0.0, 1.0]);
    /// assert_eq!(grad_alpha, [-2.0, 0.0, 0.0]);
    /// ```
    pub fn backward(&self, x: &[f32], dy: &mut [f32], grad_alpha: &mut [f32], input_grad: bool) {
        let sample_len: usize = self.input_shape.iter().product();
        if sample_len == 0 {
            return;
        }
        let step = |x: f32, dy: &mut f32, alpha: f32, grad: &mut f32| {
            let g = *dy;
            if x < 0.0 {
                *grad += g * x;
            }
            if input_grad {
                *dy = if x > 0.0 {
                    g
                } else if x < 0.0 {
                    g * alpha
                } else {
                    0.0
                };
            }
        };
        for (xs, ds) in x
            .chunks_exact(sample_len)
            .zip(dy.chunks_exact_mut(sample_len))
        {
            if self.alpha.len() == sample_len {
                for (((&x, d), &a), g) in xs
                    .iter()
                    .zip(ds)
                    .zip(self.alpha.iter())
                    .zip(grad_alpha.iter_mut())
                {
                    step(x, d, a, g);
                }
            } else {
                walk(self.input_shape, self.alpha_shape, 0, 0, &mut |i, k| {
                    step(xs[i], &mut ds[i], self.alpha[k], &mut grad_alpha[k]);
                });
            }
        }
    }
}

/// Calls `f(i, k)` for every value of a tensor of shape `dims` (row-major offset `i`, from
/// `x_offset`), with `k` the offset of its `alpha` (shape `alpha_dims`, from `a_offset`),
/// which stays put along the axes where `alpha_dims` is 1.
fn walk(
    dims: &[usize],
    alpha_dims: &[usize],
    x_offset: usize,
    a_offset: usize,
    f: &mut impl FnMut(usize, usize),
) {
    let (Some((&d, rest)), Some((&a, alpha_rest))) = (dims.split_first(), alpha_dims.split_first())
    else {
        f(x_offset, a_offset);
        return;
    };
    let x_inner: usize = rest.iter().product();
    let a_inner: usize = alpha_rest.iter().product();
    let a_step = if a == 1 { 0 } else { a_inner };
    for i in 0..d {
        walk(
            rest,
            alpha_rest,
            x_offset + i * x_inner,
            a_offset + i * a_step,
            f,
        );
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
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, _index: usize) -> &mut [f32] {
        self.alpha.make_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initializer_fills_alpha() {
        let p = PReLU::new(&[2, 3], &[1, 3], Initializer::Constant(0.25), 0, 0);
        assert_eq!(&*p.alpha, [0.25; 3]);
        let zeros = PReLU::new(&[2, 3], &[2, 3], Initializer::Zeros, 0, 0);
        assert_eq!(&*zeros.alpha, [0.0; 6]);
    }

    #[test]
    fn backward_sums_alpha_gradients_over_shared_axes_and_samples() {
        // Input (2, 3), alpha (1, 3) (shared_axes = [1]); two samples.
        let mut p = PReLU::new(&[2, 3], &[1, 3], Initializer::Zeros, 0, 0);
        p.weight_mut(0).copy_from_slice(&[0.5, 2.0, -1.0]);
        let x = [
            -1.0, 0.0, 3.0, -2.0, -4.0, 1.0, -3.0, 2.0, 0.0, 5.0, -1.0, -2.0,
        ];
        let dy0 = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0,
        ];
        let mut dy = dy0;
        let mut grad = [10.0, 0.0, 0.0];
        p.backward(&x, &mut dy, &mut grad, true);
        // Column c sums dy * x over its entries with x < 0, onto what was there:
        // column 0: 10 + 1 * -1 + 4 * -2 + -1 * -3; column 1: 5 * -4 + -5 * -1; column 2: -6 * -2.
        assert_eq!(grad, [4.0, -15.0, 12.0]);
        assert_eq!(
            dy,
            [0.5, 0.0, 3.0, 2.0, 10.0, 6.0, -0.5, -2.0, 0.0, -4.0, -10.0, 6.0]
        );

        // Without the input gradient, dy stays as it was; alpha (2, 1) shares the last axis.
        let mut p = PReLU::new(&[2, 3], &[2, 1], Initializer::Zeros, 0, 0);
        p.weight_mut(0).copy_from_slice(&[0.5, 2.0]);
        let mut dy = dy0;
        let mut grad = [0.0; 2];
        p.backward(&x, &mut dy, &mut grad, false);
        assert_eq!(dy, dy0);
        // Row 0 of both samples: 1 * -1 + -1 * -3; row 1: 4 * -2 + 5 * -4 + -5 * -1 + -6 * -2.
        assert_eq!(grad, [2.0, -11.0]);
    }

    #[test]
    fn backward_without_shared_axes_is_elementwise() {
        let mut p = PReLU::new(&[3], &[3], Initializer::Zeros, 0, 0);
        p.weight_mut(0).copy_from_slice(&[0.1, 0.2, 0.3]);
        let x = [-1.0, -1.0, 2.0, 0.0, -2.0, -3.0];
        let mut dy = [1.0; 6];
        let mut grad = [0.0; 3];
        p.backward(&x, &mut dy, &mut grad, true);
        assert_eq!(grad, [-1.0, -3.0, -3.0]);
        assert_eq!(dy, [0.1, 0.2, 1.0, 0.0, 0.2, 0.3]);
    }

    #[test]
    fn alpha_broadcasts_over_shared_axes() {
        // Input (2, 3), alpha (1, 3): both rows use slopes [1, 2, 3].
        let mut p = PReLU::new(&[2, 3], &[1, 3], Initializer::Zeros, 0, 0);
        p.weight_mut(0).copy_from_slice(&[1.0, 2.0, 3.0]);
        let mut x = [-1.0, -1.0, -1.0, -2.0, 5.0, -2.0];
        p.forward(&mut x);
        assert_eq!(x, [-1.0, -2.0, -3.0, -2.0, 5.0, -6.0]);

        // Alpha (2, 1): one slope per row.
        let mut p = PReLU::new(&[2, 3], &[2, 1], Initializer::Zeros, 0, 0);
        p.weight_mut(0).copy_from_slice(&[10.0, 100.0]);
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
