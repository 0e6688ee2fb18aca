//! Keras's `MaxPooling1D/2D` and `AveragePooling1D/2D`: [`Pooling::new`] lays out one
//! layer's windows (a `const` in generated code), [`Pooling::forward`] pools whole samples
//! and [`Pooling::backward`] carries the gradient back. [`Grid`], where a spatial tensor's
//! values sit in memory, is shared by every spatial layer (padding, cropping, upsampling,
//! global pooling).
//!
//! A 1D layer is a 2D one whose height is 1: `(steps, features)` is the grid
//! `height = 1, width = steps, channels = features`, so one kernel serves both.

/// The memory layout of one sample of a spatial tensor, row-major in its Keras shape:
/// `(height, width, channels)` for `channels_last`, `(channels, height, width)` for
/// `channels_first`. A 1D tensor `(steps, features)` (or `(features, steps)`) has height 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Rows (1 for 1D data).
    pub height: usize,
    /// Columns (the steps of 1D data).
    pub width: usize,
    /// Channels (features).
    pub channels: usize,
    /// Whether the channel axis comes first in the Keras shape.
    pub channels_first: bool,
}

impl Grid {
    /// A grid of `height x width` positions with `channels` values each.
    pub const fn new(height: usize, width: usize, channels: usize, channels_first: bool) -> Grid {
        Grid {
            height,
            width,
            channels,
            channels_first,
        }
    }

    /// The values of one sample.
    pub const fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Whether a sample holds no value (never for grids the macro builds).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same layout with other spatial extents.
    pub const fn resized(&self, height: usize, width: usize) -> Grid {
        Grid::new(height, width, self.channels, self.channels_first)
    }

    /// Offset of value `(row, col, channel)` within a sample.
    #[inline]
    pub const fn index(&self, row: usize, col: usize, channel: usize) -> usize {
        if self.channels_first {
            (channel * self.height + row) * self.width + col
        } else {
            (row * self.width + col) * self.channels + channel
        }
    }
}

/// What a pooling window computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// The window's largest value (`MaxPooling*`).
    Max,
    /// The mean of the window's values inside the input (`AveragePooling*`).
    Average,
}

/// One pooling layer: windows of `pool` values moved by `strides`, over an input grid
/// padded by `pad` (top, left) for Keras's `padding = "same"`.
///
/// Keras 3 (JAX's `lax.reduce_window`) pads `"same"` inputs so that the output has
/// `ceil(input / stride)` positions per axis, with `max(0, (out - 1) * stride + pool - input)`
/// padding split as `total / 2` before and the rest after. Padding never wins a maximum and
/// is left out of a mean (the divisor counts only the window's values inside the input).
/// `"valid"` windows stay inside the input: `floor((input - pool) / stride) + 1` positions.
///
/// # Shapes
/// Per sample, `input` -> `output`: the same channels and layout, each spatial axis pooled
/// as above (`(steps, f)` -> `(out, f)`, `(h, w, c)` -> `(out_h, out_w, c)`, or channels
/// first). No weights.
///
/// # Example
/// ```
/// use kiln_runtime::layers::pooling::{Grid, PoolMode, Pooling};
/// // MaxPooling1D(pool_size = 2) on 5 steps of 1 feature: 2 outputs (valid).
/// const POOL: Pooling = Pooling::new(PoolMode::Max, Grid::new(1, 5, 1, false), [1, 2], [1, 2], false);
/// let mut y = [0.0; 2];
/// POOL.forward(&[1.0, 3.0, 2.0, 0.0, 9.0], &mut y);
/// assert_eq!(y, [3.0, 2.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pooling {
    /// Max or average.
    pub mode: PoolMode,
    /// The input's layout.
    pub input: Grid,
    /// The output's layout (same channels, pooled extents).
    pub output: Grid,
    /// Window extents `[height, width]`.
    pub pool: [usize; 2],
    /// Window steps `[height, width]`.
    pub strides: [usize; 2],
    /// Padding before the first row and column (`"same"` only).
    pub pad: [usize; 2],
}

/// Output positions and leading padding of one axis, as Keras 3 / JAX computes them.
const fn axis(input: usize, pool: usize, stride: usize, same: bool) -> (usize, usize) {
    if stride == 0 {
        return (0, 0);
    }
    if same {
        let out = input.div_ceil(stride);
        let total = (out.saturating_sub(1) * stride + pool).saturating_sub(input);
        (out, total / 2)
    } else if input < pool {
        (0, 0)
    } else {
        ((input - pool) / stride + 1, 0)
    }
}

