//! [`isa`]: the instruction set kiln's hand-written kernels run on, chosen once per process:
//! the best this CPU has (detected at run time with `std`, from the compile-time target
//! features without), or a lesser one named by the `KILN_ISA` environment variable
//! (`portable`, `avx2`, `avx512`) — so that every path can be tested on one machine, and a
//! user can rule a path out. A name the CPU cannot run, or an unknown one, is ignored in
//! favour of the best the CPU has below it.

/// An instruction set the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, vectorised by the compiler for the build's target features.
    Portable,
    /// AVX2 and FMA (x86-64).
    Avx2Fma,
    /// AVX-512F (x86-64).
    Avx512,
}

impl Isa {
    /// Whether kiln's kernels on this instruction set fuse multiply-adds (one rounding, an
    /// FMA instruction): the AVX2 and AVX-512 paths do with `std`, the portable one does
    /// not, nor any path without `std` (`crate::simd_math::VectorMulAdd`).
    pub fn fuses_multiply_add(self) -> bool {
        self != Isa::Portable && cfg!(feature = "std")
    }

    /// The `KILN_ISA` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2Fma => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Every instruction set this CPU runs, best last.
pub fn available() -> &'static [Isa] {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        match (avx2, std::is_x86_feature_detected!("avx512f")) {
            (true, true) => &[Isa::Portable, Isa::Avx2Fma, Isa::Avx512],
            (false, true) => &[Isa::Portable, Isa::Avx512],
            (true, false) => &[Isa::Portable, Isa::Avx2Fma],
            (false, false) => &[Isa::Portable],
        }
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    {
        if cfg!(target_feature = "avx512f") {
            &[Isa::Portable, Isa::Avx512]
        } else {
            &[Isa::Portable]
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        &[Isa::Portable]
    }
}

/// The instruction set to run: `requested` (a `KILN_ISA` value) if the CPU has it, else the
/// best available one not above it; the best available one when nothing (or an unknown
/// name) is requested.
pub fn choose(requested: Option<&str>, available: &[Isa]) -> Isa {
    let best = available.iter().copied().max().unwrap_or(Isa::Portable);
    let ceiling = match requested.map(str::trim) {
        Some("portable") => Isa::Portable,
        Some("avx2") => Isa::Avx2Fma,
        Some("avx512") => Isa::Avx512,
        _ => return best,
    };
    available
        .iter()
        .copied()
        .filter(|isa| *isa <= ceiling)
        .max()
        .unwrap_or(Isa::Portable)
}

/// The instruction set the kernels use in this process (read once). Inlined: after the
/// first call it is one load and compare, and a streaming step asks several times.
#[inline]
pub fn isa() -> Isa {
    #[cfg(feature = "std")]
    {
        static CHOICE: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let requested = std::env::var("KILN_ISA").ok();
            choose(requested.as_deref(), available())
        })
    }
    #[cfg(not(feature = "std"))]
    {
        choose(None, available())
    }
}

/// Runs `f` compiled for the instruction set of this process ([`isa`]): `f` is inlined into
/// a copy of this function built with AVX-512 or AVX2 + FMA enabled, so the code it inlines
/// (nalgebra's small static products, the activation loops) is vectorised for the CPU
/// rather than for the build's baseline (SSE2 in a default x86-64 build). The generated
/// `predict`, `predict_into`, batch forward, training pass and streaming step run through
/// it: one check of a cached value per call, the instruction set chosen once per process.
/// Builds whose target already has AVX-512 (`-C target-cpu=native` on such a CPU) call `f`
/// directly.
///
/// Same bits in every copy: without fast-math flags, the compiler may vectorise but not
/// reorder or fuse floating-point operations, so `f` computes each value by the same
/// operations in the same order wherever it is inlined. (Code that fuses multiply-adds on
/// purpose asks [`isa`] first: `crate::simd_math::MulAdd`. The parity tests run under each
/// `KILN_ISA`.)
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx512f")))]
    {
        match isa() {
            // SAFETY: `isa()` returns `Avx512` only when the CPU has AVX-512F (detected at
            // run time, or compiled in), which implies AVX2 and FMA.
            Isa::Avx512 => return unsafe { on_avx512(f) },
            // SAFETY: `isa()` returns `Avx2Fma` only when the CPU has AVX2 and FMA.
            #[cfg(not(target_feature = "avx2"))]
            Isa::Avx2Fma => return unsafe { on_avx2(f) },
            _ => {}
        }
    }
    f()
}

/// `f` inlined into a function compiled with AVX-512F. Safety: the CPU must have it.
#[cfg(all(target_arch = "x86_64", not(target_feature = "avx512f")))]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn on_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f` inlined into a function compiled with AVX2 and FMA. Safety: the CPU must have them.
#[cfg(all(target_arch = "x86_64", not(target_feature = "avx2")))]
#[target_feature(enable = "avx2,fma")]
unsafe fn on_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_a_ceiling_within_what_the_cpu_has() {
        let all = [Isa::Portable, Isa::Avx2Fma, Isa::Avx512];
        assert_eq!(choose(None, &all), Isa::Avx512);
        assert_eq!(choose(Some("portable"), &all), Isa::Portable);
        assert_eq!(choose(Some("avx2"), &all), Isa::Avx2Fma);
        assert_eq!(choose(Some(" avx512\n"), &all), Isa::Avx512);
        assert_eq!(
            choose(Some("sse9"), &all),
            Isa::Avx512,
            "unknown names are ignored"
        );
        let old = [Isa::Portable, Isa::Avx2Fma];
        assert_eq!(
            choose(Some("avx512"), &old),
            Isa::Avx2Fma,
            "not above the CPU"
        );
        assert_eq!(choose(Some("avx2"), &[Isa::Portable]), Isa::Portable);
    }

    #[test]
    fn the_process_choice_is_available() {
        assert!(available().contains(&isa()));
        if let Ok(requested) = std::env::var("KILN_ISA") {
            assert!(
                isa().name() == requested.trim()
                    || !available().iter().any(|i| i.name() == requested.trim())
            );
        }
    }
}
