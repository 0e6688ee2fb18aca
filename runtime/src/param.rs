//! [`Param`]: where a layer keeps one weight — on the heap (`Model::new`, loaded files,
//! training) or in the binary's read-only data (`pretrained()` of a model declared with
//! `#[weights = "..."]`). Layers read both the same way; writing a baked weight copies it to
//! the heap first (needs the `alloc` feature).
//!
//! Heap weights sit at a 64-byte (cache-line) boundary ([`Aligned`]): a kernel's 512-bit loads
//! of a row then never split a cache line, which otherwise costs up to 45 % of a recurrent
//! step's product (BENCHMARKS.md, "Streaming RNN step"), depending on where the allocator
//! happened to put the weight.
//!
//! [`BakedBytes`] holds a weight file included at compile time and hands out its tensors as
//! `&'static [f32]`, checked in `const` evaluation, so a baked model is built by a `const fn`.

#[cfg(feature = "alloc")]
use core::alloc::Layout;
use core::fmt;
use core::ops::Deref;
#[cfg(feature = "alloc")]
use core::ops::DerefMut;
#[cfg(feature = "alloc")]
use core::ptr::NonNull;
use nalgebra::SMatrix;

/// One weight of a layer, readable as a `T` (a fixed-size matrix, or `[f32]`).
pub struct Param<T: ?Sized + 'static>(Storage<T>);

enum Storage<T: ?Sized + 'static> {
    #[cfg(feature = "alloc")]
    Heap(Aligned<T>),
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
    /// A weight owned on the heap: a copy of `values` at a 64-byte boundary.
    pub fn heap(values: &T) -> Param<T> {
        Param(Storage::Heap(values.aligned_copy()))
    }

    /// The values, writable: a baked weight is first copied to the heap, so writing never
    /// touches read-only memory.
    pub fn make_mut(&mut self) -> &mut T {
        if let Storage::Baked(values) = self.0 {
            self.0 = Storage::Heap(values.aligned_copy());
        }
        match &mut self.0 {
            Storage::Heap(values) => values,
            Storage::Baked(_) => unreachable!("copied to the heap above"),
        }
    }
}

#[cfg(feature = "alloc")]
impl<const R: usize, const C: usize> Param<SMatrix<f32, R, C>> {
    /// A heap matrix of zeros at a 64-byte boundary, allocated zeroed in place (never on
    /// the stack, and without a second copy of a large layer's weights).
    pub fn zeroed() -> Self {
        let layout = Aligned::<SMatrix<f32, R, C>>::layout(R * C);
        let ptr = if layout.size() == 0 {
            Aligned::<SMatrix<f32, R, C>>::allocate(0)
        } else {
            // SAFETY: the layout's size is not 0.
            let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) }.cast::<f32>();
            NonNull::new(ptr).unwrap_or_else(|| alloc::alloc::handle_alloc_error(layout))
        };
        // SAFETY: room for `R * C` `f32`s, all zero bits (0.0), at a 64-byte boundary:
        // `SMatrix`'s layout (`repr(C)` over `[[f32; R]; C]`), initialised.
        let ptr = unsafe { NonNull::new_unchecked(ptr.as_ptr().cast::<SMatrix<f32, R, C>>()) };
        Param(Storage::Heap(Aligned { ptr, layout }))
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
            Storage::Heap(values) => Param(Storage::Heap(values.aligned_copy())),
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
    /// A 64-byte-aligned heap copy, never passing through the stack (large matrices
    /// overflow it).
    #[cfg(feature = "alloc")]
    fn aligned_copy(&self) -> Aligned<Self>;
}

impl<const R: usize, const C: usize> Values for SMatrix<f32, R, C> {
    fn as_values(&self) -> &[f32] {
        self.as_slice()
    }
    #[cfg(feature = "alloc")]
    fn aligned_copy(&self) -> Aligned<Self> {
        let ptr = Aligned::<Self>::allocate(R * C).cast::<Self>();
        // SAFETY: `allocate` returned room for `R * C` `f32`s at a 64-byte boundary (or a
        // dangling aligned pointer when that is 0), which is `Self`'s layout (`repr(C)` over
        // `[[f32; R]; C]`); the copy initialises every value before the pointer is used as
        // a `Self`.
        unsafe {
            core::ptr::copy_nonoverlapping(self.as_slice().as_ptr(), ptr.as_ptr().cast(), R * C);
            Aligned {
                ptr: NonNull::new_unchecked(ptr.as_ptr()),
                layout: Aligned::<Self>::layout(R * C),
            }
        }
    }
}

