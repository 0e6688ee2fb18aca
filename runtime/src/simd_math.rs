//! Vectorised `tanh` and `sigmoid`: the slice kernels [`tanh_in_place`] and
//! [`sigmoid_in_place`], and the element functions [`tanh`] and [`sigmoid`] they map, for
//! callers that fuse them into loops of their own (an LSTM cell's `o * tanh(c)`).
//!
//! Why: a recurrent step spends most of its time in these two functions when they go
//! through libm one value at a time (issue 10: a 2,000-3,500 ns LSTM step, almost all of it
//! in `tanhf` and `expf`), while the same formula written without branches or calls runs 4,
//! 8 or 16 values per instruction. Both functions are built on one `exp(-a)`, `a >= 0`:
//! Cody-Waite range reduction `-a = n ln 2 + r`, `|r| <= ln(2) / 2`, Cephes' `expf`
//! polynomial for `exp(r)` (degree 7, evaluated by Estrin's scheme), and `2^n` assembled in
//! the exponent bits. Nothing branches, calls or converts a float to an integer (`n` is
//! rounded by adding `1.5 * 2^23`), so LLVM vectorises the element functions in the default
//! x86-64 build (SSE2).
//!
//! - `sigmoid(x) = num / (1 + e)` with `e = exp(-|x|)`, `num = e` for `x < 0`, else 1: the
//!   split kiln's libm-based sigmoid used, so nothing overflows and the tiny values of large
//!   negative `x` keep their relative accuracy.
//! - `tanh(|x|) = (1 - e) / (1 + e)` with `e = exp(-2|x|)`, the numerator formed as
//!   `(1 - 2^n) - 2^n m` below `|x| = 0.5` (no cancellation near 0), and the sign copied
//!   from `x`, so `tanh(-0.0) = -0.0`.
//!
//! Accuracy, measured against `f64` over every finite `f32` through each instruction set's
//! slice kernel (`cargo test -p kiln-runtime --release simd_math -- --ignored
//! --nocapture`): `tanh` within 2.26 ulp (absolute error at most 9.0e-8, relative 1.84e-7),
//! `sigmoid` within 2.41 ulp (absolute 8.9e-8, relative 1.8e-7 for results above
//! `f32::MIN_POSITIVE`); by path, `tanh` 2.252 ulp portable and 2.259 with FMA, `sigmoid`
//! 2.402 either way. That is libm's accuracy (glibc's `tanhf`: 2.19 ulp, absolute 1.0e-7;
//! the libm-based sigmoid kiln had before: 2.40 ulp), better than the 13/6 rational of
//! Eigen's `generic_fast_tanh_float` (6.88 ulp, absolute 4.1e-7 at x = 5.83) and than
//! Keras's own values on its JAX 0.10.2 CPU backend (`tanh`: 4.35 ulp, absolute 2.6e-7 at x
//! = 3.74, sampled on every 61st float). Special values: NaN gives NaN, `tanh(+-inf) =
//! +-1`, `sigmoid(-inf) = 0`, `sigmoid(+inf) = 1`, zeros keep their sign through `tanh`,
//! and denormal inputs give `tanh(x) = x`, `sigmoid(x) = 0.5`. `sigmoid(x)` is 0 below
//! about -87.68 (true value under 8.6e-39, a denormal; XLA on CPU flushes such results to 0
//! too) and denormal between there and -87.34, within two steps of the denormal grid
//! (3e-45).
//!
//! Rounding, by instruction set ([`MulAdd`]): the AVX2 and AVX-512 kernels fuse each
//! multiply-add of the polynomial (one FMA instruction, one rounding) and compute the same
//! bits as each other, since they run the same IEEE operations in the same order on wider
//! or narrower vectors. The portable path (SSE2, or any CPU without FMA) rounds the product
//! and the sum separately, so its results can differ from theirs in the last bit or two,
//! as `crate::gemm`'s do. Fusing shortens the chain of dependent operations a recurrent
//! step waits on (an LSTM(1 -> 32) streaming step: about 30 of 190 ns). No approximate
//! reciprocal is used. The element functions [`tanh`] and [`sigmoid`] are the portable
//! path's values; [`tanh_with`] and [`sigmoid_with`] take the rounding as a type parameter,
//! for callers that fuse them into loops of their own compiled for an FMA instruction set.
//! The AVX2 and AVX-512 versions are the portable code compiled for those instruction
//! sets, picked by [`crate::isa`] like `crate::gemm`'s kernels (once per process;
//! `KILN_ISA` can force a lesser one).

