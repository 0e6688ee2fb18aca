//! Keras's `LayerNormalization`: [`LayerNormalization::forward`] normalises each sample over
//! its normalized axes, [`LayerNormalization::backward`] is the gradient through each group's
//! mean and variance.

use super::batch_normalization::rsqrt;
use super::Weights;
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::param::Param;
#[cfg(feature = "alloc")]
use alloc::vec;

/// Layer normalization: within each sample, every *group* of values that differ only in
/// the normalized axes is normalised by its own mean and (biased) variance,
/// `y = gamma * (x - mean) / sqrt(variance + epsilon) + beta`, with `gamma` and `beta`
/// spanning the normalized axes. The same in training and inference; no batch statistics.
///
/// The arithmetic is Keras's (`ops.layer_normalization` on JAX): `inv = rsqrt(variance +
/// epsilon) * gamma`, then `y = x * inv + (beta - mean * inv)`.
///
/// # Shapes
/// Output shape = input shape, any rank; `axes` are the normalized axes, from 0 within the
/// sample's shape, in increasing order.
///
/// # Weights
/// `gamma` (when `scale`) then `beta` (when `center`), each holding one value per index of
/// the normalized axes, row-major over them in the order they have in the input. (Keras's
/// declared shape lists the axes in the order of their sorted Keras numbers, so negative
/// ones first; the values are laid out as here, since Keras reshapes them to the input's
/// order.)
///
/// # Example
/// ```
/// use kiln_runtime::layers::LayerNormalization;
///
/// // Normalise the last axis of (2, 2): each row separately, epsilon 0.
/// let ln = LayerNormalization::new(&[2, 2], &[1], &[2], 0.0, [None, None], 0, 0);
/// let mut x = [1.0, 3.0, 2.0, 6.0];
/// ln.forward(&mut x);
/// assert_eq!(x, [-1.0, 1.0, -1.0, 1.0]);
/// ```
#[derive(Debug, Clone)]
pub struct LayerNormalization {
    /// The learned scale over the normalized axes; `None` without `scale`.
    pub gamma: Option<Param<[f32]>>,
    /// The learned offset over the normalized axes; `None` without `center`.
    pub beta: Option<Param<[f32]>>,
    shape: &'static [usize],
    axes: &'static [usize],
    epsilon: f32,
}

impl LayerNormalization {
    /// A layer for per-sample inputs of `shape` normalising over `axes` (from 0 within
    /// `shape`, increasing). `initializers` are `gamma`'s and `beta`'s; `None` leaves that
    /// weight out (`scale = False`, `center = False`). `weight_shape` is Keras's declared
    /// shape of both, which initializers that look at fans read. Each weight present draws
    /// from the next stream of `seed` from `first_weight` on (see [`weight_rng`]).
    #[cfg(feature = "alloc")]
    pub fn new(
        shape: &'static [usize],
        axes: &'static [usize],
        weight_shape: &'static [usize],
        epsilon: f32,
        initializers: [Option<Initializer>; 2],
        seed: u64,
        first_weight: usize,
    ) -> Self {
        let len: usize = weight_shape.iter().product();
        let mut stream = first_weight;
        let mut make = |initializer: Initializer| {
            let mut values = vec![0.0; len];
            initializer.fill(&mut values, weight_shape, &mut weight_rng(seed, stream));
            stream += 1;
            Param::heap(&values[..])
        };
        let [gamma, beta] = initializers;
        let gamma = gamma.map(&mut make);
        let beta = beta.map(&mut make);
        LayerNormalization {
            gamma,
            beta,
            shape,
            axes,
            epsilon,
        }
    }

    /// A layer whose weights stay in static memory (a model's `pretrained()`).
    pub const fn baked(
        shape: &'static [usize],
        axes: &'static [usize],
        epsilon: f32,
        gamma: Option<&'static [f32]>,
        beta: Option<&'static [f32]>,
    ) -> Self {
        LayerNormalization {
            gamma: match gamma {
                Some(values) => Some(Param::baked(values)),
                None => None,
            },
            beta: match beta {
                Some(values) => Some(Param::baked(values)),
                None => None,
            },
            shape,
            axes,
            epsilon,
        }
    }

