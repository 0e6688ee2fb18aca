//! `fit` on several threads (`FitOptions::threads`), data parallel: each step's batch is cut
//! into contiguous shares, one per thread, and every thread
//! - (phase A) runs the forward and backward pass of its share into its own gradients, then
//! - (phase B) owns one piece of every weight: it sums the shares' gradients for that piece
//!   (weighted by their samples, so the result is the batch mean), adds regularizer
//!   gradients and updates the piece with the optimizer's [`ElementwiseRule`].
//!
//! Every optimizer, regularizer and loss term involved is element-wise or a mean over
//! samples, so a step equals the one-thread step up to rounding, and the same seed, data
//! and thread count give bit-identical weights. When the update is not element-wise
//! (gradient clipping, constraints, an optimizer without a rule), phase B runs on the
//! calling thread over the whole weights instead.
//!
//! # The protocol, and why the raw pointers are sound
//! The calling thread (thread 0) drives the steps through `generation`: each increment
//! starts the phase named in the orders (or, with `stop` set, ends the workers); each worker adds to `done` when it
//! finishes a phase and thread 0 waits for all of them (Release/Acquire on both counters,
//! so each phase sees everything written before it). Within a phase:
//! - A: every thread reads the model (a shared reference made for the phase and dropped
//!   with it) and writes only its own `StepState` and board.
//! - B: thread 0 first derives raw pointers to the weights and the optimizer state (from
//!   unique references it drops right away) and publishes them with the phase; every thread
//!   then writes only its own piece of the weights, of the optimizer state and of its own
//!   gradients, and reads the other threads' gradients of that piece, which nobody writes
//!   in phase B.
//!
//! No reference to the model exists while phase B writes through the pointers, and no two
//! threads touch the same value in a phase where either writes it.

use super::step::{apply_update, run_pass, Objective, StepState, Steps};
use super::{Logs, Trainable};
use crate::error::Error;
use crate::optimizers::{ElementwiseRule, GradientClip, Optimizer, MAX_STATE_PARTS};
use core::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Duration;
use std::vec;
use std::vec::Vec;

/// Spins before a waiting worker parks (about a millisecond): a step of a small model takes
/// microseconds, far less than waking a parked thread, but between epochs (validation, the
/// progress bar) the workers should not hold a core.
const SPINS_BEFORE_PARKING: u32 = 1 << 15;

/// A value whose exclusive access the phase protocol (module docs) guarantees.
struct PhaseCell<T>(UnsafeCell<T>);

// SAFETY: threads reach the value only in the phases the protocol gives them, which never
// overlap a write with another access.
unsafe impl<T: Send> Sync for PhaseCell<T> {}

impl<T> PhaseCell<T> {
    fn new(value: T) -> Self {
        PhaseCell(UnsafeCell::new(value))
    }
    /// # Safety
    /// The caller's phase gives it shared access (no thread writes the value now).
    unsafe fn get(&self) -> &T {
        unsafe { &*self.0.get() }
    }
    /// # Safety
    /// The caller's phase gives it exclusive access.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut(&self) -> &mut T {
        unsafe { &mut *self.0.get() }
    }
}

/// The two phases of a step.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    /// A: every thread's forward and backward pass over its share.
    Pass,
    /// B: every thread's piece of the update.
    Update,
}

/// What thread 0 publishes for each step.
struct Orders {
    /// The phase the next `generation` starts.
    phase: Phase,
    /// The gathered batch (every share is a contiguous range of it).
    x: Vec<f32>,
    y: Vec<f32>,
    seed: u64,
    step: u64,
    /// Each thread's samples, as a range of the batch.
    shares: Vec<(usize, usize)>,
    /// Each share's part of the batch mean (its samples over the batch's), for phase B.
    weights: Vec<f32>,
    /// Phase B: the optimizer's rule for this step, or `None` when thread 0 updates alone.
    rule: Option<ElementwiseRule>,
    /// Phase B: each weight's values and its optimizer state, as raw pointers.
    params: Vec<(*mut f32, usize)>,
    states: Vec<*mut f32>,
}

// SAFETY: the raw pointers in `Orders` point into the model and optimizer that `fit`
// borrows mutably for the whole run; the protocol decides who dereferences them when.
unsafe impl Send for Orders {}

/// What a thread publishes after a phase: its pass's results and where its gradients are.
struct Board {
    grads: Vec<*mut f32>,
    loss: f32,
    activity_loss: f32,
    metrics: Vec<f32>,
    /// Phase B: the regularization loss of the thread's pieces.
    regularization: f32,
}

