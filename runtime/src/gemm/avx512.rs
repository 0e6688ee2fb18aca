//! AVX-512 kernels for the two unpacked product shapes (see the module docs of `gemm`).
//!
//! Both read their operands in place: a training step's matrices are small enough (the
//! digits model's largest kernel is 32 KiB) that they stay in L1/L2 cache, so copying them
//! into a blocked layout first — what a general GEMM does — costs more than it saves.

use super::{Dot, Outer};
use core::arch::x86_64::*;

/// Rows of `c` per register tile of the outer-product kernel, in 16-lane vectors.
const MAX_VECTORS: usize = 4;
/// Columns of `c` per register tile of the outer-product kernel: 4 x 6 accumulators, 4
/// loaded `a` vectors and one broadcast `b` value fill 29 of the 32 vector registers.
const MAX_COLUMNS: usize = 6;
/// Depth of one pass over `a`: a 64 x 256 block of `a` (64 KiB) stays in L1/L2 while every
/// column tile of `b` streams past it.
const DEPTH_BLOCK: usize = 256;

/// `c = alpha · a · b + beta · c` with `a`'s columns contiguous.
///
/// # Safety
/// The CPU supports AVX-512F, and `problem` describes matrices inside live allocations with
/// `c` not aliasing `a` or `b` (what `gemm` checks before calling).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn outer(problem: &mut Outer) {
    let Outer { m, n, k, .. } = *problem;
    let (a, b, c) = (
        problem.a.as_ptr(),
        problem.b.as_ptr(),
        problem.c.as_mut_ptr(),
    );
    let mut k0 = 0;
    loop {
        let depth = DEPTH_BLOCK.min(k - k0);
        // The first depth block applies `beta`; later ones add to what it wrote.
        let beta = if k0 == 0 { problem.beta } else { 1.0 };
        let mut i0 = 0;
        while i0 < m {
            let rows = (MAX_VECTORS * 16).min(m - i0);
            let mut j0 = 0;
            while j0 < n {
                let columns = MAX_COLUMNS.min(n - j0);
                // SAFETY: the tile lies inside the problem's matrices (caller's contract).
                unsafe {
                    let tile = Tile {
                        rows,
                        depth,
                        alpha: problem.alpha,
                        a: a.add(i0 + k0 * problem.lda),
                        lda: problem.lda,
                        b: b.add(k0 * problem.b_row + j0 * problem.b_col),
                        b_row: problem.b_row,
                        b_col: problem.b_col,
                        beta,
                        c: c.add(i0 + j0 * problem.ldc),
                        ldc: problem.ldc,
                    };
                    outer_tile_dispatch(&tile, columns);
                }
                j0 += columns;
            }
            i0 += rows;
        }
        k0 += depth;
        if k0 >= k {
            break;
        }
    }
}

/// One register tile of the outer-product kernel: `rows` (at most 64) x `columns` of `c`.
struct Tile {
    rows: usize,
    depth: usize,
    alpha: f32,
    a: *const f32,
    lda: usize,
    b: *const f32,
    b_row: usize,
    b_col: usize,
    beta: f32,
    c: *mut f32,
    ldc: usize,
}

/// Picks the monomorphised tile for `tile.rows` and `columns`.
#[target_feature(enable = "avx512f")]
unsafe fn outer_tile_dispatch(tile: &Tile, columns: usize) {
    macro_rules! by_columns {
        ($v:literal) => {
            match columns {
                1 => outer_tile::<$v, 1>(tile),
                2 => outer_tile::<$v, 2>(tile),
                3 => outer_tile::<$v, 3>(tile),
                4 => outer_tile::<$v, 4>(tile),
                5 => outer_tile::<$v, 5>(tile),
                _ => outer_tile::<$v, 6>(tile),
            }
        };
    }
    // SAFETY: forwarded contract.
    unsafe {
        match tile.rows.div_ceil(16) {
            1 => by_columns!(1),
            2 => by_columns!(2),
            3 => by_columns!(3),
            _ => by_columns!(4),
        }
    }
}

/// Lanes `0..count` set.
#[inline(always)]
fn lanes(count: usize) -> __mmask16 {
    if count >= 16 {
        0xFFFF
    } else {
        ((1u32 << count) - 1) as __mmask16
    }
}

