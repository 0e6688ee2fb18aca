//! Keras's `BatchNormalization`: [`BatchNormalization::forward`] normalises with the moving
//! statistics (inference), [`BatchNormalization::train`] with the batch's own statistics
//! (training, which also hands them to the moving averages), and
//! [`BatchNormalization::backward`] is the training pass's gradient, through the batch mean
//! and variance as `jax.grad` takes it.

use super::Weights;
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::math;
use crate::param::Param;
#[cfg(feature = "alloc")]
use alloc::vec;

/// Channels whose scale and shift [`BatchNormalization::forward`] folds at a time, in a
/// stack buffer (a `predict` must not allocate, and a channel count can be large).
const CHUNK: usize = 64;

/// Keras's `backend.epsilon()`, which its masked statistics add to the count of kept values.
#[cfg(feature = "alloc")]
const MASK_EPSILON: f32 = 1e-7;

/// Batch normalization over every axis but `axis` (the batch axis included):
/// `y = gamma * (x - mean) / sqrt(variance + epsilon) + beta`, one `mean`, `variance`,
/// `gamma` and `beta` per index of `axis` (a *channel*).
///
/// In inference (`predict*`), `mean` and `variance` are the moving statistics. In training
/// they are the batch's (the biased variance, `jnp.var`), and each step moves the moving
/// statistics towards them: `moving = moving * momentum + batch * (1 - momentum)` (the trainer
/// applies this after the step, see `kiln::WeightUpdate`). With a Keras mask, training's
/// statistics count only the kept positions (Keras's masked moments); the output is
/// normalised everywhere.
///
/// The arithmetic is Keras's (`ops.batch_normalization` on JAX): `inv = rsqrt(variance +
/// epsilon) * gamma`, then `y = x * inv + (beta - mean * inv)`.
///
/// # Shapes
/// Output shape = input shape, any rank; `axis` counts from 0 within the sample's shape.
///
/// # Weights
/// In Keras's order, each of shape `(channels,)`: `gamma` (when `scale`), `beta` (when
/// `center`), then the non-trainable `moving_mean` and `moving_variance`.
///
/// # Example
/// ```
/// use kiln_runtime::layers::BatchNormalization;
/// use kiln_runtime::Initializer;
///
/// // Two channels on the last axis, moving mean [1, -1] and moving variance [4, 1].
/// let mut bn = BatchNormalization::new(&[2], 0, 0.0, [None, None, None, None], 0, 0);
/// bn.moving_mean.make_mut().copy_from_slice(&[1.0, -1.0]);
/// bn.moving_variance.make_mut().copy_from_slice(&[4.0, 1.0]);
/// let mut x = [3.0, 1.0];
/// bn.forward(&mut x);
/// assert_eq!(x, [1.0, 2.0]); // (3 - 1) / 2, (1 + 1) / 1
/// ```
#[derive(Debug, Clone)]
pub struct BatchNormalization {
    /// The learned scale, one per channel; `None` without `scale`.
    pub gamma: Option<Param<[f32]>>,
    /// The learned offset, one per channel; `None` without `center`.
    pub beta: Option<Param<[f32]>>,
    /// The mean `predict` normalises with (non-trainable).
    pub moving_mean: Param<[f32]>,
    /// The variance `predict` normalises with (non-trainable).
    pub moving_variance: Param<[f32]>,
    shape: &'static [usize],
    axis: usize,
    epsilon: f32,
}

impl BatchNormalization {
    /// A layer for per-sample inputs of `shape` normalising per index of `axis` (from 0
    /// within `shape`). `initializers` are, in Keras's weight order, those of `gamma`, `beta`,
    /// `moving_mean` and `moving_variance`; `None` for `gamma` or `beta` leaves that weight
    /// out (`scale = False`, `center = False`), and `None` for a moving statistic gives
    /// Keras's default (zeros, ones). Each weight present draws from the next stream of
    /// `seed` from `first_weight` on (see [`weight_rng`]).
    #[cfg(feature = "alloc")]
    pub fn new(
        shape: &'static [usize],
        axis: usize,
        epsilon: f32,
        initializers: [Option<Initializer>; 4],
        seed: u64,
        first_weight: usize,
    ) -> Self {
        let channels = shape.get(axis).copied().unwrap_or(1);
        let weight_shape = [channels];
        let mut stream = first_weight;
        let mut make = |initializer: Initializer| {
            let mut values = vec![0.0; channels];
            initializer.fill(&mut values, &weight_shape, &mut weight_rng(seed, stream));
            stream += 1;
            Param::heap(&values[..])
        };
        let [gamma, beta, mean, variance] = initializers;
        let gamma = gamma.map(&mut make);
        let beta = beta.map(&mut make);
        let moving_mean = make(mean.unwrap_or(Initializer::Zeros));
        let moving_variance = make(variance.unwrap_or(Initializer::Ones));
        BatchNormalization {
            gamma,
            beta,
            moving_mean,
            moving_variance,
            shape,
            axis,
            epsilon,
        }
    }

