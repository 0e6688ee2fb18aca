//! Optimizers: the [`Optimizer`] trait and Keras 3's [`Sgd`], [`Adam`], [`AdamW`],
//! [`RmsProp`], [`Adagrad`], [`Nadam`], [`Adamax`], [`Adadelta`], [`Ftrl`], [`Lion`] and
//! [`Lamb`], with what Keras's base optimizer adds to each: [`GradientClip`], decoupled
//! weight decay, a learning-rate [`Schedule`] (each optimizer's `schedule` field, which
//! replaces its constant `learning_rate` when set) and the weights' moving average [`Ema`]
//! (`use_ema`). [`from_name`] resolves `compile(optimizer="adam")`.
//!
//! Each weight tensor the optimizer updates is a *slot* (its index in the model's weight
//! list). Per-slot state (momentum, moments, accumulators) is allocated on first use, to the
//! length of that weight, and kept in a [`Slots`] table, so a training step allocates
//! nothing after the first.
//!
//! # One training step, as Keras's `optimizer.apply(grads, variables)` runs it
//! 1. [`GradientClip::apply`] on all the gradients ([`Optimizer::gradient_clip`]);
//! 2. [`Optimizer::step_begin`] (the iteration count becomes the step number `t`, from 1);
//! 3. [`Optimizer::update`] for each weight: decoupled weight decay
//!    `w -= w * weight_decay * lr` when set, then the optimizer's own rule, then the
//!    moving average ([`Ema`]) when set; `lr` is the schedule's value at `t - 1`, the
//!    iteration count Keras reads before `apply` increments it;
//! 4. constraints ([`crate::constraints`]) on the updated weights.
//!
//! Every rule but [`Lamb`]'s (whose trust ratio needs whole-weight norms) is element-wise,
//! [`ElementwiseRule`]; with an [`Ema`] or any clipping the update also runs whole.
//!
//! Update rules follow the Keras 3 source operation by operation (same order of rounding
//! where it is observable), defaults included. Hyperparameters are `f32` where Keras keeps
//! Python floats: `1 - beta_1` is formed in `f32` (0.100000024 for 0.9, where JAX rounds
//! the double 0.09999999999999998 to 0.1), a relative difference of 2e-7 per step, and
//! `1 - beta_2` for 0.999 is 0.00099998713 against Keras's 0.001, 1.3e-5 relative (6e-6 on
//! Adam's step, through the square root). Where Keras casts the betas to float32 before
//! subtracting (Nadam, Lion), kiln's arithmetic is Keras's.

mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod adamw;
mod ema;
mod ftrl;
mod lamb;
mod lion;
mod nadam;
mod rmsprop;
mod rule;
mod sgd;

pub use adadelta::Adadelta;
pub use adagrad::Adagrad;
pub use adam::Adam;
pub use adamax::Adamax;
pub use adamw::AdamW;
pub use ema::Ema;
pub use ftrl::Ftrl;
pub use lamb::Lamb;
pub use lion::Lion;
pub use nadam::Nadam;
pub use rmsprop::RmsProp;
pub(crate) use rule::{bound_of, magnitude, Magnitudes, LIMIT, NON_FINITE};
pub use rule::{ElementwiseRule, MAX_STATE_PARTS};
pub use sgd::Sgd;

pub use crate::schedules::Schedule;

