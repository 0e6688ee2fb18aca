//! Probes of the machine a bench runs on, timed in the same run as the workloads they bound:
//! [`stream`] reads a Dense kernel the way kiln's one-vector kernel
//! (`kiln::gemm::affine_vector`) reads it, without the arithmetic (the memory limit of a batch-1 `predict`), and [`fma`]
//! runs fused multiply-adds on registers only (one core's arithmetic peak). Both use the
//! instruction set kiln's kernels use in this process (`kiln::isa::isa()`, so `KILN_ISA`
//! applies), chosen at run time like kiln's: the same figures in a default and a native build.

#![allow(dead_code)] // each bench uses the probes it needs

use kiln::isa::Isa;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Independent accumulators of the peak probe: enough to cover the FMA latency (4 cycles)
/// times the FMA units (2 on both Zen 4/5 and Intel server cores) with room to spare.
const FMA_CHAINS: usize = 12;

/// The floating-point operations [`fma`] performs for `iterations` (2 per lane per FMA).
pub fn fma_flops(iterations: usize) -> u64 {
    (iterations * FMA_CHAINS * lanes() * 2) as u64
}

/// Iterations of [`fma`] that perform at least `flops` operations.
pub fn fma_iterations_for(flops: u64) -> usize {
    (flops as usize).div_ceil(FMA_CHAINS * lanes() * 2)
}

/// f32 lanes per vector on this process's instruction set.
pub fn lanes() -> usize {
    match kiln::isa::isa() {
        Isa::Avx512 => 16,
        Isa::Avx2Fma => 8,
        _ => 4,
    }
}