#![allow(clippy::excessive_precision)]

use crate::isa::Isa;

/// `log2(e)`.
const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// `ln 2` in two parts: the high part has 10 significant bits, so `n * LN2_HI` is exact for
/// every `n` used here and `-a - n * LN2_HI` loses nothing.
const LN2_HI: f32 = 0.693_359_375;
/// `ln 2 - LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 * 2^23`: adding it rounds a float of magnitude below 2^22 to an integer, which
/// then sits in the low mantissa bits of the sum.
const ROUND: f32 = 12_582_912.0;
/// Where `sigmoid` clamps `|x|`: `n = round(-88 log2 e) = -127`, one below the smallest
/// normal exponent, whose bit pattern is that of `+0.0`, so `exp(-a)` comes out exactly 0
/// from about `a = 87.68` on (true value below 8.6e-39, a denormal) without a separate
/// flush.
const SIGMOID_LIMIT: f32 = 88.0;
/// Where `tanh` clamps `|x|`: `tanh(a)` rounds to 1 from `a = 9.02` on.
const TANH_LIMIT: f32 = 10.0;
/// Below it, `tanh`'s numerator `1 - exp(-2a)` is formed from the exact `1 - 2^n`.
const TANH_SMALL: f32 = 0.5;
const SIGN: u32 = 0x8000_0000;

/// How the element functions round each `a * b + c` of their polynomials: [`Unfused`]
/// rounds the product and the sum (what every SIMD width computes alike without FMA: the
/// portable path) and [`Fused`] rounds once (one FMA instruction: the AVX2 and AVX-512 paths,
/// whose code the compiler builds with FMA enabled). Fused is shorter (about 30 ns of a
/// 190 ns LSTM(1 -> 32) streaming step) and slightly more accurate; the two differ in the
/// last bit or two.
pub trait MulAdd {
    /// `a * b + c`.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// `a * b + c` rounded twice (see [`MulAdd`]).
pub struct Unfused;

impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// `a * b + c` rounded once (see [`MulAdd`]). Only for code compiled with FMA enabled (a
/// `#[target_feature(enable = "fma")]` function, or one inlined into it): elsewhere each
/// one is a call to libm's `fmaf`, which gives the same bits, slowly.
pub struct Fused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        crate::math::mul_add(a, b, c)
    }
}

/// The rounding of the AVX2 and AVX-512 kernels: [`Fused`] with `std`, whose `f32::mul_add`
/// becomes one FMA instruction in code compiled with FMA; [`Unfused`] without `std`, where
/// stable Rust's `core` has no fused multiply-add and `libm`'s is a slow software routine
/// (a `no_std` build then computes the portable path's bits on every instruction set).
#[cfg(feature = "std")]
pub type VectorMulAdd = Fused;
/// See the `std` definition.
#[cfg(not(feature = "std"))]
pub type VectorMulAdd = Unfused;

