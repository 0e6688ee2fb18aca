//! Weight constraints, as `keras.constraints`: [`Constraint::apply`] projects a weight after
//! each optimizer step.
//!
//! Norms are taken along one `axis` of the weight's Keras shape (row-major memory). For a
//! Dense kernel of shape `(input_dim, units)`, `axis: 0` constrains each unit's incoming
//! weight vector, which is what Keras's default means.

use crate::math;

/// Keras's `backend.epsilon()`, added to norms before dividing by them.
const EPSILON: f32 = 1e-7;

/// A projection applied to a weight after each update.
///
/// ```
/// use kiln_runtime::Constraint;
/// let mut w = [3.0, 0.0, 4.0, 1.0]; // shape (2, 2): columns (3, 4) and (0, 1)
/// Constraint::MaxNorm { max_value: 2.0, axis: 0 }.apply(&mut w, &[2, 2]);
/// assert!((w[0] - 1.2).abs() < 1e-6 && (w[2] - 1.6).abs() < 1e-6); // norm 5 -> 2
/// assert!((w[3] - 1.0).abs() < 1e-6); // norm 1 stays (up to epsilon)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Constraint {
    /// Rescales vectors whose norm exceeds `max_value`: `w * clip(n, 0, max) / (eps + n)`.
    /// Keras defaults: `max_value = 2`, `axis = 0`.
    MaxNorm {
        /// The largest norm allowed.
        max_value: f32,
        /// The axis the norm runs along.
        axis: usize,
    },
    /// Moves each norm towards `[min_value, max_value]`:
    /// `w * (rate * clip(n, min, max) + (1 - rate) * n) / (eps + n)`.
    /// Keras defaults: `min_value = 0`, `max_value = 1`, `rate = 1`, `axis = 0`.
    MinMaxNorm {
        /// The smallest norm allowed.
        min_value: f32,
        /// The largest norm allowed.
        max_value: f32,
        /// 1 enforces the bounds at once; less moves part of the way each step.
        rate: f32,
        /// The axis the norm runs along.
        axis: usize,
    },
    /// Sets negative entries to 0 (`maximum(w, 0)`).
    NonNeg,
    /// Divides by the norm: `w / (eps + n)`. Keras default `axis = 0`.
    UnitNorm {
        /// The axis the norm runs along.
        axis: usize,
    },
}

impl Constraint {
    /// The constraint a Keras name resolves to, with Keras's defaults: `"max_norm"`,
    /// `"min_max_norm"`, `"non_neg"`, `"unit_norm"` (and the class names).
    pub fn from_name(name: &str) -> Option<Constraint> {
        Some(match name {
            "max_norm" | "MaxNorm" => Constraint::MaxNorm {
                max_value: 2.0,
                axis: 0,
            },
            "min_max_norm" | "MinMaxNorm" => Constraint::MinMaxNorm {
                min_value: 0.0,
                max_value: 1.0,
                rate: 1.0,
                axis: 0,
            },
            "non_neg" | "NonNeg" => Constraint::NonNeg,
            "unit_norm" | "UnitNorm" => Constraint::UnitNorm { axis: 0 },
            _ => return None,
        })
    }

    /// Projects `values` (a weight of Keras shape `shape`, row-major) in place.
    ///
    /// # Panics
    /// If `shape` does not describe `values.len()` values, or `axis` is not one of its axes.
    pub fn apply(&self, values: &mut [f32], shape: &[usize]) {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "constraint: shape {shape:?} does not hold {} values",
            values.len()
        );
        match *self {
            Constraint::NonNeg => {
                // jnp.maximum(w, 0): NaN stays NaN.
                values.iter_mut().for_each(|w| {
                    if *w < 0.0 {
                        *w = 0.0
                    }
                });
            }
            Constraint::MaxNorm { max_value, axis } => for_each_norm(values, shape, axis, |n| {
                clip(n, 0.0, max_value) / (EPSILON + n)
            }),
            Constraint::MinMaxNorm {
                min_value,
                max_value,
                rate,
                axis,
            } => for_each_norm(values, shape, axis, |n| {
                let desired = rate * clip(n, min_value, max_value) + (1.0 - rate) * n;
                desired / (EPSILON + n)
            }),
            Constraint::UnitNorm { axis } => {
                // Keras divides by (eps + n) rather than multiplying by its inverse; kept
                // as a division for the same rounding.
                for_each_vector(values, shape, axis, |v, stride, len| {
                    let n = norm(v, stride, len);
                    for k in 0..len {
                        v[k * stride] /= EPSILON + n;
                    }
                })
            }
        }
    }
}

/// `jnp.clip(x, lo, hi)`: maximum, then minimum.
#[inline]
fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// The L2 norm of the `len` entries `v[0], v[stride], ...`.
fn norm(v: &[f32], stride: usize, len: usize) -> f32 {
    math::sqrt((0..len).map(|k| v[k * stride] * v[k * stride]).sum())
}

/// Multiplies every vector along `axis` by `factor(its norm)`.
fn for_each_norm(values: &mut [f32], shape: &[usize], axis: usize, factor: impl Fn(f32) -> f32) {
    for_each_vector(values, shape, axis, |v, stride, len| {
        let f = factor(norm(v, stride, len));
        for k in 0..len {
            v[k * stride] *= f;
        }
    });
}

/// Calls `f(v, stride, len)` for every vector along `axis` of a row-major tensor: the vector's
/// entries are `v[0], v[stride], ..., v[(len - 1) * stride]`.
fn for_each_vector(
    values: &mut [f32],
    shape: &[usize],
    axis: usize,
    mut f: impl FnMut(&mut [f32], usize, usize),
) {
    assert!(
        axis < shape.len(),
        "constraint axis {axis} is out of range for a weight of rank {}",
        shape.len()
    );
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let block = len * inner;
    if block == 0 {
        return;
    }
    for outer in values.chunks_exact_mut(block) {
        for i in 0..inner {
            f(&mut outer[i..], inner, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_neg_zeroes_negatives() {
        let mut w = [-1.0, 0.5, -0.0, 2.0];
        Constraint::NonNeg.apply(&mut w, &[4]);
        assert_eq!(w, [0.0, 0.5, -0.0, 2.0]);
    }

    #[test]
    fn unit_norm_along_rows() {
        let mut w = [3.0, 4.0, 0.0, 2.0];
        Constraint::UnitNorm { axis: 1 }.apply(&mut w, &[2, 2]);
        assert!((w[0] - 0.6).abs() < 1e-6 && (w[1] - 0.8).abs() < 1e-6);
        assert!((w[3] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn names_have_keras_defaults() {
        assert_eq!(
            Constraint::from_name("max_norm"),
            Some(Constraint::MaxNorm {
                max_value: 2.0,
                axis: 0
            })
        );
        assert_eq!(Constraint::from_name("nonneg"), None);
    }
}