use crate::math;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// The `Optimizer` methods that every optimizer with fields `learning_rate`, `schedule`,
/// `clip`, `ema` and `state: Slots` implements the same way; `$name` is Keras's name, and
/// `$reset` (a closure on `&mut Self`) forgets any state outside `state` and `ema`.
macro_rules! bookkeeping {
    // `extra_state` (a closure on `&mut Self` and the visitor) visits state kept outside
    // `state` and `ema`, for `Trainer::save`.
    ($name:literal, extra_state = $extra:expr, reset = $reset:expr) => {
        super::bookkeeping!(@body $name, [$reset], [$extra]);
    };
    ($name:literal $(, $reset:expr)?) => {
        super::bookkeeping!(@body $name, [$($reset)?], []);
    };
    (@body $name:literal, [$($reset:expr)?], [$($extra:expr)?]) => {
        fn visit_state(&mut self, visit: &mut dyn FnMut(&str, super::StateRef<'_>)) -> bool {
            visit("learning_rate", super::StateRef::Scalar(&mut self.learning_rate));
            self.state.visit("state", visit);
            if let Some(ema) = &mut self.ema {
                ema.averages.visit("ema", visit);
            }
            $(($extra)(&mut *self, visit);)?
            true
        }

        fn iterations(&self) -> u64 {
            self.state.iterations()
        }

        fn learning_rate(&self) -> f32 {
            super::scheduled(self.learning_rate, &self.schedule, self.state.iterations())
        }

        fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), crate::Error> {
            super::check_settable(&self.schedule)?;
            self.learning_rate = learning_rate;
            Ok(())
        }

        fn gradient_clip(&self) -> GradientClip {
            self.clip
        }

        fn finalize_variable_values(&mut self, slot: usize, params: &mut [f32]) {
            if let Some(ema) = &mut self.ema {
                ema.overwrite(slot, params);
            }
        }

        fn reset(&mut self) {
            self.state.reset();
            if let Some(ema) = &mut self.ema {
                ema.reset();
            }
            $(($reset)(&mut *self);)?
        }

        fn name(&self) -> &'static str {
            $name
        }
    };
}
pub(crate) use bookkeeping;

/// `update` and `elementwise` of an optimizer whose inherent
/// `rule()` gives this step's [`ElementwiseRule`] and whose `state` is a [`Slots`] table: the
/// arithmetic lives in the rule, once for every optimizer. With an `ema` the weights update
/// whole (the average follows each whole update).
macro_rules! elementwise_update {
    () => {
        fn update(&mut self, slot: usize, params: &mut [f32], grads: &[f32]) {
            super::check(params, grads);
            let rule = self.rule();
            let (parts, init) = rule.state_parts();
            let state = self.state.get(slot, params.len(), parts, init);
            rule.apply_whole(params, grads, state);
            if let Some(ema) = &mut self.ema {
                ema.update(slot, params, self.state.iterations().max(1));
            }
        }

        fn elementwise(&mut self) -> Option<(ElementwiseRule, &mut Slots)> {
            if self.ema.is_some() {
                return None;
            }
            Some((self.rule(), &mut self.state))
        }
    };
}
pub(crate) use elementwise_update;

/// `next_elementwise` of an optimizer whose inherent `rule_at(t)` gives step `t`'s
/// [`ElementwiseRule`] (and `rule()` is `rule_at` of the current step): the rule of the step
/// the next `step_begin` starts, for `fit`'s overflow guard. `None` with an `ema` (its
/// averages are not bounded: the guard copies and checks instead).
macro_rules! next_elementwise {
    () => {
        fn next_elementwise(&mut self) -> Option<(ElementwiseRule, &mut Slots)> {
            if self.ema.is_some() {
                return None;
            }
            Some((self.rule_at(self.state.iterations() + 1), &mut self.state))
        }
    };
}
pub(crate) use next_elementwise;

/// The learning rate after `iterations` completed steps: the schedule's value there, or the
/// constant (Keras's `optimizer.learning_rate`).
fn scheduled(constant: f32, schedule: &Option<Schedule>, iterations: u64) -> f32 {
    match schedule {
        Some(s) => s.at(iterations),
        None => constant,
    }
}

/// The learning rate of the step under way (after `step_begin`, which counted it): Keras
/// evaluates the schedule at the iteration count before `apply` increments it.
fn step_rate(constant: f32, schedule: &Option<Schedule>, state: &Slots) -> f32 {
    scheduled(constant, schedule, state.iterations().saturating_sub(1))
}

/// Keras refuses to set the learning rate of an optimizer built with a schedule.
fn check_settable(schedule: &Option<Schedule>) -> Result<(), crate::Error> {
    match schedule {
        None => Ok(()),
        Some(_) => Err(crate::Error::InvalidOption {
            name: "learning_rate",
            reason: "is not settable: this optimizer was built with a learning-rate \
                     `Schedule` (Keras raises a TypeError too); build it with a constant \
                     `learning_rate` and no `schedule` instead",
        }),
    }
}