    /// A layer whose weights stay in static memory (a model's `pretrained()`).
    pub const fn baked(
        shape: &'static [usize],
        axis: usize,
        epsilon: f32,
        gamma: Option<&'static [f32]>,
        beta: Option<&'static [f32]>,
        moving_mean: &'static [f32],
        moving_variance: &'static [f32],
    ) -> Self {
        BatchNormalization {
            gamma: match gamma {
                Some(values) => Some(Param::baked(values)),
                None => None,
            },
            beta: match beta {
                Some(values) => Some(Param::baked(values)),
                None => None,
            },
            moving_mean: Param::baked(moving_mean),
            moving_variance: Param::baked(moving_variance),
            shape,
            axis,
            epsilon,
        }
    }

    /// Channels (the length of `axis`) and values per channel run (the product of the axes
    /// after it): a sample is blocks of `channels` runs of `inner` values.
    fn layout(&self) -> (usize, usize) {
        let channels = self.shape.get(self.axis).copied().unwrap_or(1);
        let inner = self
            .shape
            .get(self.axis + 1..)
            .map_or(1, |rest| rest.iter().product());
        (channels, inner)
    }

    /// Inference: normalises `values` (whole samples, row-major in the input shape, one
    /// sample or a batch alike) in place with the moving statistics.
    pub fn forward(&self, values: &mut [f32]) {
        self.normalize(values, &self.moving_mean, &self.moving_variance);
    }

    /// `x * inv + (beta - mean * inv)` with `inv = rsqrt(variance + epsilon) * gamma`, per
    /// channel, folded for [`CHUNK`] channels at a time.
    fn normalize(&self, values: &mut [f32], mean: &[f32], variance: &[f32]) {
        let (channels, inner) = self.layout();
        let block = channels * inner;
        if block == 0 {
            return;
        }
        let mut start = 0;
        while start < channels {
            let end = (start + CHUNK).min(channels);
            let (mut scale, mut shift) = ([0.0f32; CHUNK], [0.0f32; CHUNK]);
            for c in start..end {
                let (inv, res) = self.fold(c, mean[c], variance[c]);
                scale[c - start] = inv;
                shift[c - start] = res;
            }
            let (scale, shift) = (&scale[..end - start], &shift[..end - start]);
            for sample in values.chunks_exact_mut(block) {
                if inner == 1 {
                    for ((v, s), t) in sample[start..end].iter_mut().zip(scale).zip(shift) {
                        *v = *v * s + t;
                    }
                } else {
                    for (run, (s, t)) in sample[start * inner..end * inner]
                        .chunks_exact_mut(inner)
                        .zip(scale.iter().zip(shift))
                    {
                        run.iter_mut().for_each(|v| *v = *v * s + t);
                    }
                }
            }
            start = end;
        }
    }

    /// Channel `c`'s `(inv, res)`: `rsqrt(variance + epsilon) * gamma` and
    /// `-mean * inv + beta`, in Keras's order of operations.
    fn fold(&self, c: usize, mean: f32, variance: f32) -> (f32, f32) {
        let mut inv = rsqrt(variance + self.epsilon);
        if let Some(gamma) = &self.gamma {
            inv *= gamma[c];
        }
        let mut res = -mean * inv;
        if let Some(beta) = &self.beta {
            res += beta[c];
        }
        (inv, res)
    }
}

/// `1 / sqrt(x)`, as XLA's CPU `rsqrt` rounds it (a correctly rounded square root, then a
/// division).
#[inline]
pub(crate) fn rsqrt(x: f32) -> f32 {
    1.0 / math::sqrt(x)
}

