//! Learning-rate schedules, as `keras.optimizers.schedules`: [`Schedule`] and its six kinds,
//! each with [`Schedule::at`] (Keras's `schedule(step)`).
//!
//! An optimizer with a schedule (its `schedule` field) evaluates it at its iteration count
//! *before* the step under way, as Keras's `_get_current_learning_rate` reads
//! `optimizer.iterations` before `apply` increments it: the first step uses `at(0)`, and
//! `Optimizer::learning_rate` between steps shows the rate the next step will use.
//!
//! Every formula runs in `f32` operation by operation as Keras's does on the JAX backend
//! (`initial_learning_rate` is a float32 tensor and the step is cast to it), so that the
//! rates match Keras's to the rounding of the transcendental functions.

use crate::Error;
use alloc::vec::Vec;
use core::f32::consts::PI;

/// A learning rate that changes with the optimizer's step count, Keras's
/// `LearningRateSchedule` subclasses.
///
/// ```
/// use kiln_runtime::schedules::{ExponentialDecay, Schedule};
/// let s: Schedule = ExponentialDecay::new(0.1, 10, 0.5).into();
/// assert_eq!(s.at(0), 0.1);
/// assert_eq!(s.at(10), 0.05);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// [`ExponentialDecay`].
    ExponentialDecay(ExponentialDecay),
    /// [`InverseTimeDecay`].
    InverseTimeDecay(InverseTimeDecay),
    /// [`PiecewiseConstantDecay`].
    PiecewiseConstantDecay(PiecewiseConstantDecay),
    /// [`PolynomialDecay`].
    PolynomialDecay(PolynomialDecay),
    /// [`CosineDecay`].
    CosineDecay(CosineDecay),
    /// [`CosineDecayRestarts`].
    CosineDecayRestarts(CosineDecayRestarts),
}

impl Schedule {
    /// The learning rate at optimizer step `step` (Keras's `schedule(step)`).
    pub fn at(&self, step: u64) -> f32 {
        match self {
            Schedule::ExponentialDecay(s) => s.at(step),
            Schedule::InverseTimeDecay(s) => s.at(step),
            Schedule::PiecewiseConstantDecay(s) => s.at(step),
            Schedule::PolynomialDecay(s) => s.at(step),
            Schedule::CosineDecay(s) => s.at(step),
            Schedule::CosineDecayRestarts(s) => s.at(step),
        }
    }
}

macro_rules! into_schedule {
    ($($kind:ident),*) => {
        $(impl From<$kind> for Schedule {
            fn from(s: $kind) -> Schedule {
                Schedule::$kind(s)
            }
        })*
    };
}
into_schedule!(
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
    CosineDecay,
    CosineDecayRestarts
);

/// `step` as the float32 Keras casts it to.
fn f(step: u64) -> f32 {
    step as f32
}

/// `1 - x` for a hyperparameter Keras keeps as a Python float: formed in double, then
/// rounded to float32 where it meets a tensor.
fn one_minus_python(x: f32) -> f32 {
    (1.0 - f64::from(x)) as f32
}

/// `initial_learning_rate * decay_rate ^ (step / decay_steps)`, the exponent floored with
/// `staircase` (Keras `ExponentialDecay`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialDecay {
    /// The rate at step 0.
    pub initial_learning_rate: f32,
    /// Steps per factor of `decay_rate`.
    pub decay_steps: u64,
    /// The factor per `decay_steps` steps.
    pub decay_rate: f32,
    /// Decay in whole periods. Keras default false.
    pub staircase: bool,
}

impl ExponentialDecay {
    /// Keras's arguments, `staircase = False`.
    pub fn new(initial_learning_rate: f32, decay_steps: u64, decay_rate: f32) -> Self {
        ExponentialDecay {
            initial_learning_rate,
            decay_steps,
            decay_rate,
            staircase: false,
        }
    }

    /// The rate at `step`.
    pub fn at(&self, step: u64) -> f32 {
        let mut p = f(step) / f(self.decay_steps);
        if self.staircase {
            p = libm::floorf(p);
        }
        self.initial_learning_rate * libm::powf(self.decay_rate, p)
    }
}

/// `initial_learning_rate / (1 + decay_rate * step / decay_steps)`, the quotient floored
/// with `staircase` (Keras `InverseTimeDecay`).
#[derive(Clone, Debug, PartialEq)]
pub struct InverseTimeDecay {
    /// The rate at step 0.
    pub initial_learning_rate: f32,
    /// Steps per unit of decay.
    pub decay_steps: u64,
    /// The decay per `decay_steps` steps.
    pub decay_rate: f32,
    /// Decay in whole periods. Keras default false.
    pub staircase: bool,
}

impl InverseTimeDecay {
    /// Keras's arguments, `staircase = False`.
    pub fn new(initial_learning_rate: f32, decay_steps: u64, decay_rate: f32) -> Self {
        InverseTimeDecay {
            initial_learning_rate,
            decay_steps,
            decay_rate,
            staircase: false,
        }
    }