/// A gradient-descent rule with per-weight state.
///
/// ```
/// use kiln_runtime::optimizers::{Optimizer, Sgd};
/// let mut opt = Sgd { learning_rate: 0.1, ..Sgd::default() };
/// let mut w = [1.0, 2.0];
/// opt.step_begin();
/// opt.update(0, &mut w, &[1.0, -1.0]);
/// assert_eq!(w, [0.9, 2.1]);
/// ```
pub trait Optimizer {
    /// Starts a training step: increments the iteration count, so that [`Optimizer::update`]
    /// sees step `t = 1` on the first step (Keras's `iterations + 1`).
    fn step_begin(&mut self);

    /// Updates one weight tensor `params` in place from its gradient. `slot` identifies the
    /// tensor across steps (its state lives there); use the same slot for the same weight
    /// every step.
    ///
    /// # Panics
    /// If `grads` and `params` differ in length, or `slot` was first used with a weight of
    /// another length.
    fn update(&mut self, slot: usize, params: &mut [f32], grads: &[f32]);

    /// This step's update as an [`ElementwiseRule`] together with the optimizer's state
    /// table (asked after [`Optimizer::step_begin`]), for updating pieces of each weight on
    /// several threads (`fit` with `FitOptions::threads`). The state must be laid out as
    /// the rule's `state_parts` buffers of each weight's length, back to back per slot — what
    /// [`Slots`] keeps for kiln's optimizers. `None` (the default, for optimizers outside
    /// kiln) keeps the update on one thread through [`Optimizer::update`].
    fn elementwise(&mut self) -> Option<(ElementwiseRule, &mut Slots)> {
        None
    }

    /// The [`ElementwiseRule`] the *next* step will use (the one the next
    /// [`Optimizer::step_begin`] starts) and the state table, asked before that step
    /// begins: `fit`'s overflow guard bounds the step with it before anything is written
    /// (see `Trainer::fit`). `None` (the default, and every optimizer whose next rule kiln
    /// does not bound) makes the guard copy the weights and the state before the step and
    /// check them after it instead.
    #[doc(hidden)]
    fn next_elementwise(&mut self) -> Option<(ElementwiseRule, &mut Slots)> {
        None
    }

    /// Completed [`Optimizer::step_begin`] calls (Keras's `optimizer.iterations`, counted
    /// from the start of the current step).
    fn iterations(&self) -> u64;

    /// The learning rate the next step uses (Keras's `optimizer.learning_rate`: with a
    /// schedule, its value at [`Optimizer::iterations`]).
    fn learning_rate(&self) -> f32;

    /// Changes the learning rate (`LearningRateScheduler`, `ReduceLROnPlateau`); state is
    /// kept. An error (and no change) on kiln's optimizers built with a schedule, as Keras
    /// raises a `TypeError`.
    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), crate::Error>;

    /// The clipping to apply to the gradients before [`Optimizer::update`] (Keras's
    /// `clipnorm` / `clipvalue` / `global_clipnorm`).
    fn gradient_clip(&self) -> GradientClip;

    /// Forgets all state and the iteration count, as a freshly built optimizer.
    fn reset(&mut self);

    /// Keras's `finalize_variable_values`, which `fit` calls on each trained weight after
    /// its last epoch: with an [`Ema`], writes the weight's moving average over `params`.
    /// The default does nothing.
    fn finalize_variable_values(&mut self, slot: usize, params: &mut [f32]) {
        let _ = (slot, params);
    }

    /// Keras's lowercase name (`"adam"`), as `keras.optimizers.get` accepts it.
    fn name(&self) -> &'static str;

    /// Shows `visit` every piece of state kept between steps (the learning rate, the step
    /// count, moments, averages), each under a stable name, to read (`Trainer::save`) or
    /// overwrite (`Trainer::load`); returns whether the optimizer supports this. The
    /// default supports nothing (`false`), and `Trainer::save` refuses such an optimizer.
    fn visit_state(&mut self, visit: &mut dyn FnMut(&str, StateRef<'_>)) -> bool {
        let _ = visit;
        false
    }
}

