//! Scalar `f32` math that works with and without `std`: std's (platform libm) when the `std`
//! feature is on, the pure-Rust `libm` crate otherwise. `erfc` always comes from `libm`
//! because std has no stable `erfc`.

#[cfg(feature = "std")]
mod imp {
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        x.exp()
    }
    #[inline(always)]
    pub fn exp_m1(x: f32) -> f32 {
        x.exp_m1()
    }
    #[inline(always)]
    pub fn ln(x: f32) -> f32 {
        x.ln()
    }
    #[inline(always)]
    pub fn ln_1p(x: f32) -> f32 {
        x.ln_1p()
    }
    #[inline(always)]
    pub fn tanh(x: f32) -> f32 {
        x.tanh()
    }
}

#[cfg(not(feature = "std"))]
mod imp {
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        libm::expf(x)
    }
    #[inline(always)]
    pub fn exp_m1(x: f32) -> f32 {
        libm::expm1f(x)
    }
    #[inline(always)]
    pub fn ln(x: f32) -> f32 {
        libm::logf(x)
    }
    #[inline(always)]
    pub fn ln_1p(x: f32) -> f32 {
        libm::log1pf(x)
    }
    #[inline(always)]
    pub fn tanh(x: f32) -> f32 {
        libm::tanhf(x)
    }
}

pub use imp::*;

/// `a * b + c` rounded once (a fused multiply-add): std's when available, else `libm`'s.
#[inline(always)]
pub fn mul_add(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    return a.mul_add(b, c);
    #[cfg(not(feature = "std"))]
    return libm::fmaf(a, b, c);
}

/// Square root (optimizer denominators, norms): std's when available, else `libm`'s; both
/// are correctly rounded.
#[inline(always)]
pub fn sqrt(x: f32) -> f32 {
    #[cfg(feature = "std")]
    return x.sqrt();
    #[cfg(not(feature = "std"))]
    return libm::sqrtf(x);
}

/// `x^y` for real `y` (Adam's bias corrections `beta^t`, as `ops.power` computes them).
#[cfg(feature = "alloc")]
#[inline(always)]
pub fn powf(x: f32, y: f32) -> f32 {
    #[cfg(feature = "std")]
    return x.powf(y);
    #[cfg(not(feature = "std"))]
    return libm::powf(x, y);
}

/// The complementary error function `1 - erf(x)`, accurate where `erf(x)` is close to 1
/// (exact GELU's tail).
#[inline(always)]
pub fn erfc(x: f32) -> f32 {
    libm::erfcf(x)
}