impl Values for [f32] {
    fn as_values(&self) -> &[f32] {
        self
    }
    #[cfg(feature = "alloc")]
    fn aligned_copy(&self) -> Aligned<Self> {
        let ptr = Aligned::<Self>::allocate(self.len());
        // SAFETY: as for matrices: room for `self.len()` `f32`s, all written before use.
        unsafe {
            core::ptr::copy_nonoverlapping(self.as_ptr(), ptr.as_ptr(), self.len());
            let slice = core::ptr::slice_from_raw_parts_mut(ptr.as_ptr(), self.len());
            Aligned {
                ptr: NonNull::new_unchecked(slice),
                layout: Aligned::<Self>::layout(self.len()),
            }
        }
    }
}

/// Where heap weights start: one cache line, the width of a 512-bit load.
#[cfg(feature = "alloc")]
pub const WEIGHT_ALIGN: usize = 64;

/// A heap-owned `T` (`f32` values) starting at a [`WEIGHT_ALIGN`]-byte boundary; what
/// `Box<T>` would be with that alignment.
#[cfg(feature = "alloc")]
pub struct Aligned<T: ?Sized> {
    ptr: NonNull<T>,
    /// What `ptr` was allocated with (size 0: nothing allocated).
    layout: Layout,
}

// SAFETY: `Aligned<T>` owns its `T` as a `Box<T>` does, and `T` holds only `f32`s.
#[cfg(feature = "alloc")]
unsafe impl<T: ?Sized + Send> Send for Aligned<T> {}
// SAFETY: as above; shared access only reads.
#[cfg(feature = "alloc")]
unsafe impl<T: ?Sized + Sync> Sync for Aligned<T> {}

#[cfg(feature = "alloc")]
impl<T: ?Sized> Aligned<T> {
    /// The layout of `n` `f32`s at a [`WEIGHT_ALIGN`] boundary.
    fn layout(n: usize) -> Layout {
        match Layout::array::<f32>(n).and_then(|l| l.align_to(WEIGHT_ALIGN)) {
            Ok(layout) => layout,
            // More bytes than `isize::MAX`: no value of `T` can be that large either.
            Err(_) => panic!("weight of {n} values exceeds the address space"),
        }
    }

    /// Uninitialised room for `n` `f32`s at a [`WEIGHT_ALIGN`] boundary (a dangling,
    /// aligned pointer when `n` is 0).
    fn allocate(n: usize) -> NonNull<f32> {
        let layout = Self::layout(n);
        if layout.size() == 0 {
            // SAFETY: `WEIGHT_ALIGN` is not 0; the pointer is never read through (no values).
            return unsafe { NonNull::new_unchecked(WEIGHT_ALIGN as *mut f32) };
        }
        // SAFETY: the layout's size is not 0.
        let ptr = unsafe { alloc::alloc::alloc(layout) }.cast::<f32>();
        NonNull::new(ptr).unwrap_or_else(|| alloc::alloc::handle_alloc_error(layout))
    }
}

#[cfg(feature = "alloc")]
impl<T: ?Sized> Deref for Aligned<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: the pointer is to an initialised `T` this value owns (`aligned_copy`).
        unsafe { self.ptr.as_ref() }
    }
}

#[cfg(feature = "alloc")]
impl<T: ?Sized> DerefMut for Aligned<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

#[cfg(feature = "alloc")]
impl<T: ?Sized> Drop for Aligned<T> {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: allocated by `allocate` with this layout; `f32`s need no drop.
            unsafe { alloc::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) }
        }
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

    #[test]
    fn heap_weights_start_at_a_cache_line() {
        let aligned = |p: *const f32| (p as usize).is_multiple_of(WEIGHT_ALIGN);
        for n in [0, 1, 3, 17, 1000] {
            let values: Vec<f32> = (0..n).map(|v| v as f32).collect();
            let p: Param<[f32]> = Param::heap(&values[..]);
            assert!(aligned(p.as_ptr()), "{n} values");
            assert_eq!(p.len(), n);
            assert!(p.iter().enumerate().all(|(i, &v)| v == i as f32));
            let copy = p.clone();
            assert!(aligned(copy.as_ptr()));
            assert_eq!(&*copy, &*p);
        }
        let z: Param<SMatrix<f32, 4, 9>> = Param::zeroed();
        assert!(aligned(z.as_ptr()) && z.as_slice().iter().all(|&v| v == 0.0));
        let mut m: Param<SMatrix<f32, 3, 5>> = Param::baked(matrix::<3, 5>(&[1.5; 15]));
        m.make_mut()[(2, 4)] = 0.0;
        assert!(aligned(m.as_ptr()), "a baked weight written lands aligned");
        assert_eq!(m.as_slice()[14], 0.0);
        assert_eq!(m.as_slice()[13], 1.5);
    }
}
