//! Keras's `Softmax` layer: [`softmax_along`] normalises along any axis of a row-major
//! tensor, skipping masked positions; [`softmax_along_backward`] is its vector-Jacobian
//! product.

use crate::math;

/// What Keras's `Softmax` puts in place of a masked input (`_large_negative_number` for
/// float32) before taking the softmax.
const MASKED: f32 = -1e9;

/// Softmax of `values` along `axis`, in place, as Keras's `Softmax(axis)` layer computes it.
///
/// `values` holds whole samples, each row-major in the per-sample shape `shape` (one sample
/// or a batch alike); `axis` counts from 0 within `shape` (Keras's `axis - 1`). Each line
/// along `axis` becomes `exp(x - max) / sum(exp(x - max))`; a line along a non-last axis is
/// strided in memory, every `shape[axis + 1..]` product values.
///
/// `mask`, when given, has one `bool` per position, i.e. per index of all axes but the last
/// (across every sample of a batch); `false` drops the position's values: they become 0,
/// and a line with every value dropped is all zeros. This is Keras's
/// `Softmax()(x, mask = mask[..., None])`, computed as Keras does: dropped inputs count as
/// -1e9 (whose exponential is 0 beside any kept value above about -1e9 + 88)
/// and dropped outputs are set to 0 afterwards, so they stay 0 where a kept NaN or +inf
/// makes the line's sum NaN, and a line whose kept values are all -inf is all zeros.
pub fn softmax_along(values: &mut [f32], shape: &[usize], axis: usize, mask: Option<&[bool]>) {
    let len = shape.get(axis).copied().unwrap_or(1);
    let inner: usize = shape.get(axis + 1..).map_or(1, |s| s.iter().product());
    let last = shape.last().copied().unwrap_or(1);
    let block = len * inner;
    if block == 0 || last == 0 {
        return;
    }
    for (b, lines) in values.chunks_exact_mut(block).enumerate() {
        let base = b * block;
        for i in 0..inner {
            // Element `a` of this line sits at `lines[i + a * inner]`.
            let keep = |a: usize| mask.is_none_or(|m| m[(base + i + a * inner) / last]);
            let mut max = f32::NEG_INFINITY;
            let mut any = false;
            for a in 0..len {
                let kept = keep(a);
                max = max.max(if kept { lines[i + a * inner] } else { MASKED });
                any |= kept;
            }
            if !any {
                for a in 0..len {
                    lines[i + a * inner] = 0.0;
                }
                continue;
            }
            let mut sum = 0.0;
            for a in 0..len {
                let v = &mut lines[i + a * inner];
                *v = math::exp(if keep(a) { *v } else { MASKED } - max);
                sum += *v;
            }
            // Divide rather than multiply by the reciprocal: it is what JAX does, so results
            // agree to the last bit more often. Dropped outputs are 0 whatever the sum.
            for a in 0..len {
                let v = &mut lines[i + a * inner];
                *v = if keep(a) { *v / sum } else { 0.0 };
            }
        }
    }
}