/// `iterations` rounds of [`FMA_CHAINS`] independent fused multiply-adds on registers; the
/// returned sum keeps the optimiser from dropping them.
pub fn fma(iterations: usize, seed: f32) -> f32 {
    match kiln::isa::isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` only reports instruction sets the CPU has.
        Isa::Avx512 => unsafe { fma_avx512(iterations, seed) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma => unsafe { fma_avx2(iterations, seed) },
        _ => fma_portable(iterations, seed),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_avx512(iterations: usize, seed: f32) -> f32 {
    // x = x * m + a with m just below 1: the values stay normal and bounded.
    let m = _mm512_set1_ps(0.999_999);
    let a = _mm512_set1_ps(1e-7);
    let mut acc: [__m512; FMA_CHAINS] = core::array::from_fn(|i| _mm512_set1_ps(seed + i as f32));
    for _ in 0..iterations {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, m, a);
        }
    }
    let mut sum = _mm512_setzero_ps();
    for x in acc {
        sum = _mm512_add_ps(sum, x);
    }
    _mm512_reduce_add_ps(sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_avx2(iterations: usize, seed: f32) -> f32 {
    let m = _mm256_set1_ps(0.999_999);
    let a = _mm256_set1_ps(1e-7);
    let mut acc: [__m256; FMA_CHAINS] = core::array::from_fn(|i| _mm256_set1_ps(seed + i as f32));
    for _ in 0..iterations {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, m, a);
        }
    }
    let mut out = [0.0f32; 8];
    let mut sum = _mm256_setzero_ps();
    for x in acc {
        sum = _mm256_add_ps(sum, x);
    }
    // SAFETY: `out` holds 8 values.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out.iter().sum()
}

fn fma_portable(iterations: usize, seed: f32) -> f32 {
    let mut acc: [[f32; 4]; FMA_CHAINS] = core::array::from_fn(|i| [seed + i as f32; 4]);
    for _ in 0..iterations {
        for x in acc.iter_mut() {
            for v in x.iter_mut() {
                *v = *v * 0.999_999 + 1e-7;
            }
        }
    }
    acc.iter().flatten().sum()
}

/// Reads the row-major `rows x cols` matrix `w` the way Dense's one-vector kernel reads it
/// (`kiln::gemm::affine_vector`), adding every vector into an accumulator (one add per
/// vector load, where the kernel has one FMA, plus one broadcast per row). With AVX-512 and
/// `line_aligned`, as the kernel does: each row cut into 16-lane slots at cache-line
/// boundaries (first and last masked), up to 12 slots per pass over the rows, evenly shared;
/// without `line_aligned`, slots start at the row's first value wherever it lies (what a
/// kernel that ignores alignment reads). Returns a sum so the reads are kept.
pub fn stream(w: &[f32], rows: usize, cols: usize, line_aligned: bool) -> f32 {
    assert!(w.len() >= rows * cols);
    match kiln::isa::isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (`isa()`); `w` holds `rows * cols` values.
        Isa::Avx512 => unsafe { stream_avx512(w, rows, cols, line_aligned) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, with AVX2.
        Isa::Avx2Fma => unsafe { stream_avx2(w, rows, cols) },
        _ => w[..rows * cols].iter().sum(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn stream_avx512(w: &[f32], rows: usize, cols: usize, line_aligned: bool) -> f32 {
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn pass<const V: usize>(
        w: *const f32,
        rows: usize,
        cols: usize,
        first: __mmask16,
        last: __mmask16,
    ) -> __m512 {
        let mut acc = [_mm512_setzero_ps(); V];
        for i in 0..rows {
            let row = w.wrapping_add(i * cols);
            for (v, a) in acc.iter_mut().enumerate() {
                let at = row.wrapping_add(16 * v);
                // SAFETY: unmasked lanes lie inside the row (the caller's slots).
                let value = unsafe {
                    match (v == 0, v + 1 == V) {
                        (true, true) => _mm512_maskz_loadu_ps(first & last, at),
                        (true, false) => _mm512_maskz_loadu_ps(first, at),
                        (false, true) => _mm512_maskz_loadu_ps(last, at),
                        (false, false) => _mm512_loadu_ps(at),
                    }
                };
                *a = _mm512_add_ps(*a, value);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for a in acc {
            sum = _mm512_add_ps(sum, a);
        }
        sum
    }
    if cols == 0 {
        return 0.0;
    }
    let shift = if line_aligned && cols.is_multiple_of(16) {
        (w.as_ptr() as usize / 4) % 16
    } else {
        0
    };
    let slots = (shift + cols).div_ceil(16);
    let per_pass = slots.div_ceil(slots.div_ceil(12));
    let w = w.as_ptr().wrapping_sub(shift);
    let mask = |s: usize| -> __mmask16 {
        let low = shift.saturating_sub(16 * s).min(16);
        let high = (shift + cols).min(16 * s + 16) - 16 * s;
        (((1u32 << high) - 1) & !((1u32 << low) - 1)) as __mmask16
    };
    let mut total = _mm512_setzero_ps();
    let mut s0 = 0;
    while s0 < slots {
        let v = per_pass.min(slots - s0);
        let (p, first, last) = (w.wrapping_add(16 * s0), mask(s0), mask(s0 + v - 1));
        // SAFETY: the slots' unmasked lanes are the rows' values.
        let sum = unsafe {
            match v {
                1 => pass::<1>(p, rows, cols, first, last),
                2 => pass::<2>(p, rows, cols, first, last),
                3 => pass::<3>(p, rows, cols, first, last),
                4 => pass::<4>(p, rows, cols, first, last),
                5 => pass::<5>(p, rows, cols, first, last),
                6 => pass::<6>(p, rows, cols, first, last),
                7 => pass::<7>(p, rows, cols, first, last),
                8 => pass::<8>(p, rows, cols, first, last),
                9 => pass::<9>(p, rows, cols, first, last),
                10 => pass::<10>(p, rows, cols, first, last),
                11 => pass::<11>(p, rows, cols, first, last),
                _ => pass::<12>(p, rows, cols, first, last),
            }
        };
        total = _mm512_add_ps(total, sum);
        s0 += v;
    }
    _mm512_reduce_add_ps(total)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn stream_avx2(w: &[f32], rows: usize, cols: usize) -> f32 {
    #[inline(always)]
    unsafe fn block<const V: usize>(w: *const f32, rows: usize, cols: usize) -> __m256 {
        // SAFETY: the caller's block lies inside every row.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); V];
            for i in 0..rows {
                let row = w.add(i * cols);
                for (v, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_add_ps(*a, _mm256_loadu_ps(row.add(8 * v)));
                }
            }
            let mut sum = _mm256_setzero_ps();
            for a in acc {
                sum = _mm256_add_ps(sum, a);
            }
            sum
        }
    }
    let wp = w.as_ptr();
    let mut total = _mm256_setzero_ps();
    let mut j0 = 0;
    // SAFETY: every block covers columns `j0..j0 + 8 V <= cols`.
    unsafe {
        while cols - j0 >= 64 {
            total = _mm256_add_ps(total, block::<8>(wp.add(j0), rows, cols));
            j0 += 64;
        }
        if cols - j0 >= 32 {
            total = _mm256_add_ps(total, block::<4>(wp.add(j0), rows, cols));
            j0 += 32;
        }
        if cols - j0 >= 16 {
            total = _mm256_add_ps(total, block::<2>(wp.add(j0), rows, cols));
            j0 += 16;
        }
        if cols - j0 >= 8 {
            total = _mm256_add_ps(total, block::<1>(wp.add(j0), rows, cols));
            j0 += 8;
        }
    }
    let mut out = [0.0f32; 8];
    // SAFETY: `out` holds 8 values.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), total) };
    let mut sum: f32 = out.iter().sum();
    for i in 0..rows {
        sum += w[i * cols + j0..(i + 1) * cols].iter().sum::<f32>();
    }
    sum
}

/// Adam's update on eight lanes, the operations of kiln's `AdamStep::run_avx2` (Keras's
/// defaults, a fixed step): for [`DigitsStep`], which asks whether it hides under GEMMs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub fn adam_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let n = p.len().min(g.len()).min(m.len()).min(v.len());
    let (b1, b2) = (_mm256_set1_ps(0.1), _mm256_set1_ps(0.001));
    let (alpha, eps) = (_mm256_set1_ps(0.001), _mm256_set1_ps(1e-7));
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, within each slice.
        unsafe {
            let gi = _mm256_loadu_ps(g.as_ptr().add(i));
            let mut mi = _mm256_loadu_ps(m.as_ptr().add(i));
            let mut vi = _mm256_loadu_ps(v.as_ptr().add(i));
            mi = _mm256_add_ps(mi, _mm256_mul_ps(_mm256_sub_ps(gi, mi), b1));
            let g2 = _mm256_mul_ps(gi, gi);
            vi = _mm256_add_ps(vi, _mm256_mul_ps(_mm256_sub_ps(g2, vi), b2));
            let root = _mm256_add_ps(_mm256_sqrt_ps(vi), eps);
            let step = _mm256_div_ps(_mm256_mul_ps(mi, alpha), root);
            _mm256_storeu_ps(m.as_mut_ptr().add(i), mi);
            _mm256_storeu_ps(v.as_mut_ptr().add(i), vi);
            let w = _mm256_loadu_ps(p.as_ptr().add(i));
            _mm256_storeu_ps(p.as_mut_ptr().add(i), _mm256_sub_ps(w, step));
        }
        i += 8;
    }
}

/// `len` deterministic values in ±0.1 for the training probes, none of them zero: Adam's
/// `v` of a weight whose gradient stays zero decays by 0.999 a step, and after the ~10^5
/// calls of a criterion run it is subnormal, where the square root and the division take
/// about twice as long (9.3 against 5.0 µs for the digits model's weights).
pub fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 37 + seed * 11) % 101) as f32 - 50.5) / 500.0)
        .collect()
}

/// One digits training step's eight products (batch 32; forward, weight gradients, the
/// input gradients of layers 2 and 3 through a transposed kernel) on `kiln::gemm`, each cut
/// into blocks of `block` output columns with `between` run after every block: the
/// interleaving probe of `benches/fit.rs` (Adam's chunks between the blocks).
pub struct DigitsStep {
    kernels: [Vec<f32>; 3],
    transposed: [Vec<f32>; 3],
    x: Vec<f32>,
    z: [Vec<f32>; 3],
    dz: [Vec<f32>; 3],
    dx: [Vec<f32>; 3],
    grads: [Vec<f32>; 3],
}

impl DigitsStep {
    /// (inputs, units) of the three Dense layers.
    const DIMS: [(usize, usize); 3] = [(64, 128), (128, 64), (64, 10)];
    const BATCH: usize = 32;

    pub fn new() -> DigitsStep {
        let fill = values;
        let n = Self::BATCH;
        DigitsStep {
            kernels: Self::DIMS.map(|(i, u)| fill(i * u, u)),
            transposed: Self::DIMS.map(|(i, u)| vec![0.0; i * u]),
            x: fill(64 * n, 3),
            z: Self::DIMS.map(|(_, u)| fill(u * n, 5)),
            dz: Self::DIMS.map(|(_, u)| fill(u * n, 7)),
            dx: Self::DIMS.map(|(i, _)| vec![0.0; i * n]),
            grads: Self::DIMS.map(|(i, u)| vec![0.0; i * u]),
        }
    }

    /// The step's products, `block` columns of each output at a time.
    pub fn products(&mut self, block: usize, between: &mut dyn FnMut()) {
        use kiln::gemm::{transpose, Strided};
        let n = Self::BATCH;
        for l in 0..3 {
            let (i, u) = Self::DIMS[l];
            let (before, rest) = self.z.split_at_mut(l);
            let input = if l == 0 { &self.x } else { &before[l - 1] };
            let b = Strided::column_major(i, n);
            blocks(&self.kernels[l], u, input, b, &mut rest[0], block, between);
        }
        for l in (0..3).rev() {
            let (i, u) = Self::DIMS[l];
            let input = if l == 0 { &self.x } else { &self.z[l - 1] };
            let b = Strided::column_major(i, n).t();
            blocks(&self.dz[l], u, input, b, &mut self.grads[l], block, between);
            if l > 0 {
                transpose(&self.kernels[l], u, i, &mut self.transposed[l]);
                let b = Strided::column_major(u, n);
                blocks(
                    &self.transposed[l],
                    i,
                    &self.dz[l],
                    b,
                    &mut self.dx[l],
                    block,
                    between,
                );
            }
        }
    }
}

/// `c = a · b` (`a`: `m` rows, columns contiguous; `b` read through `sb`), `block` columns
/// of `c` per `kiln::gemm::gemm` call, `between` after each.
fn blocks(
    a: &[f32],
    m: usize,
    b: &[f32],
    sb: kiln::gemm::Strided,
    c: &mut [f32],
    block: usize,
    between: &mut dyn FnMut(),
) {
    use kiln::gemm::{gemm, Strided};
    let mut j = 0;
    while j < sb.cols {
        let w = block.min(sb.cols - j);
        let sb_block = Strided { cols: w, ..sb };
        let c_block = &mut c[j * m..(j + w) * m];
        let sa = Strided::column_major(m, sb.rows);
        gemm(
            1.0,
            a,
            sa,
            &b[j * sb.col_stride..],
            sb_block,
            0.0,
            c_block,
            Strided::column_major(m, w),
        );
        between();
        j += w;
    }
}

/// Layer 1's weight gradient of the digits step, `G = dz · xᵀ` (128 × 64, depth 32), in
/// 64 × 4 register tiles on AVX-512, with Adam over `G`'s 8,192 weights: after the product
/// (`fused = false`), or fused (`fused = true`: the previous tile's 16 Adam vectors spread
/// over this tile's k-loop, one every other k-step, so the divider's work sits among the
/// multiply-adds). Same arithmetic either way. The question it answers: how much of Adam
/// can hide under the product at the finest grain a fused kernel would have.
///
/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn weight_gradient_and_adam(state: &mut FusedState, adam: bool, fused: bool) {
    const U: usize = FusedState::UNITS;
    const I: usize = FusedState::INPUTS;
    let FusedState { dz, x, g, p, m, v } = state;
    let (dzp, xp, gp) = (dz.as_ptr(), x.as_ptr(), g.as_mut_ptr());
    let (pp, mp, vp) = (p.as_mut_ptr(), m.as_mut_ptr(), v.as_mut_ptr());
    // Vector q (0..16) of the tile at (r0, c0): column c0 + q / 4, rows r0 + 16 (q % 4).
    let at = |r0: usize, c0: usize, q: usize| (c0 + q / 4) * U + r0 + 16 * (q % 4);
    let update = |o: usize| {
        // SAFETY: `o` is a vector's offset inside the four buffers of `U · I` values.
        unsafe { adam_avx512(pp.add(o), gp.add(o), mp.add(o), vp.add(o)) }
    };
    let mut previous = None;
    for r0 in (0..U).step_by(64) {
        for c0 in (0..I).step_by(4) {
            let mut acc = [_mm512_setzero_ps(); 16];
            for k in 0..FusedState::BATCH {
                // SAFETY: rows r0..r0 + 64 of column k of dz, and x[c0 + j, k], are inside.
                unsafe {
                    let col = dzp.add(k * U + r0);
                    let a = [0, 16, 32, 48].map(|r| _mm512_loadu_ps(col.add(r)));
                    for j in 0..4 {
                        let b = _mm512_set1_ps(*xp.add(k * I + c0 + j));
                        for q in 0..4 {
                            acc[j * 4 + q] = _mm512_fmadd_ps(a[q], b, acc[j * 4 + q]);
                        }
                    }
                }
                if let (true, true, Some((pr, pc))) = (adam && fused, k % 2 == 1, previous) {
                    update(at(pr, pc, k / 2));
                }
            }
            for (q, sum) in acc.iter().enumerate() {
                // SAFETY: the tile's vectors lie inside G.
                unsafe { _mm512_storeu_ps(gp.add(at(r0, c0, q)), *sum) };
            }
            previous = Some((r0, c0));
        }
    }
    match (adam, fused, previous) {
        (true, true, Some((pr, pc))) => (0..16).for_each(|q| update(at(pr, pc, q))),
        (true, false, _) => (0..U * I).step_by(16).for_each(update),
        _ => {}
    }
}

/// Adam on sixteen lanes at `p`, `g`, `m`, `v` (the operations of [`adam_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn adam_avx512(p: *mut f32, g: *const f32, m: *mut f32, v: *mut f32) {
    let (b1, b2) = (_mm512_set1_ps(0.1), _mm512_set1_ps(0.001));
    let (alpha, eps) = (_mm512_set1_ps(0.001), _mm512_set1_ps(1e-7));
    // SAFETY: the caller passes sixteen values at each pointer.
    unsafe {
        let gi = _mm512_loadu_ps(g);
        let mut mi = _mm512_loadu_ps(m);
        let mut vi = _mm512_loadu_ps(v);
        mi = _mm512_add_ps(mi, _mm512_mul_ps(_mm512_sub_ps(gi, mi), b1));
        let g2 = _mm512_mul_ps(gi, gi);
        vi = _mm512_add_ps(vi, _mm512_mul_ps(_mm512_sub_ps(g2, vi), b2));
        let root = _mm512_add_ps(_mm512_sqrt_ps(vi), eps);
        let step = _mm512_div_ps(_mm512_mul_ps(mi, alpha), root);
        _mm512_storeu_ps(m, mi);
        _mm512_storeu_ps(v, vi);
        _mm512_storeu_ps(p, _mm512_sub_ps(_mm512_loadu_ps(p), step));
    }
}

/// The buffers of [`weight_gradient_and_adam`]: `dz` (128 × 32), `x` (64 × 32), the
/// gradient and Adam's weights, `m` and `v` (128 × 64 each), column-major.
pub struct FusedState {
    dz: Vec<f32>,
    x: Vec<f32>,
    g: Vec<f32>,
    p: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl FusedState {
    const UNITS: usize = 128;
    const INPUTS: usize = 64;
    const BATCH: usize = 32;

    pub fn new() -> FusedState {
        let fill = values;
        let weights = Self::UNITS * Self::INPUTS;
        FusedState {
            dz: fill(Self::UNITS * Self::BATCH, 1),
            x: fill(Self::INPUTS * Self::BATCH, 2),
            g: vec![0.0; weights],
            p: fill(weights, 3),
            m: vec![0.0; weights],
            v: vec![0.01; weights],
        }
    }
}
