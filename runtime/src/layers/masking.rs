//! Keras's `Masking`: [`masking`] / [`masking_into`] / [`masking_pooled`] compute the mask of a
//! tensor and zero the masked positions; [`mask_gradient`] is the backward pass.
//!
//! A position is a run of `features` consecutive values (one index of all axes but the last,
//! a column of kiln's tensor matrix). It is kept when any of its values differs from
//! `mask_value` (`!=`, so NaN keeps a position), as Keras 3's
//! `any(not_equal(x, mask_value), axis = -1)`.

#[cfg(feature = "alloc")]
use crate::pool::Pool;
#[cfg(feature = "alloc")]
use alloc::vec;
#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// Masks `values` in place and writes one `bool` per position into `mask` (`true` = kept);
/// masked positions become 0 (Keras's `where(mask, x, 0)`).
///
/// `mask` must have `values.len() / features` entries.
///
/// ```
/// use kiln_runtime::layers::masking::masking_into;
/// let mut x = [1.0, 0.0, 0.0, 0.0, -0.0, 2.0];
/// let mut mask = [false; 3];
/// masking_into(&mut x, 2, 0.0, &mut mask);
/// assert_eq!(mask, [true, false, true]);
/// assert_eq!(x, [1.0, 0.0, 0.0, 0.0, -0.0, 2.0]);
/// ```
pub fn masking_into(values: &mut [f32], features: usize, mask_value: f32, mask: &mut [bool]) {
    for (position, keep) in values.chunks_exact_mut(features.max(1)).zip(mask) {
        *keep = position.iter().any(|&v| v != mask_value);
        if !*keep {
            position.fill(0.0);
        }
    }
}

#[cfg(feature = "alloc")]
/// [`masking_into`] for a batch: returns the mask of every position of every sample.
pub fn masking(values: &mut [f32], features: usize, mask_value: f32) -> Vec<bool> {
    let mut mask = vec![false; values.len() / features.max(1)];
    masking_into(values, features, mask_value, &mut mask);
    mask
}

#[cfg(feature = "alloc")]
/// [`masking`] with the mask in storage from `pool`: the training step returns it with
/// [`Pool::give_mask`] when it ends, so steady training allocates no masks.
pub fn masking_pooled(
    pool: &mut Pool,
    values: &mut [f32],
    features: usize,
    mask_value: f32,
) -> Vec<bool> {
    let mut mask = pool.take_mask(values.len() / features.max(1));
    masking_into(values, features, mask_value, &mut mask);
    mask
}

/// The backward pass of `Masking`: masked positions pass no gradient (`where`'s derivative).
pub fn mask_gradient(dy: &mut [f32], features: usize, mask: &[bool]) {
    for (position, keep) in dy.chunks_exact_mut(features.max(1)).zip(mask) {
        if !keep {
            position.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_positions_whose_features_all_equal_the_value() {
        let mut x = [0.5, 0.5, 0.5, 1.0, 0.5, f32::NAN, 0.5, 0.5];
        let mask = masking(&mut x, 2, 0.5);
        assert_eq!(mask, [false, true, true, false]);
        assert_eq!(x[..4], [0.0, 0.0, 0.5, 1.0]);
        assert!(
            x[5].is_nan(),
            "NaN differs from every value, so it keeps its position"
        );
        assert_eq!(x[6..], [0.0, 0.0]);
        let mut dy = [1.0; 8];
        mask_gradient(&mut dy, 2, &mask);
        assert_eq!(dy, [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn pooled_mask_matches_and_is_recycled() {
        let mut pool = Pool::default();
        let mut x = [0.5, 0.5, 0.5, 1.0, 0.5, 0.5];
        let mask = masking_pooled(&mut pool, &mut x, 2, 0.5);
        assert_eq!(mask, [false, true, false]);
        assert_eq!(x, [0.0, 0.0, 0.5, 1.0, 0.0, 0.0]);
        let ptr = mask.as_ptr();
        pool.give_mask(mask);
        let mut x = [1.0, 0.5, 0.5, 0.5, 0.5, 2.0];
        let again = masking_pooled(&mut pool, &mut x, 2, 0.5);
        assert_eq!(
            (again.as_slice(), again.as_ptr()),
            (&[true, false, true][..], ptr)
        );
    }
}
