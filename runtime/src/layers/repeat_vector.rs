//! Keras's `RepeatVector(n)`: [`repeat_vector`] turns each sample's vector `(features,)` into
//! `(n, features)` by stacking `n` copies.

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
    for (vector, out) in input
        .chunks_exact(F)
        .zip(y.values_mut().chunks_exact_mut(F * N))
    {
        for copy in out.chunks_exact_mut(F) {
            copy.copy_from_slice(vector);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Batch;

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