    /// The rate at `step`.
    pub fn at(&self, step: u64) -> f32 {
        let mut p = f(step) / f(self.decay_steps);
        if self.staircase {
            p = libm::floorf(p);
        }
        self.initial_learning_rate / (1.0 + self.decay_rate * p)
    }
}

/// `values[0]` up to and including step `boundaries[0]`, `values[1]` up to `boundaries[1]`,
/// …, `values[n]` after the last boundary (Keras `PiecewiseConstantDecay`).
///
/// Boundaries are whole steps: Keras casts float boundaries to the step's integer type.
#[derive(Clone, Debug, PartialEq)]
pub struct PiecewiseConstantDecay {
    boundaries: Vec<u64>,
    values: Vec<f32>,
}

impl PiecewiseConstantDecay {
    /// Keras's `(boundaries, values)`.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] unless there is one more value than boundaries and at least
    /// one boundary (Keras raises a `ValueError` for the first, an `IndexError` for the
    /// second).
    pub fn new(boundaries: Vec<u64>, values: Vec<f32>) -> Result<Self, Error> {
        if boundaries.len() + 1 != values.len() {
            return Err(Error::InvalidOption {
                name: "values",
                reason: "must hold one more value than `boundaries`",
            });
        }
        if boundaries.is_empty() {
            return Err(Error::InvalidOption {
                name: "boundaries",
                reason: "must hold at least one step",
            });
        }
        Ok(PiecewiseConstantDecay { boundaries, values })
    }

    /// The step boundaries.
    pub fn boundaries(&self) -> &[u64] {
        &self.boundaries
    }

    /// The rates, one more than the boundaries.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The rate at `step`: Keras's sum of `indicator * value` over the ranges (so unsorted
    /// boundaries add up as in Keras).
    pub fn at(&self, step: u64) -> f32 {
        let (b, v) = (&self.boundaries, &self.values);
        let ind = |c: bool| if c { 1.0f32 } else { 0.0 };
        let last = b.len() - 1;
        let mut result = 0.0f32;
        result += ind(step <= b[0]) * v[0];
        result += ind(step > b[last]) * v[last + 1];
        for i in 0..last {
            result += ind(step > b[i] && step <= b[i + 1]) * v[i + 1];
        }
        result
    }
}

/// `(initial - end) * (1 - step / decay_steps) ^ power + end`, the step capped at
/// `decay_steps`, or with `cycle` the decay length stretched to the next multiple of
/// `decay_steps` (Keras `PolynomialDecay`).
#[derive(Clone, Debug, PartialEq)]
pub struct PolynomialDecay {
    /// The rate at step 0.
    pub initial_learning_rate: f32,
    /// Steps to reach `end_learning_rate`.
    pub decay_steps: u64,
    /// The final rate. Keras default 0.0001.
    pub end_learning_rate: f32,
    /// The polynomial's power. Keras default 1.0.
    pub power: f32,
    /// Restart the decay every `decay_steps` (from a longer period each time). Keras
    /// default false.
    pub cycle: bool,
}

impl PolynomialDecay {
    /// Keras's arguments, `end_learning_rate = 0.0001`, `power = 1.0`, `cycle = False`.
    pub fn new(initial_learning_rate: f32, decay_steps: u64) -> Self {
        PolynomialDecay {
            initial_learning_rate,
            decay_steps,
            end_learning_rate: 0.0001,
            power: 1.0,
            cycle: false,
        }
    }

    /// The rate at `step`.
    pub fn at(&self, step: u64) -> f32 {
        let mut step_f = f(step);
        let mut decay_steps = f(self.decay_steps);
        if self.cycle {
            // The first multiple of decay_steps above the step; 1 at step 0.
            let multiplier = if step_f == 0.0 {
                1.0
            } else {
                libm::ceilf(step_f / decay_steps)
            };
            decay_steps *= multiplier;
        } else if step_f > decay_steps {
            step_f = decay_steps;
        }
        let p = step_f / decay_steps;
        (self.initial_learning_rate - self.end_learning_rate) * libm::powf(1.0 - p, self.power)
            + self.end_learning_rate
    }
}

/// Cosine decay from `initial_learning_rate` to `alpha` times it over `decay_steps`, after
/// an optional linear warmup to `warmup_target` over `warmup_steps` (Keras `CosineDecay`):
///
/// ```text
/// decayed(s, lr) = lr * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)
/// no warmup_target: decayed(min(step, decay_steps), initial_learning_rate)
/// else, step capped at warmup_steps + decay_steps:
///   step < warmup_steps: (warmup_target - initial) * step / warmup_steps + initial
///   otherwise:           decayed(step - warmup_steps, warmup_target)
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CosineDecay {
    /// The rate at step 0.
    pub initial_learning_rate: f32,
    /// Steps of the cosine.
    pub decay_steps: u64,
    /// The final rate as a fraction of the start of the decay. Keras default 0.
    pub alpha: f32,
    /// The rate the warmup climbs to, where the decay starts. Keras default none (no
    /// warmup).
    pub warmup_target: Option<f32>,
    /// Steps of the warmup. Keras default 0.
    pub warmup_steps: u64,
}

