//! `gemm`: a checked, safe front for matrixmultiply's strided SGEMM, for the training
//! products that involve a transpose (`dz · xᵀ`, `kernelᵀ · dz`). Reading a transpose through
//! strides avoids both a copy and nalgebra's dot-product fallback for transposed products.

/// A matrix stored in a slice: `rows x cols`, element `(r, c)` at `r * row_stride +
/// c * col_stride`.
#[derive(Clone, Copy)]
pub struct Strided {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Step between consecutive rows.
    pub row_stride: usize,
    /// Step between consecutive columns.
    pub col_stride: usize,
}

impl Strided {
    /// A column-major `rows x cols` matrix (nalgebra's layout).
    pub fn column_major(rows: usize, cols: usize) -> Strided {
        Strided {
            rows,
            cols,
            row_stride: 1,
            col_stride: rows,
        }
    }

    /// The transpose of this matrix, as the same memory read with swapped strides.
    pub fn t(self) -> Strided {
        Strided {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Whether every element lies inside a slice of `len` values.
    fn fits(&self, len: usize) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1).checked_mul(self.row_stride).and_then(|r| {
            (self.cols - 1)
                .checked_mul(self.col_stride)
                .and_then(|c| r.checked_add(c))
        });
        last.is_some_and(|last| last < len)
    }
}

/// `c = alpha · a · b + beta · c`.
///
/// # Panics
/// If the shapes do not chain (`a.cols == b.rows`, `c` is `a.rows x b.cols`) or a matrix
/// does not fit its slice — internal errors, never user input (layer shapes are fixed at
/// compile time).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    alpha: f32,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
    beta: f32,
    c: &mut [f32],
    sc: Strided,
) {
    assert!(
        sa.cols == sb.rows && sc.rows == sa.rows && sc.cols == sb.cols,
        "gemm shapes do not chain"
    );
    assert!(
        sa.fits(a.len()) && sb.fits(b.len()) && sc.fits(c.len()),
        "gemm matrix outside its slice"
    );
    // Writes through `c` must not alias: a column-major or row-major `c` never does.
    assert!(
        sc.row_stride == 1 && sc.col_stride >= sc.rows.max(1)
            || sc.col_stride == 1 && sc.row_stride >= sc.cols.max(1),
        "gemm output must be dense"
    );
    let (m, k, n) = (sa.rows, sa.cols, sb.cols);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts above keep every index the kernel touches inside the three slices,
    // `c` is a unique borrow with non-overlapping elements, and strides fit `isize` because
    // they index within slices (whose lengths fit `isize`).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            sa.row_stride as isize,
            sa.col_stride as isize,
            b.as_ptr(),
            sb.row_stride as isize,
            sb.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            sc.row_stride as isize,
            sc.col_stride as isize,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_operands_multiply_like_nalgebra() {
        let a = nalgebra::DMatrix::<f32>::from_fn(3, 4, |r, c| (r * 4 + c) as f32 - 5.0);
        let b = nalgebra::DMatrix::<f32>::from_fn(3, 2, |r, c| (r + 2 * c) as f32 * 0.5);
        let mut c = vec![1.0f32; 4 * 2];
        gemm(
            1.0,
            a.as_slice(),
            Strided::column_major(3, 4).t(),
            b.as_slice(),
            Strided::column_major(3, 2),
            0.0,
            &mut c,
            Strided::column_major(4, 2),
        );
        let expected = a.transpose() * &b;
        assert_eq!(c.as_slice(), expected.as_slice());
    }

    #[test]
    #[should_panic(expected = "outside its slice")]
    fn refuses_a_matrix_longer_than_its_slice() {
        let mut c = vec![0.0f32; 4];
        gemm(
            1.0,
            &[0.0; 3],
            Strided::column_major(2, 2),
            &[0.0; 4],
            Strided::column_major(2, 2),
            0.0,
            &mut c,
            Strided::column_major(2, 2),
        );
    }
}