// SAFETY: as for `Orders`; the gradient pointers point into the owning thread's
// `StepState`, alive until that thread stops.
unsafe impl Send for Board {}

/// What all threads share.
pub(super) struct Shared<M> {
    model: *mut M,
    threads: usize,
    orders: PhaseCell<Orders>,
    boards: Vec<PhaseCell<Board>>,
    generation: AtomicU64,
    done: AtomicUsize,
    stop: AtomicBool,
    /// A worker panicked: thread 0 stops waiting and panics too.
    failed: AtomicBool,
}

// SAFETY: the model is `Send + Sync` (a bound of every constructor); the rest is atomics
// and phase cells.
unsafe impl<M: Send + Sync> Sync for Shared<M> {}
unsafe impl<M: Send + Sync> Send for Shared<M> {}

impl<M: Trainable + Send + Sync> Shared<M> {
    /// Shared state for `threads` threads training `model`, borrowed for the whole run.
    pub fn new(model: &mut M, threads: usize) -> Self {
        let weights = M::WEIGHT_NAMES.len();
        let board = || {
            PhaseCell::new(Board {
                grads: vec![core::ptr::null_mut(); weights],
                loss: 0.0,
                activity_loss: 0.0,
                metrics: Vec::new(),
                regularization: 0.0,
            })
        };
        Shared {
            model,
            threads,
            orders: PhaseCell::new(Orders {
                phase: Phase::Pass,
                x: Vec::new(),
                y: Vec::new(),
                seed: 0,
                step: 0,
                shares: vec![(0, 0); threads],
                weights: vec![0.0; threads],
                rule: None,
                params: vec![(core::ptr::null_mut(), 0); weights],
                states: vec![core::ptr::null_mut(); weights],
            }),
            boards: (0..threads).map(|_| board()).collect(),
            generation: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }
    }
}

/// Thread `t`'s piece `[lo, hi)` of a weight of `len` values: cut at multiples of 16 values
/// (64 bytes), so that two threads rarely write the same cache line.
fn piece(len: usize, t: usize, threads: usize) -> (usize, usize) {
    let bound = |t: usize| {
        if t >= threads {
            len
        } else {
            (t * len / threads) & !15
        }
    };
    (bound(t), bound(t + 1))
}

/// Phase A on thread `t`: the pass over its share, results on its board.
///
/// # Safety
/// Phase A of the protocol, on thread `t`.
unsafe fn pass_share<M: Trainable>(
    shared: &Shared<M>,
    t: usize,
    objective: Objective,
    state: &mut StepState,
) {
    // SAFETY: phase A: orders are read-only, board `t` is this thread's, the model is read.
    unsafe {
        let orders = shared.orders.get();
        let (lo, hi) = orders.shares[t];
        let board = shared.boards[t].get_mut();
        if lo < hi {
            let label = objective.loss.y_true_len(M::OUTPUT_LEN, objective.classes);
            let model = &*shared.model;
            let position = super::step::Position {
                seed: orders.seed,
                step: orders.step,
                part: t as u64,
            };
            run_pass(
                model,
                objective,
                &orders.x[lo * M::INPUT_LEN..hi * M::INPUT_LEN],
                &orders.y[lo * label..hi * label],
                position,
                state,
            );
        }
        board.loss = state.loss;
        board.activity_loss = state.activity_loss;
        board.metrics.clear();
        board.metrics.extend_from_slice(&state.metric_values);
        for (slot, grads) in board.grads.iter_mut().zip(&mut state.grads.slots) {
            *slot = grads.as_mut_ptr();
        }
    }
}