impl CosineDecay {
    /// Keras's arguments, `alpha = 0.0`, `warmup_target = None`, `warmup_steps = 0`.
    pub fn new(initial_learning_rate: f32, decay_steps: u64) -> Self {
        CosineDecay {
            initial_learning_rate,
            decay_steps,
            alpha: 0.0,
            warmup_target: None,
            warmup_steps: 0,
        }
    }

    fn decayed(&self, step: f32, decay_steps: f32, from: f32) -> f32 {
        let completed_fraction = step / decay_steps;
        let cosine = 0.5 * (1.0 + libm::cosf(PI * completed_fraction));
        // Keras's `1 - self.alpha` is a Python float.
        from * (one_minus_python(self.alpha) * cosine + self.alpha)
    }

    /// The rate at `step`.
    pub fn at(&self, step: u64) -> f32 {
        let decay_steps = f(self.decay_steps);
        let step = f(step);
        let Some(target) = self.warmup_target else {
            let step = if step > decay_steps {
                decay_steps
            } else {
                step
            };
            return self.decayed(step, decay_steps, self.initial_learning_rate);
        };
        let warmup_steps = f(self.warmup_steps);
        let cap = decay_steps + warmup_steps;
        let step = if step > cap { cap } else { step };
        if step < warmup_steps {
            let completed_fraction = step / warmup_steps;
            let delta = target - self.initial_learning_rate;
            delta * completed_fraction + self.initial_learning_rate
        } else {
            self.decayed(step - warmup_steps, decay_steps, target)
        }
    }
}

/// Cosine decay with warm restarts (SGDR, Loshchilov & Hutter 2016), Keras
/// `CosineDecayRestarts`: periods of `first_decay_steps`, then `t_mul` times longer each,
/// each restarting from `m_mul` times the previous start.
#[derive(Clone, Debug, PartialEq)]
pub struct CosineDecayRestarts {
    /// The rate at step 0.
    pub initial_learning_rate: f32,
    /// Steps of the first period.
    pub first_decay_steps: u64,
    /// Each period's length over the previous one's. Keras default 2.0.
    pub t_mul: f32,
    /// Each period's starting rate over the previous one's. Keras default 1.0.
    pub m_mul: f32,
    /// The lowest rate as a fraction of the period's start. Keras default 0.
    pub alpha: f32,
}

impl CosineDecayRestarts {
    /// Keras's arguments, `t_mul = 2.0`, `m_mul = 1.0`, `alpha = 0.0`.
    pub fn new(initial_learning_rate: f32, first_decay_steps: u64) -> Self {
        CosineDecayRestarts {
            initial_learning_rate,
            first_decay_steps,
            t_mul: 2.0,
            m_mul: 1.0,
            alpha: 0.0,
        }
    }

    /// The rate at `step`.
    pub fn at(&self, step: u64) -> f32 {
        let (t_mul, alpha) = (self.t_mul, self.alpha);
        let mut completed_fraction = f(step) / f(self.first_decay_steps);
        let i_restart = if t_mul == 1.0 {
            let i = libm::floorf(completed_fraction);
            completed_fraction -= i;
            i
        } else {
            // The period index solves the geometric sum of period lengths.
            let i = libm::floorf(
                libm::logf(1.0 - completed_fraction * (1.0 - t_mul)) / libm::logf(t_mul),
            );
            let sum_r = (1.0 - libm::powf(t_mul, i)) / (1.0 - t_mul);
            completed_fraction = (completed_fraction - sum_r) / libm::powf(t_mul, i);
            i
        };
        let m_fac = libm::powf(self.m_mul, i_restart);
        let cosine = 0.5 * m_fac * (1.0 + libm::cosf(PI * completed_fraction));
        // Here Keras casts `alpha` to a float32 tensor first.
        let decayed = (1.0 - alpha) * cosine + alpha;
        self.initial_learning_rate * decayed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn piecewise_checks_its_lengths() {
        assert!(PiecewiseConstantDecay::new(vec![1, 2], vec![0.1, 0.2]).is_err());
        assert!(PiecewiseConstantDecay::new(vec![], vec![0.1]).is_err());
        let s = PiecewiseConstantDecay::new(vec![2, 4], vec![1.0, 0.5, 0.25]).unwrap();
        let rates: Vec<f32> = (0..6).map(|t| s.at(t)).collect();
        assert_eq!(rates, [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn staircase_holds_the_rate_within_a_period() {
        let s = ExponentialDecay {
            staircase: true,
            ..ExponentialDecay::new(1.0, 4, 0.5)
        };
        assert_eq!([s.at(0), s.at(3), s.at(4), s.at(7)], [1.0, 1.0, 0.5, 0.5]);
    }

    #[test]
    fn cosine_ends_at_alpha_and_stays() {
        let s = CosineDecay {
            alpha: 0.25,
            ..CosineDecay::new(2.0, 10)
        };
        assert_eq!(s.at(10), 0.5);
        assert_eq!(s.at(1000), 0.5);
    }
}
