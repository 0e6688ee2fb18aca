//! Keras's `Lambda`: [`Lambda`] holds the user's functions; on a batch, [`map_samples`]
//! applies the per-sample function to each sample and [`map_gradients`] the backward function.
//! The `_into` variants write into given storage and the `_pooled` ones into storage from the
//! training step's [`Pool`], so that training allocates nothing per step.

#[cfg(feature = "alloc")]
use crate::pool::Pool;
#[cfg(feature = "alloc")]
use crate::tensor::{Batch, Sample, Tensor};

/// A `Lambda` layer's functions, as `fn` pointers: `function` maps one sample
/// (`fn(&Sample<R, C>) -> Sample<R2, C2>`), `backward` is its vector-Jacobian product
/// (`fn(&Sample<R, C>, &Sample<R2, C2>) -> Sample<R, C>`: input and output gradient to input
/// gradient), or `()` when the layer has none (and cannot be trained).
#[derive(Debug, Clone, Copy)]
pub struct Lambda<F, B> {
    /// The forward function.
    pub function: F,
    /// The backward function, or `()`.
    pub backward: B,
}

#[cfg(feature = "alloc")]
/// Applies `f` to each sample of `x` (`C` columns each); the result has `C2` columns per
/// sample.
///
/// ```
/// use kiln_runtime::{layers::lambda::map_samples, Batch, Sample, Tensor};
/// fn twice(x: &Sample<2, 1>) -> Sample<4, 1> {
///     Sample::<4, 1>::from_values(&[x[0], x[1], x[0], x[1]])
/// }
/// let y = map_samples(&Batch::<2>::from_values(&[1.0, 2.0, 3.0, 4.0]), twice);
/// assert_eq!(y.values(), &[1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
/// ```
pub fn map_samples<const R: usize, const C: usize, const R2: usize, const C2: usize>(
    x: &Batch<R>,
    f: fn(&Sample<R, C>) -> Sample<R2, C2>,
) -> Batch<R2> {
    let mut y = Batch::<R2>::zeros(samples::<R, C>(x) * C2);
    map_samples_into(x.values(), f, y.values_mut());
    y
}

#[cfg(feature = "alloc")]
/// [`map_samples`] with the output in storage from `pool`.
pub fn map_samples_pooled<const R: usize, const C: usize, const R2: usize, const C2: usize>(
    pool: &mut Pool,
    x: &Batch<R>,
    f: fn(&Sample<R, C>) -> Sample<R2, C2>,
) -> Batch<R2> {
    let mut y = pool.take::<R2>(samples::<R, C>(x) * C2);
    map_samples_into(x.values(), f, y.values_mut());
    y
}

#[cfg(feature = "alloc")]
/// [`map_samples`] on row-major values: writes `f` of each whole sample of `x` into the
/// matching sample of `y`, which holds as many samples.
pub fn map_samples_into<const R: usize, const C: usize, const R2: usize, const C2: usize>(
    x: &[f32],
    f: fn(&Sample<R, C>) -> Sample<R2, C2>,
    y: &mut [f32],
) {
    for (xs, ys) in x.chunks_exact(R * C).zip(y.chunks_exact_mut(R2 * C2)) {
        ys.copy_from_slice(f(&Sample::from_values(xs)).values());
    }
}

#[cfg(feature = "alloc")]
/// The number of samples of `C` columns each in `x`.
fn samples<const R: usize, const C: usize>(x: &Batch<R>) -> usize {
    x.ncols() / C.max(1)
}

#[cfg(feature = "alloc")]
/// The backward pass of `Lambda`: `backward(input, output gradient)` for each sample of `x`
/// and `dy`, giving the gradient with respect to `x`.
pub fn map_gradients<const R: usize, const C: usize, const R2: usize, const C2: usize>(
    x: &Batch<R>,
    dy: &Batch<R2>,
    backward: fn(&Sample<R, C>, &Sample<R2, C2>) -> Sample<R, C>,
) -> Batch<R> {
    let mut dx = Batch::<R>::zeros(x.ncols());
    map_gradients_into(x.values(), dy.values(), backward, dx.values_mut());
    dx
}

#[cfg(feature = "alloc")]
/// [`map_gradients`] with the gradient in storage from `pool`.
pub fn map_gradients_pooled<const R: usize, const C: usize, const R2: usize, const C2: usize>(
    pool: &mut Pool,
    x: &Batch<R>,
    dy: &Batch<R2>,
    backward: fn(&Sample<R, C>, &Sample<R2, C2>) -> Sample<R, C>,
) -> Batch<R> {
    let mut dx = pool.take::<R>(x.ncols());
    map_gradients_into(x.values(), dy.values(), backward, dx.values_mut());
    dx
}

#[cfg(feature = "alloc")]
/// [`map_gradients`] on row-major values: writes each sample's input gradient into `dx`,
/// which has the shape of `x`.
pub fn map_gradients_into<const R: usize, const C: usize, const R2: usize, const C2: usize>(
    x: &[f32],
    dy: &[f32],
    backward: fn(&Sample<R, C>, &Sample<R2, C2>) -> Sample<R, C>,
    dx: &mut [f32],
) {
    for ((xs, dys), dxs) in x
        .chunks_exact(R * C)
        .zip(dy.chunks_exact(R2 * C2))
        .zip(dx.chunks_exact_mut(R * C))
    {
        let g = backward(&Sample::from_values(xs), &Sample::from_values(dys));
        dxs.copy_from_slice(g.values());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: &Sample<2, 3>) -> Sample<2, 3> {
        x.map(|v| v * v)
    }

    fn square_backward(x: &Sample<2, 3>, dy: &Sample<2, 3>) -> Sample<2, 3> {
        x.component_mul(dy) * 2.0
    }

    #[test]
    fn maps_each_sample_of_a_batch() {
        let values: [f32; 12] = core::array::from_fn(|i| i as f32 - 5.0);
        let x = Batch::<2>::from_values(&values);
        let y = map_samples(&x, square);
        assert_eq!(y.ncols(), 6);
        assert!(y.values().iter().zip(&values).all(|(y, x)| *y == x * x));
        let dx = map_gradients(&x, &Batch::<2>::from_values(&[1.0; 12]), square_backward);
        assert!(dx.values().iter().zip(&values).all(|(d, x)| *d == 2.0 * x));
    }

    #[test]
    fn pooled_maps_match_and_reuse_storage() {
        let values: [f32; 12] = core::array::from_fn(|i| i as f32 - 5.0);
        let x = Batch::<2>::from_values(&values);
        let dy = Batch::<2>::from_values(&[1.0; 12]);
        let mut pool = Pool::default();
        let y = map_samples_pooled(&mut pool, &x, square);
        assert_eq!(y, map_samples(&x, square));
        let ptr = y.as_ptr();
        pool.give(y);
        let dx = map_gradients_pooled(&mut pool, &x, &dy, square_backward);
        assert_eq!(dx, map_gradients(&x, &dy, square_backward));
        assert_eq!(dx.as_ptr(), ptr);
    }
}