    /// Values per group (the normalized axes' product) and per sample.
    fn sizes(&self) -> (usize, usize) {
        let group = self
            .axes
            .iter()
            .filter_map(|&a| self.shape.get(a))
            .product();
        (group, self.shape.iter().product())
    }

    /// Whether the normalized axes are the last ones, so each group is a contiguous run.
    fn trailing(&self) -> bool {
        let rank = self.shape.len();
        self.axes
            .iter()
            .enumerate()
            .all(|(k, &a)| a + self.axes.len() == rank + k)
    }

    /// Row-major offset within a sample of the `index`-th (row-major) element of the grid
    /// over the normalized axes (`normalized`) or over the others, the rest held at 0.
    fn offset(&self, normalized: bool, mut index: usize) -> usize {
        let (mut offset, mut stride) = (0, 1);
        for (axis, &d) in self.shape.iter().enumerate().rev() {
            if self.axes.contains(&axis) == normalized {
                offset += (index % d) * stride;
                index /= d;
            }
            stride *= d;
        }
        offset
    }

    /// Calls `f(base, trailing)` for each group of every sample of `len` values: with
    /// `trailing`, the group is the run of values from `base`; otherwise its `p`-th value
    /// sits at `base + self.offset(true, p)`.
    fn each_group(&self, len: usize, mut f: impl FnMut(usize, bool)) {
        let (group, sample) = self.sizes();
        if group == 0 || sample == 0 {
            return;
        }
        let trailing = self.trailing();
        for start in (0..len / sample).map(|s| s * sample) {
            for g in 0..sample / group {
                if trailing {
                    f(start + g * group, true);
                } else {
                    f(start + self.offset(false, g), false);
                }
            }
        }
    }

    /// A group's mean and `rsqrt(variance + epsilon)` (`jnp.mean`, `jnp.var`).
    fn statistics(&self, values: &[f32], at: impl Fn(usize) -> usize, n: usize) -> (f32, f32) {
        let count = n as f32;
        let mean = (0..n).map(|p| values[at(p)]).sum::<f32>() / count;
        let variance = (0..n)
            .map(|p| {
                let d = values[at(p)] - mean;
                d * d
            })
            .sum::<f32>()
            / count;
        (mean, rsqrt(variance + self.epsilon))
    }

    /// Normalises `values` (whole samples, row-major in the input shape, one sample or a
    /// batch alike) in place.
    pub fn forward(&self, values: &mut [f32]) {
        let n = self.sizes().0;
        self.each_group(values.len(), |base, trailing| {
            if trailing {
                self.forward_group(values, |p| base + p, n);
            } else {
                self.forward_group(values, |p| base + self.offset(true, p), n);
            }
        });
    }

    /// One timestep of a layer normalising the last axis only, for streaming: `x` holds that
    /// timestep's features (one group), normalised in place. ([`LayerNormalization::forward`]
    /// wants whole samples: on a `(timesteps, features)` layer it would see no sample in
    /// one timestep's slice.)
    ///
    /// ```
    /// use kiln_runtime::layers::LayerNormalization;
    /// // A (3, 2) layer over the last axis, epsilon 0: each timestep on its own.
    /// let ln = LayerNormalization::new(&[3, 2], &[1], &[2], 0.0, [None, None], 0, 0);
    /// let mut x = [1.0, 3.0];
    /// ln.forward_timestep(&mut x);
    /// assert_eq!(x, [-1.0, 1.0]);
    /// ```
    pub fn forward_timestep(&self, x: &mut [f32]) {
        let n = self.sizes().0.min(x.len());
        if n > 0 {
            self.forward_group(x, |p| p, n);
        }
    }

