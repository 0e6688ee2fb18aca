//! Keras's `Bidirectional` wrapper: [`Bidirectional`] holds the forward and backward
//! recurrent layers; [`Bidirectional::merge`] combines their outputs and
//! [`Bidirectional::merge_backward`] splits the gradient; [`zero_masked`] is Keras's
//! `zero_output_for_mask`. The recurrences themselves are the wrapped layers' own kernels
//! ([`super::Lstm`], [`super::Gru`], [`super::SimpleRnn`], each a
//! [`super::recurrent::Rnn`]), which the macro calls directly.

use super::Weights;

/// How the two directions' outputs combine (Keras's `merge_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// `[forward, backward]` along the last axis: twice the units.
    Concat,
    /// `forward + backward`.
    Sum,
    /// `forward * backward`.
    Mul,
    /// `(forward + backward) / 2`.
    Ave,
}

/// A recurrent layer run over the sequence in both directions, as Keras 3 computes it
/// (`keras/src/layers/rnn/bidirectional.py`): the backward layer is a copy of the wrapped
/// one with `go_backwards` flipped; with `return_sequences` its outputs, which come in
/// processing order, are reversed back to time order, and each direction outputs zeros at
/// masked timesteps (Keras forces `zero_output_for_mask`); then [`Merge`] combines them.
///
/// # Shapes
/// `(timesteps, features)` -> `(units,)` (`(2 * units,)` with [`Merge::Concat`]), or
/// `(timesteps, units)` / `(timesteps, 2 * units)` with `return_sequences`.
///
/// # Weights
/// The forward layer's, then the backward layer's (Keras's
/// `bidirectional/forward_lstm/lstm_cell/kernel`, ..., `bidirectional/backward_lstm/...`).
///
/// ```
/// use kiln_runtime::layers::bidirectional::{Bidirectional, Merge};
/// let yf = [1.0, 2.0, 3.0, 4.0]; // two timesteps of two units, time order
/// let yb = [5.0, 6.0, 7.0, 8.0]; // processing order: last timestep first
/// let mut y = [0.0; 8];
/// Bidirectional::new((), (), Merge::Concat, 0).merge(&yf, &yb, &mut y, 2, 2);
/// assert_eq!(y, [1.0, 2.0, 7.0, 8.0, 3.0, 4.0, 5.0, 6.0]);
/// ```
#[derive(Debug, Clone)]
pub struct Bidirectional<L> {
    /// The layer reading the sequence in the wrapped layer's direction.
    pub forward: L,
    /// The layer reading it the other way.
    pub backward: L,
    /// How the outputs combine.
    pub merge: Merge,
    /// How many weights the forward layer has (they come first).
    pub forward_weights: usize,
}

impl<L> Bidirectional<L> {
    /// Wraps two built layers.
    pub const fn new(forward: L, backward: L, merge: Merge, forward_weights: usize) -> Self {
        Bidirectional {
            forward,
            backward,
            merge,
            forward_weights,
        }
    }

    /// Combines whole samples of `steps` outputs of `units` each: `yf` from the forward layer,
    /// `yb` from the backward one, whose steps are taken last to first (with one step per
    /// sample, without `return_sequences`, there is nothing to reverse).
    pub fn merge(&self, yf: &[f32], yb: &[f32], out: &mut [f32], steps: usize, units: usize) {
        let per = steps * units;
        if per == 0 {
            return;
        }
        let width = match self.merge {
            Merge::Concat => 2 * units,
            _ => units,
        };
        for (n, (f, b)) in yf.chunks_exact(per).zip(yb.chunks_exact(per)).enumerate() {
            for p in 0..steps {
                let q = steps - 1 - p;
                let f = &f[p * units..(p + 1) * units];
                let b = &b[q * units..(q + 1) * units];
                let at = (n * steps + p) * width;
                let o = &mut out[at..at + width];
                match self.merge {
                    Merge::Concat => {
                        o[..units].copy_from_slice(f);
                        o[units..].copy_from_slice(b);
                    }
                    Merge::Sum => o.iter_mut().zip(f.iter().zip(b)).for_each(|(o, (f, b))| {
                        *o = f + b;
                    }),
                    Merge::Mul => o.iter_mut().zip(f.iter().zip(b)).for_each(|(o, (f, b))| {
                        *o = f * b;
                    }),
                    Merge::Ave => o.iter_mut().zip(f.iter().zip(b)).for_each(|(o, (f, b))| {
                        *o = (f + b) / 2.0;
                    }),
                }
            }
        }
    }