impl Pooling {
    /// The layer for inputs laid out as `input`, windows of `pool` (`[height, width]`) moved
    /// by `strides`, with Keras's `padding = "same"` when `same` (else `"valid"`). The
    /// `model!` macro checks that every extent and stride is at least 1 and that valid
    /// windows fit the input; a layer that breaks this has an empty output.
    pub const fn new(
        mode: PoolMode,
        input: Grid,
        pool: [usize; 2],
        strides: [usize; 2],
        same: bool,
    ) -> Pooling {
        let (height, top) = axis(input.height, pool[0], strides[0], same);
        let (width, left) = axis(input.width, pool[1], strides[1], same);
        Pooling {
            mode,
            input,
            output: input.resized(height, width),
            pool,
            strides,
            pad: [top, left],
        }
    }

    /// The input rows (or columns, `dim = 1`) under output position `o`: the window clipped
    /// to the input.
    #[inline]
    fn span(&self, dim: usize, o: usize) -> core::ops::Range<usize> {
        let extent = if dim == 0 {
            self.input.height
        } else {
            self.input.width
        };
        let start = o * self.strides[dim];
        let lo = start.saturating_sub(self.pad[dim]);
        let hi = (start + self.pool[dim])
            .saturating_sub(self.pad[dim])
            .min(extent);
        lo..hi
    }

    /// The offset of the window's first largest value (row-major in the window), JAX's
    /// choice for the gradient of a tie; a NaN wins, as in `lax.max`.
    #[inline]
    fn argmax(&self, x: &[f32], oi: usize, oj: usize, channel: usize) -> usize {
        let mut best = f32::NEG_INFINITY;
        let mut at = usize::MAX;
        for r in self.span(0, oi) {
            for c in self.span(1, oj) {
                let k = self.input.index(r, c, channel);
                let v = x[k];
                if at == usize::MAX || v > best || v.is_nan() {
                    best = v;
                    at = k;
                    if v.is_nan() {
                        return at;
                    }
                }
            }
        }
        at
    }

    /// The number of input values under output position `(oi, oj)`: the mean's divisor.
    #[inline]
    fn count(&self, oi: usize, oj: usize) -> f32 {
        (self.span(0, oi).len() * self.span(1, oj).len()) as f32
    }

