//! [`vec_mat`]: a row vector times a row-major matrix, `y = x · W[:, col0..col0 + n]`, the
//! product a recurrent step makes (`h · recurrent_kernel`) and a Dense layer makes on one
//! timestep; [`vec_mat_from`] starts the sums from a bias, and [`vec_mat2`] adds two such
//! products in one pass (a recurrent step's `bias + x · kernel + h · recurrent_kernel`).
//!
//! Why not [`super::gemm`]: a one-column product is a few hundred multiply-adds, and there
//! `gemm`'s checks, layout dispatch and register tiling for many columns cost about as much
//! as the arithmetic (47 % of a streaming LSTM(1 -> 32) step went to it). This kernel keeps
//! up to 128 (AVX-512) or 64 (AVX2) outputs in registers, walks the rows of `W` once, adds
//! `x[i]` times each row with one fused multiply-add per vector, and writes `y` once.
//!
//! Every instruction set sums in the same order (the start value, then the rows in order,
//! the first product's before the second's) and adds the old `y` last when accumulating;
//! AVX2 and AVX-512 round each multiply-add once (FMA), the portable path twice, so results
//! can differ in the last bits between paths, as `gemm`'s do. `KILN_ISA` forces a lesser
//! path (`crate::isa`).

use crate::isa::Isa;

/// One product's operands: `x` (one value per row of `w`), `w` row-major with `cols`
/// values per row, read from column `col0`.
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    x: &'a [f32],
    w: &'a [f32],
    cols: usize,
    col0: usize,
}

impl<'a> Rows<'a> {
    /// `x` times the rows of `w` (row-major, `cols` values per row) from column 0,
    /// checked to hold `n` columns.
    ///
    /// # Panics
    /// As [`vec_mat`]: if a row of `w` lacks one of those columns.
    #[inline(always)]
    pub(crate) fn new(x: &'a [f32], w: &'a [f32], cols: usize, n: usize) -> Self {
        let rows = Rows {
            x,
            w,
            cols,
            col0: 0,
        };
        rows.check(n);
        rows
    }

    /// Every row's `col0..col0 + n` inside `w`.
    #[inline(always)]
    fn check(&self, n: usize) {
        let rows = self.x.len();
        assert!(
            self.col0.checked_add(n).is_some_and(|end| end <= self.cols)
                && (rows == 0
                    || (rows - 1)
                        .checked_mul(self.cols)
                        .and_then(|r| r.checked_add(self.col0 + n))
                        .is_some_and(|last| last <= self.w.len())),
            "vec_mat matrix outside its slice"
        );
    }
}

/// `y = x · W[:, col0..col0 + y.len()]` (or `y +=` it when `accumulate`), where `W` is
/// row-major with `x.len()` rows of `cols` values (Keras's kernel layout, `(inputs,
/// outputs)`), so row `i`'s slice starts at `i * cols + col0`.
///
/// # Panics
/// If `col0 + y.len() > cols` or `w` is shorter than the rows it must hold: internal errors,
/// never user input (layer shapes are fixed at compile time).
#[inline(always)]
pub fn vec_mat(x: &[f32], w: &[f32], cols: usize, col0: usize, accumulate: bool, y: &mut [f32]) {
    let rows = Rows { x, w, cols, col0 };
    rows.check(y.len());
    if y.len() == 1 && cols == 1 {
        // One output of a one-column matrix: a dot product of two contiguous vectors.
        let value = dot(x, &w[..x.len()]);
        y[0] = if accumulate { y[0] + value } else { value };
        return;
    }
    vec_mat_rows(rows, accumulate, y);
}

/// [`vec_mat`] past its one-output case, out of line: inlined `vec_mat` stays small.
#[inline(never)]
fn vec_mat_rows(rows: Rows, accumulate: bool, y: &mut [f32]) {
    run(crate::isa::isa(), None, &[rows], accumulate, y);
}

