//! Keras's `Dropout` in training: [`Dropout::train`] draws a keep-mask and applies inverted
//! dropout in place; [`backward`] multiplies the gradient by the same factors.
//!
//! In inference `Dropout` is the identity and generates no code, so nothing here runs.

use crate::initializers::KilnRng;
use crate::model::Pass;
use alloc::vec::Vec;
use rand::{RngExt, SeedableRng};

/// One `Dropout` layer as the macro resolved it.
///
/// # Shapes
/// Input and output `shape`, any rank. The keep-mask has shape `(B, *noise_shape)`, where `B`
/// is the batch size when `per_sample` and 1 otherwise, and each entry of `noise_shape` is
/// the input's axis length (one draw per index) or 1 (one draw shared along the axis); it is
/// broadcast to `(batch, *shape)`, as Keras's `noise_shape`.
///
/// ```
/// use kiln_runtime::{layers::dropout::Dropout, Pass};
/// let dropout = Dropout { rate: 0.5, shape: &[2, 3], noise_shape: &[1, 3], per_sample: true, seed: 7 };
/// let mut pass = Pass { training: true, ..Pass::default() };
/// let mut x = [1.0f32; 12]; // two samples of shape (2, 3)
/// let m = dropout.train(&mut pass, &mut x).expect("training draws a mask");
/// // Both rows of a sample share their mask; kept values are scaled by 1 / (1 - 0.5).
/// assert_eq!(x[0..3], x[3..6]);
/// assert!(x.iter().zip(&m).all(|(v, m)| *v == *m && (*m == 0.0 || *m == 2.0)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Dropout<'a> {
    /// Fraction of values dropped, in `[0, 1)`.
    pub rate: f32,
    /// The per-sample shape of the input.
    pub shape: &'a [usize],
    /// The per-sample shape of the keep-mask (same rank as `shape`).
    pub noise_shape: &'a [usize],
    /// Whether each sample draws its own mask (Keras's batch entry `None`).
    pub per_sample: bool,
    /// The layer's `seed` argument (or the macro's stand-in for it).
    pub seed: u64,
}

impl Dropout<'_> {
    /// The generator of this layer in the training step of `pass`: the same run seed, step
    /// and layer seed always give the same mask.
    pub fn rng(&self, pass: &Pass) -> KilnRng {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&pass.seed.to_le_bytes());
        seed[8..16].copy_from_slice(&pass.step.to_le_bytes());
        seed[16..24].copy_from_slice(&self.seed.to_le_bytes());
        // A tag keeps these streams apart from `weight_rng`'s, which seed from a `u64`.
        seed[24..].copy_from_slice(b"dropout\0");
        // Each share of a batch split across threads draws its own stream; share 0's is the
        // stream of a step on one thread.
        for (byte, part) in seed[24..].iter_mut().zip(pass.part.to_le_bytes()) {
            *byte ^= part;
        }
        KilnRng::from_seed(seed)
    }

    /// Applies dropout to `values` (whole samples of `shape`, row-major) in place when
    /// `pass.training` and `rate > 0`, returning the factor each value was multiplied by
    /// (0 or `1 / (1 - rate)`) for the backward pass; otherwise leaves `values` alone and
    /// returns `None`.
    pub fn train(&self, pass: &mut Pass, values: &mut [f32]) -> Option<Vec<f32>> {
        if !pass.training || self.rate <= 0.0 {
            return None;
        }
        let per_sample: usize = self.shape.iter().product();
        let samples = values.len() / per_sample.max(1);
        let mut rng = self.rng(pass);
        // Both buffers come from the step's pool; the multipliers go back in `backward`.
        let mut draws = pass.pool.take_vec(0);
        let mut multipliers = pass.pool.take_vec(0);
        self.multipliers_into(samples, &mut rng, &mut draws, &mut multipliers);
        pass.pool.give_vec(draws);
        for (v, m) in values.iter_mut().zip(&multipliers) {
            *v *= m;
        }
        Some(multipliers)
    }

    /// One factor per value of `samples` samples: a keep-mask of the noise shape, each entry
    /// kept with probability `1 - rate`, broadcast to the input and scaled.
    pub fn multipliers(&self, samples: usize, rng: &mut KilnRng) -> Vec<f32> {
        let (mut draws, mut out) = (Vec::new(), Vec::new());
        self.multipliers_into(samples, rng, &mut draws, &mut out);
        out
    }

    /// [`Dropout::multipliers`] into `out`, with `draws` as scratch for the noise-shaped
    /// mask; both are cleared first and grow only if too small.
    pub fn multipliers_into(
        &self,
        samples: usize,
        rng: &mut KilnRng,
        draws: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        const AXES: usize = 5; // the batch axis and up to four sample axes
        let keep = 1.0 - self.rate;
        let scale = 1.0 / keep;
        let rank = self.shape.len() + 1;
        let (mut dims, mut noise) = ([1usize; AXES], [1usize; AXES]);
        dims[0] = samples;
        dims[1..rank].copy_from_slice(self.shape);
        noise[0] = if self.per_sample { samples } else { 1 };
        noise[1..rank].copy_from_slice(self.noise_shape);
        let (dims, noise) = (&dims[..rank], &noise[..rank]);
        draws.clear();
        draws.extend((0..noise.iter().product::<usize>()).map(|_| {
            if rng.random_bool(f64::from(keep)) {
                scale
            } else {
                0.0
            }
        }));
        // Row-major strides of the mask, 0 along broadcast axes.
        let mut strides = [0usize; AXES];
        let mut stride = 1;
        for axis in (0..rank).rev() {
            if noise[axis] != 1 {
                strides[axis] = stride;
            }
            stride *= noise[axis];
        }
        let total: usize = dims.iter().product();
        out.clear();
        let mut index = [0usize; AXES];
        let mut offset = 0;
        for _ in 0..total {
            out.push(draws[offset]);
            // Advance the row-major index like an odometer, keeping `offset` in step.
            for axis in (0..rank).rev() {
                index[axis] += 1;
                offset += strides[axis];
                if index[axis] < dims[axis] {
                    break;
                }
                offset -= strides[axis] * index[axis];
                index[axis] = 0;
            }
        }
    }
}