/// One piece of optimizer state, as [`Optimizer::visit_state`] shows it.
#[derive(Debug)]
pub enum StateRef<'a> {
    /// A buffer of values (moments of one weight, back to back); a loader may resize it.
    Values(&'a mut Vec<f32>),
    /// A count (steps taken, buffers in a table); a loader may change it, and a table then
    /// resizes to it before showing its buffers.
    Count(&'a mut u64),
    /// One number (the learning rate, Nadam's product of momenta).
    Scalar(&'a mut f32),
}

/// The optimizer `keras.optimizers.get(name)` builds, with Keras's defaults: any of
/// [`NAMES`] (any letter case, as Keras lowercases).
pub fn from_name(name: &str) -> Option<Box<dyn Optimizer>> {
    let lower: alloc::string::String = name.chars().map(|c| c.to_ascii_lowercase()).collect();
    Some(match lower.as_str() {
        "sgd" => Box::new(Sgd::default()),
        "adam" => Box::new(Adam::default()),
        "adamw" => Box::new(AdamW::default()),
        "rmsprop" => Box::new(RmsProp::default()),
        "adagrad" => Box::new(Adagrad::default()),
        "nadam" => Box::new(Nadam::default()),
        "adamax" => Box::new(Adamax::default()),
        "adadelta" => Box::new(Adadelta::default()),
        "ftrl" => Box::new(Ftrl::default()),
        "lion" => Box::new(Lion::default()),
        "lamb" => Box::new(Lamb::default()),
        _ => return None,
    })
}

/// Every name [`from_name`] accepts (lowercase), for "did you mean" suggestions.
pub const NAMES: &[&str] = &[
    "sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam", "adamax", "adadelta", "ftrl", "lion",
    "lamb",
];

/// Gradient clipping, Keras's three mutually exclusive options.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum GradientClip {
    /// Gradients are used as they are.
    #[default]
    None,
    /// `clipnorm`: each weight's gradient is rescaled to an L2 norm of at most this.
    Norm(f32),
    /// `global_clipnorm`: all gradients together are rescaled to a joint L2 norm of at most
    /// this (a non-finite norm makes every gradient NaN, as in Keras).
    GlobalNorm(f32),
    /// `clipvalue`: each gradient entry is clamped to `[-v, v]`.
    Value(f32),
}

impl GradientClip {
    /// Clips the gradients of all weights in place, one buffer per weight (slices, or the
    /// trainer's `Vec`s directly: no allocation).
    pub fn apply<T: AsMut<[f32]> + AsRef<[f32]>>(&self, tensors: &mut [T]) {
        match *self {
            GradientClip::None => {}
            GradientClip::Norm(c) => tensors.iter_mut().for_each(|t| clip_by_norm(t.as_mut(), c)),
            GradientClip::Value(v) => tensors
                .iter_mut()
                .for_each(|t| clip_by_value(t.as_mut(), v)),
            GradientClip::GlobalNorm(c) => {
                let sum: f32 = tensors.iter().map(|t| sum_of_squares(t.as_ref())).sum();
                let scale = global_norm_scale(sum, c);
                for t in tensors.iter_mut() {
                    t.as_mut().iter_mut().for_each(|g| *g *= scale);
                }
            }
        }
    }

    /// [`GradientClip::apply`] on one buffer holding every weight's gradient back to back,
    /// `lengths[i]` values for weight `i` (no allocation).
    ///
    /// # Panics
    /// If the lengths do not add up to `grads.len()`.
    pub fn apply_flat(&self, grads: &mut [f32], lengths: &[usize]) {
        assert_eq!(
            lengths.iter().sum::<usize>(),
            grads.len(),
            "gradient lengths"
        );
        match *self {
            GradientClip::None => {}
            GradientClip::Value(v) => clip_by_value(grads, v),
            GradientClip::GlobalNorm(c) => {
                // Keras sums each tensor's squares first, then the per-tensor sums.
                let mut sum = 0.0f32;
                let mut rest = &*grads;
                for &n in lengths {
                    let (t, tail) = rest.split_at(n);
                    sum += sum_of_squares(t);
                    rest = tail;
                }
                let scale = global_norm_scale(sum, c);
                grads.iter_mut().for_each(|g| *g *= scale);
            }
            GradientClip::Norm(c) => {
                let mut rest = grads;
                for &n in lengths {
                    let (t, tail) = rest.split_at_mut(n);
                    clip_by_norm(t, c);
                    rest = tail;
                }
            }
        }
    }
}

fn sum_of_squares(t: &[f32]) -> f32 {
    t.iter().map(|g| g * g).sum()
}

/// Keras's `_clip_by_norm`: `g * c / max(norm, c)`, with the norm of an all-zero gradient
/// taken as 0.
fn clip_by_norm(t: &mut [f32], c: f32) {
    if c <= 0.0 {
        return; // Keras ignores `clipnorm` unless it is positive
    }
    let l2sum = sum_of_squares(t);
    let norm = if l2sum > 0.0 {
        math::sqrt(l2sum)
    } else {
        l2sum
    };
    let denom = if norm > c { norm } else { c };
    t.iter_mut().for_each(|g| *g = *g * c / denom);
}

/// `jnp.clip(g, -v, v)`.
fn clip_by_value(t: &mut [f32], v: f32) {
    if v <= 0.0 {
        return; // Keras ignores `clipvalue` unless it is positive
    }
    for g in t.iter_mut() {
        let lo = if *g < -v { -v } else { *g };
        *g = if lo > v { v } else { lo };
    }
}

/// Keras's `clip_by_global_norm` factor: `c * min(1 / norm, 1 / c) + (norm - norm)`.
fn global_norm_scale(sum_of_squares: f32, c: f32) -> f32 {
    if c <= 0.0 {
        return 1.0;
    }
    let norm = math::sqrt(sum_of_squares);
    let (a, b) = (1.0 / norm, 1.0 / c);
    // Keras adds `norm - norm`: 0 for a finite norm, NaN otherwise.
    let poison = if norm.is_finite() { 0.0 } else { f32::NAN };
    c * (if a < b { a } else { b }) + poison
}

/// Per-weight optimizer state: for each slot, `parts` buffers of the weight's length back to
/// back (Adam: first and second moments), created on first use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slots {
    buffers: Vec<Vec<f32>>,
    iterations: u64,
}

