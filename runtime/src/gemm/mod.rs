//! `gemm`: `c = alpha · a · b + beta · c` on strided matrices in slices, for the batched
//! products of training (`kernel · x`, `dz · xᵀ`, `kernelᵀ · dz`).
//!
//! kiln's own kernels, not a general BLAS: training multiplies small matrices (a batch of 32
//! against kernels of a few thousand to a few hundred thousand weights) millions of times,
//! and at that size a general GEMM spends about as long copying its operands into a blocked
//! layout (and allocating the buffer for it) as multiplying them. Two shapes cover every
//! product a layer makes, and both read the operands where they lie:
//! - *outer* (`a`'s columns contiguous, `b` any strides): a register tile of `c` gathers
//!   columns of `a` times broadcast values of `b` — `kernel · x` and `dz · xᵀ`;
//! - *dot* (`aᵀ`'s columns and `b`'s columns contiguous): dot products of columns,
//!   sixteen reduced at once — `kernelᵀ · dz`.
//!
//! Any other layout takes a plain triple loop. Nothing here allocates. The AVX-512 kernels
//! run where the CPU has AVX-512F (detected once at run time with `std`, at compile time
//! without), the portable ones, compiled for AVX2 + FMA where available, elsewhere;
//! `KILN_ISA` forces a lesser path (`crate::isa`).

#[cfg(target_arch = "x86_64")]
mod avx512;
mod matvec;
mod portable;

pub(crate) use matvec::Rows;
#[cfg(target_arch = "x86_64")]
pub(crate) use matvec::{store_avx2, store_avx512, sums_avx2, sums_avx512};
pub use matvec::{vec_mat, vec_mat2, vec_mat_from};

use crate::isa::Isa;

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

/// `c = alpha · a · b + beta · c`. With `beta == 0`, `c` is not read (BLAS's rule), so it
/// may start with any values.
///
/// # Panics
/// If the shapes do not chain (`a.cols == b.rows`, `c` is `a.rows x b.cols`), a matrix does
/// not fit its slice or `c`'s elements overlap — internal errors, never user input (layer
/// shapes are fixed at compile time).
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
    gemm_on(best_isa(), alpha, a, sa, b, sb, beta, c, sc);
}

/// [`gemm`] on a chosen instruction set (which the caller has checked the CPU supports).
#[allow(clippy::too_many_arguments)]
fn gemm_on(
    isa: Isa,
    alpha: f32,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
    beta: f32,
    c: &mut [f32],
    sc: Strided,
) {
    if sc.rows == 0 || sc.cols == 0 {
        return;
    }
    // A row-major `c` is a column-major `cᵀ = bᵀ · aᵀ`.
    let (a, sa, b, sb, sc) = if sc.row_stride == 1 {
        (a, sa, b, sb, sc)
    } else {
        (b, sb.t(), a, sa.t(), sc.t())
    };
    let (m, k, n) = (sa.rows, sa.cols, sb.cols);
    let ldc = sc.col_stride;
    if k == 0 {
        // An empty product: `c = beta · c`. The kernels would offset pointers into the
        // empty `a` and `b`.
        for j in 0..n {
            portable::scale(&mut c[j * ldc..j * ldc + m], beta);
        }
        return;
    }
    if sa.row_stride == 1 || m == 1 {
        let mut problem = Outer {
            m,
            n,
            k,
            alpha,
            a,
            lda: sa.col_stride,
            b,
            b_row: sb.row_stride,
            b_col: sb.col_stride,
            beta,
            c,
            ldc,
        };
        run_outer_on(isa, &mut problem);
    } else if k == 1 || sa.col_stride == 1 && sb.row_stride == 1 {
        let mut problem = Dot {
            m,
            n,
            k,
            alpha,
            a,
            lda: sa.row_stride,
            b,
            ldb: sb.col_stride,
            beta,
            c,
            ldc,
        };
        run_dot_on(isa, &mut problem);
    } else {
        naive(alpha, a, sa, b, sb, beta, c, sc);
    }
}