    /// [`LayerNormalization::forward`] on the group whose `p`-th value is `values[at(p)]`.
    fn forward_group(&self, values: &mut [f32], at: impl Fn(usize) -> usize + Copy, n: usize) {
        let (mean, r) = self.statistics(values, at, n);
        for p in 0..n {
            let mut inv = r;
            if let Some(gamma) = &self.gamma {
                inv *= gamma[p];
            }
            let mut res = -mean * inv;
            if let Some(beta) = &self.beta {
                res += beta[p];
            }
            let v = &mut values[at(p)];
            *v = *v * inv + res;
        }
    }

    /// The backward pass on whole samples: `x` is the forward input, `dy` the gradient with
    /// respect to the output. Adds `Σ dy * x̂` into `grad_gamma` and `Σ dy` into `grad_beta`
    /// (over the batch and the groups; `x̂ = (x - mean) * r`, `r = rsqrt(variance +
    /// epsilon)`), then, when `input_grad`, turns `dy` in place into the gradient with
    /// respect to `x`, through each group's mean and variance:
    /// `dx = r (g - Σ g / n - x̂ Σ g x̂ / n + Σ g x̂ Σ x̂ / n²)` with `g = gamma * dy` (the last
    /// term is 0 up to rounding, as `jax.grad` also finds). The statistics are recomputed
    /// from `x`: nothing is kept from the forward pass.
    pub fn backward(
        &self,
        x: &[f32],
        dy: &mut [f32],
        grads: (Option<&mut [f32]>, Option<&mut [f32]>),
        input_grad: bool,
    ) {
        let n = self.sizes().0;
        let mut grads = grads;
        self.each_group(x.len(), |base, trailing| {
            if trailing {
                self.backward_group(x, dy, |p| base + p, n, &mut grads, input_grad);
            } else {
                let at = |p| base + self.offset(true, p);
                self.backward_group(x, dy, at, n, &mut grads, input_grad);
            }
        });
    }

    /// [`LayerNormalization::backward`] on the group whose `p`-th value is `x[at(p)]`.
    fn backward_group(
        &self,
        x: &[f32],
        dy: &mut [f32],
        at: impl Fn(usize) -> usize + Copy,
        n: usize,
        (grad_gamma, grad_beta): &mut (Option<&mut [f32]>, Option<&mut [f32]>),
        input_grad: bool,
    ) {
        let count = n as f32;
        let gamma = |p: usize| self.gamma.as_ref().map_or(1.0, |g| g[p]);
        let (mean, r) = self.statistics(x, at, n);
        let (mut s_g, mut s_gx, mut s_x) = (0.0f32, 0.0f32, 0.0f32);
        for p in 0..n {
            let i = at(p);
            let (xhat, d) = ((x[i] - mean) * r, dy[i]);
            if let Some(grad) = grad_gamma.as_deref_mut() {
                grad[p] += d * xhat;
            }
            if let Some(grad) = grad_beta.as_deref_mut() {
                grad[p] += d;
            }
            let g = gamma(p) * d;
            s_g += g;
            s_gx += g * xhat;
            s_x += xhat;
        }
        if !input_grad {
            return;
        }
        let a = (s_g - s_gx * s_x / count) / count;
        let b = s_gx / count;
        for p in 0..n {
            let i = at(p);
            let xhat = (x[i] - mean) * r;
            dy[i] = r * (gamma(p) * dy[i] - a - b * xhat);
        }
    }
}

