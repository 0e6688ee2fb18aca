//! `fit` on several threads (`FitOptions::threads`), data parallel: each step's batch is cut
//! into contiguous shares, one per thread, and every thread
//! - (phase A) runs the forward and backward pass of its share into its own gradients, then
//! - (phase B) owns one piece of every weight: it sums the shares' gradients for that piece
//!   (weighted by their samples, so the result is the batch mean), adds regularizer
//!   gradients and updates the piece with the optimizer's [`ElementwiseRule`].
//!
//! Every optimizer, regularizer and loss term involved is element-wise or a mean over
//! samples, so a step equals the one-thread step up to rounding, and the same seed, data
//! and thread count give bit-identical weights. Under an output mask the loss is a mean
//! over the batch's unmasked positions, which no share knows alone: each share's loss head
//! adds its counts and waits for the others' (`Shared::batch_rows`), then weights its rows
//! by the batch's `total / valid`, so the shares still combine by their samples. When the
//! update is not element-wise (gradient clipping, constraints, an optimizer without a
//! rule, non-trainable weights), phase B runs on the calling thread over the whole weights
//! instead. A model with moving averages (`BatchNormalization`) never gets here: its
//! training pass normalises by the statistics of the whole batch, which no share sees, so
//! `fit` runs it on one thread.
//!
//! # The protocol, and why the raw pointers are sound
//! The calling thread (thread 0) drives the steps through `generation`: each increment
//! starts the phase named in the orders (or, with `stop` set, ends the workers); each worker adds to `done` when it
//! finishes a phase and thread 0 waits for all of them (Release/Acquire on both counters,
//! so each phase sees everything written before it). Within a phase:
//! - A: every thread reads the model (a shared reference made for the phase and dropped
//!   with it) and writes only its own `StepState` and board. Under an output mask, every
//!   thread also adds its row counts to `rows` and `valid` and then `arrived` (Release;
//!   an empty share at once, the others in their loss head), and each non-empty share
//!   waits there until `arrived` counts every thread (Acquire), or `failed` is set
//!   (`Shared::batch_rows`; the counters are atomics, zeroed by thread 0 between phases).
//! - B: thread 0 first derives raw pointers to the weights and the optimizer state (from
//!   unique references it drops right away) and publishes them with the phase; every thread
//!   then writes only its own piece of the weights, of the optimizer state and of its own
//!   gradients, and reads the other threads' gradients of that piece, which nobody writes
//!   in phase B.
//!
//! No reference to the model exists while phase B writes through the pointers, and no two
//! threads touch the same value in a phase where either writes it. The weight and state
//! pointers come from kiln's own state table ([`crate::optimizers::Slots`]), checked
//! against the weights' declared lengths, so an optimizer from outside kiln cannot hand
//! out a bad buffer (without a rule it updates on thread 0).
//!
//! Panics: a worker that panics mid-phase still counts as done and flags `failed`, then
//! keeps its buffers alive until thread 0 stops the team (other threads may be reading its
//! gradients); thread 0 panics in turn. If thread 0 unwinds mid-phase, its drop waits for
//! the phase to end before stopping the workers, having first set `failed` so that no
//! share waits for its row counts. A worker that cannot be started is a `kiln::Error`.

use super::callbacks::ModelAccess;
use super::step::{
    apply_update, run_pass, scan_gradients, Divergence, Guard, Objective, StepState, Steps,
};
use super::{Logs, Trainable};
use crate::error::Error;
use crate::optimizers::{ElementwiseRule, GradientClip, Optimizer, MAX_STATE_PARTS};
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{Scope, Thread};
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
        // SAFETY: no thread writes the value in the caller's phase (the caller's contract).
        unsafe { &*self.0.get() }
    }
    /// # Safety
    /// The caller's phase gives it exclusive access.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut(&self) -> &mut T {
        // SAFETY: the caller's phase gives it the only access (the caller's contract).
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
    /// One sample weight per sample of the batch, or empty for none.
    w: Vec<f32>,
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
    /// A non-finite loss or gradient of this share (the step is refused).
    bad: Option<Divergence>,
    /// The largest gradient magnitude of this share's trainable weights (for the guard).
    grad: u32,
}

