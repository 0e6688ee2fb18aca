//! Keras's `Permute(dims)`: [`permute`] reorders the axes of every sample; [`permute_into`]
//! is the same on raw row-major slices; [`permute_backward`] carries a gradient back through
//! the permutation. The batch axis never moves.
//!
//! Unlike `Reshape`, a permutation moves values in memory, so it needs a kernel: output
//! position `(o1, ..., on)` reads input position `i` with `i[dims[k]] = o[k]`.

use crate::tensor::Tensor;

/// The largest per-sample rank kiln supports (the macro rejects more).
const MAX_RANK: usize = 4;

/// Keras `Permute` on one sample or a batch.
///
/// `shape` is the per-sample input shape and `dims` the permutation, **0-based** (the macro
/// turns Keras's 1-based `dims` into these): output axis `k` is input axis `dims[k]`.
///
/// # Shapes
/// `(d1, ..., dn)` -> `(d[dims[0]], ..., d[dims[n-1]])`; `R` is the output's last axis and `C`
/// the product of its other axes, both checked at compile time by `model!`.
///
/// # Example
/// ```
/// use kiln_runtime::{layers::permute::permute, Sample, Tensor};
/// // Keras shape (2, 3): [[1, 2, 3], [4, 5, 6]] -> (3, 2): [[1, 4], [2, 5], [3, 6]].
/// let x = Sample::<3, 2>::from_values(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// let y: Sample<2, 3> = permute::<_, 2, 3>(&x, &[2, 3], &[1, 0]);
/// assert_eq!(y.values(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// ```
pub fn permute<T: Tensor, const R: usize, const C: usize>(
    x: &T,
    shape: &[usize],
    dims: &[usize],
) -> T::Shaped<R, C> {
    let per_sample = R * C;
    let samples = x.values().len() / per_sample.max(1);
    let mut y = T::zeros_shaped::<R, C>(samples);
    permute_into(x.values(), shape, dims, y.values_mut());
    y
}

/// The backward pass of [`permute`]: the gradient `dy` with respect to the output, moved
/// back to the input's layout by the inverse permutation.
///
/// `shape` and `dims` are the forward call's (the per-sample **input** shape and the 0-based
/// permutation); `R` and `C` are the input's last axis and the product of its other axes.
///
/// # Example
/// ```
/// use kiln_runtime::{layers::permute::permute_backward, Sample, Tensor};
/// // Forward (2, 3) -> (3, 2) was a transpose; so is its backward pass.
/// let dy = Sample::<2, 3>::from_values(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// let dx: Sample<3, 2> = permute_backward::<_, 3, 2>(&dy, &[2, 3], &[1, 0]);
/// assert_eq!(dx.values(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// ```
///
/// # Panics
/// As [`permute_into`].
pub fn permute_backward<T: Tensor, const R: usize, const C: usize>(
    dy: &T,
    shape: &[usize],
    dims: &[usize],
) -> T::Shaped<R, C> {
    let rank = shape.len();
    assert!(
        rank <= MAX_RANK && dims.len() == rank,
        "Permute: dims must match the rank (at most 4)"
    );
    // Output axis k is input axis dims[k], so input axis dims[k] is output axis k.
    let mut out_shape = [0usize; MAX_RANK];
    let mut inverse = [0usize; MAX_RANK];
    for (k, &axis) in dims.iter().enumerate() {
        out_shape[k] = shape[axis];
        inverse[axis] = k;
    }
    let per_sample = R * C;
    let samples = dy.values().len() / per_sample.max(1);
    let mut dx = T::zeros_shaped::<R, C>(samples);
    permute_into(
        dy.values(),
        &out_shape[..rank],
        &inverse[..rank],
        dx.values_mut(),
    );
    dx
}