/// `exp(y) = 2^n (1 + m)` for `y` in `[-SIGMOID_LIMIT, 0]` (or NaN), as `(m, 2^n)`, so
/// that callers can combine the exact `2^n` with other terms before adding the rounded
/// `2^n m` (`1 - exp(y) = (1 - 2^n) - 2^n m` without cancellation), each in one multiply-add.
/// For `n = -127`, `2^n` comes out as 0.
///
/// Takes `a >= 0` and returns the parts of `exp(-a)`, or of `exp(-2a)` when `TWICE`: the
/// first multiply-add starts from `a` itself (`a (-2 log2 e)` is `(-2a) log2 e` exactly),
/// so the doubling is not on the chain of dependent operations, and it is an addition.
#[inline(always)]
fn exp_parts<A: MulAdd, const TWICE: bool>(a: f32) -> (f32, f32) {
    let (y, log2_e) = if TWICE {
        (-(a + a), -2.0 * LOG2_E)
    } else {
        (-a, -LOG2_E)
    };
    let rounded = A::mul_add(a, log2_e, ROUND);
    let n = rounded - ROUND;
    // `n * LN2_HI` is exact, so `y - n * LN2_HI` is the same either way.
    let r = A::mul_add(n, -LN2_HI, y);
    let r = A::mul_add(n, -LN2_LO, r);
    // Cephes' `expf` polynomial: exp(r) - 1 = r + r^2 p(r) on |r| <= ln(2) / 2, with p
    // evaluated by Estrin's scheme (pairs, then powers of r^2) rather than Horner's: half
    // the chain of dependent operations, which is what a short slice waits on.
    let r2 = r * r;
    let p01 = A::mul_add(1.666_666_545_9e-1, r, 5.000_000_120_1e-1);
    let p23 = A::mul_add(8.333_451_907_3e-3, r, 4.166_579_589_4e-2);
    let p45 = A::mul_add(1.987_569_15e-4, r, 1.398_199_950_7e-3);
    let p = A::mul_add(A::mul_add(p45, r2, p23), r2, p01);
    let m = A::mul_add(p, r2, r);
    // `rounded`'s bits are ROUND's plus n: shift n + 127 into the exponent field.
    let biased = rounded.to_bits().wrapping_sub(ROUND.to_bits() - 127);
    let scale = f32::from_bits(biased << 23);
    (m, scale)
}

/// `min(x, limit)` that keeps NaN (`x > limit` is false for NaN): one `minps`.
#[inline(always)]
fn clamp_above(x: f32, limit: f32) -> f32 {
    if x > limit {
        limit
    } else {
        x
    }
}

/// The logistic sigmoid `1 / (1 + exp(-x))`, branch-free (see the module docs for its
/// accuracy): the portable path's value, [`sigmoid_with`] [`Unfused`].
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    sigmoid_with::<Unfused>(x)
}

/// [`sigmoid`] with its multiply-adds rounded as `A` says: the value [`sigmoid_in_place`]
/// computes for each element on an instruction set that fuses them
/// ([`Isa::fuses_multiply_add`]) or not.
#[inline(always)]
pub fn sigmoid_with<A: MulAdd>(x: f32) -> f32 {
    let a = f32::from_bits(x.to_bits() & !SIGN);
    let (m, scale) = exp_parts::<A, false>(clamp_above(a, SIGMOID_LIMIT));
    let e = A::mul_add(scale, m, scale);
    let num = if x < 0.0 { e } else { 1.0 };
    num / (1.0 + e)
}

/// The hyperbolic tangent, branch-free (see the module docs for its accuracy): the portable
/// path's value, [`tanh_with`] [`Unfused`].
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    tanh_with::<Unfused>(x)
}

/// [`tanh`] with its multiply-adds rounded as `A` says: the value [`tanh_in_place`]
/// computes for each element on an instruction set that fuses them
/// ([`Isa::fuses_multiply_add`]) or not.
#[inline(always)]
pub fn tanh_with<A: MulAdd>(x: f32) -> f32 {
    let bits = x.to_bits();
    let a = f32::from_bits(bits & !SIGN);
    let (m, scale) = exp_parts::<A, true>(clamp_above(a, TANH_LIMIT));
    // tanh(a) = (1 - e) / (1 + e), e = exp(-2a). Below a = 0.5 (n >= -1), `1 - e` would
    // cancel: there the numerator is `(1 - 2^n) - 2^n m` instead, whose first difference is
    // exact (near 0 it is `-m` itself), so small inputs keep their relative accuracy.
    let e = A::mul_add(scale, m, scale);
    let num = if a < TANH_SMALL {
        A::mul_add(-scale, m, 1.0 - scale)
    } else {
        1.0 - e
    };
    let t = num / (1.0 + e);
    // `t` is +0.0 at a = 0 (`(1 - 1) - 0`), and takes `x`'s sign.
    f32::from_bits(t.to_bits() | (bits & SIGN))
}

