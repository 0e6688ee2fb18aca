//! [`Param`]: where a layer keeps one weight — on the heap (`Model::new`, loaded files,
//! training) or in the binary's read-only data (`pretrained()` of a model declared with
//! `#[weights = "..."]`). Layers read both the same way; writing a baked weight copies it to
//! the heap first (needs the `alloc` feature).
//!
//! [`BakedBytes`] holds a weight file included at compile time and hands out its tensors as
//! `&'static [f32]`, checked in `const` evaluation, so a baked model is built by a `const fn`.

#[cfg(feature = "alloc")]
use alloc::boxed::Box;
use core::fmt;
use core::ops::Deref;
use nalgebra::SMatrix;

/// One weight of a layer, readable as a `T` (a fixed-size matrix, or `[f32]`).
pub struct Param<T: ?Sized + 'static>(Storage<T>);

enum Storage<T: ?Sized + 'static> {
    #[cfg(feature = "alloc")]
    Heap(Box<T>),
    Baked(&'static T),
}

impl<T: ?Sized + 'static> Param<T> {
    /// A weight that stays where it is, in static (read-only) memory.
    pub const fn baked(values: &'static T) -> Param<T> {
        Param(Storage::Baked(values))
    }

    /// Whether the values still live in the binary's read-only data.
    pub fn is_baked(&self) -> bool {
        matches!(self.0, Storage::Baked(_))
    }
}

#[cfg(feature = "alloc")]
impl<T: ?Sized + Values + 'static> Param<T> {
    /// A weight owned on the heap.
    pub fn heap(values: Box<T>) -> Param<T> {
        Param(Storage::Heap(values))
    }

    /// The values, writable: a baked weight is first copied to the heap, so writing never
    /// touches read-only memory.
    pub fn make_mut(&mut self) -> &mut T {
        if let Storage::Baked(values) = self.0 {
            self.0 = Storage::Heap(values.boxed_copy());
        }
        match &mut self.0 {
            Storage::Heap(values) => values,
            Storage::Baked(_) => unreachable!("copied to the heap above"),
        }
    }
}

impl<T: ?Sized + 'static> Deref for Param<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        match &self.0 {
            #[cfg(feature = "alloc")]
            Storage::Heap(values) => values,
            Storage::Baked(values) => values,
        }
    }
}

impl<T: ?Sized + Values + 'static> Clone for Param<T> {
    fn clone(&self) -> Self {
        match &self.0 {
            #[cfg(feature = "alloc")]
            Storage::Heap(values) => Param(Storage::Heap(values.boxed_copy())),
            Storage::Baked(values) => Param(Storage::Baked(values)),
        }
    }
}

impl<T: ?Sized + Values + 'static> fmt::Debug for Param<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_baked() { "baked" } else { "heap" };
        write!(f, "Param({kind}, {} values)", self.as_values().len())
    }
}

/// What a [`Param`] can hold: `f32` values in one contiguous block.
pub trait Values {
    /// The values, in storage order.
    fn as_values(&self) -> &[f32];
    /// A heap copy that never passes through the stack (large matrices overflow it).
    #[cfg(feature = "alloc")]
    fn boxed_copy(&self) -> Box<Self>;
}

impl<const R: usize, const C: usize> Values for SMatrix<f32, R, C> {
    fn as_values(&self) -> &[f32] {
        self.as_slice()
    }
    #[cfg(feature = "alloc")]
    fn boxed_copy(&self) -> Box<Self> {
        let mut copy = crate::heap::zeroed::<Self>();
        copy.copy_from(self);
        copy
    }
}

impl Values for [f32] {
    fn as_values(&self) -> &[f32] {
        self
    }
    #[cfg(feature = "alloc")]
    fn boxed_copy(&self) -> Box<Self> {
        Box::from(self)
    }
}

/// A weight file's bytes, included in the binary and aligned for `f32` reads
/// (`static FILE: BakedBytes<N> = BakedBytes(*include_bytes!("..."));`).
#[repr(C, align(64))]
pub struct BakedBytes<const N: usize>(pub [u8; N]);

impl<const N: usize> BakedBytes<N> {
    /// `len` little-endian `f32`s starting `offset` bytes into the file. Checked during
    /// constant evaluation: a misaligned or out-of-range request, or a big-endian target,
    /// fails the build instead of reading wrong values.
    pub const fn f32s(&'static self, offset: usize, len: usize) -> &'static [f32] {
        #[cfg(target_endian = "big")]
        panic!("baked weights are little-endian f32; this target is big-endian");
        assert!(
            offset.is_multiple_of(4),
            "baked tensor is not 4-byte aligned"
        );
        assert!(
            offset <= N && len <= (N - offset) / 4,
            "baked tensor lies outside the file"
        );
        // SAFETY: the bytes are `'static` and immutable; `self` is 64-byte aligned and
        // `offset` a multiple of 4, so the pointer is aligned for `f32`; the range lies
        // within the array (checked above); every bit pattern is a valid `f32`.
        unsafe { core::slice::from_raw_parts(self.0.as_ptr().add(offset).cast::<f32>(), len) }
    }
}

/// The `R x C` column-major matrix whose storage is `values` (exactly `R * C` of them,
/// checked during constant evaluation).
pub const fn matrix<const R: usize, const C: usize>(
    values: &'static [f32],
) -> &'static SMatrix<f32, R, C> {
    assert!(values.len() == R * C, "baked tensor has the wrong length");
    // SAFETY: `SMatrix<f32, R, C>` is `repr(C)` over `[[f32; R]; C]`: `R * C` contiguous
    // `f32`s with the alignment of `f32`, which `values` has (checked length, same
    // alignment), and it is immutable and `'static`.
    unsafe { &*values.as_ptr().cast::<SMatrix<f32, R, C>>() }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FILE: BakedBytes<16> = BakedBytes([
        0, 0, 128, 63, // 1.0
        0, 0, 0, 64, // 2.0
        0, 0, 64, 64, // 3.0
        0, 0, 128, 64, // 4.0
    ]);
    const VALUES: &[f32] = FILE.f32s(4, 3);
    static MATRIX: &SMatrix<f32, 2, 2> = matrix::<2, 2>(FILE.f32s(0, 4));

    #[test]
    fn baked_bytes_read_as_little_endian_f32() {
        assert_eq!(VALUES, &[2.0, 3.0, 4.0]);
        assert_eq!(MATRIX[(1, 0)], 2.0, "column-major storage");
        assert_eq!(MATRIX[(0, 1)], 3.0);
    }

    #[test]
    fn writing_a_baked_weight_copies_it() {
        let mut p: Param<[f32]> = Param::baked(VALUES);
        assert!(p.is_baked());
        p.make_mut()[0] = 9.0;
        assert!(!p.is_baked());
        assert_eq!(&*p, &[9.0, 3.0, 4.0]);
        assert_eq!(VALUES, &[2.0, 3.0, 4.0], "the static data is untouched");
        let mut m: Param<SMatrix<f32, 2, 2>> = Param::baked(MATRIX);
        m.make_mut()[(0, 0)] = -1.0;
        assert_eq!(m.as_slice(), &[-1.0, 2.0, 3.0, 4.0]);
    }
}
