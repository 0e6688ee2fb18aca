//! Keras's `ZeroPadding1D/2D`: [`ZeroPadding::new`] lays out one layer (a `const` in
//! generated code), [`ZeroPadding::forward`] surrounds each sample's grid with zeros and
//! [`ZeroPadding::backward`] cuts the gradient of the padding away. [`Cropping`](super::cropping)
//! is the same placement read the other way, through [`inner_runs`].

pub use super::pooling::Grid;

/// Zeros added around the spatial axes of every sample: `pad[0]` rows (top, bottom),
/// `pad[1]` columns (left, right); 1D data has height 1 and pads only `pad[1]` (its steps).
///
/// # Shapes
/// Per sample, `(h, w, c)` -> `(top + h + bottom, left + w + right, c)` (1D: `(steps, f)` ->
/// `(left + steps + right, f)`; or channels first). No weights.
///
/// # Example
/// ```
/// use kiln_runtime::layers::padding::{Grid, ZeroPadding};
/// // ZeroPadding1D(padding = (1, 2)) on 2 steps of 1 feature.
/// const PAD: ZeroPadding = ZeroPadding::new(Grid::new(1, 2, 1, false), [[0, 0], [1, 2]]);
/// let mut y = [9.0; 5];
/// PAD.forward(&[3.0, 4.0], &mut y);
/// assert_eq!(y, [0.0, 3.0, 4.0, 0.0, 0.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroPadding {
    /// The input's layout.
    pub input: Grid,
    /// The output's layout: the input's extents plus the padding.
    pub output: Grid,
    /// `[[top, bottom], [left, right]]`.
    pub pad: [[usize; 2]; 2],
}

impl ZeroPadding {
    /// The layer for inputs laid out as `input`, padded by `pad` = `[[top, bottom], [left,
    /// right]]`.
    pub const fn new(input: Grid, pad: [[usize; 2]; 2]) -> ZeroPadding {
        ZeroPadding {
            input,
            output: input.resized(
                input.height + pad[0][0] + pad[0][1],
                input.width + pad[1][0] + pad[1][1],
            ),
            pad,
        }
    }

    /// Writes every value of `y` (whole samples): zeros, with each input sample placed
    /// inside.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        place(
            self.input,
            self.output,
            [self.pad[0][0], self.pad[1][0]],
            x,
            y,
        );
    }

    /// Writes into `dx` the gradient with respect to the input: the part of `dy` that
    /// covers the input (the padding's gradient goes nowhere).
    pub fn backward(&self, dy: &[f32], dx: &mut [f32]) {
        take(
            self.input,
            self.output,
            [self.pad[0][0], self.pad[1][0]],
            dy,
            dx,
        );
    }
}

/// Calls `f(small_offset, big_offset, len)` for every run of values that is contiguous in
/// both `small` and `big` (same channels and layout), where `small` sits inside `big` from
/// row `at[0]` and column `at[1]`. Channels last, a run is a whole row of `small`; channels
/// first, a row of one channel.
pub fn inner_runs(small: Grid, big: Grid, at: [usize; 2], mut f: impl FnMut(usize, usize, usize)) {
    if small.channels_first {
        for ch in 0..small.channels {
            for i in 0..small.height {
                f(
                    small.index(i, 0, ch),
                    big.index(i + at[0], at[1], ch),
                    small.width,
                );
            }
        }
    } else {
        for i in 0..small.height {
            f(
                small.index(i, 0, 0),
                big.index(i + at[0], at[1], 0),
                small.width * small.channels,
            );
        }
    }
}

/// `big` samples of zeros with the `small` samples placed at `at` (writes every value).
pub(crate) fn place(small: Grid, big: Grid, at: [usize; 2], from: &[f32], to: &mut [f32]) {
    let (n_small, n_big) = (small.len(), big.len());
    if n_small == 0 || n_big == 0 {
        return;
    }
    for (s, b) in from.chunks_exact(n_small).zip(to.chunks_exact_mut(n_big)) {
        b.fill(0.0);
        inner_runs(small, big, at, |i, o, len| {
            b[o..o + len].copy_from_slice(&s[i..i + len]);
        });
    }
}

/// The `small` samples read out of the `big` ones at `at` (writes every value).
pub(crate) fn take(small: Grid, big: Grid, at: [usize; 2], from: &[f32], to: &mut [f32]) {
    let (n_small, n_big) = (small.len(), big.len());
    if n_small == 0 || n_big == 0 {
        return;
    }
    for (b, s) in from.chunks_exact(n_big).zip(to.chunks_exact_mut(n_small)) {
        inner_runs(small, big, at, |i, o, len| {
            s[i..i + len].copy_from_slice(&b[o..o + len]);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_both_layouts_and_backward_undoes_it() {
        // Two samples of a (2, 2) grid, 2 channels; pad 1 row on top, 1 column on the right.
        let x: Vec<f32> = (1..=16).map(|i| i as f32).collect();
        for channels_first in [false, true] {
            let input = Grid::new(2, 2, 2, channels_first);
            let p = ZeroPadding::new(input, [[1, 0], [0, 1]]);
            assert_eq!((p.output.height, p.output.width), (3, 3));
            let mut y = vec![7.0; 36];
            p.forward(&x, &mut y);
            for s in 0..2 {
                for r in 0..3 {
                    for c in 0..3 {
                        for ch in 0..2 {
                            let got = y[s * 18 + p.output.index(r, c, ch)];
                            let want = if r == 0 || c == 2 {
                                0.0
                            } else {
                                x[s * 8 + input.index(r - 1, c, ch)]
                            };
                            assert_eq!(got, want, "first {channels_first} ({s}, {r}, {c}, {ch})");
                        }
                    }
                }
            }
            let mut dx = vec![0.0; 16];
            p.backward(&y, &mut dx);
            assert_eq!(dx, x);
        }
    }
}