impl Weights for LayerNormalization {
    fn weight(&self, index: usize) -> &[f32] {
        match [self.gamma.as_ref(), self.beta.as_ref()]
            .into_iter()
            .flatten()
            .nth(index)
        {
            Some(param) => param,
            None => &[],
        }
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        match [self.gamma.as_mut(), self.beta.as_mut()]
            .into_iter()
            .flatten()
            .nth(index)
        {
            Some(param) => param.make_mut(),
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Normalising (2, 3, 2) over axes 0 and 2 visits each middle index's 4 values.
    #[test]
    fn groups_over_leading_and_trailing_axes() {
        let mut ln = LayerNormalization::new(
            &[2, 3, 2],
            &[0, 2],
            &[2, 2],
            0.0,
            [Some(Initializer::Ones), None],
            0,
            0,
        );
        ln.weight_mut(0).copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let mut y = x.clone();
        ln.forward(&mut y);
        // Group of middle index 1: offsets 2, 3, 8, 9 -> values 2, 3, 8, 9 (mean 5.5).
        let values = [2.0f64, 3.0, 8.0, 9.0];
        let std = (values.iter().map(|v| (v - 5.5).powi(2)).sum::<f64>() / 4.0).sqrt();
        for (p, i) in [2usize, 3, 8, 9].into_iter().enumerate() {
            let want = (p as f64 + 1.0) * (values[p] - 5.5) / std;
            assert!((y[i] as f64 - want).abs() < 1e-5, "{i}: {} vs {want}", y[i]);
        }
    }

    fn weighted(ln: &LayerNormalization, x: &[f32], w: &[f32]) -> f64 {
        let mut y = x.to_vec();
        ln.forward(&mut y);
        y.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum()
    }

    #[test]
    fn backward_matches_finite_differences() {
        for (shape, axes, weights) in [
            (&[4usize][..], &[0usize][..], 4),
            (&[2, 3][..], &[1][..], 3),
            (&[2, 3][..], &[0][..], 2),
            (&[2, 3, 2][..], &[0, 2][..], 4),
            (&[2, 3][..], &[0, 1][..], 6),
        ] {
            let shape: &'static [usize] = Box::leak(shape.to_vec().into_boxed_slice());
            let axes: &'static [usize] = Box::leak(axes.to_vec().into_boxed_slice());
            let weight_shape: &'static [usize] = Box::leak(vec![weights].into_boxed_slice());
            let mut ln = LayerNormalization::new(
                shape,
                axes,
                weight_shape,
                1e-3,
                [Some(Initializer::Ones), Some(Initializer::Zeros)],
                0,
                0,
            );
            let gamma: Vec<f32> = (0..weights).map(|p| 0.5 + p as f32 * 0.3).collect();
            let beta: Vec<f32> = (0..weights).map(|p| p as f32 * 0.1).collect();
            ln.gamma = Some(Param::heap(&gamma[..]));
            ln.beta = Some(Param::heap(&beta[..]));
            let len = 3 * shape.iter().product::<usize>();
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3)
                .collect();
            let w: Vec<f32> = (0..len).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.4).collect();
            let mut dx = w.clone();
            let (mut grad_gamma, mut grad_beta) = (vec![0.0; weights], vec![0.0; weights]);
            ln.backward(
                &x,
                &mut dx,
                (Some(&mut grad_gamma), Some(&mut grad_beta)),
                true,
            );
            let eps = 1e-2;
            for k in 0..len {
                let (mut plus, mut minus) = (x.clone(), x.clone());
                plus[k] += eps;
                minus[k] -= eps;
                let numeric =
                    (weighted(&ln, &plus, &w) - weighted(&ln, &minus, &w)) / (2.0 * eps as f64);
                assert!(
                    (numeric - dx[k] as f64).abs() < 5e-3,
                    "shape {shape:?} axes {axes:?}: dx[{k}] {} vs {numeric}",
                    dx[k]
                );
            }
            for (p, grad) in grad_gamma.iter().enumerate() {
                let mut plus = ln.clone();
                plus.weight_mut(0)[p] += eps;
                let mut minus = ln.clone();
                minus.weight_mut(0)[p] -= eps;
                let numeric =
                    (weighted(&plus, &x, &w) - weighted(&minus, &x, &w)) / (2.0 * eps as f64);
                assert!((numeric - *grad as f64).abs() < 5e-3, "gamma[{p}]");
            }
            let total: f32 = grad_beta.iter().sum();
            assert!((total - w.iter().sum::<f32>()).abs() < 1e-4);
        }
    }
}