/// `y = init + x · W[:, col0..col0 + y.len()]`: [`vec_mat`] with the sums starting from
/// `init` (a bias) instead of 0, which saves a pass over `y`.
///
/// # Panics
/// As [`vec_mat`], and if `init` is shorter than `y`.
#[inline]
pub fn vec_mat_from(init: &[f32], x: &[f32], w: &[f32], cols: usize, col0: usize, y: &mut [f32]) {
    assert!(
        init.len() >= y.len(),
        "vec_mat init shorter than its output"
    );
    let rows = Rows { x, w, cols, col0 };
    rows.check(y.len());
    run(crate::isa::isa(), Some(init), &[rows], false, y);
}

/// `y = init + x1 · W1 + x2 · W2` (`init` or 0 when `None`), both matrices row-major with
/// `y.len()` columns read from column 0: one pass with the sums in registers, for a
/// recurrent step's `bias + x · kernel + h · recurrent_kernel`.
///
/// # Panics
/// As [`vec_mat`] for each product, and if `init` is shorter than `y`.
#[inline(always)]
pub fn vec_mat2(
    init: Option<&[f32]>,
    (x1, w1): (&[f32], &[f32]),
    (x2, w2): (&[f32], &[f32]),
    y: &mut [f32],
) {
    let n = y.len();
    assert!(
        init.is_none_or(|init| init.len() >= n),
        "vec_mat init shorter than its output"
    );
    let parts = [
        Rows {
            x: x1,
            w: w1,
            cols: n,
            col0: 0,
        },
        Rows {
            x: x2,
            w: w2,
            cols: n,
            col0: 0,
        },
    ];
    parts.iter().for_each(|p| p.check(n));
    run(crate::isa::isa(), init, &parts, false, y);
}

