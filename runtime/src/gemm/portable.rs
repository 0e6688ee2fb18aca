//! Portable versions of the two kernels, in safe Rust that the compiler vectorises for
//! whatever the build targets (and, through `gemm`'s dispatch, for AVX2 + FMA when the CPU
//! has it).

use super::{Dot, Outer};

/// `c = alpha · a · b + beta · c` with `a`'s columns contiguous: one column of `c` at a
/// time, adding scaled columns of `a` to it (contiguous, so the inner loop vectorises).
#[inline(always)]
pub(super) fn outer(problem: &mut Outer) {
    let Outer { m, n, k, .. } = *problem;
    for j in 0..n {
        let c = &mut problem.c[j * problem.ldc..j * problem.ldc + m];
        scale(c, problem.beta);
        for p in 0..k {
            let factor = problem.alpha * problem.b[p * problem.b_row + j * problem.b_col];
            let a = &problem.a[p * problem.lda..p * problem.lda + m];
            for (c, a) in c.iter_mut().zip(a) {
                *c += a * factor;
            }
        }
    }
}

/// `c = alpha · aᵀ · b + beta · c`: each value a dot product of two contiguous columns.
#[inline(always)]
pub(super) fn dot(problem: &mut Dot) {
    let Dot { m, n, k, .. } = *problem;
    for j in 0..n {
        let b = &problem.b[j * problem.ldb..j * problem.ldb + k];
        for i in 0..m {
            let a = &problem.a[i * problem.lda..i * problem.lda + k];
            let c = &mut problem.c[i + j * problem.ldc];
            let old = if problem.beta == 0.0 {
                0.0
            } else {
                problem.beta * *c
            };
            *c = problem.alpha * dot8(a, b) + old;
        }
    }
}

/// `c *= beta`, where `beta == 0` clears `c` without reading it (BLAS's rule: it may hold
/// NaN).
#[inline(always)]
pub(super) fn scale(c: &mut [f32], beta: f32) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.iter_mut().for_each(|v| *v *= beta);
    }
}

/// A dot product with eight partial sums, so that it vectorises without reassociation.
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
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

/// `dst = srcᵀ` (column-major both), in 8 x 8 blocks so both sides stay in cache lines.
pub(super) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    for c0 in (0..cols).step_by(8) {
        for r0 in (0..rows).step_by(8) {
            for c in c0..(c0 + 8).min(cols) {
                for r in r0..(r0 + 8).min(rows) {
                    dst[c + r * cols] = src[r + c * rows];
                }
            }
        }
    }
}
