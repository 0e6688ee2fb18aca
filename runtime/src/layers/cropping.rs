//! Keras's `Cropping1D/2D`: [`Cropping::new`] lays out one layer (a `const` in generated
//! code), [`Cropping::forward`] keeps the inside of each sample's grid and
//! [`Cropping::backward`] puts the gradient back with zeros where the crop cut.

use super::padding::{place, take};
pub use super::pooling::Grid;

/// Rows and columns cut from the spatial axes of every sample: `crop[0]` rows (top,
/// bottom), `crop[1]` columns (left, right); 1D data has height 1 and crops only `crop[1]`
/// (its steps). The `model!` macro checks that something is left.
///
/// # Shapes
/// Per sample, `(h, w, c)` -> `(h - top - bottom, w - left - right, c)` (1D: `(steps, f)` ->
/// `(steps - start - end, f)`; or channels first). No weights.
///
/// # Example
/// ```
/// use kiln_runtime::layers::cropping::{Cropping, Grid};
/// // Cropping1D(cropping = (1, 2)) on 5 steps of 1 feature.
/// const CROP: Cropping = Cropping::new(Grid::new(1, 5, 1, false), [[0, 0], [1, 2]]);
/// let mut y = [0.0; 2];
/// CROP.forward(&[1.0, 2.0, 3.0, 4.0, 5.0], &mut y);
/// assert_eq!(y, [2.0, 3.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cropping {
    /// The input's layout.
    pub input: Grid,
    /// The output's layout: the input's extents less the crop.
    pub output: Grid,
    /// `[[top, bottom], [left, right]]`.
    pub crop: [[usize; 2]; 2],
}

impl Cropping {
    /// The layer for inputs laid out as `input`, cropped by `crop` = `[[top, bottom], [left,
    /// right]]`; a crop of everything leaves an empty output.
    pub const fn new(input: Grid, crop: [[usize; 2]; 2]) -> Cropping {
        Cropping {
            input,
            output: input.resized(
                input.height.saturating_sub(crop[0][0] + crop[0][1]),
                input.width.saturating_sub(crop[1][0] + crop[1][1]),
            ),
            crop,
        }
    }

    /// Writes every value of `y` (whole samples): the inside of each input sample.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        take(
            self.output,
            self.input,
            [self.crop[0][0], self.crop[1][0]],
            x,
            y,
        );
    }

    /// Writes into `dx` the gradient with respect to the input: `dy` where the values were
    /// kept, 0 where they were cut.
    pub fn backward(&self, dy: &[f32], dx: &mut [f32]) {
        place(
            self.output,
            self.input,
            [self.crop[0][0], self.crop[1][0]],
            dy,
            dx,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_channels_first_and_backward_pads_with_zeros() {
        // One (1, 3, 3) sample channels first, cropping 1 row on top and 1 column each side.
        let x: Vec<f32> = (1..=9).map(|i| i as f32).collect();
        let c = Cropping::new(Grid::new(3, 3, 1, true), [[1, 0], [1, 1]]);
        assert_eq!((c.output.height, c.output.width), (2, 1));
        let mut y = [0.0; 2];
        c.forward(&x, &mut y);
        assert_eq!(y, [5.0, 8.0]);
        let mut dx = [9.0; 9];
        c.backward(&[1.0, 2.0], &mut dx);
        assert_eq!(dx, [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0]);
    }
}