/// The backward pass: `dy *= multipliers` (nothing when training drew no mask).
pub fn backward(multipliers: Option<&[f32]>, dy: &mut [f32]) {
    if let Some(m) = multipliers {
        for (d, m) in dy.iter_mut().zip(m) {
            *d *= m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn training(seed: u64, step: u64) -> Pass {
        Pass {
            training: true,
            activity_loss: 0.0,
            seed,
            step,
            ..Pass::default()
        }
    }

    #[test]
    fn inference_and_rate_zero_change_nothing() {
        let d = Dropout {
            rate: 0.5,
            shape: &[4],
            noise_shape: &[4],
            per_sample: true,
            seed: 1,
        };
        let mut x = [1.0, 2.0, 3.0, 4.0];
        assert!(d.train(&mut Pass::inference(), &mut x).is_none());
        let zero = Dropout { rate: 0.0, ..d };
        assert!(zero.train(&mut training(0, 0), &mut x).is_none());
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn keeps_about_one_minus_rate_and_scales_them() {
        let d = Dropout {
            rate: 0.3,
            shape: &[50, 40],
            noise_shape: &[50, 40],
            per_sample: true,
            seed: 3,
        };
        let mut x = vec![1.5f32; 2 * 2000];
        let m = d.train(&mut training(11, 2), &mut x).expect("a mask");
        let kept = x.iter().filter(|v| **v != 0.0).count() as f32 / x.len() as f32;
        assert!((kept - 0.7).abs() < 0.03, "kept fraction {kept}");
        assert!(x.iter().all(|v| *v == 0.0 || (*v - 1.5 / 0.7).abs() < 1e-6));
        let mut dy = vec![1.0f32; x.len()];
        backward(Some(&m), &mut dy);
        assert!(dy.iter().zip(&x).all(|(d, v)| (*d * 1.5 - v).abs() < 1e-6));
    }

    #[test]
    fn deterministic_per_seed_step_and_layer() {
        let d = Dropout {
            rate: 0.5,
            shape: &[64],
            noise_shape: &[64],
            per_sample: true,
            seed: 0,
        };
        let draw = |d: &Dropout, pass: &Pass| d.multipliers(2, &mut d.rng(pass));
        let a = draw(&d, &training(1, 5));
        assert_eq!(a, draw(&d, &training(1, 5)));
        assert_ne!(a, draw(&d, &training(1, 6)), "steps differ");
        assert_ne!(a, draw(&d, &training(2, 5)), "runs differ");
        assert_ne!(
            a,
            draw(&Dropout { seed: 9, ..d }, &training(1, 5)),
            "layers differ"
        );
        assert_ne!(a[..64], a[64..], "samples draw their own masks");
    }

    #[test]
    fn noise_shape_broadcasts_like_keras() {
        // Batch of 3, shape (4, 5); mask (3, 1, 5): each sample shares it over its 4 rows.
        let d = Dropout {
            rate: 0.5,
            shape: &[4, 5],
            noise_shape: &[1, 5],
            per_sample: true,
            seed: 4,
        };
        let m = d.multipliers(3, &mut d.rng(&training(0, 0)));
        for sample in m.chunks(20) {
            for row in sample.chunks(5) {
                assert_eq!(row, &sample[..5]);
            }
        }
        assert_ne!(m[..20], m[20..40]);
        // Mask (1, 4, 1): one draw per row, shared by every sample and feature.
        let shared = Dropout {
            noise_shape: &[4, 1],
            per_sample: false,
            ..d
        };
        let m = shared.multipliers(3, &mut shared.rng(&training(0, 1)));
        assert_eq!(m[..20], m[20..40]);
        assert_eq!(m[..20], m[40..]);
        for row in m[..20].chunks(5) {
            assert!(row.iter().all(|v| *v == row[0]));
        }
        assert!(m[..20].chunks(5).any(|r| r[0] == 0.0) && m[..20].chunks(5).any(|r| r[0] != 0.0));
    }
}