// SAFETY: as for `Orders`; the gradient pointers point into the owning thread's
// `StepState`, alive until that thread stops.
unsafe impl Send for Board {}

/// What all threads share, for one `fit` call that borrows the model mutably for `'a`.
pub(super) struct Shared<'a, M> {
    model: *mut M,
    _model: PhantomData<&'a mut M>,
    threads: usize,
    /// Each weight's length (from the model's weight shapes, which size every gradient).
    lens: Vec<usize>,
    orders: PhaseCell<Orders>,
    boards: Vec<PhaseCell<Board>>,
    /// Phase B: each thread's regularization loss of its pieces.
    regularization: Vec<PhaseCell<f32>>,
    generation: AtomicU64,
    done: AtomicUsize,
    stop: AtomicBool,
    /// A worker panicked: thread 0 stops waiting and panics too.
    failed: AtomicBool,
    /// Phase A: the shares' output rows and unmasked output rows, summed as each share's
    /// loss head reaches them, and how many threads have added theirs
    /// ([`Shared::batch_rows`]). Thread 0 zeroes them before each phase A.
    rows: AtomicUsize,
    valid: AtomicUsize,
    arrived: AtomicUsize,
}

// SAFETY: the model is `Send + Sync` (a bound of every constructor); the rest is atomics
// and phase cells.
unsafe impl<M: Send + Sync> Sync for Shared<'_, M> {}
// SAFETY: as for `Sync`: nothing in `Shared` is tied to the thread that made it.
unsafe impl<M: Send + Sync> Send for Shared<'_, M> {}

impl<'a, M: Trainable + Send + Sync> Shared<'a, M> {
    /// Shared state for `threads` threads training `model`, borrowed for the whole run.
    pub fn new(model: &'a mut M, threads: usize) -> Self {
        let weights = M::WEIGHT_NAMES.len();
        let board = || {
            PhaseCell::new(Board {
                grads: vec![core::ptr::null_mut(); weights],
                loss: 0.0,
                activity_loss: 0.0,
                metrics: Vec::new(),
                bad: None,
                grad: 0,
            })
        };
        Shared {
            model,
            _model: PhantomData,
            threads,
            lens: M::WEIGHT_SHAPES
                .iter()
                .map(|shape| shape.iter().product())
                .collect(),
            orders: PhaseCell::new(Orders {
                phase: Phase::Pass,
                x: Vec::new(),
                y: Vec::new(),
                w: Vec::new(),
                seed: 0,
                step: 0,
                shares: vec![(0, 0); threads],
                weights: vec![0.0; threads],
                rule: None,
                params: vec![(core::ptr::null_mut(), 0); weights],
                states: vec![core::ptr::null_mut(); weights],
            }),
            boards: (0..threads).map(|_| board()).collect(),
            regularization: (0..threads).map(|_| PhaseCell::new(0.0)).collect(),
            generation: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            rows: AtomicUsize::new(0),
            valid: AtomicUsize::new(0),
            arrived: AtomicUsize::new(0),
        }
    }
}

