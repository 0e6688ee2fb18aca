//! Keras's `SeparableConv2D`: a depthwise convolution then a 1 x 1 (pointwise) one, both
//! [`Conv`]s. [`SeparableConv::forward`] fuses them tile by tile on the stack (`predict`
//! keeps no intermediate tensor); training runs them one after the other
//! ([`SeparableConv::forward_through`]), keeping the depthwise output for
//! [`SeparableConv::backward`].

use super::conv::{Conv, Geometry, TILE};
use super::Weights;
use crate::gemm::{gemm, Strided};
#[cfg(feature = "alloc")]
use crate::initializers::Initializer;
#[cfg(feature = "alloc")]
use crate::pool::Pool;

/// A depthwise separable 2-D convolution (Keras's `SeparableConv2D`), without its
/// activation, which the generated code applies.
///
/// `m[o, c · dm + j] = Σ_tap x[o · stride + tap · dilation - pad, c] · depthwise[tap, c, j]`,
/// then `y[o, f] = bias[f] + Σ_i m[o, i] · pointwise[i, f]`: Keras's `separable_conv`
/// (a `depthwise_conv`, then a `conv` with a 1 x 1 kernel).
///
/// # Shapes
/// `(h, w, channels)` -> `(new_h, new_w, filters)`, or channels first `(channels, h, w)` ->
/// `(filters, new_h, new_w)`, sizes as `Conv2D`'s.
///
/// # Weights
/// - `depthwise_kernel`: `(kh, kw, channels, depth_multiplier)`, row-major;
/// - `pointwise_kernel`: `(1, 1, channels · depth_multiplier, filters)`;
/// - `bias`: `(filters,)`, when `use_bias`.
///
/// # Example
/// ```
/// use kiln_runtime::layers::conv::Geometry;
/// use kiln_runtime::layers::SeparableConv;
/// // Keras: SeparableConv2D(1, (1, 2)) on a 1 x 3 image of 2 channels.
/// let depthwise = Geometry {
///     rank: 2, input: [1, 3], channels: 2, output: [1, 2], filters: 2, kernel: [1, 2],
///     strides: [1, 1], dilation: [1, 1], padding: [0, 0], groups: 2, channels_first: false,
///     depthwise: true,
/// };
/// // Taps [1, 10] on channel 0 and [2, 0] on channel 1; then channel 0 + 3 · channel 1.
/// let (dw, pw) = (&[1.0, 2.0, 10.0, 0.0], &[1.0, 3.0]);
/// let layer = SeparableConv::baked(depthwise, 1, dw, pw, Some(&[0.5]));
/// let mut y = [0.0; 2];
/// layer.forward(&[1.0, 1.0, 2.0, 2.0, 3.0, 3.0], &mut y);
/// assert_eq!(y, [1.0 + 20.0 + 3.0 * 2.0 + 0.5, 2.0 + 30.0 + 3.0 * 4.0 + 0.5]);
/// ```
#[derive(Debug, Clone)]
pub struct SeparableConv {
    /// The depthwise convolution (`depthwise` geometry, no bias).
    pub depthwise: Conv,
    /// The 1 x 1 convolution over the depthwise output, with the layer's bias.
    pub pointwise: Conv,
}

/// The 1 x 1 convolution that follows `depthwise`, to `filters` channels.
const fn pointwise_geometry(depthwise: &Geometry, filters: usize) -> Geometry {
    Geometry {
        rank: depthwise.rank,
        input: depthwise.output,
        channels: depthwise.filters,
        output: depthwise.output,
        filters,
        kernel: [1, 1],
        strides: [1, 1],
        dilation: [1, 1],
        padding: [0, 0],
        groups: 1,
        channels_first: depthwise.channels_first,
        depthwise: false,
    }
}

