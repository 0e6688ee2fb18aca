//! Keras's `GlobalMaxPooling1D/2D` and `GlobalAveragePooling1D/2D`: [`GlobalPooling`]
//! reduces every spatial position of a sample to one value per channel
//! ([`GlobalPooling::forward`]), optionally under a mask (`GlobalAveragePooling1D` after
//! `Masking`), and [`GlobalPooling::backward`] carries the gradient back.

pub use super::pooling::{Grid, PoolMode};

/// A global pooling layer over inputs laid out as `input`: the output holds
/// `input.channels` values per sample, whatever `keepdims` says (it only changes the Keras
/// shape, not the order of the values).
///
/// # Shapes
/// Per sample, `(steps, f)` or `(h, w, c)` (or channels first) -> `(c,)`; with Keras's
/// `keepdims`, `(1, c)`, `(1, 1, c)` (or `(c, 1)`, `(c, 1, 1)`), the same values. No weights.
///
/// # Example
/// ```
/// use kiln_runtime::layers::global_pooling::{GlobalPooling, Grid, PoolMode};
/// // GlobalAveragePooling1D on 3 steps of 2 features.
/// const GAP: GlobalPooling = GlobalPooling::new(PoolMode::Average, Grid::new(1, 3, 2, false));
/// let mut y = [0.0; 2];
/// GAP.forward(&[1.0, 10.0, 2.0, 20.0, 6.0, 60.0], None, &mut y);
/// assert_eq!(y, [3.0, 30.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalPooling {
    /// Max or average.
    pub mode: PoolMode,
    /// The input's layout.
    pub input: Grid,
}

impl GlobalPooling {
    /// The layer for inputs laid out as `input`.
    pub const fn new(mode: PoolMode, input: Grid) -> GlobalPooling {
        GlobalPooling { mode, input }
    }

    /// The offsets of channel `ch`'s values within a sample, spatial position by position
    /// (row-major), with the position's number.
    #[inline]
    fn positions(&self, ch: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let g = self.input;
        (0..g.height * g.width).map(move |p| (p, g.index(p / g.width, p % g.width, ch)))
    }

    /// Pools `x` (whole samples, row-major in the Keras shape) into `y` (`channels` values
    /// per sample); every value of `y` is written.
    ///
    /// `mask`, for average pooling, has one `bool` per spatial position of every sample
    /// (`height * width` per sample; `false` = masked): the mean then covers the unmasked
    /// positions only, and a sample with every position masked gives `0 / 0 = NaN`, as
    /// Keras 3's `GlobalAveragePooling1D` computes `sum(where(mask, x, 0)) / sum(mask)`.
    /// Max pooling ignores it (the macro never passes one).
    pub fn forward(&self, x: &[f32], mask: Option<&[bool]>, y: &mut [f32]) {
        let (n, channels) = (self.input.len(), self.input.channels);
        if n == 0 {
            return;
        }
        let spots = self.input.height * self.input.width;
        for (s, (xs, ys)) in x
            .chunks_exact(n)
            .zip(y.chunks_exact_mut(channels))
            .enumerate()
        {
            let keep = |p: usize| mask.is_none_or(|m| m[s * spots + p]);
            for (ch, out) in ys.iter_mut().enumerate() {
                *out = match self.mode {
                    PoolMode::Max => self.max(xs, ch),
                    PoolMode::Average => {
                        let (mut sum, mut count) = (0.0f32, 0usize);
                        for (p, k) in self.positions(ch) {
                            if keep(p) {
                                sum += xs[k];
                                count += 1;
                            }
                        }
                        sum / count as f32
                    }
                };
            }
        }
    }

    /// The largest of channel `ch`'s values (NaN if any is NaN, as `jnp.max`).
    #[inline]
    fn max(&self, xs: &[f32], ch: usize) -> f32 {
        let mut best = f32::NEG_INFINITY;
        for (_, k) in self.positions(ch) {
            let v = xs[k];
            if v.is_nan() {
                return v;
            }
            if v > best {
                best = v;
            }
        }
        best
    }