impl<M> Shared<'_, M> {
    /// Adds a share's output rows and unmasked rows to the batch's (an empty share adds
    /// zeros, without waiting).
    fn arrive(&self, rows: usize, valid: usize) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.valid.fetch_add(valid, Ordering::Relaxed);
        // Release: the counts above are visible to whoever reads the last arrival.
        self.arrived.fetch_add(1, Ordering::Release);
    }

    /// The whole batch's output rows and unmasked rows, for a share's loss head under an
    /// output mask: Keras's `total / valid` counts the batch, not the share, so every share
    /// adds its counts and waits for the others'. Every non-empty share of a model whose
    /// output carries a mask calls this once per phase A (the mask is there or not for the
    /// model, whatever the share), and every empty share arrives with zeros, so the wait
    /// ends; a thread that panicked before arriving sets `failed`, which ends it too (the
    /// step is lost then anyway).
    fn batch_rows(&self, rows: usize, valid: usize) -> (usize, usize) {
        self.arrive(rows, valid);
        let mut spins = 0u32;
        // Acquire: the last arrival's release sequence carries every share's counts.
        while self.arrived.load(Ordering::Acquire) < self.threads {
            if self.failed.load(Ordering::Acquire) {
                break;
            }
            if spins < SPINS_BEFORE_PARKING {
                spins += 1;
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        (
            self.rows.load(Ordering::Relaxed),
            self.valid.load(Ordering::Relaxed),
        )
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
    shared: &Shared<'_, M>,
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
            let weights = if orders.w.is_empty() {
                &[][..]
            } else {
                &orders.w[lo..hi]
            };
            run_pass(
                model,
                objective,
                &orders.x[lo * M::INPUT_LEN..hi * M::INPUT_LEN],
                &orders.y[lo * label..hi * label],
                weights,
                &|rows, valid| shared.batch_rows(rows, valid),
                position,
                state,
            );
        } else {
            shared.arrive(0, 0);
        }
        let trainable = |i: usize| M::UPDATES.get(i).is_none_or(|u| u.is_trainable());
        (board.bad, board.grad) = match (lo < hi).then(|| scan_gradients(state, trainable)) {
            Some(Err(bad)) => (Some(bad), 0),
            Some(Ok(grad)) => (None, grad),
            None => (None, 0),
        };
        board.loss = state.loss;
        board.activity_loss = state.activity_loss;
        board.metrics.clear();
        board.metrics.extend_from_slice(&state.metric_values);
        for (slot, grads) in board.grads.iter_mut().zip(&mut state.grads.slots) {
            *slot = grads.as_mut_ptr();
        }
    }
}

/// Values `lo..hi` of weight `slot`'s gradient of the batch: the shares' gradients weighted
/// by their samples, summed into thread `t`'s own buffer, which is returned.
///
/// # Safety
/// Nobody writes the shares' gradients in `lo..hi` meanwhile, and nobody else reads or
/// writes thread `t`'s (phase B for `t`'s piece, or between phases).
#[allow(clippy::mut_from_ref)] // the protocol, not a borrow, makes the piece exclusive
unsafe fn combine<'s, M>(
    shared: &'s Shared<'_, M>,
    t: usize,
    slot: usize,
    lo: usize,
    hi: usize,
) -> &'s mut [f32] {
    // SAFETY: the caller's contract; every board's pointer is a buffer of the weight's
    // length, `hi` at most.
    unsafe {
        let orders = shared.orders.get();
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
        grads
    }
}

/// Phase B on thread `t`: its piece of every weight (see the module docs).
///
/// # Safety
/// Phase B of the protocol with a rule published, on thread `t`.
unsafe fn update_pieces<M: Trainable>(shared: &Shared<'_, M>, t: usize) {
    #[cfg(feature = "fault-injection")]
    fault_injection::update_started(t);
    // SAFETY: phase B: orders and the other boards are read-only; this thread writes only
    // its pieces (disjoint from every other thread's) of the weights, optimizer state and
    // its own gradients, and its own `regularization` cell.
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
            let grads = combine(shared, t, slot, lo, hi);
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
        *shared.regularization[t].get_mut() = regularization;
    }
}

