//! `zeroed`: fixed-size values allocated straight on the heap, for the [`Zeroable`] types
//! (matrices and arrays of `f32`).
//!
//! `Box::new(SMatrix::zeros())` builds the matrix on the stack first, which overflows a
//! thread's stack for large layers in debug builds; allocating zeroed memory does not.

#[cfg(feature = "alloc")]
use alloc::boxed::Box;

/// Marker for plain-old-data types whose all-zero bit pattern is a valid value.
///
/// # Safety
/// Implement only for types made of `f32`s (and arrays or `repr(C)` wrappers of them).
pub unsafe trait Zeroable {}

// SAFETY: an nalgebra static matrix of f32 is `repr(C)` over `[[f32; R]; C]`.
unsafe impl<const R: usize, const C: usize> Zeroable for nalgebra::SMatrix<f32, R, C> {}
// SAFETY: an array of f32; all-zero bytes are 0.0.
unsafe impl<const N: usize> Zeroable for [f32; N] {}

/// A heap-allocated `T` with every byte zero, never touching the stack.
#[cfg(feature = "alloc")]
pub fn zeroed<T: Zeroable>() -> Box<T> {
    // SAFETY: `T: Zeroable` guarantees all-zero bytes are a valid `T`.
    unsafe { Box::<T>::new_zeroed().assume_init() }
}