    /// The backward pass on whole samples: writes into `dx` the gradient with respect to
    /// the input `x` from `dy` (one value per channel per sample); `mask` as in
    /// [`GlobalPooling::forward`].
    ///
    /// Max pooling splits each channel's gradient evenly among the positions that hold its
    /// maximum, as `jax.grad` of `jnp.max` does (unlike windowed max pooling, which picks
    /// the first). Average pooling gives each (unmasked) position `dy / count`; masked
    /// positions get 0.
    ///
    /// ```
    /// use kiln_runtime::layers::global_pooling::{GlobalPooling, Grid, PoolMode};
    /// const GMP: GlobalPooling = GlobalPooling::new(PoolMode::Max, Grid::new(1, 3, 1, false));
    /// let mut dx = [0.0; 3];
    /// GMP.backward(&[5.0, 1.0, 5.0], None, &[1.0], &mut dx);
    /// assert_eq!(dx, [0.5, 0.0, 0.5]);
    /// ```
    pub fn backward(&self, x: &[f32], mask: Option<&[bool]>, dy: &[f32], dx: &mut [f32]) {
        let (n, channels) = (self.input.len(), self.input.channels);
        if n == 0 {
            return;
        }
        let spots = self.input.height * self.input.width;
        for (s, ((xs, ds), gs)) in x
            .chunks_exact(n)
            .zip(dy.chunks_exact(channels))
            .zip(dx.chunks_exact_mut(n))
            .enumerate()
        {
            let keep = |p: usize| mask.is_none_or(|m| m[s * spots + p]);
            for (ch, &g) in ds.iter().enumerate() {
                match self.mode {
                    PoolMode::Max => {
                        let best = self.max(xs, ch);
                        let ties = self.positions(ch).filter(|&(_, k)| xs[k] == best).count();
                        let share = g / ties as f32;
                        for (_, k) in self.positions(ch) {
                            gs[k] = if xs[k] == best { share } else { 0.0 };
                        }
                    }
                    PoolMode::Average => {
                        let count = (0..spots).filter(|&p| keep(p)).count();
                        let share = g / count as f32;
                        for (p, k) in self.positions(ch) {
                            gs[k] = if keep(p) { share } else { 0.0 };
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
    fn pools_every_position_of_each_channel_in_both_layouts() {
        // Two samples of a (2, 3) grid with 2 channels, channels first: channel 0 then 1.
        let x: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let gmp = GlobalPooling::new(PoolMode::Max, Grid::new(2, 3, 2, true));
        let gap = GlobalPooling::new(PoolMode::Average, Grid::new(2, 3, 2, true));
        let mut y = [0.0; 4];
        gmp.forward(&x, None, &mut y);
        assert_eq!(y, [5.0, 11.0, 17.0, 23.0]);
        gap.forward(&x, None, &mut y);
        assert_eq!(y, [2.5, 8.5, 14.5, 20.5]);
        // Channels last: the channels alternate.
        let gmp = GlobalPooling::new(PoolMode::Max, Grid::new(2, 3, 2, false));
        gmp.forward(&x, None, &mut y);
        assert_eq!(y, [10.0, 11.0, 22.0, 23.0]);
    }

    #[test]
    fn masked_mean_skips_masked_steps_and_their_gradient() {
        // Two samples of 3 steps x 2 features; sample 0 masks step 1, sample 1 masks all.
        let gap = GlobalPooling::new(PoolMode::Average, Grid::new(1, 3, 2, false));
        let x = [
            1.0, 2.0, 100.0, 100.0, 3.0, 6.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
        ];
        let mask = [true, false, true, false, false, false];
        let mut y = [0.0; 4];
        gap.forward(&x, Some(&mask), &mut y);
        assert_eq!(&y[..2], &[2.0, 4.0]);
        assert!(y[2].is_nan() && y[3].is_nan());
        let mut dx = [7.0; 12];
        gap.backward(&x, Some(&mask), &[1.0, 2.0, 5.0, 5.0], &mut dx);
        assert_eq!(&dx[..6], &[0.5, 1.0, 0.0, 0.0, 0.5, 1.0]);
        assert_eq!(&dx[6..], &[0.0; 6]);
    }
}