/// `y = x · w + bias` for one vector `x`, with `w` row-major, `x.len()` rows of `y.len()`
/// values (Keras's Dense kernel layout): Dense's product on one sample. Every output sums
/// the rows in order, then adds the bias, as [`vec_mat`] does with `accumulate`; the
/// AVX-512 kernel aligns its loads to cache lines (see `avx512::affine_vector`), the other
/// instruction sets run [`vec_mat`].
///
/// # Panics
/// If `w` holds fewer than `x.len() · y.len()` values or `bias` fewer than `y.len()`: internal
/// errors, never user input (layer shapes are fixed at compile time).
pub fn affine_vector(x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    affine_vector_on(best_isa(), x, w, bias, y);
}

/// [`affine_vector`] on a chosen instruction set (which the caller has checked the CPU has).
fn affine_vector_on(isa: Isa, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let n = y.len();
    assert!(
        x.len().checked_mul(n).is_some_and(|len| len <= w.len())
            && bias.is_none_or(|b| b.len() >= n),
        "affine_vector operands shorter than their shapes"
    );
    match (isa, bias) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (`best_isa`, or a test that checked); lengths above.
        (Isa::Avx512, _) => unsafe { avx512::affine_vector(x, w, bias, y) },
        (_, Some(bias)) => {
            y.copy_from_slice(&bias[..n]);
            vec_mat(x, w, n, 0, true, y);
        }
        (_, None) => vec_mat(x, w, n, 0, false, y),
    }
}

/// `dst = srcᵀ`: `src` is column-major `rows x cols`, `dst` becomes column-major
/// `cols x rows`. Lets a product with a transposed operand run on the outer-product kernel
/// (see `Dense::input_gradient_into`).
///
/// # Panics
/// If `src` or `dst` does not hold `rows · cols` values (an internal error).
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let len = rows.checked_mul(cols);
    assert!(
        len.is_some_and(|len| src.len() == len && dst.len() == len),
        "transpose lengths"
    );
    match best_isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (checked by `best_isa`); lengths checked above.
        Isa::Avx512 => unsafe { avx512::transpose(src, rows, cols, dst) },
        _ => portable::transpose(src, rows, cols, dst),
    }
}

/// `c = alpha · a · b + beta · c` with `a`'s columns contiguous (`a[i, p]` at `i + p · lda`,
/// `b[p, j]` at `p · b_row + j · b_col`, `c[i, j]` at `i + j · ldc`).
struct Outer<'s> {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &'s [f32],
    lda: usize,
    b: &'s [f32],
    b_row: usize,
    b_col: usize,
    beta: f32,
    c: &'s mut [f32],
    ldc: usize,
}

/// `c = alpha · aᵀ · b + beta · c` where `a` is stored `k x m` (`aᵀ[i, p]` at `p + i · lda`)
/// and `b` is `k x n` (`b[p, j]` at `p + j · ldb`): every `c[i, j]` is a dot product of two
/// contiguous columns.
struct Dot<'s> {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &'s [f32],
    lda: usize,
    b: &'s [f32],
    ldb: usize,
    beta: f32,
    c: &'s mut [f32],
    ldc: usize,
}

/// The instruction set of this process (`crate::isa`: the CPU's best, or `KILN_ISA`).
fn best_isa() -> Isa {
    crate::isa::isa()
}

fn run_outer_on(isa: Isa, problem: &mut Outer) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `best_isa` (or a test that checked the CPU) chose AVX-512; `gemm` checked
        // that every matrix lies in its slice, and the borrows keep `c` apart from `a`, `b`.
        Isa::Avx512 => unsafe { avx512::outer(problem) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (as above).
        Isa::Avx2Fma => unsafe { outer_avx2(problem) },
        _ => portable::outer(problem),
    }
}