/// Training: the buffer [`BatchNormalization::train`] fills and
/// [`BatchNormalization::backward`] reads holds, per channel, these runs of `channels`
/// values.
#[cfg(feature = "alloc")]
mod run {
    pub const MEAN: usize = 0;
    pub const VARIANCE: usize = 1;
    /// The count the statistics divide by (`n`, or the kept values plus `1e-7` with a mask).
    pub const COUNT: usize = 2;
    /// `rsqrt(variance + epsilon)`.
    pub const INV_STD: usize = 3;
    /// The first of the backward pass's three sums: `Σ dy`, `Σ dy * x̂`, `Σ mask * x̂`.
    pub const SUM_DY: usize = 4;
    pub const RUNS: usize = 7;
}

#[cfg(feature = "alloc")]
impl BatchNormalization {
    /// Values of the buffer that [`BatchNormalization::train`] fills and
    /// [`BatchNormalization::backward`] reads (the training pass's cache, from the step's
    /// pool).
    pub fn training_len(&self) -> usize {
        run::RUNS * self.layout().0
    }

    /// Training: computes the batch's mean and (biased) variance per channel over `values`
    /// (whole samples), then normalises `values` in place with them. `mask`, when given,
    /// has one `bool` per position (per last-axis vector, across the batch); only kept
    /// positions count in the statistics, Keras's masked moments:
    /// `mean = Σ m x / (Σ m + 1e-7)`, `variance = Σ m (x - mean)² / (Σ m + 1e-7)`.
    ///
    /// `buffer` has [`BatchNormalization::training_len`] values; afterwards
    /// [`BatchNormalization::batch_mean`] and [`BatchNormalization::batch_variance`] read
    /// the statistics from it, and [`BatchNormalization::backward`] needs it.
    pub fn train(&self, values: &mut [f32], mask: Option<&[bool]>, buffer: &mut [f32]) {
        let (channels, inner) = self.layout();
        let block = channels * inner;
        if block == 0 || buffer.len() < run::RUNS * channels {
            return;
        }
        let last = self.shape.last().copied().unwrap_or(1).max(1);
        let (mean, rest) = buffer.split_at_mut(channels);
        let (variance, rest) = rest.split_at_mut(channels);
        let (count, rest) = rest.split_at_mut(channels);
        let inv_std = &mut rest[..channels];
        mean.fill(0.0);
        variance.fill(0.0);
        match mask {
            None => {
                // `jnp.mean` and `jnp.var`: sums over each channel's values divided by n.
                let n = (values.len() / channels) as f32;
                count.fill(n);
                each_run(values, channels, inner, |_, c, run| {
                    mean[c] += run.iter().sum::<f32>();
                });
                mean.iter_mut().for_each(|m| *m /= n);
                each_run(values, channels, inner, |_, c, run| {
                    let m = mean[c];
                    variance[c] += run.iter().map(|v| (v - m) * (v - m)).sum::<f32>();
                });
                variance.iter_mut().for_each(|v| *v /= n);
            }
            Some(mask) => {
                let kept = |start: usize, j: usize| mask.get((start + j) / last) == Some(&true);
                count.fill(0.0);
                each_run(values, channels, inner, |start, c, run| {
                    for (j, v) in run.iter().enumerate() {
                        if kept(start, j) {
                            mean[c] += v;
                            count[c] += 1.0;
                        }
                    }
                });
                count.iter_mut().for_each(|n| *n += MASK_EPSILON);
                for (m, n) in mean.iter_mut().zip(count.iter()) {
                    *m /= n;
                }
                each_run(values, channels, inner, |start, c, run| {
                    let m = mean[c];
                    for (j, v) in run.iter().enumerate() {
                        if kept(start, j) {
                            variance[c] += (v - m) * (v - m);
                        }
                    }
                });
                for (v, n) in variance.iter_mut().zip(count.iter()) {
                    *v /= n;
                }
            }
        }
        for (r, v) in inv_std.iter_mut().zip(variance.iter()) {
            *r = rsqrt(v + self.epsilon);
        }
        self.normalize(values, mean, variance);
    }

