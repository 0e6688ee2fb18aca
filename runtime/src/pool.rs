//! [`Pool`]: batch-tensor storage recycled across training steps, so that a steady run of
//! steps of the same batch size allocates nothing once the first step has sized the buffers.

use crate::tensor::Batch;
use alloc::vec::Vec;
use nalgebra::{Const, Dyn, VecStorage};

/// Free buffers, handed out by [`Pool::take`] and returned by [`Pool::give`]; `Masking`'s
/// masks have their own free list ([`Pool::take_mask`], [`Pool::give_mask`]).
#[derive(Debug, Clone, Default)]
pub struct Pool {
    free: Vec<Vec<f32>>,
    masks: Vec<Vec<bool>>,
}

/// The index of the smallest buffer of `free` that holds `len` values, if any.
fn best_fit<T>(free: &[Vec<T>], len: usize) -> Option<usize> {
    free.iter()
        .enumerate()
        .filter(|(_, v)| v.capacity() >= len)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i)
}

impl Pool {
    /// Whether the pool never held a buffer (nothing to free when it is dropped).
    #[inline(always)]
    pub fn is_unused(&self) -> bool {
        self.free.capacity() == 0 && self.masks.capacity() == 0
    }

    /// A zeroed batch tensor with `R` rows and `cols` columns. Takes the smallest free buffer
    /// that holds it (best fit: steps that ask for the same sizes in the same order get the
    /// same buffers back), and allocates only when none does.
    pub fn take<const R: usize>(&mut self, cols: usize) -> Batch<R> {
        let values = self.take_vec(R * cols);
        Batch::<R>::from_data(VecStorage::new(Const::<R>, Dyn(cols), values))
    }

    /// Like [`Pool::take`], for a caller that overwrites every value (a GEMM with
    /// `beta = 0`, a copy): recycled storage keeps the values of its last use, which saves
    /// zeroing it.
    pub fn take_to_overwrite<const R: usize>(&mut self, cols: usize) -> Batch<R> {
        let values = self.recycled(R * cols);
        Batch::<R>::from_data(VecStorage::new(Const::<R>, Dyn(cols), values))
    }

    /// `len` values of recycled storage, left as they are (plus zeros where it was shorter),
    /// for a caller that overwrites them all.
    pub fn take_vec_to_overwrite(&mut self, len: usize) -> Vec<f32> {
        self.recycled(len)
    }

    fn recycled(&mut self, len: usize) -> Vec<f32> {
        let mut values = match best_fit(&self.free, len) {
            Some(i) => self.free.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        values.resize(len, 0.0);
        values
    }

    /// `len` zeros in recycled storage (best fit, as [`Pool::take`]).
    pub fn take_vec(&mut self, len: usize) -> Vec<f32> {
        let mut values = self.recycled(len);
        values.fill(0.0);
        values
    }

    /// Returns plain storage for later steps.
    pub fn give_vec(&mut self, values: Vec<f32>) {
        self.free.push(values);
    }

    /// `len` `false`s in recycled storage (best fit, as [`Pool::take`]): a batch mask.
    pub fn take_mask(&mut self, len: usize) -> Vec<bool> {
        let mut mask = match best_fit(&self.masks, len) {
            Some(i) => self.masks.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        mask.clear();
        mask.resize(len, false);
        mask
    }

    /// A pooled copy of `mask`.
    pub fn copy_of_mask(&mut self, mask: &[bool]) -> Vec<bool> {
        let mut copy = self.take_mask(mask.len());
        copy.copy_from_slice(mask);
        copy
    }

    /// Returns a mask's storage for later steps.
    pub fn give_mask(&mut self, mask: Vec<bool>) {
        self.masks.push(mask);
    }

    /// A pooled copy of `values` as a batch tensor with `R` rows.
    pub fn from_values<const R: usize>(&mut self, values: &[f32]) -> Batch<R> {
        let mut tensor = self.take_to_overwrite::<R>(values.len() / R.max(1));
        tensor.as_mut_slice().copy_from_slice(values);
        tensor
    }

    /// A pooled copy of `tensor`.
    pub fn copy_of<const R: usize>(&mut self, tensor: &Batch<R>) -> Batch<R> {
        self.from_values::<R>(tensor.as_slice())
    }

    /// Returns a tensor's storage for later steps.
    pub fn give<const R: usize>(&mut self, tensor: Batch<R>) {
        self.give_vec(tensor.data.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_in_later_steps() {
        let mut pool = Pool::default();
        let a = pool.take::<4>(8);
        let b = pool.take::<2>(3);
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        pool.give(a);
        pool.give(b);
        // Same requests, same buffers (best fit), and zeroed again.
        let a2 = pool.take::<4>(8);
        let b2 = pool.take::<2>(3);
        assert_eq!((a2.as_ptr(), b2.as_ptr()), (pa, pb));
        assert!(a2.iter().all(|v| *v == 0.0));
        let copy = pool.copy_of(&b2);
        assert_eq!(copy.as_slice(), b2.as_slice());
    }

    #[test]
    fn masks_come_back_cleared() {
        let mut pool = Pool::default();
        let mut mask = pool.take_mask(6);
        mask[2] = true;
        let copy = pool.copy_of_mask(&mask);
        assert_eq!(copy, [false, false, true, false, false, false]);
        let ptrs = [mask.as_ptr(), copy.as_ptr()];
        pool.give_mask(mask);
        pool.give_mask(copy);
        // Later requests (a smaller one too) get the same storage back, all `false` again.
        let (a, b) = (pool.take_mask(4), pool.take_mask(6));
        assert!(a.iter().chain(&b).all(|keep| !keep));
        assert!(ptrs.contains(&a.as_ptr()) && ptrs.contains(&b.as_ptr()));
    }
}
