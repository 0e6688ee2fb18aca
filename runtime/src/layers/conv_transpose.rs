//! Keras's `Conv2DTranspose`: [`ConvTranspose::forward`] runs a convolution backwards — the
//! adjoint of the [`Conv`] whose input has the transposed layer's output shape — and
//! [`ConvTranspose::backward`] runs it forwards, so both passes are `Conv`'s own kernels.
//!
//! Keras (JAX backend) computes `lax.conv_transpose` with explicit padding `(left, right)` per
//! spatial axis: the input dilated by the stride, padded, then cross-correlated with the
//! kernel flipped. Written as a scatter, input position `i` and kernel tap `t` add to output
//! position `o = i * stride + t * dilation - (e - 1 - left)` (`e = (k - 1) * dilation + 1`),
//! and the positions falling outside the output are dropped: exactly the input gradient of a
//! convolution of the output's size with stride `stride`, dilation `dilation` and leading
//! padding `e - 1 - left`.

use super::conv::{Conv, Geometry};
use super::Weights;
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::param::Param;
#[cfg(feature = "alloc")]
use crate::pool::Pool;
#[cfg(feature = "alloc")]
use alloc::vec;

/// A transposed 2-D convolution (Keras's `Conv2DTranspose`), without its activation, which
/// the generated code applies.
///
/// `y[o, f] = bias[f] + Σ_{i, t, c} x[i, c] · kernel[t, f, c]` over the input positions `i`
/// and taps `t` with `o = i * stride + t * dilation - pad`, where `pad = e - 1 - left` and
/// `left` is Keras's leading padding of `lax.conv_transpose` (see the module docs).
///
/// # Shapes
/// `(h, w, channels)` -> `(new_h, new_w, filters)`, or channels first `(channels, h, w)` ->
/// `(filters, new_h, new_w)`. Along each axis, with `e = (k - 1) * dilation + 1`: `valid`
/// gives `(n - 1) * stride + max(e, stride)`, or `(n - 1) * stride + e + output_padding`;
/// `same` gives `n * stride`, or `(n - 1) * stride + e % 2 + output_padding`.
///
/// # Weights
/// - `kernel`: Keras shape `(kh, kw, filters, channels)`, row-major: the kernel of the
///   convolution it transposes (from `filters` channels to `channels` filters), used as is.
/// - `bias`: `(filters,)`, when `use_bias`.
///
/// The [`Geometry`] is that convolution's: its `input` is this layer's output size, its
/// `channels` this layer's `filters`, its `output` this layer's input size and its `filters`
/// this layer's input channels.
///
/// # Example
/// ```
/// use kiln_runtime::layers::conv::Geometry;
/// use kiln_runtime::layers::ConvTranspose;
/// // Keras: Conv2DTranspose(1, (1, 2), strides = (1, 2)) on a 1 x 2 image of one channel, kernel
/// // [[[[1]], [[10]]]], bias [0.5]: each input value spreads over two output columns.
/// let geometry = Geometry {
///     rank: 2, input: [1, 4], channels: 1, output: [1, 2], filters: 1, kernel: [1, 2],
///     strides: [1, 2], dilation: [1, 1], padding: [0, 0], groups: 1, channels_first: false,
///     depthwise: false,
/// };
/// let layer = ConvTranspose::baked(geometry, &[1.0, 10.0], Some(&[0.5]));
/// let mut y = [0.0; 4];
/// layer.forward(&[1.0, 2.0], &mut y);
/// assert_eq!(y, [1.5, 10.5, 2.5, 20.5]);
/// ```
#[derive(Debug, Clone)]
pub struct ConvTranspose {
    /// The transposed convolution, with the layer's kernel and no bias.
    pub conv: Conv,
    /// One value per filter; `None` when the layer has no bias (`use_bias = False`).
    pub bias: Option<Param<[f32]>>,
}

impl ConvTranspose {
    /// A layer initialised from `seed`: the kernel draws from stream `first_weight`, the
    /// bias from the next one (see [`weight_rng`]), with fans from Keras's kernel shape.
    #[cfg(feature = "alloc")]
    pub fn new(
        geometry: Geometry,
        use_bias: bool,
        kernel_initializer: Initializer,
        bias_initializer: Initializer,
        seed: u64,
        first_weight: usize,
    ) -> Self {
        let conv = Conv::new(
            geometry,
            false,
            kernel_initializer,
            Initializer::Zeros,
            seed,
            first_weight,
        );
        let bias = use_bias.then(|| {
            let mut bias = vec![0.0; geometry.channels];
            bias_initializer.fill(
                &mut bias,
                &[geometry.channels],
                &mut weight_rng(seed, first_weight + 1),
            );
            Param::heap(&bias[..])
        });
        ConvTranspose { conv, bias }
    }