/// Worker `t` (from 1): waits for each phase, runs it, reports done.
pub(super) fn work<M: Trainable + Send + Sync>(
    shared: &Shared<'_, M>,
    t: usize,
    objective: Objective,
) {
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
        // SAFETY: the generation just read starts this phase for this thread; the orders
        // were written before it.
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe {
            match shared.orders.get().phase {
                Phase::Pass => pass_share(shared, t, objective, &mut state),
                Phase::Update => update_pieces(shared, t),
            }
        }));
        if let Err(panic) = outcome {
            shared.failed.store(true, Ordering::Release);
            shared.done.fetch_add(1, Ordering::Release);
            // Other threads may still read this thread's gradients in this phase: keep
            // `state` alive until thread 0 has seen the phase end and stops the team.
            while !shared.stop.load(Ordering::Acquire) {
                std::thread::park_timeout(Duration::from_millis(1));
            }
            resume_unwind(panic);
        }
        shared.done.fetch_add(1, Ordering::Release);
    }
}

/// Thread 0's side of the team: gathers, runs its own share and piece, and drives the
/// phases. Stops the workers when dropped (also when `fit` unwinds).
pub(super) struct Team<'a, 'm, M, O> {
    shared: &'a Shared<'m, M>,
    optimizer: &'a mut O,
    objective: Objective<'a>,
    state: &'a mut StepState,
    step: &'a mut u64,
    /// The workers started for this run, to wake them.
    workers: Vec<Thread>,
    /// A phase was started and not yet waited for (the drop waits before stopping).
    in_phase: bool,
    /// The overflow guard of the updates.
    guard: Guard,
}

impl<'a, 'm, M: Trainable + Send + Sync, O: Optimizer> Team<'a, 'm, M, O> {
    /// Thread 0's side with `shared.threads - 1` workers started in `scope`. A worker that
    /// cannot be started (the system refuses a thread) is an error; the ones already
    /// started are stopped.
    pub fn start<'scope>(
        scope: &'scope Scope<'scope, '_>,
        shared: &'a Shared<'m, M>,
        optimizer: &'a mut O,
        objective: Objective<'a>,
        state: &'a mut StepState,
        step: &'a mut u64,
    ) -> Result<Self, Error>
    where
        'a: 'scope,
        'm: 'scope,
        M: 'scope,
    {
        let mut team = Team {
            shared,
            optimizer,
            objective,
            state,
            step,
            workers: Vec::new(),
            in_phase: false,
            guard: Guard::default(),
        };
        for t in 1..shared.threads {
            #[cfg(feature = "fault-injection")]
            if fault_injection::spawn_refused(t) {
                return Err(Error::InvalidOption {
                    name: "threads",
                    reason: "the system could not start that many threads",
                });
            }
            let worker = std::thread::Builder::new()
                .name(std::format!("kiln-fit-{t}"))
                .spawn_scoped(scope, move || work(shared, t, objective))
                .map_err(|_| Error::InvalidOption {
                    name: "threads",
                    reason: "the system could not start that many threads",
                })?;
            team.workers.push(worker.thread().clone());
        }
        Ok(team)
    }

    /// Starts `phase` on every worker and runs `own` on this thread meanwhile; returns when
    /// all are done.
    fn phase(&mut self, phase: Phase, own: impl FnOnce(&mut Self)) {
        let shared = self.shared;
        // SAFETY: between phases only thread 0 runs.
        unsafe { shared.orders.get_mut().phase = phase };
        shared.done.store(0, Ordering::Relaxed);
        shared.generation.fetch_add(1, Ordering::Release);
        self.workers.iter().for_each(Thread::unpark);
        self.in_phase = true;
        own(self);
        self.wait_for_workers();
        assert!(
            !shared.failed.load(Ordering::Acquire),
            "a training thread panicked"
        );
    }

    /// Waits until every worker has finished the current phase: spinning, then yielding
    /// the core (with more threads than cores, a spinning thread 0 would hold one back).
    fn wait_for_workers(&mut self) {
        let mut spins = 0u32;
        while self.shared.done.load(Ordering::Acquire) < self.workers.len() {
            if spins < SPINS_BEFORE_PARKING {
                spins += 1;
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        self.in_phase = false;
    }

    /// Whether phase B can update pieces on every thread (an element-wise rule, and
    /// nothing that needs whole weights: clipping by norm, constraints); if so, publishes
    /// the rule and the raw pointers to every weight and its optimizer state.
    ///
    /// # Safety
    /// Between phases (the workers wait).
    unsafe fn publish_update(&mut self) -> bool {
        // Non-trainable weights update from whole statistics (`fit` keeps models with
        // moving averages on one thread; this keeps any other on thread 0's whole update).
        let whole = self.optimizer.gradient_clip() != GradientClip::None
            || M::CONSTRAINTS.iter().any(Option::is_some)
            || M::UPDATES.iter().any(|u| !u.is_trainable());
        let shared = self.shared;
        // SAFETY: between phases only thread 0 runs; the unique references to the model and
        // the optimizer state end here, before any thread writes through the pointers.
        let orders = unsafe { shared.orders.get_mut() };
        orders.rule = None;
        if whole {
            return false;
        }
        let Some((rule, slots)) = self.optimizer.elementwise() else {
            return false;
        };
        let (parts, init) = rule.state_parts();
        slots.piece_starts(&shared.lens, parts, init, &mut orders.states);
        // SAFETY: still between phases (see above): only thread 0 touches the model.
        let model = unsafe { &mut *shared.model };
        for ((slot, params), &len) in orders.params.iter_mut().enumerate().zip(&shared.lens) {
            let weight = model.__weight_mut(slot);
            // Every gradient buffer has the length of the weight's declared shape.
            assert_eq!(
                weight.len(),
                len,
                "weight {} has {} values, its shape {:?} says {len}",
                M::WEIGHT_NAMES[slot],
                weight.len(),
                M::WEIGHT_SHAPES[slot]
            );
            *params = (weight.as_mut_ptr(), len);
        }
        orders.rule = Some(rule);
        true
    }
}

impl<M, O> Drop for Team<'_, '_, M, O> {
    fn drop(&mut self) {
        // Unwinding out of a phase: let the workers finish it first, since they may read
        // each other's gradients until then.
        if self.in_phase {
            // Thread 0 is unwinding out of the phase: shares that wait for its row counts
            // (`Shared::batch_rows`) must stop waiting.
            self.shared.failed.store(true, Ordering::Release);
            while self.shared.done.load(Ordering::Acquire) < self.workers.len() {
                std::thread::yield_now();
            }
        }
        self.shared.stop.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::Release);
        self.workers.iter().for_each(Thread::unpark);
    }
}