/// Applies [`tanh`] to every value of `data`, vectorised for the best instruction set of
/// this CPU.
pub fn tanh_in_place(data: &mut [f32]) {
    tanh_on(crate::isa::isa(), data);
}

/// Applies [`sigmoid`] to every value of `data`, vectorised for the best instruction set of
/// this CPU.
pub fn sigmoid_in_place(data: &mut [f32]) {
    sigmoid_on(crate::isa::isa(), data);
}

/// [`tanh_in_place`] on a chosen instruction set, which the CPU must have.
fn tanh_on(isa: Isa, data: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `crate::isa` offers AVX-512 only on CPUs with AVX-512F.
        Isa::Avx512 => unsafe { tanh_avx512(data) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `crate::isa` offers AVX2 only on CPUs with AVX2 and FMA.
        Isa::Avx2Fma => unsafe { tanh_avx2(data) },
        _ => tanh_portable(data),
    }
}

/// [`sigmoid_in_place`] on a chosen instruction set, which the CPU must have.
fn sigmoid_on(isa: Isa, data: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `crate::isa` offers AVX-512 only on CPUs with AVX-512F.
        Isa::Avx512 => unsafe { sigmoid_avx512(data) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `crate::isa` offers AVX2 only on CPUs with AVX2 and FMA.
        Isa::Avx2Fma => unsafe { sigmoid_avx2(data) },
        _ => sigmoid_portable(data),
    }
}

/// `b[k] = a[k] * b[k] + c[k]` for every `k` (the shortest slice decides), rounded as the
/// kernels of this CPU's instruction set round a multiply-add ([`MulAdd`]: once on AVX2
/// and AVX-512, twice on the portable path): the recurrent cells' state updates (an LSTM's
/// `c = f c + i g`), so that a cell's general path and its one-pass streaming step, which
/// rounds with [`MulAdd`] inline, give the same bits.
pub fn mul_add_in_place(a: &[f32], b: &mut [f32], c: &[f32]) {
    match crate::isa::isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `crate::isa` offers AVX-512 only on CPUs with AVX-512F (and FMA).
        Isa::Avx512 => unsafe { mul_add_avx512(a, b, c) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `crate::isa` offers AVX2 only on CPUs with AVX2 and FMA.
        Isa::Avx2Fma => unsafe { mul_add_avx2(a, b, c) },
        _ => mul_add_with::<Unfused>(a, b, c),
    }
}

