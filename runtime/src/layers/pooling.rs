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
            if !self.input.channels_first {
                self.forward_channels_last(xs, ys);
                continue;
            }
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

    /// One channels-last sample, every channel of an output position at once: the window's
    /// positions are runs of `channels` contiguous values, combined elementwise in the
    /// window's row-major order, which the compiler vectorises. The same values as the
    /// per-channel loop, bit for bit (a NaN wins the maximum; sums start from `0.0`).
    fn forward_channels_last(&self, xs: &[f32], ys: &mut [f32]) {
        let (out, channels) = (self.output, self.input.channels);
        for oi in 0..out.height {
            for oj in 0..out.width {
                let y = &mut ys[out.index(oi, oj, 0)..][..channels];
                let mut first = true;
                if self.mode == PoolMode::Average {
                    y.fill(0.0);
                    first = false;
                }
                for r in self.span(0, oi) {
                    for c in self.span(1, oj) {
                        let v = &xs[self.input.index(r, c, 0)..][..channels];
                        if first {
                            y.copy_from_slice(v);
                            first = false;
                            continue;
                        }
                        match self.mode {
                            PoolMode::Max => {
                                for (m, &v) in y.iter_mut().zip(v) {
                                    *m = if v > *m || v.is_nan() { v } else { *m };
                                }
                            }
                            PoolMode::Average => {
                                for (sum, &v) in y.iter_mut().zip(v) {
                                    *sum += v;
                                }
                            }
                        }
                    }
                }
                if self.mode == PoolMode::Average {
                    let count = self.count(oi, oj);
                    y.iter_mut().for_each(|sum| *sum /= count);
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
            if !self.input.channels_first {
                self.backward_channels_last(xs, ds, gs);
                continue;
            }
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

impl Pooling {
    /// [`Pooling::backward`] of one channels-last sample, every channel of an output
    /// position at once (in blocks of 64): the max path tracks each channel's first largest
    /// value (NaN winning) over the window in row-major order, as [`Pooling::argmax`] does
    /// one channel at a time, then routes the gradient there; the average path adds each
    /// channel's share over the window. The same sums in the same order as the per-value
    /// loop, so the same bits.
    fn backward_channels_last(&self, xs: &[f32], ds: &[f32], gs: &mut [f32]) {
        const BLOCK: usize = 64;
        let (out, channels) = (self.output, self.input.channels);
        let mut best = [0.0f32; BLOCK];
        let mut at = [0usize; BLOCK];
        let mut share = [0.0f32; BLOCK];
        for oi in 0..out.height {
            for oj in 0..out.width {
                let d = &ds[out.index(oi, oj, 0)..][..channels];
                for c0 in (0..channels).step_by(BLOCK) {
                    let n = BLOCK.min(channels - c0);
                    let d = &d[c0..c0 + n];
                    if self.mode == PoolMode::Average {
                        let count = self.count(oi, oj);
                        for (s, g) in share.iter_mut().zip(d) {
                            *s = g / count;
                        }
                        for r in self.span(0, oi) {
                            for c in self.span(1, oj) {
                                let k = self.input.index(r, c, c0);
                                for (g, s) in gs[k..k + n].iter_mut().zip(&share) {
                                    *g += s;
                                }
                            }
                        }
                        continue;
                    }
                    let mut first = true;
                    for r in self.span(0, oi) {
                        for c in self.span(1, oj) {
                            let k = self.input.index(r, c, c0);
                            let v = &xs[k..k + n];
                            if first {
                                best[..n].copy_from_slice(v);
                                at[..n].fill(k);
                                first = false;
                                continue;
                            }
                            for ((b, a), &v) in best.iter_mut().zip(at.iter_mut()).zip(v) {
                                let take = v > *b || (v.is_nan() && !b.is_nan());
                                *b = if take { v } else { *b };
                                *a = if take { k } else { *a };
                            }
                        }
                    }
                    for (ch, (&a, g)) in at[..n].iter().zip(d).enumerate() {
                        gs[a + ch] += g;
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

    /// The vectorised channels-last backward pass against the per-value definition (the
    /// gradient to the window's first largest value, NaN winning; the mean's share to every
    /// value of the window), bit for bit, with infinities and NaNs and ties among the inputs
    /// and more channels than one block.
    #[test]
    fn channels_last_backward_equals_the_per_value_definition() {
        let specials = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 0.0, 1.0];
        for mode in [PoolMode::Max, PoolMode::Average] {
            for (grid, pool, strides, same) in [
                (Grid::new(1, 9, 5, false), [1, 3], [1, 2], true),
                (Grid::new(5, 6, 3, false), [2, 2], [1, 1], false),
                (Grid::new(4, 5, 70, false), [3, 2], [2, 1], true),
            ] {
                let layer = Pooling::new(mode, grid, pool, strides, same);
                let out = layer.output;
                let x: Vec<f32> = (0..2 * grid.len())
                    .map(|i| match i % 13 {
                        3 | 7 => specials[(i / 13) % specials.len()],
                        _ => ((i * 37 % 7) as f32 - 3.0) * 0.5,
                    })
                    .collect();
                let dy: Vec<f32> = (0..2 * out.len())
                    .map(|i| ((i * 53 % 19) as f32 - 9.0) * 0.125)
                    .collect();
                let mut dx = vec![f32::NAN; x.len()];
                layer.backward(&x, &dy, &mut dx);
                let mut expected = vec![0.0f32; x.len()];
                for (s, (xs, ds)) in x.chunks(grid.len()).zip(dy.chunks(out.len())).enumerate() {
                    let gs = &mut expected[s * grid.len()..(s + 1) * grid.len()];
                    for oi in 0..out.height {
                        for oj in 0..out.width {
                            for ch in 0..out.channels {
                                let g = ds[out.index(oi, oj, ch)];
                                match mode {
                                    PoolMode::Max => gs[layer.argmax(xs, oi, oj, ch)] += g,
                                    PoolMode::Average => {
                                        let share = g / layer.count(oi, oj);
                                        for r in layer.span(0, oi) {
                                            for c in layer.span(1, oj) {
                                                gs[grid.index(r, c, ch)] += share;
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                for (i, (got, e)) in dx.iter().zip(&expected).enumerate() {
                    assert_eq!(got.to_bits(), e.to_bits(), "{mode:?} {grid:?} dx[{i}]");
                }
            }
        }
    }

    /// The vectorised channels-last forward pass against the per-value definition (the
    /// window's first largest value, NaN winning; the sum in window order over the count),
    /// bit for bit, with infinities and NaNs among the inputs.
    #[test]
    fn channels_last_forward_equals_the_per_value_definition() {
        let specials = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 0.0];
        for mode in [PoolMode::Max, PoolMode::Average] {
            for (grid, pool, strides, same) in [
                (Grid::new(1, 9, 5, false), [1, 3], [1, 2], true),
                (Grid::new(5, 6, 3, false), [2, 2], [2, 2], false),
                (Grid::new(5, 5, 17, false), [3, 2], [2, 1], true),
            ] {
                let layer = Pooling::new(mode, grid, pool, strides, same);
                let x: Vec<f32> = (0..2 * grid.len())
                    .map(|i| match i % 11 {
                        3 | 7 => specials[(i / 11) % specials.len()],
                        _ => ((i * 37 % 23) as f32 - 11.0) * 0.25,
                    })
                    .collect();
                let mut y = vec![1.5; 2 * layer.output.len()];
                layer.forward(&x, &mut y);
                let out = layer.output;
                for (xs, ys) in x.chunks(grid.len()).zip(y.chunks(out.len())) {
                    for oi in 0..out.height {
                        for oj in 0..out.width {
                            for ch in 0..out.channels {
                                let expected = match mode {
                                    PoolMode::Max => xs[layer.argmax(xs, oi, oj, ch)],
                                    PoolMode::Average => {
                                        let mut sum = 0.0;
                                        for r in layer.span(0, oi) {
                                            for c in layer.span(1, oj) {
                                                sum += xs[grid.index(r, c, ch)];
                                            }
                                        }
                                        sum / layer.count(oi, oj)
                                    }
                                };
                                let got = ys[out.index(oi, oj, ch)];
                                assert!(
                                    got.to_bits() == expected.to_bits()
                                        || (got.is_nan() && expected.is_nan()),
                                    "{mode:?} {grid:?} ({oi}, {oj}, {ch}): {got} != {expected}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