impl<M: Trainable + Send + Sync, O: Optimizer> Steps for Team<'_, '_, M, O> {
    fn step(&mut self, x: &[f32], y: &[f32], w: &[f32], seed: u64) -> Result<f32, Divergence> {
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
            orders.w.clear();
            orders.w.extend_from_slice(w);
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
        // Between phases: the workers see these zeros through the phase's generation.
        for counter in [&shared.rows, &shared.valid, &shared.arrived] {
            counter.store(0, Ordering::Relaxed);
        }
        let objective = self.objective;
        // SAFETY: (closure) phase A on thread 0.
        self.phase(Phase::Pass, |team| unsafe {
            pass_share(shared, 0, objective, team.state)
        });

        // A non-finite loss or gradient in any share refuses the step before the update.
        // SAFETY: between phases.
        if let Some(bad) = unsafe { shared.boards.iter().find_map(|b| b.get().bad) } {
            return Err(bad);
        }
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
                // Metric states are counts and sums: the shares' add up.
                for (v, m) in self.state.metric_values.iter_mut().zip(&board.metrics) {
                    *v += m;
                }
            }
        }

        // The guard (see `step::Guard`): the batch's gradient is a mean of the shares', so
        // no larger than the largest of theirs.
        // SAFETY: between phases: only thread 0 runs, no reference to the model is held.
        let grad = unsafe { shared.boards.iter().map(|b| b.get().grad).max() }.unwrap_or(0);
        // SAFETY: as above.
        let proven = unsafe {
            self.guard
                .proves_finite(&*shared.model, self.optimizer, grad)
        };
        if !proven {
            // SAFETY: as above.
            unsafe { self.guard.save(&*shared.model, self.optimizer) };
        }
        self.optimizer.step_begin();
        // SAFETY: between phases.
        let piecewise = unsafe { self.publish_update() };
        if piecewise {
            // SAFETY: (closure) phase B on thread 0.
            self.phase(Phase::Update, |_| unsafe { update_pieces(shared, 0) });
            // SAFETY: after phase B.
            unsafe {
                loss += shared.regularization.iter().map(|r| *r.get()).sum::<f32>();
            }
        } else {
            // The whole update on this thread: the batch mean into thread 0's gradients.
            // SAFETY: between phases; the boards' gradient pointers are each thread's
            // `StepState` buffers, which nobody writes now.
            unsafe {
                for (slot, &len) in shared.lens.iter().enumerate() {
                    combine(shared, 0, slot, 0, len);
                }
                loss += apply_update(&mut *shared.model, self.optimizer, &mut self.state.grads);
            }
        }
        if !proven {
            // SAFETY: after the update, between phases: only thread 0 runs.
            let model = unsafe { &mut *shared.model };
            self.guard.check(model, self.optimizer)?;
        }
        *self.step += 1;
        Ok(loss)
    }

    fn metric_values(&self) -> &[f32] {
        &self.state.metric_values
    }

    fn evaluate(&self, x: &[f32], y: &[f32], batch_size: usize) -> Result<Logs, Error> {
        // SAFETY: between steps the workers wait; a shared reference for the evaluation.
        self.objective
            .evaluate(unsafe { &*self.shared.model }, x, y, batch_size)
    }

    fn access(&mut self) -> (&mut dyn ModelAccess, &mut dyn Optimizer) {
        // A callback may write the weights or the optimizer state: the guard measures them
        // again.
        self.guard.forget();
        // SAFETY: between steps the workers wait for the next phase and hold no reference
        // to the model (each phase takes its own and drops it; phase B's weight pointers
        // are published afresh at every step, after callbacks may have written weights).
        (unsafe { &mut *self.shared.model }, &mut *self.optimizer)
    }
}