impl SeparableConv {
    /// A layer initialised from `seed`: the depthwise kernel draws from stream
    /// `first_weight`, the pointwise kernel from the next and the bias from the one after
    /// (see [`crate::initializers::weight_rng`]), with fans from Keras's kernel shapes.
    #[cfg(feature = "alloc")]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        depthwise: Geometry,
        filters: usize,
        use_bias: bool,
        depthwise_initializer: Initializer,
        pointwise_initializer: Initializer,
        bias_initializer: Initializer,
        seed: u64,
        first_weight: usize,
    ) -> Self {
        debug_assert!(depthwise.depthwise);
        SeparableConv {
            depthwise: Conv::new(
                depthwise,
                false,
                depthwise_initializer,
                Initializer::Zeros,
                seed,
                first_weight,
            ),
            pointwise: Conv::new(
                pointwise_geometry(&depthwise, filters),
                use_bias,
                pointwise_initializer,
                bias_initializer,
                seed,
                first_weight + 1,
            ),
        }
    }

    /// A layer whose weights stay in static memory (a model's `pretrained()`).
    pub const fn baked(
        depthwise: Geometry,
        filters: usize,
        depthwise_kernel: &'static [f32],
        pointwise_kernel: &'static [f32],
        bias: Option<&'static [f32]>,
    ) -> Self {
        SeparableConv {
            depthwise: Conv::baked(depthwise, depthwise_kernel, None),
            pointwise: Conv::baked(
                pointwise_geometry(&depthwise, filters),
                pointwise_kernel,
                bias,
            ),
        }
    }

    /// The separable convolution plus bias of whole samples: `x` holds any number of input
    /// samples (row-major in the Keras input shape), `y` as many output samples, every value
    /// of which is overwritten. Allocates nothing: each output row is computed in pieces of
    /// at most 8 KiB of depthwise output, on the stack, each multiplied by the pointwise
    /// kernel straight into `y`.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let (dg, pg) = (self.depthwise.geometry(), self.pointwise.geometry());
        let (n_in, n_out) = (dg.input_len(), pg.output_len());
        if n_in == 0 || n_out == 0 {
            return;
        }
        debug_assert_eq!(x.len() / n_in, y.len() / n_out);
        let (middle, f) = (dg.filters, pg.filters);
        let ([oh, ow], channels_first) = (dg.output, dg.channels_first);
        let mut tile = [0.0f32; TILE];
        let cols = (TILE / middle).clamp(1, ow);
        let rows = (TILE / cols).min(middle);
        for (xs, ys) in x.chunks_exact(n_in).zip(y.chunks_exact_mut(n_out)) {
            for row in 0..oh {
                for o0 in (0..ow).step_by(cols) {
                    let (o1, n) = ((o0 + cols).min(ow), cols.min(ow - o0));
                    // The output piece, filters x columns, starts as the bias: column-major
                    // in place (channels last), or rows of the filters' planes.
                    let (out, layout) = if channels_first {
                        (&mut ys[row * ow + o0..], strided(f, n, oh * ow, 1))
                    } else {
                        (&mut ys[(row * ow + o0) * f..], strided(f, n, 1, f))
                    };
                    for k in 0..f {
                        let b = self.pointwise.bias.as_ref().map_or(0.0, |bias| bias[k]);
                        for j in 0..n {
                            out[k * layout.row_stride + j * layout.col_stride] = b;
                        }
                    }
                    for m0 in (0..middle).step_by(rows) {
                        let ml = rows.min(middle - m0);
                        let t = &mut tile[..ml * n];
                        // Laid out so the pointwise product runs on the outer-product kernel
                        // (row-major when the output is).
                        let steps = if channels_first { (n, 1) } else { (1, ml) };
                        self.depthwise
                            .tile(xs, row, (o0, o1), (m0, m0 + ml), t, steps);
                        gemm(
                            1.0,
                            &self.pointwise.kernel[m0 * f..],
                            strided(f, ml, 1, f),
                            t,
                            strided(ml, n, steps.0, steps.1),
                            1.0,
                            out,
                            layout,
                        );
                    }
                }
            }
        }
    }

    /// The forward pass of training: the depthwise output of whole samples into `middle`
    /// (kept for [`SeparableConv::backward`]), then the pointwise convolution plus bias into
    /// `y`.
    pub fn forward_through(&self, x: &[f32], middle: &mut [f32], y: &mut [f32]) {
        self.depthwise.forward(x, middle);
        self.pointwise.forward(middle, y);
    }
}

#[cfg(feature = "alloc")]
impl SeparableConv {
    /// The backward pass on whole samples: `x` is the forward input, `middle` the depthwise
    /// output [`SeparableConv::forward_through`] kept, `dz` the loss gradient with respect to
    /// the output (before the activation). Adds the weights' gradients (Keras's layouts) into
    /// `grads` (`[depthwise_kernel, pointwise_kernel]`) and, with a bias, into `grad_bias`;
    /// when `dx` is given, overwrites it with the gradient with respect to `x`. The
    /// gradient with respect to `middle` goes through a buffer of `pool`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: &[f32],
        middle: &[f32],
        dz: &[f32],
        dx: Option<&mut [f32]>,
        grads: [&mut [f32]; 2],
        grad_bias: Option<&mut [f32]>,
        pool: &mut Pool,
    ) {
        let [grad_depthwise, grad_pointwise] = grads;
        let mut d_middle = pool.take_vec_to_overwrite(middle.len());
        self.pointwise.backward(
            middle,
            dz,
            Some(&mut d_middle),
            grad_pointwise,
            grad_bias,
            pool,
        );
        self.depthwise
            .backward(x, &d_middle, dx, grad_depthwise, None, pool);
        pool.give_vec(d_middle);
    }
}