/// Phase B on thread `t`: its piece of every weight (see the module docs).
///
/// # Safety
/// Phase B of the protocol with a rule published, on thread `t`.
unsafe fn update_pieces<M: Trainable>(shared: &Shared<M>, t: usize) {
    // SAFETY: phase B: orders and the other boards are read-only; this thread writes only
    // its pieces (disjoint from every other thread's) of the weights, optimizer state and
    // its own gradients, and its own board's `regularization`.
    unsafe {
        let orders = shared.orders.get();
        let Some(rule) = orders.rule else { return };
        let parts = rule.state_parts().0;
        let mut regularization = 0.0;
        for (slot, &(params, len)) in orders.params.iter().enumerate() {
            let (lo, hi) = piece(len, t, shared.threads);
            if lo == hi {
                continue;
            }
            let own = shared.boards[t].get().grads[slot];
            let grads = core::slice::from_raw_parts_mut(own.add(lo), hi - lo);
            let own_weight = orders.weights[t];
            if own_weight > 0.0 {
                grads.iter_mut().for_each(|g| *g *= own_weight);
            } else {
                grads.fill(0.0); // an empty share: its buffer holds an old step
            }
            for s in (0..shared.threads).filter(|&s| s != t && orders.weights[s] > 0.0) {
                let other = shared.boards[s].get().grads[slot];
                let other = core::slice::from_raw_parts(other.add(lo), hi - lo);
                let weight = orders.weights[s];
                for (g, o) in grads.iter_mut().zip(other) {
                    *g += weight * o;
                }
            }
            let params = core::slice::from_raw_parts_mut(params.add(lo), hi - lo);
            if let Some(regularizer) = &M::REGULARIZERS[slot] {
                regularization += regularizer.loss(params);
                regularizer.add_gradient(params, grads);
            }
            let state = orders.states[slot];
            let mut views: [&mut [f32]; MAX_STATE_PARTS] = [&mut [], &mut [], &mut []];
            for (part, view) in views.iter_mut().enumerate().take(parts) {
                *view = core::slice::from_raw_parts_mut(state.add(part * len + lo), hi - lo);
            }
            rule.apply(params, grads, views);
        }
        shared.boards[t].get_mut().regularization = regularization;
    }
}

/// Counts a worker done even when it unwinds, and reports the panic, so that thread 0
/// never waits for a thread that is gone.
struct CountDone<'a, M>(&'a Shared<M>);

impl<M> Drop for CountDone<'_, M> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::Release);
        }
        self.0.done.fetch_add(1, Ordering::Release);
    }
}

/// Worker `t` (from 1): waits for each phase, runs it, reports done.
pub(super) fn work<M: Trainable + Send + Sync>(shared: &Shared<M>, t: usize, objective: Objective) {
    // Allocated here, by this thread: buffers made by thread 0 sat next to its own and
    // slowed both threads by about 40% (cache lines written from both cores).
    let mut state = StepState::for_model::<M>();
    let mut seen = 0;
    loop {
        let mut spins = 0u32;
        loop {
            let generation = shared.generation.load(Ordering::Acquire);
            if generation != seen {
                seen = generation;
                break;
            }
            if spins < SPINS_BEFORE_PARKING {
                spins += 1;
                core::hint::spin_loop();
            } else {
                std::thread::park_timeout(Duration::from_millis(1));
            }
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let _done = CountDone(shared);
        // SAFETY: the generation just read starts this phase for this thread; the orders
        // were written before it.
        unsafe {
            match shared.orders.get().phase {
                Phase::Pass => pass_share(shared, t, objective, &mut state),
                Phase::Update => update_pieces(shared, t),
            }
        }
    }
}

/// Thread 0's side of the team: gathers, runs its own share and piece, and drives the
/// phases. Stops the workers when dropped (also when `fit` unwinds).
pub(super) struct Team<'a, M, O> {
    pub shared: &'a Shared<M>,
    pub optimizer: &'a mut O,
    pub objective: Objective<'a>,
    pub state: &'a mut StepState,
    pub step: &'a mut u64,
    /// The workers started for this run, to wake them.
    pub workers: Vec<Thread>,
}

impl<M: Trainable + Send + Sync, O: Optimizer> Team<'_, M, O> {
    /// Starts `phase` on every worker and runs `own` on this thread meanwhile; returns when
    /// all are done.
    fn phase(&mut self, phase: Phase, own: impl FnOnce(&mut Self)) {
        let shared = self.shared;
        // SAFETY: between phases only thread 0 runs.
        unsafe { shared.orders.get_mut().phase = phase };
        shared.done.store(0, Ordering::Relaxed);
        shared.generation.fetch_add(1, Ordering::Release);
        self.workers.iter().for_each(Thread::unpark);
        own(self);
        while shared.done.load(Ordering::Acquire) < shared.threads - 1 {
            core::hint::spin_loop();
        }
        assert!(
            !shared.failed.load(Ordering::Acquire),
            "a training thread panicked"
        );
    }

    /// Whether phase B can update pieces on every thread: an element-wise rule, and
    /// nothing that needs whole weights (clipping by norm, constraints).
    fn piecewise(&self) -> Option<ElementwiseRule> {
        let whole = self.optimizer.gradient_clip() != GradientClip::None
            || M::CONSTRAINTS.iter().any(Option::is_some);
        if whole {
            None
        } else {
            self.optimizer.elementwise_rule()
        }
    }
}