/// The kernels on a chosen instruction set (which the caller has checked the CPU has):
/// sums start from `init` (at least `y.len()` values) or 0, add every part's rows in
/// order, and the old `y` last when `accumulate`. Each part is checked. Inlined, so the
/// choice of kernel is a branch in the caller rather than one more call; the kernels
/// themselves stay out of line. (A streaming step's own products go through the fused
/// recurrent kernels instead, `crate::layers::lstm` and `gru`, which inline the register
/// block, `sums_*`.)
#[inline(always)]
fn run(isa: Isa, init: Option<&[f32]>, parts: &[Rows], accumulate: bool, y: &mut [f32]) {
    if y.is_empty() {
        return;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` is one the CPU has (`crate::isa`, or a test that checked it);
        // the callers checked that every part's rows hold `col0..col0 + y.len()` and that
        // `init` holds `y.len()` values.
        Isa::Avx512 => unsafe { avx512(init, parts, accumulate, y) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, with AVX2 and FMA.
        Isa::Avx2Fma => unsafe { avx2(init, parts, accumulate, y) },
        _ => portable(init, parts, accumulate, y),
    }
}

/// A dot product with eight partial sums (vectorises without reassociation).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Outputs per block of the portable path: a block's sums stay in registers.
const PORTABLE_BLOCK: usize = 32;

/// Plain Rust that the compiler vectorises for the build's target.
fn portable(init: Option<&[f32]>, parts: &[Rows], accumulate: bool, y: &mut [f32]) {
    let n = y.len();
    let mut j0 = 0;
    while j0 < n {
        let m = PORTABLE_BLOCK.min(n - j0);
        let mut acc = [0.0f32; PORTABLE_BLOCK];
        if let Some(init) = init {
            acc[..m].copy_from_slice(&init[j0..j0 + m]);
        }
        for part in parts {
            for (i, &xi) in part.x.iter().enumerate() {
                let at = i * part.cols + part.col0 + j0;
                for (a, &r) in acc.iter_mut().zip(&part.w[at..at + m]) {
                    *a += xi * r;
                }
            }
        }
        for (out, &a) in y[j0..j0 + m].iter_mut().zip(&acc) {
            *out = if accumulate { *out + a } else { a };
        }
        j0 += m;
    }
}

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Generates an x86 kernel: `$block` vectors of `$lanes` outputs per register block (`$v`
/// down to 1), then `$tail` for the rest. Each row's `x` value is broadcast from a vector
/// of `$lanes` of them loaded at once (`$lane`, a register shuffle), not loaded alone: a
/// recurrent step's `x` is the `h` the last step just stored as whole vectors, and a
/// one-value load from the middle of such a store waits for it to reach the cache (about 8
/// ns of an LSTM(1 -> 32) step), where a whole-vector load is forwarded.
macro_rules! kernel {
    ($(#[$doc:meta])* $name:ident, $sums:ident, $store_sums:ident, $feature:literal, $lanes:literal, $vec:ty,
     $zero:ident, $load:ident, $store:ident, $set1:ident, $lane:ident, $fma:ident, $add:ident,
     [$($v:literal),*], $tail:ident) => {
        /// `V` vectors of `$lanes` sums in registers, for outputs `j0..j0 + $lanes V`: each
        /// starts from `init` (or 0) and adds every part's rows in order, one fused
        /// multiply-add per row. The register block of the kernel beside it, and of the
        /// fused recurrent steps (`crate::layers::lstm`, `gru`).
        ///
        /// # Safety
        /// The CPU has the instruction set; every part's rows hold `col0 + j0 .. col0 + j0
        /// + $lanes V`, and `init` (if any) `j0 + $lanes V` values.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        #[inline]
        pub(crate) unsafe fn $sums<const V: usize>(
            init: Option<&[f32]>,
            parts: &[Rows],
            j0: usize,
        ) -> [$vec; V] {
            // SAFETY: the caller's contract: every load lies within a part's row block or
            // `init`'s `j0..j0 + lanes V`.
            unsafe {
                let mut acc = [$zero(); V];
                if let Some(init) = init {
                    for (v, a) in acc.iter_mut().enumerate() {
                        *a = $load(init.as_ptr().add(j0 + $lanes * v));
                    }
                }
                for part in parts {
                    let w = part.w.as_ptr().add(part.col0 + j0);
                    let (whole, rest) = part.x.as_chunks::<$lanes>();
                    for (c, xs) in whole.iter().enumerate() {
                        let xs = $load(xs.as_ptr());
                        for r in 0..$lanes {
                            let row = w.add(($lanes * c + r) * part.cols);
                            let xv = $lane(xs, r as i32);
                            for (v, a) in acc.iter_mut().enumerate() {
                                *a = $fma(xv, $load(row.add($lanes * v)), *a);
                            }
                        }
                    }
                    for (r, &xi) in rest.iter().enumerate() {
                        let row = w.add(($lanes * whole.len() + r) * part.cols);
                        let xv = $set1(xi);
                        for (v, a) in acc.iter_mut().enumerate() {
                            *a = $fma(xv, $load(row.add($lanes * v)), *a);
                        }
                    }
                }
                acc
            }
        }

        /// Stores `V` vectors of sums (`$sums`) at `out[j0..j0 + $lanes V]`.
        ///
        /// # Safety
        /// The CPU has the instruction set; `j0 + $lanes V <= out.len()`.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        #[inline]
        pub(crate) unsafe fn $store_sums<const V: usize>(sums: [$vec; V], out: &mut [f32], j0: usize) {
            for (v, s) in sums.iter().enumerate() {
                // SAFETY: the caller's: `j0 + lanes V <= out.len()`.
                unsafe { $store(out.as_mut_ptr().add(j0 + $lanes * v), *s) };
            }
        }

        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU has the instruction set; every part's rows hold `col0..col0 + y.len()`
        /// and `init` (if any) `y.len()` values.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        #[inline]
        unsafe fn $name(init: Option<&[f32]>, parts: &[Rows], accumulate: bool, y: &mut [f32]) {
            /// `V` vectors of outputs from output `j0`, written (or added) to `y`.
            ///
            /// # Safety
            /// As the kernel's, with `j0 + lanes * V <= y.len()`.
            #[inline(always)]
            unsafe fn block<const V: usize>(
                init: Option<&[f32]>,
                parts: &[Rows],
                j0: usize,
                accumulate: bool,
                y: *mut f32,
            ) {
                // SAFETY: the caller's contract covers the sums' loads; every store lies
                // within `y`'s `j0..j0 + lanes V`.
                unsafe {
                    let acc = $sums::<V>(init, parts, j0);
                    for (v, a) in acc.iter().enumerate() {
                        let out = y.add(j0 + $lanes * v);
                        let value = if accumulate { $add($load(out), *a) } else { *a };
                        $store(out, value);
                    }
                }
            }
            let n = y.len();
            let yp = y.as_mut_ptr();
            let mut j0 = 0;
            // SAFETY: each block covers outputs `j0..j0 + lanes V <= n` (the caller's
            // contract covers `w` and `init` there).
            unsafe {
                while n - j0 >= 8 * $lanes {
                    block::<8>(init, parts, j0, accumulate, yp);
                    j0 += 8 * $lanes;
                }
                $(
                    if n - j0 >= $v * $lanes {
                        block::<$v>(init, parts, j0, accumulate, yp);
                        j0 += $v * $lanes;
                    }
                )*
            }
            if j0 < n {
                // SAFETY: as above, for outputs `j0..n`.
                unsafe { $tail(init, parts, j0, accumulate, y) };
            }
        }
    };
}