fn run_dot_on(isa: Isa, problem: &mut Dot) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `run_outer_on`.
        Isa::Avx512 => unsafe { avx512::dot(problem) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `run_outer_on`.
        Isa::Avx2Fma => unsafe { dot_avx2(problem) },
        _ => portable::dot(problem),
    }
}

/// The portable outer kernel compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn outer_avx2(problem: &mut Outer) {
    portable::outer(problem);
}

/// The portable dot kernel compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(problem: &mut Dot) {
    portable::dot(problem);
}

/// Any strides, `c` column-major: a plain triple loop for layouts no layer produces.
#[allow(clippy::too_many_arguments)]
fn naive(
    alpha: f32,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
    beta: f32,
    c: &mut [f32],
    sc: Strided,
) {
    for j in 0..sc.cols {
        for i in 0..sc.rows {
            let sum: f32 = (0..sa.cols)
                .map(|p| {
                    a[i * sa.row_stride + p * sa.col_stride]
                        * b[p * sb.row_stride + j * sb.col_stride]
                })
                .sum();
            let out = &mut c[i + j * sc.col_stride];
            let old = if beta == 0.0 { 0.0 } else { beta * *out };
            *out = alpha * sum + old;
        }
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

    /// A small deterministic generator of values in [-1, 1).
    struct Values(u64);

    impl Values {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.next()).collect()
        }
    }

    /// The instruction sets this CPU can run, so each kernel is tested where it can be.
    fn isas() -> Vec<Isa> {
        crate::isa::available().to_vec()
    }

    /// Every layout (outer, dot, naive, row-major `c`) on every instruction set, against a
    /// double-precision reference, over sizes that hit each tile edge: rows around the 16-lane
    /// vectors and the 64-row tile, columns around the 6-column and 4 x 4 tiles, depths
    /// around the 16-lane dot step and the 256-deep block.
    #[test]
    fn every_kernel_matches_a_double_precision_reference() {
        let sizes = [
            (1, 1, 1),
            (3, 0, 2),
            (5, 7, 3),
            (16, 16, 6),
            (17, 17, 7),
            (33, 3, 4),
            (64, 64, 32),
            (65, 9, 13),
            (130, 300, 5),
            (10, 64, 32),
            (128, 32, 64),
            (4, 257, 8),
        ];
        let mut values = Values(7);
        let mut checked = 0;
        for isa in isas() {
            for &(m, k, n) in &sizes {
                // (a stored transposed?, b stored transposed?, c row-major?)
                for (ta, tb, tc) in [
                    (false, false, false),
                    (false, true, false),
                    (true, false, false),
                    (true, true, false),
                    (false, false, true),
                    (true, false, true),
                ] {
                    for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0), (2.0, 0.25)] {
                        let a = values.vec(m * k);
                        let b = values.vec(k * n);
                        let mut c = values.vec(m * n);
                        if beta == 0.0 {
                            c.fill(f32::NAN);
                        }
                        let sa = if ta {
                            Strided::column_major(k, m).t()
                        } else {
                            Strided::column_major(m, k)
                        };
                        let sb = if tb {
                            Strided::column_major(n, k).t()
                        } else {
                            Strided::column_major(k, n)
                        };
                        let sc = if tc {
                            Strided::column_major(n, m).t()
                        } else {
                            Strided::column_major(m, n)
                        };
                        let before = c.clone();
                        gemm_on(isa, alpha, &a, sa, &b, sb, beta, &mut c, sc);
                        let at =
                            |s: Strided, i: usize, j: usize| i * s.row_stride + j * s.col_stride;
                        for i in 0..m {
                            for j in 0..n {
                                let (mut sum, mut size) = (0.0f64, 0.0f64);
                                for p in 0..k {
                                    let term =
                                        f64::from(a[at(sa, i, p)]) * f64::from(b[at(sb, p, j)]);
                                    sum += term;
                                    size += term.abs();
                                }
                                let old = if beta == 0.0 {
                                    0.0
                                } else {
                                    f64::from(before[at(sc, i, j)])
                                };
                                let expected = f64::from(alpha) * sum + f64::from(beta) * old;
                                let got = f64::from(c[at(sc, i, j)]);
                                let tolerance = 1e-5 * (size + old.abs()) + 1e-6;
                                assert!(
                                    (got - expected).abs() <= tolerance,
                                    "{isa:?} m={m} k={k} n={n} ta={ta} tb={tb} tc={tc} alpha={alpha} beta={beta}: c[{i},{j}] = {got}, expected {expected}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 0);
    }

    /// The one-vector product on every instruction set against an f64 reference, with `w`
    /// starting at every offset within a cache line (the AVX-512 kernel realigns its loads),
    /// output widths around its 16-lane slots and 12-slot passes, with and without a bias.
    #[test]
    fn affine_vector_matches_an_f64_reference_at_every_alignment() {
        let mut values = Values(11);
        for isa in isas() {
            for (rows, n) in [
                (0, 5),
                (1, 1),
                (7, 10),
                (3, 16),
                (64, 64),
                (9, 100),
                (784, 256),
            ]
            .into_iter()
            .chain([(5, 192), (5, 208), (2, 300), (33, 17)])
            {
                let buffer = values.vec(rows * n + 16);
                let x = values.vec(rows);
                let bias = values.vec(n + 16);
                for offset in 0..16 {
                    let w = &buffer[offset..offset + rows * n];
                    for with_bias in [false, true] {
                        let b = with_bias.then(|| &bias[offset..offset + n]);
                        let mut y = vec![f32::NAN; n + 2];
                        affine_vector_on(isa, &x, w, b, &mut y[1..n + 1]);
                        assert!(y[0].is_nan() && y[n + 1].is_nan(), "wrote outside y");
                        for (j, &got) in y[1..n + 1].iter().enumerate() {
                            let (mut sum, mut size) = (0.0f64, 0.0f64);
                            for i in 0..rows {
                                let term = f64::from(x[i]) * f64::from(w[i * n + j]);
                                sum += term;
                                size += term.abs();
                            }
                            let b = b.map_or(0.0, |b| f64::from(b[j]));
                            let want = sum + b;
                            assert!(
                                (f64::from(got) - want).abs() <= 1e-5 * (size + b.abs()) + 1e-6,
                                "{isa:?} rows {rows} n {n} offset {offset} bias {with_bias}: \
                                 y[{j}] = {got}, expected {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn transposes_match_on_every_instruction_set() {
        let mut values = Values(3);
        for (rows, cols) in [
            (1, 1),
            (16, 16),
            (64, 128),
            (128, 64),
            (10, 64),
            (17, 33),
            (3, 40),
            (33, 17),
            (15, 15),
            (16, 17),
            (31, 1),
            (1, 31),
        ] {
            let src = values.vec(rows * cols);
            // Guard values past the end: the edge blocks' masked stores stay inside.
            let mut buffer = vec![f32::NAN; rows * cols + 32];
            transpose(&src, rows, cols, &mut buffer[..rows * cols]);
            let (dst, guard) = buffer.split_at(rows * cols);
            assert!(
                guard.iter().all(|v| v.is_nan()),
                "{rows}x{cols}: wrote past the end"
            );
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c + r * cols],
                        src[r + c * rows],
                        "{rows}x{cols} at ({r}, {c})"
                    );
                }
            }
            let mut portable = vec![f32::NAN; rows * cols];
            portable::transpose(&src, rows, cols, &mut portable);
            assert_eq!(portable, dst, "portable transpose of {rows}x{cols}");
        }
    }

    #[test]
    #[should_panic(expected = "transpose lengths")]
    fn refuses_a_transpose_whose_size_overflows() {
        // rows · cols wraps to 0 in release arithmetic: the check must not.
        transpose(&[], 1 << 40, 1 << 40, &mut []);
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