/// The backward pass of [`softmax_along`]: turns `dy` (the gradient with respect to the
/// output `y`) in place into the gradient with respect to the input, line by line along
/// `axis`: `dx = y * (dy - sum(dy * y))`.
///
/// `y`, `shape`, `axis` and `mask` are as in [`softmax_along`] (`y` being its result).
/// Masked positions get a zero gradient: their outputs are constant 0, and they took no part
/// in the normalisation, so they neither receive nor pass on any gradient.
///
/// # Example
/// ```
/// use kiln_runtime::layers::softmax::softmax_along_backward;
/// // A uniform softmax over 2 values: dx = 0.5 * (dy - mean(dy)).
/// let y = [0.5, 0.5];
/// let mut dy = [1.0, 3.0];
/// softmax_along_backward(&y, &mut dy, &[2], 0, None);
/// assert_eq!(dy, [-0.5, 0.5]);
/// ```
pub fn softmax_along_backward(
    y: &[f32],
    dy: &mut [f32],
    shape: &[usize],
    axis: usize,
    mask: Option<&[bool]>,
) {
    let len = shape.get(axis).copied().unwrap_or(1);
    let inner: usize = shape.get(axis + 1..).map_or(1, |s| s.iter().product());
    let last = shape.last().copied().unwrap_or(1);
    let block = len * inner;
    if block == 0 || last == 0 {
        return;
    }
    for (b, (ys, ds)) in y
        .chunks_exact(block)
        .zip(dy.chunks_exact_mut(block))
        .enumerate()
    {
        let base = b * block;
        for i in 0..inner {
            let keep = |a: usize| mask.is_none_or(|m| m[(base + i + a * inner) / last]);
            let mut dot = 0.0;
            for a in 0..len {
                if keep(a) {
                    dot += ys[i + a * inner] * ds[i + a * inner];
                }
            }
            for a in 0..len {
                let k = i + a * inner;
                ds[k] = if keep(a) { ys[k] * (ds[k] - dot) } else { 0.0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activations::softmax_in_place;

    const X: [f32; 12] = [
        0.3, -1.2, 2.5, 0.0, 1.0, 1.0, -3.0, 4.0, 0.5, 2.0, -0.7, 0.1,
    ];

    /// `sum(w * softmax_along(x))`, the scalar whose gradient `softmax_along_backward`
    /// computes for `dy = w`, in f64 through f32 outputs.
    fn weighted(x: &[f32], w: &[f32], shape: &[usize], axis: usize, mask: Option<&[bool]>) -> f64 {
        let mut y = x.to_vec();
        softmax_along(&mut y, shape, axis, mask);
        y.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum()
    }

    #[test]
    fn backward_matches_finite_differences_on_every_axis() {
        let w: Vec<f32> = (0..24).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.4).collect();
        let x: Vec<f32> = (0..24)
            .map(|i| ((i * 3 % 13) as f32 - 6.0) * 0.25)
            .collect();
        // Two samples of shape (3, 4), and one of (2, 3, 4).
        let mask = [true, false, true, true, true, false];
        for (shape, axis, mask) in [
            (&[3usize, 4][..], 0, None),
            (&[3, 4][..], 1, None),
            (&[3, 4][..], 0, Some(&mask[..])),
            (&[3, 4][..], 1, Some(&mask[..])),
            (&[2, 3, 4][..], 1, Some(&mask[..])),
            (&[2, 3, 4][..], 0, None),
        ] {
            let mut y = x.clone();
            softmax_along(&mut y, shape, axis, mask);
            let mut dx = w.clone();
            softmax_along_backward(&y, &mut dx, shape, axis, mask);
            let eps = 1e-2;
            for k in 0..x.len() {
                let (mut plus, mut minus) = (x.clone(), x.clone());
                plus[k] += eps;
                minus[k] -= eps;
                let numeric = (weighted(&plus, &w, shape, axis, mask)
                    - weighted(&minus, &w, shape, axis, mask))
                    / (2.0 * eps as f64);
                assert!(
                    (numeric - dx[k] as f64).abs() < 2e-3,
                    "shape {shape:?} axis {axis} mask {}: dx[{k}] {} vs {numeric}",
                    mask.is_some(),
                    dx[k]
                );
            }
            if let Some(mask) = mask {
                // Positions are rows of 4 values: masked ones have exactly zero gradient.
                for (p, keep) in mask.iter().enumerate() {
                    if !keep {
                        assert_eq!(&dx[p * 4..p * 4 + 4], &[0.0; 4]);
                    }
                }
            }
        }
    }

    #[test]
    fn last_axis_matches_the_activation() {
        let mut a = X;
        let mut b = X;
        softmax_along(&mut a, &[4, 3], 1, None);
        softmax_in_place(&mut b, 3);
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-7);
        }
    }

    #[test]
    fn lines_along_a_leading_axis_sum_to_one() {
        // Shape (4, 3), axis 0: three columns of four values each.
        let mut y = X;
        softmax_along(&mut y, &[4, 3], 0, None);
        for column in 0..3 {
            let sum: f32 = (0..4).map(|row| y[row * 3 + column]).sum();
            assert!((sum - 1.0).abs() < 1e-6, "column {column}: {sum}");
        }
        // A batch of two samples of shape (2, 3) normalises each sample apart.
        let mut y = X;
        softmax_along(&mut y, &[2, 3], 0, None);
        for start in [0, 6] {
            for column in 0..3 {
                let sum = y[start + column] + y[start + 3 + column];
                assert!((sum - 1.0).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn masked_positions_are_zero_and_excluded() {
        // Shape (4, 3), axis 0; position 1 (the second row) is masked.
        let mask = [true, false, true, true];
        let mut y = X;
        softmax_along(&mut y, &[4, 3], 0, Some(&mask));
        assert_eq!(&y[3..6], &[0.0; 3]);
        for column in 0..3 {
            let sum: f32 = [0, 2, 3].iter().map(|row| y[row * 3 + column]).sum();
            assert!((sum - 1.0).abs() < 1e-6);
        }
        // Along the last axis a masked position is a whole line: all zeros.
        let mut y = X;
        softmax_along(&mut y, &[4, 3], 1, Some(&mask));
        assert_eq!(&y[3..6], &[0.0; 3]);
        assert!((y[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn masked_positions_stay_zero_beside_non_finite_values() {
        // Shape (4, 1), axis 0, position 1 masked, as Keras (tests/non_finite.rs): a kept NaN
        // or +inf makes the kept outputs NaN, and kept values that are all -inf give zeros
        // (their exponentials are 0 beside the masked -1e9's 1, which is then zeroed).
        let mask = [true, false, true, true];
        for (x, kept) in [
            ([f32::NAN, 5.0, 1.0, 2.0], f32::NAN),
            ([f32::INFINITY, 5.0, 1.0, 2.0], f32::NAN),
            (
                [f32::NEG_INFINITY, 5.0, f32::NEG_INFINITY, f32::NEG_INFINITY],
                0.0,
            ),
        ] {
            let mut y = x;
            softmax_along(&mut y, &[4, 1], 0, Some(&mask));
            assert_eq!(y[1], 0.0, "{x:?}");
            for v in [y[0], y[2], y[3]] {
                assert!(
                    v.to_bits() == kept.to_bits() || v.is_nan() && kept.is_nan(),
                    "{x:?}: {y:?}"
                );
            }
        }
    }
}