    /// The batch mean per channel from a buffer [`BatchNormalization::train`] filled.
    pub fn batch_mean<'b>(&self, buffer: &'b [f32]) -> &'b [f32] {
        let channels = self.layout().0;
        &buffer[run::MEAN * channels..(run::MEAN + 1) * channels]
    }

    /// The batch variance per channel from a buffer [`BatchNormalization::train`] filled.
    pub fn batch_variance<'b>(&self, buffer: &'b [f32]) -> &'b [f32] {
        let channels = self.layout().0;
        &buffer[run::VARIANCE * channels..(run::VARIANCE + 1) * channels]
    }

    /// The training pass's backward: `x` is the input [`BatchNormalization::train`]
    /// normalised, with the same `mask` and `buffer`; `dy` the gradient with respect to the
    /// output. Adds `Σ dy * x̂` to `grad_gamma` and `Σ dy` to `grad_beta` (per channel, over
    /// the batch; `x̂ = (x - mean) / sqrt(variance + epsilon)`), then, when `input_grad`,
    /// turns `dy` in place into the gradient with respect to `x`, through the batch mean and
    /// variance:
    ///
    /// `dx = r (g - c m (Σ g - c Σ g x̂ Σ m x̂) - c m x̂ Σ g x̂)`, with `g = gamma * dy`,
    /// `r = rsqrt(variance + epsilon)`, `m` the mask (1 without one) and `c` one over the
    /// count the statistics divided by. The `Σ m x̂` term is 0 up to rounding without a mask,
    /// as `jax.grad` also finds.
    pub fn backward(
        &self,
        x: &[f32],
        dy: &mut [f32],
        mask: Option<&[bool]>,
        buffer: &mut [f32],
        (grad_gamma, grad_beta): (Option<&mut [f32]>, Option<&mut [f32]>),
        input_grad: bool,
    ) {
        let (channels, inner) = self.layout();
        if channels * inner == 0 || buffer.len() < run::RUNS * channels {
            return;
        }
        let last = self.shape.last().copied().unwrap_or(1).max(1);
        let keep = |start: usize, j: usize| -> f32 {
            match mask {
                Some(mask) if mask.get((start + j) / last) != Some(&true) => 0.0,
                _ => 1.0,
            }
        };
        let (stats, sums) = buffer.split_at_mut(run::SUM_DY * channels);
        let mean = &stats[run::MEAN * channels..(run::MEAN + 1) * channels];
        let count = &stats[run::COUNT * channels..(run::COUNT + 1) * channels];
        let inv_std = &stats[run::INV_STD * channels..(run::INV_STD + 1) * channels];
        let (sum_dy, sums) = sums.split_at_mut(channels);
        let (sum_dy_xhat, sums) = sums.split_at_mut(channels);
        let sum_xhat = &mut sums[..channels];
        sum_dy.fill(0.0);
        sum_dy_xhat.fill(0.0);
        sum_xhat.fill(0.0);
        each_run(x, channels, inner, |start, c, run| {
            let (m, r) = (mean[c], inv_std[c]);
            let d = &dy[start..start + run.len()];
            for (j, (v, g)) in run.iter().zip(d).enumerate() {
                let xhat = (v - m) * r;
                sum_dy[c] += g;
                sum_dy_xhat[c] += g * xhat;
                sum_xhat[c] += keep(start, j) * xhat;
            }
        });
        if let Some(grad) = grad_gamma {
            grad.iter_mut()
                .zip(sum_dy_xhat.iter())
                .for_each(|(g, s)| *g += s);
        }
        if let Some(grad) = grad_beta {
            grad.iter_mut()
                .zip(sum_dy.iter())
                .for_each(|(g, s)| *g += s);
        }
        if !input_grad {
            return;
        }
        // Per channel, dx = r * (gamma * dy - m * (a + b * x̂)) with a = c (Σ g - c Σ g x̂ Σ m x̂)
        // and b = c Σ g x̂; `sum_dy` and `sum_dy_xhat` become a and b.
        for c in 0..channels {
            let gamma = self.gamma.as_ref().map_or(1.0, |g| g[c]);
            let scale = 1.0 / count[c];
            let (s_g, s_gx) = (gamma * sum_dy[c], gamma * sum_dy_xhat[c]);
            sum_dy[c] = scale * (s_g - scale * s_gx * sum_xhat[c]);
            sum_dy_xhat[c] = scale * s_gx;
        }
        let (a, b) = (&*sum_dy, &*sum_dy_xhat);
        for_each_run_mut(x, dy, channels, inner, |start, c, run, d| {
            let gamma = self.gamma.as_ref().map_or(1.0, |g| g[c]);
            let (m, r) = (mean[c], inv_std[c]);
            for (j, (v, g)) in run.iter().zip(d.iter_mut()).enumerate() {
                let xhat = (v - m) * r;
                *g = r * (gamma * *g - keep(start, j) * (a[c] + b[c] * xhat));
            }
        });
    }
}

