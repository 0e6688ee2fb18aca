//! Keras's `Conv1D` and `Conv2D`: [`Conv::forward`] cross-correlates whole samples with the
//! kernel on kiln's GEMM kernels, and [`Conv::backward`] gives the input gradient and adds
//! the kernel and bias gradients. A `Conv1D` is a `Conv2D` one row high. With one group per
//! channel it is Keras's `DepthwiseConv2D` (and the first half of `SeparableConv2D`, see
//! `separable_conv.rs`), computed as products per position; [`Conv::adjoint_add`] runs it
//! backwards, from output to input, which is Keras's `Conv2DTranspose` (`conv_transpose.rs`).
//!
//! No im2col buffer: for channels-last data every (output row, kernel tap, group) is one
//! GEMM `Y[row] (filters x width) += W_tap (filters x channels) · X_shifted (channels x
//! width)`, where `X_shifted` is the input row read in place with a column step of
//! `stride * channels`, its column range cut at the zero-padded borders. Channels-first data
//! reads the input in place too and collects each output row in a small stack tile before
//! writing it channel by channel; its backward pass transposes through pooled buffers.

use super::Weights;
use crate::gemm::{gemm, Strided};
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::param::Param;
#[cfg(feature = "alloc")]
use crate::pool::Pool;
#[cfg(feature = "alloc")]
use alloc::vec;

/// The values of the stack tile a channels-first forward pass collects output rows in
/// (8 KiB): small enough for any thread and for `predict`'s kernel allowance.
pub(crate) const TILE: usize = 2048;

/// Everything about a convolution but its weights, fixed by the `model!` macro at compile
/// time. Spatial sizes are `[height, width]`; a `Conv1D` has height 1 (and kernel height,
/// strides, dilation 1 and no padding along it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// 1 for `Conv1D`, 2 for `Conv2D`: the rank of the Keras kernel's spatial part.
    pub rank: usize,
    /// The input's spatial size.
    pub input: [usize; 2],
    /// Input channels.
    pub channels: usize,
    /// The output's spatial size.
    pub output: [usize; 2],
    /// Output channels (Keras's `filters`).
    pub filters: usize,
    /// The kernel's spatial size.
    pub kernel: [usize; 2],
    /// Steps between output positions, in input positions.
    pub strides: [usize; 2],
    /// Steps between kernel taps, in input positions.
    pub dilation: [usize; 2],
    /// Zeros padded before the first row and column (`same` puts the odd one after, as
    /// JAX's `SAME`; `causal` puts all of them before). Padding after is implied by the
    /// output size.
    pub padding: [usize; 2],
    /// Channel groups: group `g` maps input channels `g * channels / groups ..` to filters
    /// `g * filters / groups ..`.
    pub groups: usize,
    /// `data_format = "channels_first"`: a sample is `(channels, h, w)` instead of
    /// `(h, w, channels)`.
    pub channels_first: bool,
    /// Keras's depthwise convolution (`DepthwiseConv2D`, the first half of
    /// `SeparableConv2D`): `groups == channels`, and Keras shapes the kernel
    /// `(kh, kw, channels, filters / channels)` — the same values in the same order as the
    /// grouped `(kh, kw, 1, filters)`, so only the initializers' fans differ.
    pub depthwise: bool,
}

impl Geometry {
    /// Values of one input sample.
    pub const fn input_len(&self) -> usize {
        self.input[0] * self.input[1] * self.channels
    }

    /// Values of one output sample.
    pub const fn output_len(&self) -> usize {
        self.output[0] * self.output[1] * self.filters
    }

    /// Values of the kernel: `kh * kw * (channels / groups) * filters`.
    pub const fn kernel_len(&self) -> usize {
        self.kernel[0] * self.kernel[1] * (self.channels / self.groups) * self.filters
    }

    /// Keras's kernel shape, `(kw, channels / groups, filters)` for `Conv1D` and
    /// `(kh, kw, channels / groups, filters)` for `Conv2D` (`(kh, kw, channels,
    /// filters / channels)` when `depthwise`), as `(array, rank)`.
    pub fn kernel_shape(&self) -> ([usize; 4], usize) {
        let (inner, outer) = if self.depthwise {
            (self.channels, self.filters / self.channels.max(1))
        } else {
            (self.channels / self.groups, self.filters)
        };
        if self.rank == 1 {
            ([self.kernel[1], inner, outer, 0], 3)
        } else {
            ([self.kernel[0], self.kernel[1], inner, outer], 4)
        }
    }

    /// A channels-last `Conv2D` whose kernel spans the whole input width without padding
    /// (CREPE's `(k, 1)` kernels on `(n, 1, c)` inputs) as the `Conv1D` over rows of
    /// `width * channels` values that it is: the kernel's layout is already that
    /// `Conv1D`'s, and computed so, one product covers every output row a kernel row meets
    /// instead of one small product per output row and tap. Any other geometry as it is.
    fn folded(&self) -> Geometry {
        let [height, width] = self.input;
        let whole_rows = self.rank == 2
            && !self.channels_first
            && self.groups == 1
            && self.kernel[1] == width
            && self.padding[1] == 0
            && self.output[1] == 1
            && (width == 1 || self.dilation[1] == 1);
        if !whole_rows {
            return *self;
        }
        Geometry {
            rank: 1,
            input: [1, height],
            channels: width * self.channels,
            output: [1, self.output[0]],
            kernel: [1, self.kernel[0]],
            strides: [1, self.strides[0]],
            dilation: [1, self.dilation[0]],
            padding: [0, self.padding[0]],
            depthwise: false,
            ..*self
        }
    }

    /// The same convolution on channels-last data.
    #[cfg(feature = "alloc")]
    fn channels_last(self) -> Geometry {
        Geometry {
            channels_first: false,
            ..self
        }
    }

    /// One input channel per group and several groups (a depthwise convolution): products
    /// per position instead of many one-row matrix products.
    fn per_channel(&self) -> bool {
        self.groups > 1 && self.groups == self.channels
    }

    /// Output positions `o` along `axis` whose input position `o * stride + offset - pad`
    /// (for the kernel tap at `offset = tap * dilation`) lies inside the input: the range
    /// `lo..hi`, empty when the tap only ever meets padding.
    fn span(&self, axis: usize, tap: usize) -> (usize, usize) {
        let (out, input, stride) = (self.output[axis], self.input[axis], self.strides[axis]);
        let (offset, pad) = (tap * self.dilation[axis], self.padding[axis]);
        let reach = input + pad;
        if reach <= offset {
            return (0, 0);
        }
        let hi = ((reach - offset - 1) / stride + 1).min(out);
        let lo = pad.saturating_sub(offset).div_ceil(stride).min(hi);
        (lo, hi)
    }

    /// The output columns where every tap of a kernel row meets the input, when the taps
    /// can be taken as one product: one group, no dilation across the width (so a row's
    /// (tap, channel) pairs are contiguous in the input as in the kernel), several taps.
    fn interior(&self) -> Option<(usize, usize)> {
        let kw = self.kernel[1];
        if self.groups != 1 || self.dilation[1] != 1 || kw < 2 {
            return None;
        }
        // Spans shrink from the first tap's start to the last tap's end.
        let (a0, a1) = (self.span(1, 0).0, self.span(1, kw - 1).1);
        (a0 < a1).then_some((a0, a1))
    }