    /// Pools `x` into `y`, both holding whole samples (one sample or a batch alike), each
    /// row-major in its Keras shape; every value of `y` is written.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let (n_in, n_out) = (self.input.len(), self.output.len());
        if n_in == 0 || n_out == 0 {
            return;
        }
        let out = self.output;
        for (xs, ys) in x.chunks_exact(n_in).zip(y.chunks_exact_mut(n_out)) {
            for oi in 0..out.height {
                for oj in 0..out.width {
                    for ch in 0..out.channels {
                        ys[out.index(oi, oj, ch)] = match self.mode {
                            PoolMode::Max => xs[self.argmax(xs, oi, oj, ch)],
                            PoolMode::Average => {
                                let mut sum = 0.0;
                                for r in self.span(0, oi) {
                                    for c in self.span(1, oj) {
                                        sum += xs[self.input.index(r, c, ch)];
                                    }
                                }
                                sum / self.count(oi, oj)
                            }
                        };
                    }
                }
            }
        }
    }

    /// The backward pass on whole samples: writes into `dx` the gradient with respect to the
    /// input `x` (the forward pass's) from `dy`, the gradient with respect to the output.
    ///
    /// Max pooling routes each output's gradient to its window's largest input; on a tie,
    /// to the first in row-major window order, as `jax.grad` of Keras's max pooling does
    /// (XLA's select-and-scatter with `>=`). Average pooling spreads it evenly over the
    /// window's input values. Overlapping windows add up.
    ///
    /// ```
    /// use kiln_runtime::layers::pooling::{Grid, PoolMode, Pooling};
    /// const POOL: Pooling = Pooling::new(PoolMode::Max, Grid::new(1, 4, 1, false), [1, 3], [1, 1], false);
    /// let mut dx = [9.0; 4];
    /// // Windows [3, 3, 1] and [3, 1, 2]: the first tie wins.
    /// POOL.backward(&[3.0, 3.0, 1.0, 2.0], &[1.0, 10.0], &mut dx);
    /// assert_eq!(dx, [1.0, 10.0, 0.0, 0.0]);
    /// ```
    pub fn backward(&self, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        let (n_in, n_out) = (self.input.len(), self.output.len());
        dx.fill(0.0);
        if n_in == 0 || n_out == 0 {
            return;
        }
        let out = self.output;
        for ((xs, ds), gs) in x
            .chunks_exact(n_in)
            .zip(dy.chunks_exact(n_out))
            .zip(dx.chunks_exact_mut(n_in))
        {
            for oi in 0..out.height {
                for oj in 0..out.width {
                    for ch in 0..out.channels {
                        let g = ds[out.index(oi, oj, ch)];
                        match self.mode {
                            PoolMode::Max => gs[self.argmax(xs, oi, oj, ch)] += g,
                            PoolMode::Average => {
                                let share = g / self.count(oi, oj);
                                for r in self.span(0, oi) {
                                    for c in self.span(1, oj) {
                                        gs[self.input.index(r, c, ch)] += share;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_keras_output_sizes_and_offsets() {
        // 5 steps, pool 4, stride 1: out 5, padding 3 = 1 before + 2 after.
        let p = Pooling::new(
            PoolMode::Average,
            Grid::new(1, 5, 1, false),
            [1, 4],
            [1, 1],
            true,
        );
        assert_eq!((p.output.width, p.pad[1]), (5, 1));
        let mut y = [0.0; 5];
        p.forward(&[0.0, 1.0, 2.0, 3.0, 4.0], &mut y);
        // JAX: [mean(0..=2), mean(0..=3), mean(1..=4), mean(2..=4), mean(3..=4)].
        assert_eq!(y, [1.0, 1.5, 2.5, 3.0, 3.5]);
        // 7 rows, pool 2, stride 3: ceil(7 / 3) = 3 outputs, no padding needed.
        let p = Pooling::new(
            PoolMode::Max,
            Grid::new(7, 1, 1, false),
            [2, 1],
            [3, 1],
            true,
        );
        assert_eq!((p.output.height, p.pad[0]), (3, 0));
        let valid = Pooling::new(
            PoolMode::Max,
            Grid::new(7, 6, 2, true),
            [3, 2],
            [2, 2],
            false,
        );
        assert_eq!(valid.output, Grid::new(3, 3, 2, true));
    }

    #[test]
    fn channels_first_and_last_pool_the_same_values() {
        // A (3, 4) image with 2 channels, in both layouts.
        let value = |r: usize, c: usize, ch: usize| ((r * 7 + c * 3 + ch * 5) % 11) as f32;
        let last = Grid::new(3, 4, 2, false);
        let first = Grid::new(3, 4, 2, true);
        let (mut xl, mut xf) = ([0.0; 24], [0.0; 24]);
        for r in 0..3 {
            for c in 0..4 {
                for ch in 0..2 {
                    xl[last.index(r, c, ch)] = value(r, c, ch);
                    xf[first.index(r, c, ch)] = value(r, c, ch);
                }
            }
        }
        for mode in [PoolMode::Max, PoolMode::Average] {
            let pl = Pooling::new(mode, last, [2, 2], [1, 2], true);
            let pf = Pooling::new(mode, first, [2, 2], [1, 2], true);
            let (mut yl, mut yf) = ([0.0; 12], [0.0; 12]);
            pl.forward(&xl, &mut yl);
            pf.forward(&xf, &mut yf);
            for r in 0..3 {
                for c in 0..2 {
                    for ch in 0..2 {
                        assert_eq!(yl[pl.output.index(r, c, ch)], yf[pf.output.index(r, c, ch)]);
                    }
                }
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        // Distinct values (no ties), two samples of (5, 4) with 3 channels.
        let x: Vec<f32> = (0..120).map(|i| ((i * 37 % 101) as f32) * 0.1).collect();
        let w: Vec<f32> = (0..120).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
        for mode in [PoolMode::Max, PoolMode::Average] {
            for (same, pool, strides) in [
                (false, [2, 2], [2, 2]),
                (true, [3, 2], [1, 2]),
                (true, [2, 3], [2, 1]),
            ] {
                let p = Pooling::new(mode, Grid::new(5, 4, 3, false), pool, strides, same);
                let n_out = p.output.len() * 2;
                let loss = |x: &[f32]| {
                    let mut y = vec![0.0; n_out];
                    p.forward(x, &mut y);
                    y.iter().zip(&w).map(|(a, b)| (a * b) as f64).sum::<f64>()
                };
                let mut dx = vec![0.0; 120];
                p.backward(&x, &w[..n_out], &mut dx);
                for k in 0..120 {
                    let (mut plus, mut minus) = (x.clone(), x.clone());
                    plus[k] += 0.01;
                    minus[k] -= 0.01;
                    let numeric = (loss(&plus) - loss(&minus)) / 0.02;
                    assert!(
                        (numeric - dx[k] as f64).abs() < 1e-2,
                        "{mode:?} same {same}: dx[{k}] {} vs {numeric}",
                        dx[k]
                    );
                }
            }
        }
    }
}