    /// A layer whose weights stay in static memory (a model's `pretrained()`).
    pub const fn baked(
        geometry: Geometry,
        kernel: &'static [f32],
        bias: Option<&'static [f32]>,
    ) -> Self {
        ConvTranspose {
            conv: Conv::baked(geometry, kernel, None),
            bias: match bias {
                Some(bias) => Some(Param::baked(bias)),
                None => None,
            },
        }
    }

    /// The transposed convolution plus bias of whole samples: `x` holds any number of input
    /// samples (row-major in the Keras input shape), `y` as many output samples, every value
    /// of which is overwritten. Allocates nothing (see [`Conv::adjoint_add`]).
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let g = self.conv.geometry();
        let plane = g.input[0] * g.input[1];
        match &self.bias {
            Some(bias) if g.channels_first => {
                for (values, b) in y.chunks_exact_mut(plane.max(1)).zip(bias.iter().cycle()) {
                    values.fill(*b);
                }
            }
            Some(bias) => {
                for position in y.chunks_exact_mut(g.channels.max(1)) {
                    position.copy_from_slice(bias);
                }
            }
            None => y.fill(0.0),
        }
        self.conv.adjoint_add(x, y);
    }
}

#[cfg(feature = "alloc")]
impl ConvTranspose {
    /// The backward pass on whole samples: `x` is the forward input, `dz` the loss gradient
    /// with respect to the output (before the activation). Adds the kernel's gradient
    /// (Keras's layout) into `grad_kernel` and, with a bias, `Σ dz` per filter into
    /// `grad_bias`; when `dx` is given, overwrites it with the gradient with respect to `x`:
    /// the convolution of `dz` ([`Conv::forward`]). The kernel's gradient is the
    /// convolution's, with `dz` as its input and `x` as its output gradient.
    pub fn backward(
        &self,
        x: &[f32],
        dz: &[f32],
        dx: Option<&mut [f32]>,
        grad_kernel: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        pool: &mut Pool,
    ) {
        let g = self.conv.geometry();
        if let Some(grad_bias) = grad_bias {
            super::conv::add_bias_gradient(dz, g.input, g.channels_first, grad_bias);
        }
        if let Some(dx) = dx {
            self.conv.forward(dz, dx);
        }
        self.conv.backward(dz, x, None, grad_kernel, None, pool);
    }
}