/// `V` vectors of rows x `C` columns: for each step `p` of the depth, `V` loads of column `p`
/// of `a`, `C` broadcasts of row `p` of `b`, `V · C` fused multiply-adds.
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::needless_range_loop)] // indices keep the accumulator grid readable
unsafe fn outer_tile<const V: usize, const C: usize>(tile: &Tile) {
    let last = lanes(tile.rows - 16 * (V - 1));
    let mut acc = [[_mm512_setzero_ps(); C]; V];
    // SAFETY: (whole body) every address is inside the tile of the caller's matrices; the
    // last vector of rows is read and written under the `last` lane mask.
    unsafe {
        for p in 0..tile.depth {
            let column = tile.a.add(p * tile.lda);
            let mut av = [_mm512_setzero_ps(); V];
            for (v, value) in av.iter_mut().enumerate() {
                *value = if v + 1 == V {
                    _mm512_maskz_loadu_ps(last, column.add(16 * v))
                } else {
                    _mm512_loadu_ps(column.add(16 * v))
                };
            }
            let row = tile.b.add(p * tile.b_row);
            for j in 0..C {
                let bj = _mm512_set1_ps(*row.add(j * tile.b_col));
                for v in 0..V {
                    acc[v][j] = _mm512_fmadd_ps(av[v], bj, acc[v][j]);
                }
            }
        }
        let alpha = _mm512_set1_ps(tile.alpha);
        let beta = _mm512_set1_ps(tile.beta);
        for j in 0..C {
            for (v, lanes_v) in acc.iter().enumerate() {
                let mask = if v + 1 == V { last } else { 0xFFFF };
                let out = tile.c.add(j * tile.ldc + 16 * v);
                let mut value = _mm512_mul_ps(lanes_v[j], alpha);
                // BLAS's rule: with `beta == 0`, `c` is not read (it may hold NaN).
                if tile.beta != 0.0 {
                    value = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask, out), value);
                }
                _mm512_mask_storeu_ps(out, mask, value);
            }
        }
    }
}

/// `c = alpha · aᵀ · b + beta · c` as dot products of contiguous columns.
///
/// # Safety
/// As [`outer`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn dot(problem: &mut Dot) {
    let Dot { m, n, .. } = *problem;
    let problem = &RawDot {
        k: problem.k,
        alpha: problem.alpha,
        a: problem.a.as_ptr(),
        lda: problem.lda,
        b: problem.b.as_ptr(),
        ldb: problem.ldb,
        beta: problem.beta,
        c: problem.c.as_mut_ptr(),
        ldc: problem.ldc,
    };
    let (full_m, full_n) = (m - m % 4, n - n % 4);
    // SAFETY: (whole body) every column index stays below `m` (of `a`) or `n` (of `b`, `c`).
    unsafe {
        let mut j0 = 0;
        while j0 < full_n {
            let mut i0 = 0;
            while i0 < full_m {
                dot_tile(problem, i0, j0);
                i0 += 4;
            }
            for i in full_m..m {
                for j in j0..j0 + 4 {
                    dot_one(problem, i, j);
                }
            }
            j0 += 4;
        }
        for j in full_n..n {
            for i in 0..m {
                dot_one(problem, i, j);
            }
        }
    }
}

/// A [`Dot`] problem as raw pointers, for the tile functions.
struct RawDot {
    k: usize,
    alpha: f32,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    beta: f32,
    c: *mut f32,
    ldc: usize,
}