kernel!(
    /// AVX-512: blocks of 8, 6, 4, 2 and 1 vectors of 16 outputs, then a masked vector (a
    /// GRU's 96 gates of 32 units are one pass of six independent chains, not a pass of
    /// four and a latency-bound pass of two).
    avx512, sums_avx512, store_avx512, "avx512f", 16, __m512, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps,
    _mm512_set1_ps, lane_avx512, _mm512_fmadd_ps, _mm512_add_ps, [6, 4, 2, 1], avx512_tail
);

kernel!(
    /// AVX2 + FMA: blocks of 8, 6, 4, 2 and 1 vectors of 8 outputs, then one output at a
    /// time.
    avx2, sums_avx2, store_avx2, "avx2,fma", 8, __m256, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps,
    _mm256_set1_ps, lane_avx2, _mm256_fmadd_ps, _mm256_add_ps, [6, 4, 2, 1], fma_tail
);

/// Lane `r` of `v` in every lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn lane_avx512(v: __m512, r: i32) -> __m512 {
    _mm512_permutexvar_ps(_mm512_set1_epi32(r), v)
}

/// Lane `r` of `v` in every lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn lane_avx2(v: __m256, r: i32) -> __m256 {
    _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(r))
}

/// The last `y.len() - j0` (fewer than 16) outputs in one masked vector.
///
/// # Safety
/// As `avx512`, with `y.len() - j0 < 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_tail(
    init: Option<&[f32]>,
    parts: &[Rows],
    j0: usize,
    accumulate: bool,
    y: &mut [f32],
) {
    let mask: __mmask16 = ((1u32 << (y.len() - j0)) - 1) as u16;
    // SAFETY: every load and store is masked to outputs `j0..y.len()`, inside `y`, `init`
    // and every part's rows (the caller's contract).
    unsafe {
        let mut acc = match init {
            Some(init) => _mm512_maskz_loadu_ps(mask, init.as_ptr().add(j0)),
            None => _mm512_setzero_ps(),
        };
        for part in parts {
            let w = part.w.as_ptr().add(part.col0 + j0);
            for (i, &xi) in part.x.iter().enumerate() {
                let row = _mm512_maskz_loadu_ps(mask, w.add(i * part.cols));
                acc = _mm512_fmadd_ps(_mm512_set1_ps(xi), row, acc);
            }
        }
        let out = y.as_mut_ptr().add(j0);
        if accumulate {
            acc = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), acc);
        }
        _mm512_mask_storeu_ps(out, mask, acc);
    }
}