    /// The gradient through [`Bidirectional::merge`]: from `dy` (the merged output's) and the
    /// outputs `yf`, `yb` that were merged, writes the gradients `dyf`, `dyb` with respect to
    /// each direction's output (overwritten), in that direction's own step order.
    #[allow(clippy::too_many_arguments)]
    pub fn merge_backward(
        &self,
        dy: &[f32],
        yf: &[f32],
        yb: &[f32],
        dyf: &mut [f32],
        dyb: &mut [f32],
        steps: usize,
        units: usize,
    ) {
        let per = steps * units;
        if per == 0 {
            return;
        }
        let width = match self.merge {
            Merge::Concat => 2 * units,
            _ => units,
        };
        let samples = dyf.len() / per;
        for n in 0..samples {
            for p in 0..steps {
                let q = steps - 1 - p;
                let (fa, ba) = (n * per + p * units, n * per + q * units);
                let at = (n * steps + p) * width;
                let d = &dy[at..at + width];
                for k in 0..units {
                    let (df, db) = match self.merge {
                        Merge::Concat => (d[k], d[units + k]),
                        Merge::Sum => (d[k], d[k]),
                        Merge::Ave => (d[k] / 2.0, d[k] / 2.0),
                        Merge::Mul => (d[k] * yb[ba + k], d[k] * yf[fa + k]),
                    };
                    dyf[fa + k] = df;
                    dyb[ba + k] = db;
                }
            }
        }
    }
}

/// Keras's `zero_output_for_mask`: zeroes the outputs of masked timesteps in `y`, a
/// recurrent layer's sequence output (whole samples of `timesteps * units`, in processing
/// order: last timestep first when `go_backwards`), given the input's mask (one `bool` per
/// timestep, `true` = keep). The same zeroing applies to the gradient of that output.
pub fn zero_masked(
    y: &mut [f32],
    mask: &[bool],
    timesteps: usize,
    units: usize,
    go_backwards: bool,
) {
    let per = timesteps * units;
    if per == 0 {
        return;
    }
    for (n, sample) in y.chunks_exact_mut(per).enumerate() {
        for (s, out) in sample.chunks_exact_mut(units).enumerate() {
            let t = if go_backwards { timesteps - 1 - s } else { s };
            if !mask.get(n * timesteps + t).copied().unwrap_or(true) {
                out.fill(0.0);
            }
        }
    }
}

impl<L: Weights> Weights for Bidirectional<L> {
    fn weight(&self, index: usize) -> &[f32] {
        match index.checked_sub(self.forward_weights) {
            None => self.forward.weight(index),
            Some(i) => self.backward.weight(i),
        }
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        match index.checked_sub(self.forward_weights) {
            None => self.forward.weight_mut(index),
            Some(i) => self.backward.weight_mut(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each merge mode, with the backward sequence reversed to time order, and its gradient
    /// against finite differences of `Σ dy · merge(yf, yb)`.
    #[test]
    fn merges_and_their_gradients() {
        let yf = [0.5, -1.0, 2.0, 0.25, 1.5, -0.75];
        let yb = [1.0, 3.0, -2.0, 0.5, 0.125, 4.0];
        let (steps, units) = (3, 2);
        for merge in [Merge::Concat, Merge::Sum, Merge::Mul, Merge::Ave] {
            let b = Bidirectional::new((), (), merge, 0);
            let width = if merge == Merge::Concat { 4 } else { 2 };
            let mut y = vec![0.0; steps * width];
            b.merge(&yf, &yb, &mut y, steps, units);
            // Step 0 pairs the forward's first output with the backward's last.
            let expected0 = match merge {
                Merge::Concat => vec![0.5, -1.0, 0.125, 4.0],
                Merge::Sum => vec![0.625, 3.0],
                Merge::Mul => vec![0.0625, -4.0],
                Merge::Ave => vec![0.3125, 1.5],
            };
            assert_eq!(y[..width], expected0[..], "{merge:?}");
            let dy: Vec<f32> = (0..y.len()).map(|i| 0.5 + i as f32 * 0.25).collect();
            let (mut dyf, mut dyb) = ([0.0; 6], [0.0; 6]);
            b.merge_backward(&dy, &yf, &yb, &mut dyf, &mut dyb, steps, units);
            let objective = |f: &[f32], bw: &[f32]| {
                let mut y = vec![0.0; steps * width];
                b.merge(f, bw, &mut y, steps, units);
                y.iter()
                    .zip(&dy)
                    .map(|(a, b)| f64::from(a * b))
                    .sum::<f64>()
            };
            for i in 0..6 {
                let h = 1e-2f32;
                let (mut fp, mut fm) = (yf, yf);
                fp[i] += h;
                fm[i] -= h;
                let numeric = (objective(&fp, &yb) - objective(&fm, &yb)) / f64::from(2.0 * h);
                assert!(
                    (numeric - f64::from(dyf[i])).abs() < 1e-3,
                    "{merge:?} dyf[{i}]"
                );
                let (mut bp, mut bm) = (yb, yb);
                bp[i] += h;
                bm[i] -= h;
                let numeric = (objective(&yf, &bp) - objective(&yf, &bm)) / f64::from(2.0 * h);
                assert!(
                    (numeric - f64::from(dyb[i])).abs() < 1e-3,
                    "{merge:?} dyb[{i}]"
                );
            }
        }
    }

    #[test]
    fn masked_timesteps_output_zeros_in_processing_order() {
        let mut y = [1.0f32; 6];
        zero_masked(&mut y, &[true, false, true], 3, 2, false);
        assert_eq!(y, [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        let mut y = [1.0f32; 6];
        zero_masked(&mut y, &[false, true, true], 3, 2, true);
        assert_eq!(y, [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    }
}