/// Test-only faults for `fit` on several threads, to reach the recovery paths that real
/// failures reach rarely (feature `fault-injection`: kiln's own tests turn it on, as a
/// dev-dependency; without it none of this is compiled). Each fault is armed for one event,
/// process-wide: a test that arms one must not run other threaded `fit` calls meanwhile.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault_injection {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The worker (from 1) whose next start fails; 0 for none.
    static REFUSE_SPAWN: AtomicUsize = AtomicUsize::new(0);
    /// One more than the thread (0 = the calling one) whose next phase B panics; 0 for none.
    static PANIC_IN_UPDATE: AtomicUsize = AtomicUsize::new(0);

    /// The next start of worker `t` (1 or more) fails as if the system refused the thread:
    /// `fit` returns `Error::InvalidOption { name: "threads", .. }`.
    pub fn refuse_spawn(t: usize) {
        REFUSE_SPAWN.store(t, Ordering::SeqCst);
    }

    /// Thread `t` (0 = the thread calling `fit`) panics at the start of its next phase B
    /// (the update of its pieces of the weights).
    pub fn panic_in_update(t: usize) {
        PANIC_IN_UPDATE.store(t + 1, Ordering::SeqCst);
    }

    /// Disarms both faults.
    pub fn clear() {
        REFUSE_SPAWN.store(0, Ordering::SeqCst);
        PANIC_IN_UPDATE.store(0, Ordering::SeqCst);
    }

    pub(super) fn spawn_refused(t: usize) -> bool {
        REFUSE_SPAWN
            .compare_exchange(t, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    pub(super) fn update_started(t: usize) {
        if PANIC_IN_UPDATE
            .compare_exchange(t + 1, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            panic!("fault injection: thread {t} panics in phase B");
        }
    }
}