impl Slots {
    /// No state yet.
    pub const fn new() -> Slots {
        Slots {
            buffers: Vec::new(),
            iterations: 0,
        }
    }

    /// Completed training steps (see [`Optimizer::iterations`]).
    pub fn iterations(&self) -> u64 {
        self.iterations
    }

    /// The state of `slot`, `parts * len` values, created on first use with the first
    /// buffer filled with `init` and the others with 0 (Ftrl: its accumulator starts at
    /// `initial_accumulator_value`, its linear term at 0).
    pub(crate) fn get(&mut self, slot: usize, len: usize, parts: usize, init: f32) -> &mut [f32] {
        if self.buffers.len() <= slot {
            self.buffers.resize_with(slot + 1, Vec::new);
        }
        let buffer = &mut self.buffers[slot];
        if buffer.is_empty() && parts > 0 {
            buffer.resize(len, init);
            buffer.resize(parts * len, 0.0);
        }
        assert_eq!(
            buffer.len(),
            parts * len,
            "optimizer slot {slot} was built for a weight of {} values, now given {len}",
            buffer.len() / parts.max(1)
        );
        buffer
    }

    /// For each weight of `lens`, the start of its state (`parts` buffers of its length,
    /// the first filled with `init` on first use, the others with 0), written to `starts`: where `fit`'s threads update
    /// their pieces. All buffers exist before any pointer is taken, and none is resized
    /// until the table is next borrowed mutably.
    ///
    /// # Panics
    /// If a slot holds state for a weight of another length (as [`Optimizer::update`]).
    pub fn piece_starts(
        &mut self,
        lens: &[usize],
        parts: usize,
        init: f32,
        starts: &mut [*mut f32],
    ) {
        assert_eq!(lens.len(), starts.len(), "one start per weight");
        for (slot, &len) in lens.iter().enumerate() {
            self.get(slot, len, parts, init);
        }
        for (slot, start) in starts.iter_mut().enumerate() {
            *start = self.buffers[slot].as_mut_ptr();
        }
    }