/// [`permute`] on row-major slices holding whole samples of `shape`: writes `output`, which
/// has the same length as `input`.
///
/// # Panics
/// If `dims` is not a permutation of `0..shape.len()`, the rank exceeds 4, or the slices do
/// not hold whole samples of the same count. Generated code never breaks these rules.
pub fn permute_into(input: &[f32], shape: &[usize], dims: &[usize], output: &mut [f32]) {
    let rank = shape.len();
    assert!(
        rank <= MAX_RANK && dims.len() == rank,
        "Permute: dims must match the rank (at most 4)"
    );
    assert!(
        (0..rank).all(|axis| dims.contains(&axis)),
        "Permute: dims must be a permutation of 0..rank"
    );
    assert_eq!(
        input.len(),
        output.len(),
        "Permute: input and output lengths differ"
    );
    let per_sample: usize = shape.iter().product();
    if per_sample == 0 {
        return;
    }
    assert_eq!(
        input.len() % per_sample,
        0,
        "Permute: input does not hold whole samples"
    );

    // Row-major strides of the input; walking the output in its own row-major order, output
    // axis k advances the input offset by the stride of input axis dims[k].
    let mut in_stride = [0usize; MAX_RANK];
    let mut stride = 1;
    for axis in (0..rank).rev() {
        in_stride[axis] = stride;
        stride *= shape[axis];
    }
    let mut out_dim = [1usize; MAX_RANK];
    let mut step = [0usize; MAX_RANK];
    for (k, &axis) in dims.iter().enumerate() {
        out_dim[k] = shape[axis];
        step[k] = in_stride[axis];
    }

    for (x, y) in input
        .chunks_exact(per_sample)
        .zip(output.chunks_exact_mut(per_sample))
    {
        let mut index = [0usize; MAX_RANK];
        let mut offset = 0;
        for value in y.iter_mut() {
            *value = x[offset];
            // Odometer over the output index, last axis fastest.
            for k in (0..rank).rev() {
                index[k] += 1;
                offset += step[k];
                if index[k] < out_dim[k] {
                    break;
                }
                offset -= step[k] * out_dim[k];
                index[k] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Batch, Sample};

    #[test]
    fn transposes_a_matrix_per_sample() {
        // Two samples of shape (2, 3); each becomes its transpose (3, 2).
        let x = Batch::<3>::from_values(&[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]);
        let y = permute::<_, 2, 3>(&x, &[2, 3], &[1, 0]);
        assert_eq!(
            y.values(),
            &[1., 4., 2., 5., 3., 6., 7., 10., 8., 11., 9., 12.]
        );
    }

    #[test]
    fn rank3_moves_the_last_axis_first() {
        // x[a][b][c] = 100a + 10b + c on shape (2, 3, 4); Keras dims (3, 1, 2) -> (4, 2, 3).
        let shape = [2, 3, 4];
        let x: Vec<f32> = (0..24)
            .map(|i| (100 * (i / 12) + 10 * (i / 4 % 3) + i % 4) as f32)
            .collect();
        let x = Sample::<4, 6>::from_values(&x);
        let y = permute::<_, 3, 8>(&x, &shape, &[2, 0, 1]);
        for c in 0..4 {
            for a in 0..2 {
                for b in 0..3 {
                    let got = y.values()[c * 6 + a * 3 + b];
                    assert_eq!(got, (100 * a + 10 * b + c) as f32, "y[{c}][{a}][{b}]");
                }
            }
        }
    }

    #[test]
    fn backward_undoes_the_forward_permutation() {
        // A permutation is linear and orthogonal: its vector-Jacobian product is the inverse
        // permutation, so backward(forward(x)) == x for every rank-3 and rank-4 order.
        let x: Vec<f32> = (0..48).map(|i| i as f32).collect();
        let x = Batch::<4>::from_values(&x);
        for dims in [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            let shape = [2, 3, 4];
            let out: Vec<usize> = dims.iter().map(|&a| shape[a]).collect();
            let mut y = vec![0.0; 48];
            permute_into(x.values(), &shape, &dims, &mut y);
            let y = Batch::<1>::from_values(&y);
            let back = permute_backward::<_, 4, 6>(&y, &shape, &dims);
            assert_eq!(back.values(), x.values(), "dims {dims:?}, output {out:?}");
        }
        let x: Vec<f32> = (0..240).map(|i| i as f32).collect();
        let mut y = vec![0.0; 240];
        permute_into(&x, &[2, 3, 4, 5], &[3, 1, 2, 0], &mut y);
        let back = permute_backward::<_, 5, 24>(
            &Batch::<1>::from_values(&y),
            &[2, 3, 4, 5],
            &[3, 1, 2, 0],
        );
        assert_eq!(back.values(), &x[..]);
    }

    #[test]
    fn backward_routes_each_gradient_to_its_source() {
        // Sum of dy * y over the output equals sum of dx * x over the input (the adjoint
        // identity), here with one-hot dy picking out single output positions.
        let shape = [2, 3, 4];
        let dims = [2, 0, 1];
        let x: Vec<f32> = (0..24).map(|i| (i * 7 % 11) as f32).collect();
        let y = permute::<_, 3, 8>(&Sample::<4, 6>::from_values(&x), &shape, &dims);
        for j in 0..24 {
            let mut dy = [0.0f32; 24];
            dy[j] = 1.0;
            let dx = permute_backward::<_, 4, 6>(&Sample::<3, 8>::from_values(&dy), &shape, &dims);
            let picked: f32 = dx.values().iter().zip(&x).map(|(d, v)| d * v).sum();
            assert_eq!(picked, y.values()[j], "output position {j}");
            assert_eq!(dx.values().iter().sum::<f32>(), 1.0);
        }
    }

    #[test]
    fn identity_keeps_everything_in_place() {
        let x: Vec<f32> = (0..120).map(|i| i as f32).collect();
        let mut y = vec![0.0; 120];
        permute_into(&x, &[2, 3, 4, 5], &[0, 1, 2, 3], &mut y);
        assert_eq!(x, y);
    }
}