impl Weights for ConvTranspose {
    fn weight(&self, index: usize) -> &[f32] {
        match (index, &self.bias) {
            (0, _) => &self.conv.kernel,
            (_, Some(bias)) => bias,
            (_, None) => &[],
        }
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        match (index, &mut self.bias) {
            (0, _) => self.conv.kernel.make_mut(),
            (_, Some(bias)) => bias.make_mut(),
            (_, None) => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// Keras's output size and `pad` along one axis (`op` = `output_padding`).
    fn axis(
        n: usize,
        k: usize,
        s: usize,
        d: usize,
        same: bool,
        op: Option<usize>,
    ) -> (usize, usize) {
        let e = (k - 1) * d + 1;
        if !same {
            let op = op.unwrap_or(e.max(s) - e);
            return ((n - 1) * s + e + op, 0);
        }
        let (out, total) = match op {
            None => (n * s, s + e - 2),
            Some(op) => ((n - 1) * s + e % 2 + op, e + e % 2 - 2 + op),
        };
        let left = (total / 2 + total % 2).min(e - 1);
        (out, e - 1 - left)
    }

    #[allow(clippy::too_many_arguments)]
    fn geometry(
        input: [usize; 2],
        channels: usize,
        filters: usize,
        kernel: [usize; 2],
        strides: [usize; 2],
        dilation: [usize; 2],
        same: bool,
        op: Option<[usize; 2]>,
        channels_first: bool,
    ) -> Geometry {
        let (oh, ph) = axis(
            input[0],
            kernel[0],
            strides[0],
            dilation[0],
            same,
            op.map(|o| o[0]),
        );
        let (ow, pw) = axis(
            input[1],
            kernel[1],
            strides[1],
            dilation[1],
            same,
            op.map(|o| o[1]),
        );
        Geometry {
            rank: 2,
            input: [oh, ow],
            channels: filters,
            output: input,
            filters: channels,
            kernel,
            strides,
            dilation,
            padding: [ph, pw],
            groups: 1,
            channels_first,
            depthwise: false,
        }
    }

    /// `f(x index, kernel index, y index)` for every product of one sample, from the scatter
    /// definition.
    fn each_product(g: &Geometry, mut f: impl FnMut(usize, usize, usize)) {
        let (channels, filters) = (g.filters, g.channels);
        let at = |p: [usize; 2], size: [usize; 2], c: usize, n: usize| {
            if g.channels_first {
                (c * size[0] + p[0]) * size[1] + p[1]
            } else {
                (p[0] * size[1] + p[1]) * n + c
            }
        };
        for i in 0..g.output[0] {
            for j in 0..g.output[1] {
                for ky in 0..g.kernel[0] {
                    for kx in 0..g.kernel[1] {
                        let oy = (i * g.strides[0] + ky * g.dilation[0]) as isize
                            - g.padding[0] as isize;
                        let ox = (j * g.strides[1] + kx * g.dilation[1]) as isize
                            - g.padding[1] as isize;
                        if oy < 0
                            || ox < 0
                            || oy as usize >= g.input[0]
                            || ox as usize >= g.input[1]
                        {
                            continue;
                        }
                        for c in 0..channels {
                            for fi in 0..filters {
                                let xi = at([i, j], g.output, c, channels);
                                let ki = ((ky * g.kernel[1] + kx) * filters + fi) * channels + c;
                                let yi = at([oy as usize, ox as usize], g.input, fi, filters);
                                f(xi, ki, yi);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn forward_and_backward_match_the_definition() {
        let mut values = Values(3);
        let mut pool = Pool::default();
        for cf in [false, true] {
            for g in [
                geometry([3, 4], 2, 3, [3, 3], [1, 1], [1, 1], false, None, cf),
                geometry([3, 4], 2, 3, [3, 2], [2, 3], [1, 1], true, None, cf),
                geometry([2, 3], 3, 2, [4, 4], [3, 2], [1, 1], true, Some([2, 1]), cf),
                geometry(
                    [3, 3],
                    2,
                    2,
                    [3, 2],
                    [2, 2],
                    [1, 1],
                    false,
                    Some([1, 0]),
                    cf,
                ),
                geometry([4, 3], 2, 3, [2, 3], [1, 1], [2, 2], true, None, cf),
                geometry([2, 2], 1, 2, [2, 2], [3, 3], [1, 1], false, None, cf),
                // More filters than a stack tile holds: the channels-first tile splits them.
                geometry([2, 5], 3, 2100, [1, 2], [1, 2], [1, 1], true, None, cf),
            ] {
                let (n_in, n_out) = (g.output_len(), g.input_len());
                let (kernel, bias) = (values.vec(g.kernel_len()), values.vec(g.channels));
                let mut layer =
                    ConvTranspose::new(g, true, Initializer::Zeros, Initializer::Zeros, 0, 0);
                layer.weight_mut(0).copy_from_slice(&kernel);
                layer.weight_mut(1).copy_from_slice(&bias);
                let samples = 2;
                let x = values.vec(samples * n_in);
                let dz = values.vec(samples * n_out);
                let mut y = vec![f32::NAN; samples * n_out];
                layer.forward(&x, &mut y);
                let mut dx = vec![f32::NAN; x.len()];
                let mut grad_kernel = vec![0.5f32; kernel.len()];
                let mut grad_bias = vec![0.25f32; bias.len()];
                layer.backward(
                    &x,
                    &dz,
                    Some(&mut dx),
                    &mut grad_kernel,
                    Some(&mut grad_bias),
                    &mut pool,
                );
                let mut want_y = vec![0.0f64; y.len()];
                let mut want_dx = vec![0.0f64; x.len()];
                let mut want_kernel = vec![0.5f64; kernel.len()];
                let mut want_bias = vec![0.25f64; bias.len()];
                for s in 0..samples {
                    let (xo, yo) = (s * n_in, s * n_out);
                    for yi in 0..n_out {
                        let f = if cf {
                            yi / (g.input[0] * g.input[1])
                        } else {
                            yi % g.channels
                        };
                        want_y[yo + yi] += f64::from(bias[f]);
                        want_bias[f] += f64::from(dz[yo + yi]);
                    }
                    each_product(&g, |xi, ki, yi| {
                        want_y[yo + yi] += f64::from(x[xo + xi]) * f64::from(kernel[ki]);
                        want_dx[xo + xi] += f64::from(dz[yo + yi]) * f64::from(kernel[ki]);
                        want_kernel[ki] += f64::from(dz[yo + yi]) * f64::from(x[xo + xi]);
                    });
                }
                for (what, got, want) in [
                    ("y", &y, &want_y),
                    ("dx", &dx, &want_dx),
                    ("grad_kernel", &grad_kernel, &want_kernel),
                    ("grad_bias", &grad_bias, &want_bias),
                ] {
                    for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
                        assert!(
                            (f64::from(*a) - b).abs() <= 1e-4 * (1.0 + b.abs()),
                            "{g:?}: {what}[{i}] = {a}, expected {b}"
                        );
                    }
                }
            }
        }
    }
}