    /// The output columns tap `kx` covers on its own: its span less `interior` (which lies
    /// inside every tap's span), as up to two non-empty ranges.
    fn pieces(
        &self,
        kx: usize,
        interior: Option<(usize, usize)>,
    ) -> impl Iterator<Item = (usize, usize)> {
        let (c0, c1) = self.span(1, kx);
        let pieces = match interior {
            Some((a0, a1)) => [(c0, a0), (a1, c1)],
            None => [(c0, c1), (0, 0)],
        };
        pieces.into_iter().filter(|(lo, hi)| lo < hi)
    }

    /// The input position of output position `o` at kernel tap `tap` along `axis`, for `o`
    /// inside [`Geometry::span`].
    fn source(&self, axis: usize, o: usize, tap: usize) -> usize {
        o * self.strides[axis] + tap * self.dilation[axis] - self.padding[axis]
    }
}

/// A 1-D or 2-D convolution layer (Keras's `Conv1D`, `Conv2D`), without its activation,
/// which the generated code applies.
///
/// `y[o, f] = bias[f] + Σ_tap Σ_c x[o * stride + tap * dilation - pad, c] · kernel[tap, c, f]`
/// over the channels `c` of `f`'s group: a cross-correlation, as in Keras.
///
/// # Shapes
/// Channels last: `(steps, channels)` -> `(new_steps, filters)` and `(h, w, channels)` ->
/// `(new_h, new_w, filters)`; channels first: `(channels, steps)` -> `(filters, new_steps)`
/// and `(channels, h, w)` -> `(filters, new_h, new_w)`. Along each spatial axis the output
/// size is `ceil(n / stride)` for `same` and `causal`, `floor((n - (k - 1) * dilation - 1) /
/// stride) + 1` for `valid` (see [`Geometry`]).
///
/// # Weights
/// - `kernel`: Keras shape `(kw, channels / groups, filters)` (`Conv1D`) or
///   `(kh, kw, channels / groups, filters)` (`Conv2D`), row-major, whatever the data format:
///   each tap's block is a `filters x channels / groups` column-major matrix, read in place.
/// - `bias`: `(filters,)`, when `use_bias`.
///
/// Both live on the heap ([`Conv::new`]) or in the binary ([`Conv::baked`]).
///
/// # Example
/// ```
/// use kiln_runtime::layers::conv::{Conv, Geometry};
/// use kiln_runtime::Initializer;
/// // Keras: Conv1D(1, 2) on 3 steps of 1 channel, kernel [[[1]], [[10]]], no bias.
/// let geometry = Geometry {
///     rank: 1, input: [1, 3], channels: 1, output: [1, 2], filters: 1, kernel: [1, 2],
///     strides: [1, 1], dilation: [1, 1], padding: [0, 0], groups: 1, channels_first: false,
///     depthwise: false,
/// };
/// let conv = Conv::baked(geometry, &[1.0, 10.0], None);
/// let mut y = [0.0; 2];
/// conv.forward(&[1.0, 2.0, 3.0], &mut y);
/// assert_eq!(y, [21.0, 32.0]);
/// ```
#[derive(Debug, Clone)]
pub struct Conv {
    /// Keras's kernel, row-major in its Keras shape.
    pub kernel: Param<[f32]>,
    /// One value per filter; `None` when the layer has no bias (`use_bias = False`).
    pub bias: Option<Param<[f32]>>,
    geometry: Geometry,
}

impl Conv {
    /// A layer initialised from `seed`: the kernel draws from stream `first_weight`, the
    /// bias from the next one (see [`weight_rng`]), with fans computed from Keras's kernel
    /// shape.
    #[cfg(feature = "alloc")]
    pub fn new(
        geometry: Geometry,
        use_bias: bool,
        kernel_initializer: Initializer,
        bias_initializer: Initializer,
        seed: u64,
        first_weight: usize,
    ) -> Self {
        debug_assert!(geometry.groups > 0 && geometry.channels.is_multiple_of(geometry.groups));
        debug_assert!(geometry.filters.is_multiple_of(geometry.groups));
        let (shape, rank) = geometry.kernel_shape();
        let mut kernel = vec![0.0; geometry.kernel_len()];
        kernel_initializer.fill(
            &mut kernel,
            &shape[..rank],
            &mut weight_rng(seed, first_weight),
        );
        let bias = use_bias.then(|| {
            let mut bias = vec![0.0; geometry.filters];
            bias_initializer.fill(
                &mut bias,
                &[geometry.filters],
                &mut weight_rng(seed, first_weight + 1),
            );
            Param::heap(&bias[..])
        });
        Conv {
            kernel: Param::heap(&kernel[..]),
            bias,
            geometry,
        }
    }

    /// A layer whose weights stay in static memory (a model's `pretrained()`).
    pub const fn baked(
        geometry: Geometry,
        kernel: &'static [f32],
        bias: Option<&'static [f32]>,
    ) -> Self {
        Conv {
            kernel: Param::baked(kernel),
            bias: match bias {
                Some(bias) => Some(Param::baked(bias)),
                None => None,
            },
            geometry,
        }
    }

    /// The layer's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// One timestep of a channels-last causal `Conv1D` with stride 1 (or any `Conv1D` whose
    /// kernel spans one timestep), for streaming: `x` is this timestep's `channels` values,
    /// `history` the `(span - 1) * channels` values of the timesteps before it, oldest first
    /// (zeros at the start of a sequence, Keras's causal padding), with `span =
    /// (kernel - 1) * dilation + 1`. Writes the `filters` outputs into `y`, then shifts `x`
    /// into `history`. Allocates nothing.
    ///
    /// ```
    /// use kiln_runtime::layers::conv::{Conv, Geometry};
    /// // Keras: Conv1D(1, 2, padding = "causal"), kernel [[[1]], [[10]]], no bias.
    /// let geometry = Geometry {
    ///     rank: 1, input: [1, 3], channels: 1, output: [1, 3], filters: 1, kernel: [1, 2],
    ///     strides: [1, 1], dilation: [1, 1], padding: [0, 1], groups: 1,
    ///     channels_first: false, depthwise: false,
    /// };
    /// let conv = Conv::baked(geometry, &[1.0, 10.0], None);
    /// let (mut history, mut y) = ([0.0], [0.0]);
    /// let steps: Vec<f32> = [1.0, 2.0, 3.0].iter().map(|x| {
    ///     conv.step(&[*x], &mut history, &mut y);
    ///     y[0]
    /// }).collect();
    /// assert_eq!(steps, [10.0, 21.0, 32.0]);
    /// ```
    pub fn step(&self, x: &[f32], history: &mut [f32], y: &mut [f32]) {
        let g = &self.geometry;
        let (channels, filters, groups) = (g.channels, g.filters, g.groups.max(1));
        let (per_group, outs) = (channels / groups, filters / groups);
        let dilation = g.dilation[1];
        let kernel: &[f32] = &self.kernel;
        let y = &mut y[..filters];
        match &self.bias {
            Some(bias) => y.copy_from_slice(&bias[..filters]),
            None => y.fill(0.0),
        }
        let rows = history.len() / channels.max(1);
        for tap in 0..g.kernel[1] {
            // Tap `tap` reads the timestep `(kernel - 1 - tap) * dilation` before this one.
            let row = tap * dilation;
            let source = if row == rows {
                &x[..channels]
            } else {
                &history[row * channels..(row + 1) * channels]
            };
            let block = &kernel[tap * per_group * filters..(tap + 1) * per_group * filters];
            for group in 0..groups {
                let ys = &mut y[group * outs..(group + 1) * outs];
                let xs = &source[group * per_group..(group + 1) * per_group];
                for (c, &v) in xs.iter().enumerate() {
                    let w = &block[c * filters + group * outs..c * filters + (group + 1) * outs];
                    for (out, w) in ys.iter_mut().zip(w) {
                        *out += v * w;
                    }
                }
            }
        }
        if rows > 0 {
            history.copy_within(channels.., 0);
            history[(rows - 1) * channels..].copy_from_slice(&x[..channels]);
        }
    }

