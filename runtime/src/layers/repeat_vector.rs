//! Keras's `RepeatVector(n)`: [`repeat_vector`] turns each sample's vector `(features,)` into
//! `(n, features)` by stacking `n` copies; [`repeat_vector_backward`] sums the copies'
//! gradients back into one vector.

use crate::tensor::Tensor;

/// Keras `RepeatVector` on one sample or a batch of rank-1 samples.
///
/// `F` is the number of features (the input's only axis and the output's last axis) and `N`
/// the number of copies; the output of each sample is `N` columns, each a copy of its input.
///
/// # Shapes
/// `(F,)` -> `(N, F)`.
///
/// # Example
/// ```
/// use kiln_runtime::{layers::repeat_vector::repeat_vector, Sample, Tensor};
/// let x = Sample::<2, 1>::from_values(&[1.0, 2.0]);
/// let y: Sample<2, 3> = repeat_vector::<_, 2, 3>(&x);
/// assert_eq!(y.values(), &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
/// ```
pub fn repeat_vector<T: Tensor, const F: usize, const N: usize>(x: &T) -> T::Shaped<F, N> {
    let input = x.values();
    let samples = input.len() / F.max(1);
    let mut y = T::zeros_shaped::<F, N>(samples);
    repeat_vector_into::<F, N>(input, y.values_mut());
    y
}

/// [`repeat_vector`] on slices of whole samples: `output` holds `N` copies of each
/// `F`-vector of `input`.
pub fn repeat_vector_into<const F: usize, const N: usize>(input: &[f32], output: &mut [f32]) {
    for (vector, out) in input.chunks_exact(F).zip(output.chunks_exact_mut(F * N)) {
        for copy in out.chunks_exact_mut(F) {
            copy.copy_from_slice(vector);
        }
    }
}

/// The backward pass of [`repeat_vector`]: each input value feeds `N` outputs, so its
/// gradient is the sum of theirs, `dx[f] = sum over n of dy[n][f]`.
///
/// # Shapes
/// `(N, F)` -> `(F,)`.
///
/// # Example
/// ```
/// use kiln_runtime::{layers::repeat_vector::repeat_vector_backward, Sample, Tensor};
/// let dy = Sample::<2, 3>::from_values(&[1.0, 2.0, 10.0, 20.0, 100.0, 200.0]);
/// let dx: Sample<2, 1> = repeat_vector_backward::<_, 2, 3>(&dy);
/// assert_eq!(dx.values(), &[111.0, 222.0]);
/// ```
pub fn repeat_vector_backward<T: Tensor, const F: usize, const N: usize>(
    dy: &T,
) -> T::Shaped<F, 1> {
    let grads = dy.values();
    let samples = grads.len() / (F * N).max(1);
    let mut dx = T::zeros_shaped::<F, 1>(samples);
    repeat_vector_backward_into::<F, N>(grads, dx.values_mut());
    dx
}

/// [`repeat_vector_backward`] on slices of whole samples, accumulating into `dx` (which
/// starts at zero).
pub fn repeat_vector_backward_into<const F: usize, const N: usize>(dy: &[f32], dx: &mut [f32]) {
    if F * N == 0 {
        return;
    }
    for (copies, sum) in dy.chunks_exact(F * N).zip(dx.chunks_exact_mut(F)) {
        for copy in copies.chunks_exact(F) {
            for (s, &g) in sum.iter_mut().zip(copy) {
                *s += g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Batch;

    #[test]
    fn backward_sums_the_copies_of_each_sample() {
        // Two samples of (N = 3, F = 2).
        let dy = Batch::<2>::from_values(&[1., 2., 3., 4., 5., 6., -1., 0.5, -1., 0.5, -1., 0.5]);
        let dx = repeat_vector_backward::<_, 2, 3>(&dy);
        assert_eq!(dx.ncols(), 2, "one column per sample");
        assert_eq!(dx.values(), &[9., 12., -3., 1.5]);
    }

    #[test]
    fn each_sample_repeats_its_own_vector() {
        let x = Batch::<3>::from_values(&[1., 2., 3., 4., 5., 6.]);
        let y = repeat_vector::<_, 3, 2>(&x);
        assert_eq!(y.ncols(), 4, "2 samples x 2 copies");
        assert_eq!(
            y.values(),
            &[1., 2., 3., 1., 2., 3., 4., 5., 6., 4., 5., 6.]
        );
    }
}