/// `c[i, j]` for a 4 x 4 tile: 16 dot products in 16 vector accumulators, reduced together.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn dot_tile(problem: &RawDot, i0: usize, j0: usize) {
    let k = problem.k;
    let mut acc = [_mm512_setzero_ps(); 16];
    // SAFETY: (whole body) columns i0..i0+4 of `a` and j0..j0+4 of `b` and `c` exist; the
    // tail of the depth is read under a lane mask.
    unsafe {
        let a = core::array::from_fn::<_, 4, _>(|i| problem.a.add((i0 + i) * problem.lda));
        let b = core::array::from_fn::<_, 4, _>(|j| problem.b.add((j0 + j) * problem.ldb));
        let mut p = 0;
        while p < k {
            let mask = lanes(k - p);
            let av = a.map(|column| _mm512_maskz_loadu_ps(mask, column.add(p)));
            let bv = b.map(|column| _mm512_maskz_loadu_ps(mask, column.add(p)));
            // Accumulator `4i + j` holds c[i0 + i, j0 + j].
            for i in 0..4 {
                for j in 0..4 {
                    acc[4 * i + j] = _mm512_fmadd_ps(av[i], bv[j], acc[4 * i + j]);
                }
            }
            p += 16;
        }
        // Lane 4q + l of the reduction is the sum of accumulator 4l + q: quarter q is
        // column j0 + q, rows i0..i0 + 4.
        let sums = reduce16(&acc);
        let alpha = _mm_set1_ps(problem.alpha);
        for q in 0..4 {
            let out = problem.c.add(i0 + (j0 + q) * problem.ldc);
            let quarter = match q {
                0 => _mm512_extractf32x4_ps::<0>(sums),
                1 => _mm512_extractf32x4_ps::<1>(sums),
                2 => _mm512_extractf32x4_ps::<2>(sums),
                _ => _mm512_extractf32x4_ps::<3>(sums),
            };
            let mut value = _mm_mul_ps(quarter, alpha);
            if problem.beta != 0.0 {
                value = _mm_add_ps(
                    value,
                    _mm_mul_ps(_mm_set1_ps(problem.beta), _mm_loadu_ps(out)),
                );
            }
            _mm_storeu_ps(out, value);
        }
    }
}

/// One `c[i, j]`, for the edges of the tiling.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn dot_one(problem: &RawDot, i: usize, j: usize) {
    // SAFETY: column i of `a`, j of `b` and `c` exist; the tail is read under a mask.
    unsafe {
        let a = problem.a.add(i * problem.lda);
        let b = problem.b.add(j * problem.ldb);
        let mut acc = _mm512_setzero_ps();
        let mut p = 0;
        while p < problem.k {
            let mask = lanes(problem.k - p);
            acc = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(mask, a.add(p)),
                _mm512_maskz_loadu_ps(mask, b.add(p)),
                acc,
            );
            p += 16;
        }
        let out = problem.c.add(i + j * problem.ldc);
        let mut value = problem.alpha * _mm512_reduce_add_ps(acc);
        if problem.beta != 0.0 {
            value += problem.beta * *out;
        }
        *out = value;
    }
}