    fn step_begin(&mut self) {
        self.iterations += 1;
    }

    /// The largest magnitude of each of `rule`'s state parts over every buffer, as
    /// [`Magnitudes`] keeps it (infinity for a value that is not finite, or negative where
    /// the rule needs it non-negative), counting the value a buffer not yet created starts
    /// from.
    pub(crate) fn magnitudes(&self, rule: &ElementwiseRule) -> [f64; MAX_STATE_PARTS] {
        let (parts, init) = rule.state_parts();
        let mut top = [0; MAX_STATE_PARTS];
        if parts > 0 {
            top[0] = rule.part_magnitude(0, &[init]);
        }
        for buffer in self.buffers.iter().filter(|b| !b.is_empty()) {
            let len = buffer.len() / parts.max(1);
            for (part, values) in buffer.chunks(len.max(1)).enumerate().take(parts) {
                top[part] = top[part].max(rule.part_magnitude(part, values));
            }
        }
        top.map(bound_of)
    }

    /// Shows the step count, the number of buffers (after which the table resizes to what
    /// the visitor left) and each buffer, under `prefix/iterations`, `prefix/slots` and
    /// `prefix/<slot>`.
    pub(crate) fn visit(&mut self, prefix: &str, visit: &mut dyn FnMut(&str, StateRef<'_>)) {
        visit(
            &alloc::format!("{prefix}/iterations"),
            StateRef::Count(&mut self.iterations),
        );
        let mut count = self.buffers.len() as u64;
        visit(
            &alloc::format!("{prefix}/slots"),
            StateRef::Count(&mut count),
        );
        self.buffers.resize_with(count as usize, Vec::new);
        for (slot, buffer) in self.buffers.iter_mut().enumerate() {
            visit(&alloc::format!("{prefix}/{slot}"), StateRef::Values(buffer));
        }
    }

    fn reset(&mut self) {
        *self = Slots::new();
    }
}

/// Checks that a gradient fits its weight.
#[inline]
fn check(params: &[f32], grads: &[f32]) {
    assert_eq!(
        params.len(),
        grads.len(),
        "gradient has {} values for a weight of {}",
        grads.len(),
        params.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_case_insensitively() {
        for &name in NAMES {
            assert_eq!(from_name(name).map(|o| o.name()), Some(name));
        }
        assert_eq!(from_name("Adam").map(|o| o.name()), Some("adam"));
        assert!(from_name("adafactor").is_none());
    }

    #[test]
    fn slots_grow_lazily_and_keep_state() {
        let mut s = Slots::new();
        s.get(2, 3, 2, 0.5)[0] = 7.0;
        assert_eq!(s.get(2, 3, 2, 0.5), &[7.0, 0.5, 0.5, 0.0, 0.0, 0.0]);
        assert_eq!(s.get(0, 1, 1, 0.0), &[0.0]);
    }

    #[test]
    #[should_panic(expected = "slot 0")]
    fn slot_length_mismatch_panics() {
        let mut s = Slots::new();
        s.get(0, 3, 1, 0.0);
        s.get(0, 4, 1, 0.0);
    }

    #[test]
    fn flat_and_split_clipping_agree() {
        let grads = [3.0, 4.0, 0.5, -2.0, 0.0];
        for clip in [
            GradientClip::Norm(1.0),
            GradientClip::GlobalNorm(2.0),
            GradientClip::Value(1.0),
        ] {
            let mut flat = grads;
            clip.apply_flat(&mut flat, &[2, 3]);
            let mut split = grads;
            let (a, b) = split.split_at_mut(2);
            clip.apply(&mut [a, b]);
            assert_eq!(flat, split, "{clip:?}");
        }
    }
}