/// Calls `f(start, c, run)` for every run of `inner` values of channel `c` in `values`
/// (whole samples of `channels * inner` values), `start` being the run's offset.
#[cfg(feature = "alloc")]
fn each_run(
    values: &[f32],
    channels: usize,
    inner: usize,
    mut f: impl FnMut(usize, usize, &[f32]),
) {
    let block = channels * inner;
    for (b, sample) in values.chunks_exact(block).enumerate() {
        for (c, run) in sample.chunks_exact(inner).enumerate() {
            f(b * block + c * inner, c, run);
        }
    }
}

/// [`each_run`] over `x` with the matching run of `dy`, writable.
#[cfg(feature = "alloc")]
fn for_each_run_mut(
    x: &[f32],
    dy: &mut [f32],
    channels: usize,
    inner: usize,
    mut f: impl FnMut(usize, usize, &[f32], &mut [f32]),
) {
    let block = channels * inner;
    for (b, (xs, ds)) in x
        .chunks_exact(block)
        .zip(dy.chunks_exact_mut(block))
        .enumerate()
    {
        for (c, (run, d)) in xs
            .chunks_exact(inner)
            .zip(ds.chunks_exact_mut(inner))
            .enumerate()
        {
            f(b * block + c * inner, c, run, d);
        }
    }
}

impl Weights for BatchNormalization {
    fn weight(&self, index: usize) -> &[f32] {
        let mut params = [self.gamma.as_ref(), self.beta.as_ref()]
            .into_iter()
            .flatten()
            .chain([&self.moving_mean, &self.moving_variance]);
        match params.nth(index) {
            Some(param) => param,
            None => &[],
        }
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        let mut params = [self.gamma.as_mut(), self.beta.as_mut()]
            .into_iter()
            .flatten()
            .chain([&mut self.moving_mean, &mut self.moving_variance]);
        match params.nth(index) {
            Some(param) => param.make_mut(),
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A layer with gamma, beta and moving statistics set to the given values.
    fn layer(shape: &'static [usize], axis: usize, values: [&[f32]; 4]) -> BatchNormalization {
        let mut bn = BatchNormalization::new(
            shape,
            axis,
            1e-3,
            [
                Some(Initializer::Ones),
                Some(Initializer::Zeros),
                None,
                None,
            ],
            0,
            0,
        );
        for (k, v) in values.iter().enumerate() {
            bn.weight_mut(k).copy_from_slice(v);
        }
        bn
    }

    /// Keras's formula in f64, per element, for a channel function `channel(i)`.
    fn reference(x: &[f32], channel: impl Fn(usize) -> usize, w: [&[f32]; 4]) -> Vec<f32> {
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = channel(i);
                let (g, b, m, s) = (
                    w[0][c] as f64,
                    w[1][c] as f64,
                    w[2][c] as f64,
                    w[3][c] as f64,
                );
                (g * (v as f64 - m) / (s + 1e-3).sqrt() + b) as f32
            })
            .collect()
    }