/// The last outputs one at a time, each a strided sum in the blocks' order, FMA-rounded.
///
/// # Safety
/// None beyond the bounds `vec_mat` checked (safe code; `unsafe` to match `avx512_tail`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_tail(
    init: Option<&[f32]>,
    parts: &[Rows],
    j0: usize,
    accumulate: bool,
    y: &mut [f32],
) {
    for (j, out) in y.iter_mut().enumerate().skip(j0) {
        let mut acc = init.map_or(0.0, |init| init[j]);
        for part in parts {
            for (i, &xi) in part.x.iter().enumerate() {
                acc = crate::math::mul_add(xi, part.w[i * part.cols + part.col0 + j], acc);
            }
        }
        *out = if accumulate { *out + acc } else { acc };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Every instruction set this CPU has against an `f64` reference, for output widths
    /// that exercise every block size and tail, sub-ranges of the columns, and both modes.
    #[test]
    fn every_path_matches_an_f64_reference() {
        for isa in crate::isa::available().iter().copied() {
            for (rows, cols, col0, n) in [
                (32, 128, 0, 128),
                (32, 96, 0, 96),
                (32, 96, 64, 32),
                (7, 300, 5, 291),
                (3, 40, 1, 37),
                (1, 9, 0, 9),
                (5, 17, 3, 7),
                (32, 1, 0, 1),
                (0, 4, 0, 4),
            ] {
                let x = values(rows, 1);
                let w = values(rows * cols, 2);
                let old = values(n, 3);
                let init = values(n, 4);
                for (accumulate, from) in [(false, false), (true, false), (false, true)] {
                    let mut y = old.clone();
                    let start = from.then_some(&init[..]);
                    if n == 1 && cols == 1 && !from {
                        vec_mat(&x, &w, cols, col0, accumulate, &mut y);
                    } else {
                        let rows = Rows {
                            x: &x,
                            w: &w,
                            cols,
                            col0,
                        };
                        rows.check(n);
                        run(isa, start, &[rows], accumulate, &mut y);
                    }
                    for (j, &got) in y.iter().enumerate() {
                        let exact: f64 = (0..rows)
                            .map(|i| f64::from(x[i]) * f64::from(w[i * cols + col0 + j]))
                            .sum::<f64>()
                            + if accumulate { f64::from(old[j]) } else { 0.0 }
                            + if from { f64::from(init[j]) } else { 0.0 };
                        assert!(
                            (f64::from(got) - exact).abs() < 1e-5,
                            "{isa:?} rows {rows} cols {cols} col0 {col0} n {n} acc {accumulate} j {j}: {got} vs {exact}"
                        );
                    }
                }
            }
        }
    }

    /// The two-product form: `init + x1 · W1 + x2 · W2`.
    #[test]
    fn two_products_add_in_one_pass() {
        for isa in crate::isa::available().iter().copied() {
            for n in [128, 96, 33, 7] {
                let (x1, w1) = (values(3, 5), values(3 * n, 6));
                let (x2, w2) = (values(32, 7), values(32 * n, 8));
                let init = values(n, 9);
                let mut y = vec![0.0; n];
                let parts = [
                    Rows {
                        x: &x1,
                        w: &w1,
                        cols: n,
                        col0: 0,
                    },
                    Rows {
                        x: &x2,
                        w: &w2,
                        cols: n,
                        col0: 0,
                    },
                ];
                run(isa, Some(&init), &parts, false, &mut y);
                let mut y2 = vec![0.0; n];
                vec_mat2(Some(&init), (&x1, &w1), (&x2, &w2), &mut y2);
                for j in 0..n {
                    let exact = f64::from(init[j])
                        + (0..3)
                            .map(|i| f64::from(x1[i]) * f64::from(w1[i * n + j]))
                            .sum::<f64>()
                        + (0..32)
                            .map(|i| f64::from(x2[i]) * f64::from(w2[i * n + j]))
                            .sum::<f64>();
                    assert!(
                        (f64::from(y[j]) - exact).abs() < 1e-5,
                        "{isa:?} n {n} j {j}"
                    );
                    assert!((f64::from(y2[j]) - exact).abs() < 1e-5, "n {n} j {j}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "vec_mat matrix outside its slice")]
    fn a_matrix_outside_its_slice_is_refused() {
        let mut y = [0.0; 4];
        vec_mat(&[1.0, 2.0], &[0.0; 7], 4, 0, false, &mut y);
    }
}