    /// The convolution plus bias of whole samples: `x` holds any number of input samples
    /// (row-major in the Keras input shape), `y` as many output samples, every value of which
    /// is overwritten. Allocates nothing: a channels-first layer uses an 8 KiB stack tile.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let g = &self.geometry;
        let (n_in, n_out) = (g.input_len(), g.output_len());
        if n_in == 0 || n_out == 0 {
            return;
        }
        debug_assert_eq!(x.len() / n_in, y.len() / n_out);
        for (xs, ys) in x.chunks_exact(n_in).zip(y.chunks_exact_mut(n_out)) {
            if g.channels_first {
                self.forward_channels_first(xs, ys);
            } else {
                self.forward_channels_last(xs, ys);
            }
        }
    }

    /// One channels-last sample: `y` starts as the bias, then every kernel tap adds its
    /// product for each output row.
    fn forward_channels_last(&self, x: &[f32], y: &mut [f32]) {
        let g = &self.geometry.folded();
        let f = g.filters;
        let (kw, ow, iw, c) = (g.kernel[1], g.output[1], g.input[1], g.channels);
        if g.per_channel() {
            // An output row is a filters x columns tile in place.
            for (row, out) in y.chunks_exact_mut(ow * f).enumerate() {
                self.tile(x, row, (0, ow), (0, f), out, (1, f));
            }
            return;
        }
        match &self.bias {
            Some(bias) => y.chunks_exact_mut(f).for_each(|p| p.copy_from_slice(bias)),
            None => y.fill(0.0),
        }
        let (cg, fg) = (g.channels / g.groups, f / g.groups);
        let (step, interior) = (g.strides[1] * c, g.interior());
        for ky in 0..g.kernel[0] {
            let (r0, r1) = g.span(0, ky);
            for row in r0..r1 {
                let in_row = g.source(0, row, ky) * iw;
                if let Some((a0, a1)) = interior {
                    // The row's taps at once where all of them meet the input: (tap, channel)
                    // pairs run contiguously in both the kernel and the input.
                    gemm(
                        1.0,
                        &self.kernel[ky * kw * c * f..],
                        strided(f, kw * c, 1, f),
                        &x[(in_row + g.source(1, a0, 0)) * c..],
                        strided(kw * c, a1 - a0, 1, step),
                        1.0,
                        &mut y[(row * ow + a0) * f..],
                        strided(f, a1 - a0, 1, f),
                    );
                }
                for kx in 0..kw {
                    let tap = (ky * kw + kx) * cg * f;
                    for (c0, c1) in g.pieces(kx, interior) {
                        let start = (in_row + g.source(1, c0, kx)) * c;
                        for group in 0..g.groups {
                            gemm(
                                1.0,
                                &self.kernel[tap + group * fg..],
                                strided(fg, cg, 1, f),
                                &x[start + group * cg..],
                                strided(cg, c1 - c0, 1, step),
                                1.0,
                                &mut y[(row * ow + c0) * f + group * fg..],
                                strided(fg, c1 - c0, 1, f),
                            );
                        }
                    }
                }
            }
        }
    }

    /// One channels-first sample: each output row (in tiles of at most [`TILE`] values) is
    /// collected filters-by-columns on the stack by [`Conv::tile`], then written to its
    /// filters' planes.
    fn forward_channels_first(&self, x: &[f32], y: &mut [f32]) {
        if self.forward_channels_first_patches(x, y) {
            return;
        }
        let g = &self.geometry;
        let f = g.filters;
        let cg = g.channels / g.groups;
        let [oh, ow] = g.output;
        let mut tile = [0.0f32; TILE];
        // A column-major tile is transposed into the tile's other half (below).
        let room = if cg == 1 { TILE } else { TILE / 2 };
        let cols = (room / f).clamp(1, ow);
        let rows = (room / cols).min(f);
        for row in 0..oh {
            for o0 in (0..ow).step_by(cols) {
                let o1 = (o0 + cols).min(ow);
                for f0 in (0..f).step_by(rows) {
                    let fl = rows.min(f - f0);
                    let n = o1 - o0;
                    let (t, spare) = tile.split_at_mut(fl * n);
                    if cg == 1 {
                        // Row-major: each filter's run of columns is copied whole.
                        self.tile(x, row, (o0, o1), (f0, f0 + fl), t, (n, 1));
                        for (k, values) in t.chunks_exact(n).enumerate() {
                            let at = (f0 + k) * oh * ow + row * ow + o0;
                            y[at..at + n].copy_from_slice(values);
                        }
                        continue;
                    }
                    self.tile(x, row, (o0, o1), (f0, f0 + fl), t, (1, fl));
                    // Filters' planes lie `oh * ow` apart, so storing a column across them
                    // sends every store to one cache set (4x slower at (3, 32, 32) ->
                    // (64, 32, 32), BENCHMARKS.md): transposed first, each filter's run of
                    // columns is copied whole.
                    let u = &mut spare[..fl * n];
                    crate::gemm::transpose(t, fl, n, u);
                    for (k, values) in u.chunks_exact(n).enumerate() {
                        let at = (f0 + k) * oh * ow + row * ow + o0;
                        y[at..at + n].copy_from_slice(values);
                    }
                }
            }
        }
    }

    /// One channels-first sample of a one-group layer as im2col in stack tiles: the patches
    /// of a run of output positions (`kh * kw * channels` values each, the kernel's order)
    /// are gathered into one tile, one product with the whole kernel gives every filter at
    /// those positions, and each filter's run is copied to its plane. One product of depth
    /// `kh * kw * channels` per run, where the tap-by-tap path makes one product of depth
    /// `channels` per tap and row: 1.5-1.8x faster for the few channels of a first layer
    /// (BENCHMARKS.md, C2). Returns `false`, computing nothing, where the tiles would hold
    /// fewer than 16 positions (deep inputs, many filters): the tap-by-tap path is better
    /// there.
    fn forward_channels_first_patches(&self, x: &[f32], y: &mut [f32]) -> bool {
        /// Values of each of the two stack tiles (16 KiB each).
        const ROOM: usize = 2 * TILE;
        let g = &self.geometry;
        let [ih, iw] = g.input;
        let [oh, ow] = g.output;
        let (f, c, [kh, kw]) = (g.filters, g.channels, g.kernel);
        let depth = kh * kw * c;
        let positions = oh * ow;
        let run = (ROOM / depth.max(1)).min(ROOM / f.max(1)).min(positions);
        if g.groups != 1 || run < positions.min(16) {
            return false;
        }
        let mut patches = [0.0f32; ROOM];
        let mut out = [0.0f32; ROOM];
        for p0 in (0..positions).step_by(run) {
            let n = run.min(positions - p0);
            let patches = &mut patches[..depth * n];
            // Row `(ky * kw + kx) * c + ch` of the patch matrix (row-major, `n` columns): the
            // input values that tap and channel meets at positions p0.., zero in the padding.
            for ky in 0..kh {
                let rows = g.span(0, ky);
                for kx in 0..kw {
                    let cols = g.span(1, kx);
                    for ch in 0..c {
                        let k = (ky * kw + kx) * c + ch;
                        let dst = &mut patches[k * n..(k + 1) * n];
                        let plane = &x[ch * ih * iw..(ch + 1) * ih * iw];
                        let mut p = p0;
                        while p < p0 + n {
                            let (row, col) = (p / ow, p % ow);
                            let end = (p0 + n).min((row + 1) * ow);
                            let dst = &mut dst[p - p0..end - p0];
                            if !(rows.0..rows.1).contains(&row) {
                                dst.fill(0.0);
                                p = end;
                                continue;
                            }
                            let in_row = &plane[g.source(0, row, ky) * iw..][..iw];
                            // Columns `lo..hi` of this row meet the input; the rest is padding.
                            let (lo, hi) = (
                                cols.0.clamp(col, col + dst.len()),
                                cols.1.clamp(col, col + dst.len()),
                            );
                            let (before, rest) = dst.split_at_mut(lo - col);
                            let (inside, after) = rest.split_at_mut(hi.max(lo) - lo);
                            before.fill(0.0);
                            after.fill(0.0);
                            if lo < hi {
                                let start = g.source(1, lo, kx);
                                let stride = g.strides[1];
                                for (j, v) in inside.iter_mut().enumerate() {
                                    *v = in_row[start + j * stride];
                                }
                            }
                            p = end;
                        }
                    }
                }
            }
            let out = &mut out[..f * n];
            gemm(
                1.0,
                &self.kernel,
                strided(f, depth, 1, f),
                patches,
                strided(depth, n, n, 1),
                0.0,
                out,
                strided(f, n, n, 1),
            );
            for (k, values) in out.chunks_exact(n).enumerate() {
                let b = self.bias.as_ref().map_or(0.0, |bias| bias[k]);
                let plane = &mut y[k * positions + p0..k * positions + p0 + n];
                for (v, &value) in plane.iter_mut().zip(values.iter()) {
                    *v = value + b;
                }
            }
        }
        true
    }

    /// Output row `row`, columns `o0..o1` and filters `f0..f1` of one sample `x` (in the
    /// layer's data format, read in place), bias included, written to `t`: the value of
    /// filter `k`, column `j` at `(k - f0) * steps.0 + (j - o0) * steps.1` (a dense tile,
    /// column- or row-major). The kernel of `Conv`'s channels-first forward pass and of
    /// `SeparableConv`'s fused one.
    pub(crate) fn tile(
        &self,
        x: &[f32],
        row: usize,
        (o0, o1): (usize, usize),
        (f0, f1): (usize, usize),
        t: &mut [f32],
        (fs, ps): (usize, usize),
    ) {
        let g = &self.geometry;
        if o0 >= o1 || f0 >= f1 {
            return;
        }
        let f = g.filters;
        let (cg, fg) = (g.channels / g.groups, f / g.groups);
        for k in f0..f1 {
            let b = self.bias.as_ref().map_or(0.0, |bias| bias[k]);
            for j in 0..o1 - o0 {
                t[(k - f0) * fs + j * ps] = b;
            }
        }
        let [ih, iw] = g.input;
        // The input's steps between channels and between positions.
        let (channel_step, position) = if g.channels_first {
            (ih * iw, 1)
        } else {
            (1, g.channels)
        };
        let column_step = g.strides[1] * position;
        for ky in 0..g.kernel[0] {
            let (r0, r1) = g.span(0, ky);
            if !(r0..r1).contains(&row) {
                continue;
            }
            let in_row = g.source(0, row, ky) * iw;
            for kx in 0..g.kernel[1] {
                let (c0, c1) = g.span(1, kx);
                let (lo, hi) = (c0.max(o0), c1.min(o1));
                if lo >= hi {
                    continue;
                }
                let tap = (ky * g.kernel[1] + kx) * cg * f;
                let start = (in_row + g.source(1, lo, kx)) * position;
                let out = (lo - o0) * ps;
                if cg == 1 {
                    // One input channel per group (depthwise): products, not matrix products.
                    per_channel_tap(
                        &self.kernel[tap + f0..tap + f1],
                        (f0, fg),
                        &x[start..],
                        (channel_step, column_step),
                        &mut t[out..],
                        (fs, ps),
                        hi - lo,
                    );
                    continue;
                }
                for group in f0 / fg..=(f1 - 1) / fg {
                    let (fa, fb) = (f0.max(group * fg), f1.min((group + 1) * fg));
                    let x = &x[start + group * cg * channel_step..];
                    let t = &mut t[out + (fa - f0) * fs..];
                    gemm(
                        1.0,
                        &self.kernel[tap + fa..],
                        strided(fb - fa, cg, 1, f),
                        x,
                        strided(cg, hi - lo, channel_step, column_step),
                        1.0,
                        t,
                        strided(fb - fa, hi - lo, fs, ps),
                    );
                }
            }
        }
    }

    /// The convolution's adjoint (its transpose), without bias, added to `x`: for each
    /// sample, `x[p, c] += Σ kernel[tap, c, f] · z[o, f]` over the output positions `o` and
    /// taps that read input position `p` — the input gradient for an output gradient `z`, and
    /// Keras's `Conv2DTranspose` (see `conv_transpose.rs`). `z` holds whole output samples,
    /// `x` as many input samples. Allocates nothing: channels-first data goes through an
    /// 8 KiB stack tile.
    pub fn adjoint_add(&self, z: &[f32], x: &mut [f32]) {
        let g = &self.geometry;
        let (n_in, n_out) = (g.input_len(), g.output_len());
        if n_in == 0 || n_out == 0 {
            return;
        }
        debug_assert_eq!(x.len() / n_in, z.len() / n_out);
        for (zs, xs) in z.chunks_exact(n_out).zip(x.chunks_exact_mut(n_in)) {
            self.adjoint_sample(zs, xs);
        }
    }

    /// [`Conv::adjoint_add`] of one sample: per output row, tap and group,
    /// `X_shifted += W_tapᵀ · Z_row`, with `W_tapᵀ` read in place.
    fn adjoint_sample(&self, z: &[f32], x: &mut [f32]) {
        let g = &self.geometry;
        let f = g.filters;
        let (cg, fg) = (g.channels / g.groups, f / g.groups);
        let ([ih, iw], [oh, ow]) = (g.input, g.output);
        let mut tile = [0.0f32; TILE];
        for ky in 0..g.kernel[0] {
            let (r0, r1) = g.span(0, ky);
            for row in r0..r1 {
                let in_row = g.source(0, row, ky) * iw;
                for kx in 0..g.kernel[1] {
                    let (c0, c1) = g.span(1, kx);
                    if c0 >= c1 {
                        continue;
                    }
                    let tap = (ky * g.kernel[1] + kx) * cg * f;
                    for group in 0..g.groups {
                        // The tap's `channels / groups x filters / groups` block, row-major.
                        let w = &self.kernel[tap + group * fg..];
                        if !g.channels_first {
                            let c = g.channels;
                            gemm(
                                1.0,
                                w,
                                strided(cg, fg, f, 1),
                                &z[(row * ow + c0) * f + group * fg..],
                                strided(fg, c1 - c0, 1, f),
                                1.0,
                                &mut x[(in_row + g.source(1, c0, kx)) * c + group * cg..],
                                strided(cg, c1 - c0, 1, g.strides[1] * c),
                            );
                            continue;
                        }
                        // Channels first: the products of a run of columns and channels in a
                        // row-major stack tile, then added to every `stride`-th value of the
                        // channels' rows.
                        let cols = (TILE / cg).clamp(1, c1 - c0);
                        let chans = (TILE / cols).min(cg);
                        for a0 in (c0..c1).step_by(cols) {
                            let n = cols.min(c1 - a0);
                            for ch0 in (0..cg).step_by(chans) {
                                let cl = chans.min(cg - ch0);
                                let t = &mut tile[..cl * n];
                                gemm(
                                    1.0,
                                    &w[ch0 * f..],
                                    strided(cl, fg, f, 1),
                                    &z[group * fg * oh * ow + row * ow + a0..],
                                    strided(fg, n, oh * ow, 1),
                                    0.0,
                                    t,
                                    strided(cl, n, n, 1),
                                );
                                for (ci, values) in t.chunks_exact(n).enumerate() {
                                    let plane = (group * cg + ch0 + ci) * ih * iw + in_row;
                                    for (j, v) in values.iter().enumerate() {
                                        x[plane + g.source(1, a0 + j, kx)] += v;
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

#[cfg(feature = "alloc")]
impl Conv {
    /// The backward pass on whole samples: `x` is the forward input, `dz` the loss gradient
    /// with respect to the convolution's output (before the activation). Adds the kernel's
    /// gradient (Keras's layout) into `grad_kernel` and, with a bias, `Σ dz` per filter into
    /// `grad_bias`; when `dx` is given, overwrites it with the gradient with respect to `x`.
    ///
    /// Channels-first data is transposed to channels-last through buffers of `pool` (taken
    /// and given back, so a warmed-up training step allocates nothing).
    pub fn backward(
        &self,
        x: &[f32],
        dz: &[f32],
        dx: Option<&mut [f32]>,
        grad_kernel: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        pool: &mut Pool,
    ) {
        let g = &self.geometry.folded();
        let (n_in, n_out) = (g.input_len(), g.output_len());
        if n_in == 0 || n_out == 0 {
            return;
        }
        if let Some(grad_bias) = grad_bias {
            add_bias_gradient(dz, g.output, g.channels_first, grad_bias);
        }
        // The input gradient multiplies by each tap's kernel transposed: transposed once
        // here, the products run on the outer-product kernel (as `Dense` does for its
        // input gradient).
        let (cg, f) = (g.channels / g.groups, g.filters);
        let kernel_t = (dx.is_some() && !g.per_channel()).then(|| {
            let mut t = pool.take_vec_to_overwrite(self.kernel.len());
            for (tap, tap_t) in self
                .kernel
                .chunks_exact(cg * f)
                .zip(t.chunks_exact_mut(cg * f))
            {
                crate::gemm::transpose(tap, f, cg, tap_t);
            }
            t
        });
        let kt = kernel_t.as_deref().unwrap_or(&[]);
        if !g.channels_first {
            self.backward_channels_last(g, x, dz, dx.map(|dx| (dx, kt)), grad_kernel);
        } else {
            self.backward_channels_first(x, dz, dx.map(|dx| (dx, kt)), grad_kernel, pool);
        }
        if let Some(t) = kernel_t {
            pool.give_vec(t);
        }
    }

    /// [`Conv::backward`] of channels-first data, through channels-last copies in `pool`: a
    /// channels-first sample, (channels, positions) row-major, is a column-major positions x
    /// channels matrix, and its transpose is the channels-last sample.
    fn backward_channels_first(
        &self,
        x: &[f32],
        dz: &[f32],
        dx: Option<(&mut [f32], &[f32])>,
        grad_kernel: &mut [f32],
        pool: &mut Pool,
    ) {
        let g = &self.geometry;
        let (n_in, n_out) = (g.input_len(), g.output_len());
        let samples = x.len() / n_in;
        let mut x_last = pool.take_vec_to_overwrite(x.len());
        let mut dz_last = pool.take_vec_to_overwrite(dz.len());
        let (in_plane, out_plane) = (g.input[0] * g.input[1], g.output[0] * g.output[1]);
        for s in 0..samples {
            crate::gemm::transpose(
                &x[s * n_in..(s + 1) * n_in],
                in_plane,
                g.channels,
                &mut x_last[s * n_in..(s + 1) * n_in],
            );
            crate::gemm::transpose(
                &dz[s * n_out..(s + 1) * n_out],
                out_plane,
                g.filters,
                &mut dz_last[s * n_out..(s + 1) * n_out],
            );
        }
        let last = g.channels_last();
        match dx {
            Some((dx, kernel_t)) => {
                let mut dx_last = pool.take_vec_to_overwrite(dx.len());
                self.backward_channels_last(
                    &last,
                    &x_last,
                    &dz_last,
                    Some((&mut dx_last, kernel_t)),
                    grad_kernel,
                );
                for s in 0..samples {
                    crate::gemm::transpose(
                        &dx_last[s * n_in..(s + 1) * n_in],
                        g.channels,
                        in_plane,
                        &mut dx[s * n_in..(s + 1) * n_in],
                    );
                }
                pool.give_vec(dx_last);
            }
            None => self.backward_channels_last(&last, &x_last, &dz_last, None, grad_kernel),
        }
        pool.give_vec(x_last);
        pool.give_vec(dz_last);
    }

    /// The kernel gradient and input gradient of channels-last data (`g` is the layer's
    /// geometry as channels-last): per sample, output row, kernel tap and group,
    /// `dW_tap += dZ_row · X_shiftedᵀ` and `dX_shifted += W_tapᵀ · dZ_row`. `dx` comes with
    /// the kernel with each tap's block transposed (`channels / groups x filters`,
    /// column-major).
    fn backward_channels_last(
        &self,
        g: &Geometry,
        x: &[f32],
        dz: &[f32],
        mut dx: Option<(&mut [f32], &[f32])>,
        grad_kernel: &mut [f32],
    ) {
        let (n_in, n_out) = (g.input_len(), g.output_len());
        let f = g.filters;
        let (cg, fg) = (g.channels / g.groups, f / g.groups);
        let (kw, ow, iw, c) = (g.kernel[1], g.output[1], g.input[1], g.channels);
        let (step, interior) = (g.strides[1] * c, g.interior());
        if let Some((dx, _)) = dx.as_mut() {
            dx.fill(0.0);
        }
        for (s, (xs, dzs)) in x.chunks_exact(n_in).zip(dz.chunks_exact(n_out)).enumerate() {
            for ky in 0..g.kernel[0] {
                let (r0, r1) = g.span(0, ky);
                for row in r0..r1 {
                    let in_row = g.source(0, row, ky) * iw;
                    if let Some((a0, a1)) = interior {
                        // The kernel row's gradient at once, as in the forward pass.
                        gemm(
                            1.0,
                            &dzs[(row * ow + a0) * f..],
                            strided(f, a1 - a0, 1, f),
                            &xs[(in_row + g.source(1, a0, 0)) * c..],
                            strided(a1 - a0, kw * c, step, 1),
                            1.0,
                            &mut grad_kernel[ky * kw * c * f..],
                            strided(f, kw * c, 1, f),
                        );
                    }
                    for kx in 0..kw {
                        let tap = (ky * kw + kx) * cg * f;
                        if g.per_channel() {
                            // Depthwise: each channel's `fg` filters see that channel alone.
                            let (c0, c1) = g.span(1, kx);
                            let k = &self.kernel[tap..tap + f];
                            for o in c0..c1 {
                                let at = (in_row + g.source(1, o, kx)) * c;
                                let d = &dzs[(row * ow + o) * f..(row * ow + o + 1) * f];
                                if fg == 1 {
                                    let gk = grad_kernel[tap..tap + f].iter_mut();
                                    for ((a, v), b) in gk.zip(&xs[at..at + c]).zip(d) {
                                        *a += v * b;
                                    }
                                    if let Some((dx, _)) = dx.as_mut() {
                                        let dxs = dx[s * n_in + at..s * n_in + at + c].iter_mut();
                                        for ((v, w), b) in dxs.zip(k).zip(d) {
                                            *v += w * b;
                                        }
                                    }
                                    continue;
                                }
                                let gk = grad_kernel[tap..tap + f].chunks_exact_mut(fg);
                                for ((gk, d), v) in gk.zip(d.chunks_exact(fg)).zip(&xs[at..]) {
                                    for (a, b) in gk.iter_mut().zip(d) {
                                        *a += v * b;
                                    }
                                }
                                if let Some((dx, _)) = dx.as_mut() {
                                    let dxs = &mut dx[s * n_in + at..s * n_in + at + c];
                                    let pairs = k.chunks_exact(fg).zip(d.chunks_exact(fg));
                                    for (v, (k, d)) in dxs.iter_mut().zip(pairs) {
                                        *v += k.iter().zip(d).map(|(a, b)| a * b).sum::<f32>();
                                    }
                                }
                            }
                            continue;
                        }
                        for (c0, c1) in g.pieces(kx, interior) {
                            let start = (in_row + g.source(1, c0, kx)) * c;
                            for group in 0..g.groups {
                                gemm(
                                    1.0,
                                    &dzs[(row * ow + c0) * f + group * fg..],
                                    strided(fg, c1 - c0, 1, f),
                                    &xs[start + group * cg..],
                                    strided(c1 - c0, cg, step, 1),
                                    1.0,
                                    &mut grad_kernel[tap + group * fg..],
                                    strided(fg, cg, 1, f),
                                );
                            }
                        }
                        // The input gradient tap by tap: merged taps would overlap in `dx`.
                        let Some((dx, kernel_t)) = dx.as_mut() else {
                            continue;
                        };
                        let (c0, c1) = g.span(1, kx);
                        if c0 >= c1 {
                            continue;
                        }
                        let start = (in_row + g.source(1, c0, kx)) * c;
                        for group in 0..g.groups {
                            gemm(
                                1.0,
                                &kernel_t[tap + group * fg * cg..],
                                strided(cg, fg, 1, cg),
                                &dzs[(row * ow + c0) * f + group * fg..],
                                strided(fg, c1 - c0, 1, f),
                                1.0,
                                &mut dx[s * n_in + start + group * cg..],
                                strided(cg, c1 - c0, 1, step),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Adds `Σ dz` per channel to `grad_bias` (one value per channel), over whole samples of
/// spatial size `spatial`: every `channels`-th value (channels last), or one plane per
/// channel (channels first).
#[cfg(feature = "alloc")]
pub(crate) fn add_bias_gradient(
    dz: &[f32],
    spatial: [usize; 2],
    channels_first: bool,
    grad_bias: &mut [f32],
) {
    let (plane, channels) = (spatial[0] * spatial[1], grad_bias.len());
    if plane == 0 || channels == 0 {
        return;
    }
    for sample in dz.chunks_exact(plane * channels) {
        if channels_first {
            for (b, values) in grad_bias.iter_mut().zip(sample.chunks_exact(plane)) {
                *b += values.iter().sum::<f32>();
            }
        } else {
            for position in sample.chunks_exact(channels) {
                for (b, d) in grad_bias.iter_mut().zip(position) {
                    *b += d;
                }
            }
        }
    }
}

/// One kernel tap of a convolution with one input channel per group of `fg` filters (a
/// depthwise one): `t[i * fs + j * ps] += x[c * cs + j * xs] · k[i]` for the filters
/// `f0 + i` of `k`, `c = (f0 + i) / fg` their channel, and the columns `j < n`. The tile `t`
/// is dense (`fs == 1` or `ps == 1`): the loops run along its contiguous axis, and along the
/// input's channels where those are contiguous too (channels last, one filter per channel).
fn per_channel_tap(
    k: &[f32],
    (f0, fg): (usize, usize),
    x: &[f32],
    (cs, xs): (usize, usize),
    t: &mut [f32],
    (fs, ps): (usize, usize),
    n: usize,
) {
    let filters = k.len();
    if fs == 1 {
        for j in 0..n {
            let (tj, xj) = (&mut t[j * ps..j * ps + filters], &x[j * xs..]);
            if fg == 1 && cs == 1 {
                for ((tv, xv), w) in tj.iter_mut().zip(&xj[f0..f0 + filters]).zip(k) {
                    *tv += xv * w;
                }
            } else if f0.is_multiple_of(fg) && filters.is_multiple_of(fg) && cs == 1 {
                // Whole channels, contiguous: each one's `fg` filters take its one value
                // (unrolled for the usual multipliers).
                let xc = &xj[f0 / fg..];
                match fg {
                    2 => whole_channels::<2>(tj, k, xc),
                    3 => whole_channels::<3>(tj, k, xc),
                    4 => whole_channels::<4>(tj, k, xc),
                    _ => {
                        let channels = tj.chunks_exact_mut(fg).zip(k.chunks_exact(fg));
                        for ((tc, kc), v) in channels.zip(xc) {
                            for (tv, w) in tc.iter_mut().zip(kc) {
                                *tv += v * w;
                            }
                        }
                    }
                }
            } else {
                // Channel by channel: the run of its filters that lies in `f0..`.
                let mut i = 0;
                while i < filters {
                    let c = (f0 + i) / fg;
                    let end = ((c + 1) * fg - f0).min(filters);
                    let v = xj[c * cs];
                    for (tv, w) in tj[i..end].iter_mut().zip(&k[i..end]) {
                        *tv += v * w;
                    }
                    i = end;
                }
            }
        }
    } else {
        debug_assert_eq!(ps, 1, "a tile is dense");
        for (i, w) in k.iter().enumerate() {
            let (ti, xi) = (&mut t[i * fs..i * fs + n], &x[(f0 + i) / fg * cs..]);
            if xs == 1 {
                for (tv, xv) in ti.iter_mut().zip(xi) {
                    *tv += xv * w;
                }
            } else {
                for (tv, xv) in ti.iter_mut().zip(xi.iter().step_by(xs)) {
                    *tv += xv * w;
                }
            }
        }
    }
}

/// `t[c * M + m] += x[c] · k[c * M + m]`: [`per_channel_tap`]'s inner loop for a depth
/// multiplier of `M`, whose fixed length the compiler unrolls.
fn whole_channels<const M: usize>(t: &mut [f32], k: &[f32], x: &[f32]) {
    for ((tc, kc), v) in t.chunks_exact_mut(M).zip(k.chunks_exact(M)).zip(x) {
        for (tv, w) in tc.iter_mut().zip(kc) {
            *tv += v * w;
        }
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

impl Weights for Conv {
    fn weight(&self, index: usize) -> &[f32] {
        match (index, &self.bias) {
            (0, _) => &self.kernel,
            (_, Some(bias)) => bias,
            (_, None) => &[],
        }
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        match (index, &mut self.bias) {
            (0, _) => self.kernel.make_mut(),
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
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.next()).collect()
        }
    }

    /// Keras's output size and leading pad along one axis (JAX's `SAME`: the odd one after).
    fn axis(n: usize, k: usize, s: usize, d: usize, padding: &str) -> (usize, usize) {
        let effective = (k - 1) * d + 1;
        match padding {
            "valid" => ((n - effective) / s + 1, 0),
            "causal" => ((n - 1) / s + 1, effective - 1),
            _ => {
                let out = n.div_ceil(s);
                let total = ((out - 1) * s + effective).saturating_sub(n);
                (out, total / 2)
            }
        }
    }

    /// A geometry from Keras-style arguments (`input` and `kernel` are `[h, w]`).
    #[allow(clippy::too_many_arguments)]
    fn geometry(
        input: [usize; 2],
        channels: usize,
        filters: usize,
        kernel: [usize; 2],
        strides: [usize; 2],
        dilation: [usize; 2],
        padding: &str,
        groups: usize,
        channels_first: bool,
    ) -> Geometry {
        let rank = if input[0] == 1 && kernel[0] == 1 {
            1
        } else {
            2
        };
        let height = if rank == 1 { "valid" } else { padding };
        let (oh, ph) = axis(input[0], kernel[0], strides[0], dilation[0], height);
        let (ow, pw) = axis(input[1], kernel[1], strides[1], dilation[1], padding);
        Geometry {
            rank,
            input,
            channels,
            output: [oh, ow],
            filters,
            kernel,
            strides,
            dilation,
            padding: [ph, pw],
            groups,
            channels_first,
            depthwise: false,
        }
    }

    fn at(g: &Geometry, spatial: [usize; 2], sizes: [usize; 2], c: usize, cs: usize) -> usize {
        if g.channels_first {
            (c * sizes[0] + spatial[0]) * sizes[1] + spatial[1]
        } else {
            (spatial[0] * sizes[1] + spatial[1]) * cs + c
        }
    }

    /// Calls `f(x index, kernel index, y index, filter)` for every product of the
    /// convolution of one sample, straight from the definition.
    fn each_product(g: &Geometry, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (cg, fg) = (g.channels / g.groups, g.filters / g.groups);
        for oy in 0..g.output[0] {
            for ox in 0..g.output[1] {
                for filter in 0..g.filters {
                    let group = filter / fg;
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            let iy = (oy * g.strides[0] + ky * g.dilation[0]) as isize
                                - g.padding[0] as isize;
                            let ix = (ox * g.strides[1] + kx * g.dilation[1]) as isize
                                - g.padding[1] as isize;
                            if iy < 0
                                || ix < 0
                                || iy as usize >= g.input[0]
                                || ix as usize >= g.input[1]
                            {
                                continue;
                            }
                            for ci in 0..cg {
                                let xi = at(
                                    g,
                                    [iy as usize, ix as usize],
                                    g.input,
                                    group * cg + ci,
                                    g.channels,
                                );
                                let ki = ((ky * g.kernel[1] + kx) * cg + ci) * g.filters + filter;
                                let yi = at(g, [oy, ox], g.output, filter, g.filters);
                                f(xi, ki, yi, filter);
                            }
                        }
                    }
                }
            }
        }
    }

    fn layer(g: Geometry, values: &mut Values, use_bias: bool) -> Conv {
        let mut conv = Conv::new(g, use_bias, Initializer::Zeros, Initializer::Zeros, 0, 0);
        conv.weight_mut(0)
            .copy_from_slice(&values.vec(g.kernel_len()));
        if use_bias {
            conv.weight_mut(1).copy_from_slice(&values.vec(g.filters));
        }
        conv
    }

    fn cases() -> Vec<Geometry> {
        let mut cases = Vec::new();
        for cf in [false, true] {
            // Conv1D: valid, same with an even kernel and stride 2, causal with dilation 2,
            // groups 2.
            cases.push(geometry(
                [1, 9],
                3,
                4,
                [1, 3],
                [1, 1],
                [1, 1],
                "valid",
                1,
                cf,
            ));
            cases.push(geometry(
                [1, 10],
                3,
                5,
                [1, 4],
                [1, 2],
                [1, 1],
                "same",
                1,
                cf,
            ));
            cases.push(geometry(
                [1, 11],
                2,
                3,
                [1, 3],
                [1, 1],
                [1, 2],
                "causal",
                1,
                cf,
            ));
            cases.push(geometry(
                [1, 9],
                4,
                6,
                [1, 3],
                [1, 3],
                [1, 1],
                "causal",
                2,
                cf,
            ));
            // Conv2D: odd sizes, strides per axis, dilation, groups, a kernel larger than
            // the input under `same`.
            cases.push(geometry(
                [6, 5],
                3,
                4,
                [3, 3],
                [1, 1],
                [1, 1],
                "valid",
                1,
                cf,
            ));
            cases.push(geometry(
                [7, 6],
                2,
                3,
                [3, 2],
                [2, 2],
                [1, 1],
                "same",
                1,
                cf,
            ));
            cases.push(geometry(
                [7, 7],
                3,
                4,
                [3, 3],
                [1, 1],
                [2, 2],
                "same",
                1,
                cf,
            ));
            cases.push(geometry(
                [5, 4],
                4,
                6,
                [2, 2],
                [1, 2],
                [1, 1],
                "valid",
                2,
                cf,
            ));
            cases.push(geometry(
                [3, 4],
                2,
                2,
                [5, 5],
                [1, 1],
                [1, 1],
                "same",
                1,
                cf,
            ));
            // Depthwise (one channel per group): multipliers 1 and 2, strides with
            // dilation (Keras's depthwise layers allow both), a kernel larger than the input.
            cases.push(geometry(
                [6, 5],
                3,
                3,
                [3, 3],
                [1, 1],
                [1, 1],
                "valid",
                3,
                cf,
            ));
            cases.push(geometry(
                [7, 7],
                3,
                6,
                [3, 2],
                [2, 2],
                [2, 1],
                "same",
                3,
                cf,
            ));
            cases.push(geometry(
                [3, 4],
                2,
                4,
                [4, 5],
                [1, 1],
                [1, 1],
                "same",
                2,
                cf,
            ));
            cases.push(geometry(
                [1, 9],
                4,
                8,
                [1, 3],
                [1, 2],
                [1, 1],
                "causal",
                4,
                cf,
            ));
            // Multipliers 3 (unrolled) and 5.
            cases.push(geometry(
                [5, 6],
                2,
                6,
                [2, 3],
                [1, 1],
                [1, 1],
                "same",
                2,
                cf,
            ));
            cases.push(geometry(
                [4, 5],
                2,
                10,
                [3, 2],
                [1, 2],
                [1, 1],
                "valid",
                2,
                cf,
            ));
            // More filters than a stack tile holds columns of, and several column tiles.
            cases.push(geometry(
                [2, 70],
                2,
                40,
                [1, 3],
                [1, 1],
                [1, 1],
                "same",
                1,
                cf,
            ));
            // Kernels as wide as the input (CREPE's `(k, 1)` on `(n, 1, c)`): computed as a
            // Conv1D over whole rows (`Geometry::folded`), with padding, strides and
            // dilation along the height.
            for (input, kernel, strides, dilation, padding) in [
                ([20, 1], [5, 1], [2, 1], [1, 1], "same"),
                ([9, 3], [3, 3], [1, 1], [2, 1], "valid"),
                ([8, 4], [4, 4], [3, 1], [1, 1], "valid"),
            ] {
                cases.push(geometry(
                    input, 2, 3, kernel, strides, dilation, padding, 1, cf,
                ));
            }
            cases.push(geometry(
                [1, 3],
                1,
                2500,
                [1, 1],
                [1, 1],
                [1, 1],
                "valid",
                1,
                cf,
            ));
        }
        cases
    }

    #[test]
    fn forward_matches_the_definition() {
        let mut values = Values(5);
        for g in cases() {
            for use_bias in [true, false] {
                let conv = layer(g, &mut values, use_bias);
                let samples = 2;
                let x = values.vec(samples * g.input_len());
                let mut y = vec![f32::NAN; samples * g.output_len()];
                conv.forward(&x, &mut y);
                for s in 0..samples {
                    let xs = &x[s * g.input_len()..];
                    let mut expected = vec![0.0f64; g.output_len()];
                    let mut size = vec![0.0f64; g.output_len()];
                    each_product(&g, |xi, ki, yi, _| {
                        let term = f64::from(xs[xi]) * f64::from(conv.kernel[ki]);
                        expected[yi] += term;
                        size[yi] += term.abs();
                    });
                    for (yi, e) in expected.iter_mut().enumerate() {
                        if let Some(bias) = &conv.bias {
                            let f = if g.channels_first {
                                yi / (g.output[0] * g.output[1])
                            } else {
                                yi % g.filters
                            };
                            *e += f64::from(bias[f]);
                        }
                        let got = f64::from(y[s * g.output_len() + yi]);
                        assert!(
                            (got - *e).abs() <= 1e-5 * (size[yi] + 1.0),
                            "{g:?} bias {use_bias}: y[{s}][{yi}] = {got}, expected {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn backward_matches_the_definition() {
        let mut values = Values(9);
        let mut pool = Pool::default();
        for g in cases() {
            let conv = layer(g, &mut values, true);
            let samples = 3;
            let x = values.vec(samples * g.input_len());
            let dz = values.vec(samples * g.output_len());
            let mut dx = vec![f32::NAN; x.len()];
            let mut grad_kernel = vec![0.5f32; g.kernel_len()];
            let mut grad_bias = vec![0.25f32; g.filters];
            conv.backward(
                &x,
                &dz,
                Some(&mut dx),
                &mut grad_kernel,
                Some(&mut grad_bias),
                &mut pool,
            );
            let mut want_dx = vec![0.0f64; x.len()];
            let mut want_kernel = vec![0.5f64; g.kernel_len()];
            let mut want_bias = vec![0.25f64; g.filters];
            for s in 0..samples {
                let (xo, yo) = (s * g.input_len(), s * g.output_len());
                each_product(&g, |xi, ki, yi, _| {
                    want_dx[xo + xi] += f64::from(conv.kernel[ki]) * f64::from(dz[yo + yi]);
                    want_kernel[ki] += f64::from(x[xo + xi]) * f64::from(dz[yo + yi]);
                });
                for yi in 0..g.output_len() {
                    let f = if g.channels_first {
                        yi / (g.output[0] * g.output[1])
                    } else {
                        yi % g.filters
                    };
                    want_bias[f] += f64::from(dz[yo + yi]);
                }
            }
            let check = |what: &str, got: &[f32], want: &[f64]| {
                for (i, (a, b)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (f64::from(*a) - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{g:?}: {what}[{i}] = {a}, expected {b}"
                    );
                }
            };
            check("dx", &dx, &want_dx);
            check("grad_kernel", &grad_kernel, &want_kernel);
            check("grad_bias", &grad_bias, &want_bias);

            // Without the input gradient the weight gradients are the same.
            let mut again = vec![0.5f32; g.kernel_len()];
            conv.backward(&x, &dz, None, &mut again, None, &mut pool);
            check("grad_kernel without dx", &again, &want_kernel);
        }
    }

    #[test]
    fn spans_stop_at_the_padded_borders() {
        // Width 5, kernel 3, `same`: pad 1 before and 1 after.
        let g = geometry([1, 5], 1, 1, [1, 3], [1, 1], [1, 1], "same", 1, false);
        assert_eq!(g.padding, [0, 1]);
        assert_eq!(
            (g.span(1, 0), g.span(1, 1), g.span(1, 2)),
            ((1, 5), (0, 5), (0, 4))
        );
        // Stride 2 on 6 with kernel 4: out 3, total pad (3 - 1) * 2 + 4 - 6 = 2, 1 before.
        let g = geometry([1, 6], 1, 1, [1, 4], [1, 2], [1, 1], "same", 1, false);
        assert_eq!((g.output[1], g.padding[1]), (3, 1));
        assert_eq!(g.span(1, 0), (1, 3));
        assert_eq!(g.span(1, 3), (0, 2));
        // A tap that only meets padding.
        let g = geometry([3, 4], 1, 1, [5, 5], [1, 1], [1, 1], "same", 1, false);
        assert_eq!(g.padding, [2, 2]);
        assert_eq!(g.span(0, 0), (2, 3));
    }
}
