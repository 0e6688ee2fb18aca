//! How kiln stores N-D tensors: [`Tensor`], with [`Sample`] (one sample, fixed size, on the
//! stack) and [`Batch`] (many samples, on the heap).
//!
//! A per-sample tensor of shape `(d1, ..., dn)` is an nalgebra matrix with `dn` rows and
//! `d1 * ... * d(n-1)` columns (one column for rank 1). nalgebra stores matrices column by
//! column, so the matrix's memory is exactly NumPy's C order for `(d1, ..., dn)`: column `j`
//! holds the last-axis vector of position `j`. Consequences kiln relies on:
//! - a Keras `Dense` layer on any rank is one product `W * X` (the kernel times the matrix);
//! - row-major slices in and out of the model are plain copies, never transposes;
//! - a batch is the same matrix with more columns (`samples * d1 * ... * d(n-1)`).
//!
//! | Keras shape | `Input`/`Output` type |
//! |---|---|
//! | `(n,)` | `SVector<f32, n>` (= `SMatrix<f32, n, 1>`) |
//! | `(t, f)` | `SMatrix<f32, f, t>` |
//! | `(a, b, c)` | `SMatrix<f32, c, {a * b}>` |
//! | `(a, b, c, d)` | `SMatrix<f32, d, {a * b * c}>` |

#[cfg(feature = "alloc")]
use alloc::vec::Vec;
use nalgebra::SMatrix;
#[cfg(feature = "alloc")]
use nalgebra::{Const, Dyn, OMatrix, VecStorage};

/// One sample: `R` values on the last axis, `C` positions (the product of the other axes).
pub type Sample<const R: usize, const C: usize> = SMatrix<f32, R, C>;

/// Many samples: `R` values on the last axis, columns for every position of every sample.
#[cfg(feature = "alloc")]
pub type Batch<const R: usize> = OMatrix<f32, Const<R>, Dyn>;

/// What layer kernels need from a tensor, whether it holds one sample or a batch, so that
/// each layer's code is written once for both.
pub trait Tensor: Sized {
    /// The same kind of tensor (sample or batch) with `R` rows and, per sample, `C` columns.
    type Shaped<const R: usize, const C: usize>: Tensor;

    /// The values in row-major (NumPy C) order of the Keras shape.
    fn values(&self) -> &[f32];
    /// The values in row-major order, writable.
    fn values_mut(&mut self) -> &mut [f32];
    /// A tensor of this kind holding `data` (row-major; whole samples).
    fn from_values(data: &[f32]) -> Self;
    /// A zero tensor of shape `R x C` per sample, for `samples` samples (1 for a sample).
    fn zeros_shaped<const R: usize, const C: usize>(samples: usize) -> Self::Shaped<R, C>;
    /// The same values seen with `R` rows (Keras `Reshape`): the element count per sample
    /// must stay `R * C`, which the macro checks at compile time.
    fn reshaped<const R: usize, const C: usize>(self) -> Self::Shaped<R, C>;
}

impl<const R0: usize, const C0: usize> Tensor for SMatrix<f32, R0, C0> {
    type Shaped<const R: usize, const C: usize> = SMatrix<f32, R, C>;

    #[inline]
    fn values(&self) -> &[f32] {
        self.as_slice()
    }
    #[inline]
    fn values_mut(&mut self) -> &mut [f32] {
        self.as_mut_slice()
    }
    #[inline]
    fn from_values(data: &[f32]) -> Self {
        Self::from_column_slice(data)
    }
    #[inline]
    fn zeros_shaped<const R: usize, const C: usize>(_samples: usize) -> SMatrix<f32, R, C> {
        SMatrix::zeros()
    }
    #[inline]
    fn reshaped<const R: usize, const C: usize>(self) -> SMatrix<f32, R, C> {
        SMatrix::from_column_slice(self.as_slice())
    }
}

#[cfg(feature = "alloc")]
impl<const R0: usize> Tensor for Batch<R0> {
    type Shaped<const R: usize, const C: usize> = Batch<R>;

    #[inline]
    fn values(&self) -> &[f32] {
        self.as_slice()
    }
    #[inline]
    fn values_mut(&mut self) -> &mut [f32] {
        self.as_mut_slice()
    }
    fn from_values(data: &[f32]) -> Self {
        Batch::<R0>::from_column_slice(data)
    }
    fn zeros_shaped<const R: usize, const C: usize>(samples: usize) -> Batch<R> {
        Batch::<R>::zeros(samples * C)
    }
    fn reshaped<const R: usize, const C: usize>(self) -> Batch<R> {
        let len = self.len();
        let values: Vec<f32> = self.data.into();
        Batch::<R>::from_data(VecStorage::new(Const::<R>, Dyn(len / R), values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_row_major_of_the_keras_shape() {
        // Keras shape (2, 3): rows [1, 2, 3] and [4, 5, 6].
        let x = Sample::<3, 2>::from_values(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(x[(2, 0)], 3.0, "last-axis index is the matrix row");
        assert_eq!(x[(0, 1)], 4.0, "the leading index is the matrix column");
        let y: Sample<2, 3> = x.reshaped::<2, 3>();
        assert_eq!(y.values(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn batches_reshape_without_losing_samples() {
        let b = Batch::<3>::from_values(&[0.0; 12]);
        assert_eq!(b.ncols(), 4);
        let r = b.reshaped::<2, 3>();
        assert_eq!((r.nrows(), r.ncols()), (2, 6));
        let z = Batch::<3>::zeros_shaped::<4, 5>(2);
        assert_eq!(z.ncols(), 10);
    }
}