    #[test]
    fn inference_uses_the_moving_statistics_on_any_axis() {
        let w: [&[f32]; 4] = [
            &[1.5, -0.5, 2.0],
            &[0.1, 0.2, -0.3],
            &[0.5, -1.0, 0.0],
            &[2.0, 0.5, 1.0],
        ];
        let x: Vec<f32> = (0..36).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
        // (2, 3) with axis 1: channel = i % 3; (3, 2) with axis 0: channel = (i / 2) % 3.
        let bn = layer(&[2, 3], 1, w);
        let mut y = x.clone();
        bn.forward(&mut y);
        for (a, b) in y.iter().zip(reference(&x, |i| i % 3, w)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let bn = layer(&[3, 2], 0, w);
        let mut y = x.clone();
        bn.forward(&mut y);
        for (a, b) in y.iter().zip(reference(&x, |i| (i / 2) % 3, w)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn more_channels_than_a_chunk_and_no_scale_or_center() {
        let mut bn = BatchNormalization::new(&[150], 0, 0.0, [None, None, None, None], 0, 0);
        assert_eq!(bn.weight(2), &[] as &[f32], "two weights only");
        let mean: Vec<f32> = (0..150).map(|c| c as f32).collect();
        bn.weight_mut(0).copy_from_slice(&mean);
        bn.weight_mut(1).fill(4.0);
        let mut x: Vec<f32> = mean.iter().map(|m| m + 2.0).collect();
        bn.forward(&mut x);
        assert!(x.iter().all(|v| *v == 1.0), "{x:?}");
    }

    #[test]
    fn training_statistics_are_biased_and_masked_like_keras() {
        let bn = layer(
            &[2, 2],
            1,
            [&[1.0, 1.0], &[0.0, 0.0], &[0.0, 0.0], &[1.0, 1.0]],
        );
        // Two samples of shape (2, 2): channel 0 sees 1, 3, 5, 7 and channel 1 2, 4, 6, 8.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut buffer = vec![0.0; bn.training_len()];
        let mut y = x;
        bn.train(&mut y, None, &mut buffer);
        assert_eq!(bn.batch_mean(&buffer), &[4.0, 5.0]);
        assert_eq!(bn.batch_variance(&buffer), &[5.0, 5.0]);
        // Positions 1 and 2 masked: channel 0 keeps 1, 7; channel 1 keeps 2, 8.
        let mask = [true, false, false, true];
        let mut y = x;
        bn.train(&mut y, Some(&mask), &mut buffer);
        for (got, want) in bn.batch_mean(&buffer).iter().zip([4.0, 5.0]) {
            assert!((got - want).abs() < 1e-5);
        }
        for (got, want) in bn.batch_variance(&buffer).iter().zip([9.0, 9.0]) {
            assert!((got - want).abs() < 1e-5);
        }
        // Masked positions are normalised all the same.
        assert!((y[2] - (3.0 - 4.0) / (9.0f32 + 1e-3).sqrt()).abs() < 1e-5);
    }

    /// `Σ w * train(x)` for the backward check, in f64 over the f32 outputs.
    fn weighted(bn: &BatchNormalization, x: &[f32], w: &[f32], mask: Option<&[bool]>) -> f64 {
        let mut y = x.to_vec();
        let mut buffer = vec![0.0; bn.training_len()];
        bn.train(&mut y, mask, &mut buffer);
        y.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum()
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mask = [true, false, true, true, false, true];
        for (shape, axis, mask) in [
            (&[3usize][..], 0, None),
            (&[2, 3][..], 0, None),
            (&[2, 3][..], 1, Some(&mask[..3])),
            (&[3, 2][..], 0, Some(&mask[..])),
        ] {
            let channels = shape[axis];
            let gamma: Vec<f32> = (0..channels).map(|c| 0.5 + c as f32).collect();
            let beta: Vec<f32> = (0..channels).map(|c| 0.1 * c as f32).collect();
            let bn = layer(
                Box::leak(shape.to_vec().into_boxed_slice()),
                axis,
                [&gamma, &beta, &vec![0.0; channels], &vec![1.0; channels]],
            );
            let len = 4 * shape.iter().product::<usize>();
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3)
                .collect();
            let w: Vec<f32> = (0..len).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.4).collect();
            let positions = len / shape.last().unwrap();
            let mask: Option<Vec<bool>> =
                mask.map(|m| (0..positions).map(|p| m[p % m.len()]).collect());
            let mask = mask.as_deref();
            let mut buffer = vec![0.0; bn.training_len()];
            let mut y = x.clone();
            bn.train(&mut y, mask, &mut buffer);
            let mut dx = w.clone();
            let (mut grad_gamma, mut grad_beta) = (vec![0.0; channels], vec![0.0; channels]);
            bn.backward(
                &x,
                &mut dx,
                mask,
                &mut buffer,
                (Some(&mut grad_gamma), Some(&mut grad_beta)),
                true,
            );
            let eps = 1e-2;
            for k in 0..len {
                let (mut plus, mut minus) = (x.clone(), x.clone());
                plus[k] += eps;
                minus[k] -= eps;
                let numeric = (weighted(&bn, &plus, &w, mask) - weighted(&bn, &minus, &w, mask))
                    / (2.0 * eps as f64);
                assert!(
                    (numeric - dx[k] as f64).abs() < 5e-3,
                    "shape {shape:?} axis {axis} mask {}: dx[{k}] {} vs {numeric}",
                    mask.is_some(),
                    dx[k]
                );
            }
            // Beta's gradient is Σ w per channel.
            let channel = |i: usize| (i / shape[axis + 1..].iter().product::<usize>()) % channels;
            for (c, grad) in grad_beta.iter().enumerate() {
                let sum: f32 = w
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| channel(*i) == c)
                    .map(|(_, v)| v)
                    .sum();
                assert!((grad - sum).abs() < 1e-4);
            }
        }
    }
}
