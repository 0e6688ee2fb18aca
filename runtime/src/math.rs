//! Scalar `f32` math that works with and without `std`: std's (platform libm) when the `std`
//! feature is on, the pure-Rust `libm` crate otherwise. `erf` always comes from `libm`
//! because std has no stable `erf`.

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

/// The error function (needed by exact GELU).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    libm::erff(x)
}
