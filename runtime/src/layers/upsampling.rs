//! Keras's `UpSampling1D/2D` (nearest neighbour): [`UpSampling::new`] lays out one layer (a
//! `const` in generated code), [`UpSampling::forward`] repeats every position and
//! [`UpSampling::backward`] sums the repeats' gradients.

pub use super::pooling::Grid;

/// Each spatial position repeated `size[0]` times down and `size[1]` times across (1D data
/// has height 1 and repeats its steps by `size[1]`): Keras's `ops.repeat` along each axis.
///
/// # Shapes
/// Per sample, `(h, w, c)` -> `(h * size[0], w * size[1], c)` (1D: `(steps, f)` -> `(steps *
/// size, f)`; or channels first). No weights.
///
/// # Example
/// ```
/// use kiln_runtime::layers::upsampling::{Grid, UpSampling};
/// // UpSampling1D(size = 2) on 2 steps of 2 features.
/// const UP: UpSampling = UpSampling::new(Grid::new(1, 2, 2, false), [1, 2]);
/// let mut y = [0.0; 8];
/// UP.forward(&[1.0, 2.0, 3.0, 4.0], &mut y);
/// assert_eq!(y, [1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpSampling {
    /// The input's layout.
    pub input: Grid,
    /// The output's layout: the input's extents times `size`.
    pub output: Grid,
    /// Repeats `[down, across]`.
    pub size: [usize; 2],
}

impl UpSampling {
    /// The layer for inputs laid out as `input`, repeating by `size` = `[down, across]`.
    pub const fn new(input: Grid, size: [usize; 2]) -> UpSampling {
        UpSampling {
            input,
            output: input.resized(input.height * size[0], input.width * size[1]),
            size,
        }
    }

    /// Writes every value of `y` (whole samples) from `x`.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let (g, out) = (self.input, self.output);
        let (n_in, n_out) = (g.len(), out.len());
        if n_in == 0 || n_out == 0 {
            return;
        }
        for (xs, ys) in x.chunks_exact(n_in).zip(y.chunks_exact_mut(n_out)) {
            for r in 0..out.height {
                for c in 0..out.width {
                    for ch in 0..g.channels {
                        ys[out.index(r, c, ch)] =
                            xs[g.index(r / self.size[0], c / self.size[1], ch)];
                    }
                }
            }
        }
    }

    /// Writes into `dx` the gradient with respect to the input: for each input value, the
    /// sum of `dy` over its copies.
    pub fn backward(&self, dy: &[f32], dx: &mut [f32]) {
        let (g, out) = (self.input, self.output);
        let (n_in, n_out) = (g.len(), out.len());
        if n_in == 0 || n_out == 0 {
            return;
        }
        for (ds, gs) in dy.chunks_exact(n_out).zip(dx.chunks_exact_mut(n_in)) {
            for r in 0..g.height {
                for c in 0..g.width {
                    for ch in 0..g.channels {
                        let mut sum = 0.0;
                        for a in 0..self.size[0] {
                            let mut row = 0.0;
                            for b in 0..self.size[1] {
                                row +=
                                    ds[out.index(r * self.size[0] + a, c * self.size[1] + b, ch)];
                            }
                            sum += row;
                        }
                        gs[g.index(r, c, ch)] = sum;
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
    fn repeats_rows_and_columns_channels_first() {
        // One (1, 2, 2) sample channels first, size (2, 1).
        let up = UpSampling::new(Grid::new(2, 2, 1, true), [2, 1]);
        let mut y = [0.0; 8];
        up.forward(&[1.0, 2.0, 3.0, 4.0], &mut y);
        assert_eq!(y, [1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
        let mut dx = [0.0; 4];
        up.backward(&[1.0, 2.0, 10.0, 20.0, 0.5, 0.5, 0.25, 0.25], &mut dx);
        assert_eq!(dx, [11.0, 22.0, 0.75, 0.75]);
    }
}