impl<M, O> Drop for Team<'_, M, O> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::Release);
        self.workers.iter().for_each(Thread::unpark);
    }
}

impl<M: Trainable + Send + Sync, O: Optimizer> Steps for Team<'_, M, O> {
    fn step(&mut self, x: &[f32], y: &[f32], seed: u64) -> f32 {
        let shared = self.shared;
        let threads = shared.threads;
        let samples = x.len() / M::INPUT_LEN.max(1);
        // SAFETY: between phases only thread 0 runs (the workers wait).
        unsafe {
            let orders = shared.orders.get_mut();
            orders.x.clear();
            orders.x.extend_from_slice(x);
            orders.y.clear();
            orders.y.extend_from_slice(y);
            orders.seed = seed;
            orders.step = *self.step;
            // Share t: samples [t·n/T, (t+1)·n/T) rounded up, so thread 0's is never empty.
            for (t, share) in orders.shares.iter_mut().enumerate() {
                *share = (
                    (t * samples).div_ceil(threads),
                    ((t + 1) * samples).div_ceil(threads),
                );
            }
        }
        let objective = self.objective;
        // SAFETY (closure): phase A on thread 0.
        self.phase(Phase::Pass, |team| unsafe {
            pass_share(shared, 0, objective, team.state)
        });

        // Combine the shares' losses and metrics, weighted by their samples.
        let mut loss = 0.0;
        // SAFETY: between phases.
        unsafe {
            let orders = shared.orders.get_mut();
            for (weight, &(lo, hi)) in orders.weights.iter_mut().zip(&orders.shares) {
                *weight = (hi - lo) as f32 / samples as f32;
            }
            self.state.metric_values.iter_mut().for_each(|v| *v = 0.0);
            for (t, &weight) in orders.weights.iter().enumerate().filter(|(_, w)| **w > 0.0) {
                let board = shared.boards[t].get();
                loss += weight * (board.loss + board.activity_loss);
                for (v, m) in self.state.metric_values.iter_mut().zip(&board.metrics) {
                    *v += weight * m;
                }
            }
        }

        self.optimizer.step_begin();
        let rule = self.piecewise();
        // SAFETY: between phases, thread 0 alone holds the model and optimizer; the raw
        // pointers outlive the unique references they come from only as the protocol allows.
        unsafe {
            let orders = shared.orders.get_mut();
            orders.rule = rule;
            if rule.is_some() {
                let model = &mut *shared.model;
                for (slot, params) in orders.params.iter_mut().enumerate() {
                    let weight = model.__weight_mut(slot);
                    *params = (weight.as_mut_ptr(), weight.len());
                }
                for (slot, state) in orders.states.iter_mut().enumerate() {
                    let len = orders.params[slot].1;
                    *state = self
                        .optimizer
                        .state_buffer(slot, len)
                        .map_or(core::ptr::null_mut(), |s| s.as_mut_ptr());
                }
            }
        }
        if rule.is_some() {
            // SAFETY (closure): phase B on thread 0.
            self.phase(Phase::Update, |_| unsafe { update_pieces(shared, 0) });
            // SAFETY: after phase B.
            unsafe {
                loss += shared
                    .boards
                    .iter()
                    .map(|b| b.get().regularization)
                    .sum::<f32>();
            }
        } else {
            // The whole update on this thread: the batch mean into thread 0's gradients.
            // SAFETY: between phases; the boards' gradient pointers are each thread's
            // `StepState` buffers, which nobody writes now.
            unsafe {
                let orders = shared.orders.get();
                for (slot, grads) in self.state.grads.slots.iter_mut().enumerate() {
                    grads.iter_mut().for_each(|g| *g *= orders.weights[0]);
                    for t in (1..threads).filter(|&t| orders.weights[t] > 0.0) {
                        let other = shared.boards[t].get().grads[slot];
                        let other = core::slice::from_raw_parts(other, grads.len());
                        for (g, o) in grads.iter_mut().zip(other) {
                            *g += orders.weights[t] * o;
                        }
                    }
                }
                loss += apply_update(&mut *shared.model, self.optimizer, &mut self.state.grads);
            }
        }
        *self.step += 1;
        loss
    }

    fn metric_values(&self) -> &[f32] {
        &self.state.metric_values
    }

    fn evaluate(&self, x: &[f32], y: &[f32]) -> Result<Logs, Error> {
        // SAFETY: between steps the workers wait; a shared reference for the evaluation.
        self.objective
            .evaluate(unsafe { &*self.shared.model }, x, y)
    }
}