fn strided(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Strided {
    Strided {
        rows,
        cols,
        row_stride,
        col_stride,
    }
}

impl Weights for SeparableConv {
    fn weight(&self, index: usize) -> &[f32] {
        match (index, &self.pointwise.bias) {
            (0, _) => &self.depthwise.kernel,
            (1, _) => &self.pointwise.kernel,
            (_, Some(bias)) => bias,
            (_, None) => &[],
        }
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        match (index, &mut self.pointwise.bias) {
            (0, _) => self.depthwise.kernel.make_mut(),
            (1, _) => self.pointwise.kernel.make_mut(),
            (_, Some(bias)) => bias.make_mut(),
            (_, None) => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A small deterministic generator of values in [-1, 1).
    struct Values(u64);

    impl Values {
        fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len)
                .map(|_| {
                    self.0 = self
                        .0
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect()
        }
    }

    /// A depthwise geometry (`same` pads as JAX's `SAME`).
    #[allow(clippy::too_many_arguments)]
    fn geometry(
        input: [usize; 2],
        channels: usize,
        multiplier: usize,
        kernel: [usize; 2],
        strides: [usize; 2],
        dilation: [usize; 2],
        same: bool,
        channels_first: bool,
    ) -> Geometry {
        let mut output = [0; 2];
        let mut padding = [0; 2];
        for a in 0..2 {
            let e = (kernel[a] - 1) * dilation[a] + 1;
            if same {
                output[a] = input[a].div_ceil(strides[a]);
                padding[a] = ((output[a] - 1) * strides[a] + e).saturating_sub(input[a]) / 2;
            } else {
                output[a] = (input[a] - e) / strides[a] + 1;
            }
        }
        Geometry {
            rank: 2,
            input,
            channels,
            output,
            filters: channels * multiplier,
            kernel,
            strides,
            dilation,
            padding,
            groups: channels,
            channels_first,
            depthwise: true,
        }
    }

    /// The fused forward pass equals the two convolutions one after the other, whatever the
    /// tiling; the backward pass matches the chain rule through them.
    #[test]
    fn fused_forward_equals_the_two_convolutions() {
        let mut values = Values(11);
        let mut pool = Pool::default();
        for cf in [false, true] {
            for (g, filters) in [
                (geometry([5, 6], 3, 1, [3, 3], [1, 1], [1, 1], false, cf), 4),
                (geometry([7, 6], 2, 2, [3, 2], [2, 2], [1, 1], true, cf), 3),
                (geometry([7, 7], 3, 2, [3, 3], [2, 2], [2, 2], true, cf), 2),
                // Several pieces per row: 40 x 70 depthwise values per output row.
                (
                    geometry([2, 70], 20, 2, [1, 3], [1, 1], [1, 1], true, cf),
                    5,
                ),
                // More depthwise channels than a tile holds, split inside a channel's
                // filters (2048 is not a multiple of 3).
                (
                    geometry([2, 3], 700, 3, [2, 2], [1, 1], [1, 1], true, cf),
                    3,
                ),
            ] {
                let mut layer = SeparableConv::new(
                    g,
                    filters,
                    true,
                    Initializer::Zeros,
                    Initializer::Zeros,
                    Initializer::Zeros,
                    0,
                    0,
                );
                for w in 0..3 {
                    let len = layer.weight(w).len();
                    layer.weight_mut(w).copy_from_slice(&values.vec(len));
                }
                let samples = 2;
                let x = values.vec(samples * g.input_len());
                let mut fused = vec![f32::NAN; samples * g.output[0] * g.output[1] * filters];
                layer.forward(&x, &mut fused);
                let mut middle = vec![f32::NAN; samples * g.output_len()];
                let mut y = vec![f32::NAN; fused.len()];
                layer.forward_through(&x, &mut middle, &mut y);
                for (i, (a, b)) in fused.iter().zip(&y).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{g:?}: y[{i}] = {a}, two passes {b}"
                    );
                }

                let dz = values.vec(y.len());
                let mut dx = vec![f32::NAN; x.len()];
                let mut grad_depthwise = vec![0.0; layer.weight(0).len()];
                let mut grad_pointwise = vec![0.0; layer.weight(1).len()];
                let mut grad_bias = vec![0.0; filters];
                layer.backward(
                    &x,
                    &middle,
                    &dz,
                    Some(&mut dx),
                    [&mut grad_depthwise, &mut grad_pointwise],
                    Some(&mut grad_bias),
                    &mut pool,
                );
                // The same through the two kernels' own backward passes.
                let mut d_middle = vec![0.0; middle.len()];
                let mut want_pointwise = vec![0.0; grad_pointwise.len()];
                let mut want_bias = vec![0.0; filters];
                layer.pointwise.backward(
                    &middle,
                    &dz,
                    Some(&mut d_middle),
                    &mut want_pointwise,
                    Some(&mut want_bias),
                    &mut pool,
                );
                let mut want_dx = vec![0.0; dx.len()];
                let mut want_depthwise = vec![0.0; grad_depthwise.len()];
                layer.depthwise.backward(
                    &x,
                    &d_middle,
                    Some(&mut want_dx),
                    &mut want_depthwise,
                    None,
                    &mut pool,
                );
                assert_eq!(dx, want_dx);
                assert_eq!(grad_depthwise, want_depthwise);
                assert_eq!(grad_pointwise, want_pointwise);
                assert_eq!(grad_bias, want_bias);
            }
        }
    }
}