/// Sixteen horizontal sums at once: lane `4q + l` of the result is the sum of the lanes of
/// `x[4l + q]`. A tree of lane shuffles (15 steps) instead of 16 separate reductions.
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce16(x: &[__m512; 16]) -> __m512 {
    // 16 -> 8: fold 256-bit halves. y[t] quarters: [x2t.(q0+q2), x2t.(q1+q3), x2t+1.(..), ..]
    let y: [__m512; 8] = core::array::from_fn(|t| {
        let (a, b) = (x[2 * t], x[2 * t + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        )
    });
    // 8 -> 4: z[t] quarter q holds a 4-lane partial sum of x[4t + q].
    let z: [__m512; 4] = core::array::from_fn(|t| {
        let (a, b) = (y[2 * t], y[2 * t + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    });
    // 4 -> 2: within each quarter, interleave and add: [a0+a2, b0+b2, a1+a3, b1+b3].
    let w: [__m512; 2] = core::array::from_fn(|t| {
        let (a, b) = (z[2 * t], z[2 * t + 1]);
        _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
    });
    // 2 -> 1: quarter q becomes [x[q], x[4 + q], x[8 + q], x[12 + q]] summed.
    _mm512_add_ps(
        _mm512_shuffle_ps::<0b01_00_01_00>(w[0], w[1]),
        _mm512_shuffle_ps::<0b11_10_11_10>(w[0], w[1]),
    )
}

/// `dst = srcᵀ` for column-major `src` (`rows x cols`, column stride `rows`) into
/// column-major `dst` (`cols x rows`, column stride `cols`): 16 x 16 blocks through the
/// registers (three rounds of lane shuffles). The edge blocks too, with masked loads and
/// stores: a Dense kernel of 10 units is all edge, and one value at a time it took longer
/// than the 64 x 128 kernel beside it.
///
/// # Safety
/// The CPU supports AVX-512F; `src` holds `rows · cols` values and `dst` as many.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let lanes = |n: usize| -> __mmask16 { (((1u32 << n) - 1) & 0xFFFF) as __mmask16 };
    for c0 in (0..cols).step_by(16) {
        let (width, store_mask) = ((cols - c0).min(16), lanes((cols - c0).min(16)));
        for r0 in (0..rows).step_by(16) {
            let height = (rows - r0).min(16);
            // SAFETY: lanes past `height` rows and columns past `width` are masked or
            // not read, so every access lies inside both matrices.
            unsafe {
                // v[c] = src[r0..r0 + height, c0 + c], zeros past the edges.
                let v: [__m512; 16] = if width == 16 && height == 16 {
                    core::array::from_fn(|c| _mm512_loadu_ps(s.add(r0 + (c0 + c) * rows)))
                } else {
                    let load_mask = lanes(height);
                    core::array::from_fn(|c| {
                        if c < width {
                            _mm512_maskz_loadu_ps(load_mask, s.add(r0 + (c0 + c) * rows))
                        } else {
                            _mm512_setzero_ps()
                        }
                    })
                };
                let w = transpose16(v);
                // w[r] = src[r0 + r, c0..c0 + 16] = dst[c0..c0 + 16, r0 + r]
                for (r, row) in w.iter().enumerate().take(height) {
                    let at = d.add(c0 + (r0 + r) * cols);
                    if width == 16 {
                        _mm512_storeu_ps(at, *row);
                    } else {
                        _mm512_mask_storeu_ps(at, store_mask, *row);
                    }
                }
            }
        }
    }
}

/// A 16 x 16 transpose in registers: lane `j` of output `i` is lane `i` of input `j`.
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(v: [__m512; 16]) -> [__m512; 16] {
    // Interleave pairs of rows: 2 x 2 blocks.
    let t: [__m512; 16] = core::array::from_fn(|i| {
        let (a, b) = (v[i & !1], v[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // 4 x 4 blocks inside each 128-bit lane.
    let r: [__m512; 16] = core::array::from_fn(|i| {
        let base = (i / 4) * 4;
        let (a, b) = (t[base + (i % 4) / 2], t[base + 2 + (i % 4) / 2]);
        if i % 2 == 0 {
            _mm512_shuffle_ps::<0x44>(a, b)
        } else {
            _mm512_shuffle_ps::<0xEE>(a, b)
        }
    });
    // 128-bit lanes: pairs of 4-row groups, then pairs of 8-row groups.
    let t: [__m512; 16] = core::array::from_fn(|i| {
        let base = (i / 8) * 8;
        let (a, b) = (r[base + i % 4], r[base + 4 + i % 4]);
        if (i % 8) < 4 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xDD>(a, b)
        }
    });
    core::array::from_fn(|i| {
        let (a, b) = (t[i % 8], t[8 + i % 8]);
        if i < 8 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xDD>(a, b)
        }
    })
}

/// Most vectors of outputs one pass of [`affine_vector`] keeps in registers: 12
/// accumulators and the broadcast value use 13 of the 32.
const VECTOR_PASS: usize = 12;

/// `y = x · w + bias` for one vector `x` (`x.len()` rows of `w`, row-major with `y.len()`
/// values per row): Dense's batch-1 product.
///
/// When rows are whole cache lines apart (`y.len()` a multiple of 16), every load is aligned
/// to a cache line: the outputs are cut into 16-lane slots at the lines' boundaries, the
/// first and last slot masked, so a kernel that malloc placed 16 bytes past a line (what it
/// does for large blocks) reads each line once instead of every load straddling two. The
/// slots are shared out over as few passes over the rows as 12 accumulators allow, as evenly
/// as possible, so no pass is left with a single dependency chain. Each output sums the rows
/// in order from 0, one FMA each, then adds the bias: the same arithmetic as
/// `vec_mat` from the bias with `accumulate`.
///
/// # Safety
/// The CPU supports AVX-512F; `w` holds `x.len() · y.len()` values and `bias`, if any, at
/// least `y.len()`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn affine_vector(x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let n = y.len();
    if n == 0 {
        return;
    }
    let shift = if n.is_multiple_of(16) {
        (w.as_ptr() as usize / 4) % 16
    } else {
        0
    };
    let slots = (shift + n).div_ceil(16);
    let per_pass = slots.div_ceil(slots.div_ceil(VECTOR_PASS));
    // Slot `s` covers outputs `16 s - shift ..`; lanes outside `0..n` are masked off, so
    // these pointers are only ever read or written inside `w`, `bias` and `y`.
    let w = w.as_ptr().wrapping_sub(shift);
    let bias = bias.map(|b| b.as_ptr().wrapping_sub(shift));
    let y = y.as_mut_ptr().wrapping_sub(shift);
    let mask = |s: usize| -> __mmask16 {
        let (start, end) = (16 * s, 16 * s + 16);
        let low = shift.saturating_sub(start).min(16);
        let high = (shift + n).min(end) - start;
        (((1u32 << high) - 1) & !((1u32 << low) - 1)) as __mmask16
    };
    let mut s0 = 0;
    while s0 < slots {
        let v = per_pass.min(slots - s0);
        let pass = Pass {
            x,
            w: w.wrapping_add(16 * s0),
            cols: n,
            first: mask(s0),
            last: mask(s0 + v - 1),
            bias: bias.map(|b| b.wrapping_add(16 * s0)),
            y: y.wrapping_add(16 * s0),
        };
        // SAFETY: the pass's unmasked lanes are outputs inside `0..n` of `w`'s rows,
        // `bias` and `y` (caller's contract); slots between the first and last are whole.
        unsafe {
            match v {
                1 => vector_pass::<1>(&pass),
                2 => vector_pass::<2>(&pass),
                3 => vector_pass::<3>(&pass),
                4 => vector_pass::<4>(&pass),
                5 => vector_pass::<5>(&pass),
                6 => vector_pass::<6>(&pass),
                7 => vector_pass::<7>(&pass),
                8 => vector_pass::<8>(&pass),
                9 => vector_pass::<9>(&pass),
                10 => vector_pass::<10>(&pass),
                11 => vector_pass::<11>(&pass),
                _ => vector_pass::<12>(&pass),
            }
        }
        s0 += v;
    }
}

/// One pass of [`affine_vector`]: `V` slots from `w`, `bias` and `y` (already offset to
/// the pass's first slot), the first and last under their masks.
struct Pass<'a> {
    x: &'a [f32],
    w: *const f32,
    cols: usize,
    first: __mmask16,
    last: __mmask16,
    bias: Option<*const f32>,
    y: *mut f32,
}

/// See [`Pass`].
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::needless_range_loop)] // `v` picks the mask as well as the accumulator
unsafe fn vector_pass<const V: usize>(pass: &Pass) {
    let mask = |v: usize| match (v == 0, v + 1 == V) {
        (true, true) => pass.first & pass.last,
        (true, false) => pass.first,
        (false, true) => pass.last,
        (false, false) => 0xFFFF,
    };
    let mut acc = [_mm512_setzero_ps(); V];
    // SAFETY: (whole body) the caller's contract: every unmasked lane is inside `w`'s rows,
    // `bias` and `y`; the middle slots are whole.
    unsafe {
        for (i, &xi) in pass.x.iter().enumerate() {
            let row = pass.w.wrapping_add(i * pass.cols);
            let xv = _mm512_set1_ps(xi);
            for v in 0..V {
                let at = row.wrapping_add(16 * v);
                let value = if v == 0 || v + 1 == V {
                    _mm512_maskz_loadu_ps(mask(v), at)
                } else {
                    _mm512_loadu_ps(at)
                };
                acc[v] = _mm512_fmadd_ps(xv, value, acc[v]);
            }
        }
        for v in 0..V {
            let mut value = acc[v];
            if let Some(bias) = pass.bias {
                value = _mm512_add_ps(
                    value,
                    _mm512_maskz_loadu_ps(mask(v), bias.wrapping_add(16 * v)),
                );
            }
            _mm512_mask_storeu_ps(pass.y.wrapping_add(16 * v), mask(v), value);
        }
    }
}