/// [`mul_add_in_place`] rounded as `A` says.
#[inline(always)]
fn mul_add_with<A: MulAdd>(a: &[f32], b: &mut [f32], c: &[f32]) {
    for ((b, &a), &c) in b.iter_mut().zip(a).zip(c) {
        *b = A::mul_add(a, *b, c);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn mul_add_avx512(a: &[f32], b: &mut [f32], c: &[f32]) {
    mul_add_with::<VectorMulAdd>(a, b, c);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn mul_add_avx2(a: &[f32], b: &mut [f32], c: &[f32]) {
    mul_add_with::<VectorMulAdd>(a, b, c);
}

/// Values per call of a block kernel.
const BLOCK: usize = 32;

/// A slice kernel `$slice` mapping `$f`, and its block kernel `$block`, both compiled with
/// the attributes given (the target features of an instruction set). The block kernel is a
/// loop of a fixed BLOCK values kept out of line, so LLVM vectorises that loop alone, in
/// whole vectors; inlined into the loop over blocks, it would vectorise the outer loop
/// instead, across blocks, shuffling strided values into lanes. The tail is padded into
/// one more block.
macro_rules! slice_kernel {
    ($(#[$attr:meta])* fn $slice:ident, $block:ident = $f:expr) => {
        $(#[$attr])*
        #[inline(never)]
        fn $block(block: &mut [f32; BLOCK]) {
            for v in block.iter_mut() {
                *v = $f(*v);
            }
        }

        $(#[$attr])*
        fn $slice(data: &mut [f32]) {
            let (blocks, tail) = data.as_chunks_mut::<BLOCK>();
            for block in blocks {
                $block(block);
            }
            if !tail.is_empty() {
                let mut block = [0.0f32; BLOCK];
                block[..tail.len()].copy_from_slice(tail);
                $block(&mut block);
                tail.copy_from_slice(&block[..tail.len()]);
            }
        }
    };
}

slice_kernel!(fn tanh_portable, tanh_block_portable = tanh_with::<Unfused>);
slice_kernel!(fn sigmoid_portable, sigmoid_block_portable = sigmoid_with::<Unfused>);
slice_kernel!(
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn tanh_avx2, tanh_block_avx2 = tanh_with::<VectorMulAdd>
);
slice_kernel!(
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn sigmoid_avx2, sigmoid_block_avx2 = sigmoid_with::<VectorMulAdd>
);
slice_kernel!(
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    fn tanh_avx512, tanh_block_avx512 = tanh_with::<VectorMulAdd>
);
slice_kernel!(
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    fn sigmoid_avx512, sigmoid_block_avx512 = sigmoid_with::<VectorMulAdd>
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The instruction sets this CPU can run, so each kernel is tested where it can be.
    fn isas() -> Vec<Isa> {
        crate::isa::available().to_vec()
    }

    fn sigmoid_f64(x: f64) -> f64 {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        }
    }

    /// The largest errors of `f` against `reference` over some floats.
    #[derive(Debug, Default)]
    struct Errors {
        ulp: f64,
        ulp_at: f32,
        abs: f64,
        abs_at: f32,
        rel: f64,
        rel_at: f32,
    }

    impl Errors {
        fn add(&mut self, x: f32, got: f32, exact: f64) {
            let err = (f64::from(got) - exact).abs();
            // The ulp of the exact value's f32 neighbourhood (the float at or below it).
            let below = exact.abs() as f32;
            let ulp = if below < f32::MIN_POSITIVE {
                f64::from(f32::from_bits(1))
            } else {
                let next = f32::from_bits(below.to_bits() + 1);
                f64::from(next - below)
            };
            if err > self.abs {
                (self.abs, self.abs_at) = (err, x);
            }
            // Relative error and ulps for normal results; denormal ones are covered by
            // the absolute error.
            if exact.abs() >= f64::from(f32::MIN_POSITIVE) {
                if err / ulp > self.ulp {
                    (self.ulp, self.ulp_at) = (err / ulp, x);
                }
                if err / exact.abs() > self.rel {
                    (self.rel, self.rel_at) = (err / exact.abs(), x);
                }
            }
        }
    }

    /// Every finite float with both signs, in steps of `stride` bit patterns, plus the
    /// values around each threshold of the kernels.
    fn grid(stride: u32) -> Vec<f32> {
        let mut xs = Vec::new();
        let mut bits = 0u32;
        while bits < f32::INFINITY.to_bits() {
            xs.push(f32::from_bits(bits));
            xs.push(-f32::from_bits(bits));
            bits = bits.saturating_add(stride);
        }
        for t in [
            TANH_SMALL,
            TANH_LIMIT,
            9.02,
            0.173,
            SIGMOID_LIMIT,
            87.68,
            87.34,
            44.0,
        ] {
            for d in -3i32..=3 {
                let v = f32::from_bits(t.to_bits().wrapping_add_signed(d));
                xs.extend([v, -v]);
            }
        }
        xs
    }

    /// The errors of `ys` (computed from `xs`) against `reference`, at most `max_ulp`.
    fn check(
        name: &str,
        xs: &[f32],
        ys: &[f32],
        reference: fn(f64) -> f64,
        max_ulp: f64,
    ) -> Errors {
        let mut errors = Errors::default();
        for (&x, &y) in xs.iter().zip(ys) {
            errors.add(x, y, reference(f64::from(x)));
        }
        assert!(
            errors.ulp <= max_ulp,
            "{name}: {:.2} ulp at x = {:e}",
            errors.ulp,
            errors.ulp_at
        );
        errors
    }

    /// A dense grid (every 1021st float of each sign, about 4 million values, extremes,
    /// zeros, denormals and each threshold included) against `f64`, through the element
    /// functions and the slice kernels of every instruction set this CPU has, within the
    /// bounds the module docs state (which the exhaustive run below measures).
    #[test]
    fn every_kernel_matches_f64_on_a_dense_grid() {
        let xs = grid(1021);
        let tanh_ys: Vec<f32> = xs.iter().map(|&x| tanh(x)).collect();
        let sigmoid_ys: Vec<f32> = xs.iter().map(|&x| sigmoid(x)).collect();
        let mut runs = vec![("element functions".to_string(), tanh_ys, sigmoid_ys)];
        for isa in isas() {
            let (mut t, mut s) = (xs.clone(), xs.clone());
            tanh_on(isa, &mut t);
            sigmoid_on(isa, &mut s);
            runs.push((format!("{isa:?}"), t, s));
        }
        for (what, tanh_ys, sigmoid_ys) in runs {
            let t = check(&format!("{what} tanh"), &xs, &tanh_ys, f64::tanh, 2.26);
            assert!(t.abs < 9.0e-8 && t.rel < 1.84e-7, "{what} tanh: {t:?}");
            let s = check(
                &format!("{what} sigmoid"),
                &xs,
                &sigmoid_ys,
                sigmoid_f64,
                2.41,
            );
            assert!(s.abs < 8.94e-8 && s.rel < 1.79e-7, "{what} sigmoid: {s:?}");
        }
    }

    /// Every finite float (about 4.3e9 per function, minutes in a release build): the
    /// figures quoted in the module docs. `cargo test -p kiln-runtime --release simd_math
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore = "exhaustive; run in release with --ignored"]
    fn exhaustive_error_bounds() {
        let chunk = 1usize << 20;
        for isa in isas() {
            for (name, kernel, reference) in [
                (
                    "tanh",
                    tanh_on as fn(Isa, &mut [f32]),
                    f64::tanh as fn(f64) -> f64,
                ),
                ("sigmoid", sigmoid_on, sigmoid_f64),
            ] {
                let mut errors = Errors::default();
                let (mut xs, mut ys) = (Vec::with_capacity(chunk), Vec::with_capacity(chunk));
                let flush = |xs: &mut Vec<f32>, ys: &mut Vec<f32>, errors: &mut Errors| {
                    ys.clear();
                    ys.extend_from_slice(xs);
                    kernel(isa, ys);
                    for (&x, &y) in xs.iter().zip(ys.iter()) {
                        errors.add(x, y, reference(f64::from(x)));
                    }
                    xs.clear();
                };
                for bits in 0..f32::INFINITY.to_bits() {
                    xs.extend([f32::from_bits(bits), -f32::from_bits(bits)]);
                    if xs.len() >= chunk {
                        flush(&mut xs, &mut ys, &mut errors);
                    }
                }
                flush(&mut xs, &mut ys, &mut errors);
                println!(
                    "{isa:?} {name}: max {:.3} ulp at {:e}, abs {:.3e} at {:e}, rel {:.3e} at {:e}",
                    errors.ulp, errors.ulp_at, errors.abs, errors.abs_at, errors.rel, errors.rel_at
                );
            }
        }
    }

    #[test]
    fn special_values() {
        let nan = f32::NAN;
        let inf = f32::INFINITY;
        let denormal = f32::from_bits(1);
        for isa in isas() {
            let mut t = [
                0.0, -0.0, inf, -inf, nan, -nan, denormal, -denormal, 1e4, -1e4,
            ];
            tanh_on(isa, &mut t);
            let mut s = [
                0.0, -0.0, inf, -inf, nan, -nan, denormal, -denormal, 1e4, -1e4,
            ];
            sigmoid_on(isa, &mut s);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&t[..4]), bits(&[0.0, -0.0, 1.0, -1.0]), "{isa:?} tanh");
            assert!(t[4].is_nan() && t[5].is_nan(), "{isa:?} tanh(NaN)");
            assert_eq!(
                bits(&t[6..]),
                bits(&[denormal, -denormal, 1.0, -1.0]),
                "{isa:?} tanh"
            );
            assert_eq!(&s[..4], &[0.5, 0.5, 1.0, 0.0], "{isa:?} sigmoid");
            assert!(s[4].is_nan() && s[5].is_nan(), "{isa:?} sigmoid(NaN)");
            assert_eq!(&s[6..], &[0.5, 0.5, 1.0, 0.0], "{isa:?} sigmoid");
        }
        // The flush below -87.68, and the denormal results just above it.
        assert_eq!(sigmoid(-87.7), 0.0);
        let d = sigmoid(-87.4);
        assert!(d > 0.0 && d < f32::MIN_POSITIVE);
        // Within two steps of the denormal grid (1.4e-45 each).
        assert!((f64::from(d) - sigmoid_f64(f64::from(-87.4f32))).abs() < 3e-45);
        // Odd and exactly saturated.
        for x in [0.3f32, 0.5, 0.7, 3.0, 9.5] {
            assert_eq!(tanh(-x), -tanh(x));
        }
        assert_eq!(tanh(9.1), 1.0);
        assert!(tanh(8.5) < 1.0);
    }

    /// Every length from 0 to 100 (whole blocks and every tail) on every instruction set
    /// gives bit for bit what the element functions give with that instruction set's
    /// rounding (`Fused` on AVX2 and AVX-512), and leaves nothing beyond the slice touched.
    #[test]
    fn slice_kernels_agree_with_the_element_functions_on_every_isa() {
        let xs = grid(1 << 20);
        for isa in isas() {
            for len in 0..=100 {
                let fused = isa.fuses_multiply_add();
                type Element = fn(f32) -> f32;
                let (tanh_f, sigmoid_f): (Element, Element) = if fused {
                    (tanh_with::<VectorMulAdd>, sigmoid_with::<VectorMulAdd>)
                } else {
                    (tanh, sigmoid)
                };
                for (name, kernel, f) in [
                    ("tanh", tanh_on as fn(Isa, &mut [f32]), tanh_f),
                    ("sigmoid", sigmoid_on, sigmoid_f),
                ] {
                    let start = (len * 37) % (xs.len() - 200);
                    let mut buf: Vec<f32> = xs[start..start + len + 1].to_vec();
                    let sentinel = buf[len];
                    kernel(isa, &mut buf[..len]);
                    for (i, (&got, &x)) in buf.iter().zip(&xs[start..]).take(len).enumerate() {
                        let want = f(x);
                        assert!(
                            got.to_bits() == want.to_bits() || got.is_nan() && want.is_nan(),
                            "{isa:?} {name} len {len} [{i}] x = {x:e}: {got:e} vs {want:e}"
                        );
                    }
                    assert_eq!(buf[len].to_bits(), sentinel.to_bits());
                }
            }
            // A long slice through the dispatching entry points too (this process's
            // instruction set).
            if isa != crate::isa::isa() {
                continue;
            }
            let mut all = xs.clone();
            let mut expect = xs.clone();
            tanh_on(isa, &mut all);
            tanh_in_place(&mut expect);
            assert!(all
                .iter()
                .zip(&expect)
                .all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()));
            let mut all = xs.clone();
            let mut expect = xs.clone();
            sigmoid_on(isa, &mut all);
            sigmoid_in_place(&mut expect);
            assert!(all
                .iter()
                .zip(&expect)
                .all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()));
        }
    }
}
