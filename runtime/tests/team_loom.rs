//! The threaded trainer's phase protocol (`src/training/team.rs`), model-checked with loom.
//!
//! loom explores every interleaving (and every weak-memory outcome loom models) of a small
//! program, and fails when two threads touch a `loom::cell::UnsafeCell` without a
//! happens-before between them where either writes, or when threads deadlock. The runtime
//! itself uses std's atomics and raw pointers, so it cannot run under loom without
//! replacing its types behind `--cfg loom`, which it does not do: this test is a reduced
//! model of the protocol written with loom's types, kept to the same state machine as
//! `team.rs` (the same atomics, orderings and waits, in the same order) with small buffers:
//!
//! - `generation` (Release on start, Acquire in the wait), `done` (reset Relaxed before the
//!   start, Release per finished phase, Acquire in thread 0's wait), `stop`, `failed`;
//! - the orders, written by thread 0 between phases, read by every thread in a phase;
//! - each thread's board: its loss and its gradient buffer, written in phase A by its
//!   owner, read between phases by thread 0; in phase B cut in pieces, piece `p` of every
//!   board read by thread `p` and piece `p` of its own board written in place (`combine`);
//! - the weights, read by every thread in phase A, piece `p` written by thread `p` in
//!   phase B; each thread's regularization cell, written in phase B, read by thread 0 after.
//!
//! Each piece of a buffer is its own cell, so loom checks exactly the claim of the module
//! docs: no two threads touch the same value in a phase where either writes it. A panic is
//! modelled by the path it unwinds through (a worker's `catch_unwind` branch; thread 0's
//! `Team::drop`), since loom counts a real panic as a failed execution; a worker's gradient
//! buffers being freed when it finally unwinds is a write to every piece of its board, which
//! loom checks happens after every other thread's last read. A failed thread start is a
//! worker that is never spawned, followed by `Team::drop`.
//!
//! The values are checked too: after the steps, every weight is what one thread computes.
//!
//! Under an output mask (`masked`), phase A also has `Shared::batch_rows`'s exchange: each
//! share adds its output rows to `rows` (Relaxed) and then `arrived` (Release), and waits
//! until `arrived` counts every thread (Acquire) or `failed` is set; thread 0 zeroes both
//! before the phase (published by its generation). The gradient then depends on the batch's
//! row count, so a share that read the count too early computes a wrong weight.
//!
//! Release builds only: loom's exploration takes about a minute optimised and many times
//! that in a debug build, so `cargo test --workspace` compiles this file to nothing and
//! `.ci/run` runs `cargo test -p kiln-runtime --release --test team_loom`.
#![cfg(not(debug_assertions))]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::AtomicUsize as StdCounter;
use std::time::{Duration, Instant};

/// Samples per step (each thread's share is a contiguous range of them).
const SAMPLES: usize = 3;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    Pass,
    Update,
}

/// Where the run goes wrong, if anywhere.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    None,
    /// Worker `t` panics at the start of this phase (of the first step).
    WorkerPanics(usize, Phase),
    /// Thread 0 panics in its own part of phase B, while the workers run theirs.
    LeaderPanicsInUpdate,
    /// Starting worker `t` fails (the workers before it are running).
    SpawnFails(usize),
}

struct Orders {
    phase: Phase,
    step: usize,
}

struct Shared {
    threads: usize,
    generation: AtomicUsize,
    done: AtomicUsize,
    stop: AtomicBool,
    failed: AtomicBool,
    /// Whether the model's output carries a mask (the row-count exchange of phase A).
    masked: bool,
    /// The batch's output rows, summed by the shares in phase A, and how many have added.
    rows: AtomicUsize,
    arrived: AtomicUsize,
    orders: UnsafeCell<Orders>,
    /// `losses[t]`: thread `t`'s loss of its share.
    losses: Vec<UnsafeCell<i64>>,
    /// `grads[t][p]`: piece `p` of thread `t`'s gradient buffer.
    grads: Vec<Vec<UnsafeCell<i64>>>,
    /// `weights[p]`: piece `p` of the (one) weight.
    weights: Vec<UnsafeCell<i64>>,
    /// `regularization[t]`: what thread `t` adds in phase B.
    regularization: Vec<UnsafeCell<i64>>,
}

impl Shared {
    fn new(threads: usize, masked: bool) -> Self {
        let cells = |n: usize| (0..n).map(|_| UnsafeCell::new(0)).collect::<Vec<_>>();
        Shared {
            threads,
            generation: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            masked,
            rows: AtomicUsize::new(0),
            arrived: AtomicUsize::new(0),
            orders: UnsafeCell::new(Orders {
                phase: Phase::Pass,
                step: 0,
            }),
            losses: cells(threads),
            grads: (0..threads).map(|_| cells(threads)).collect(),
            weights: (0..threads)
                .map(|p| UnsafeCell::new(100 * p as i64))
                .collect(),
            regularization: cells(threads),
        }
    }

    fn share(&self, t: usize) -> (usize, usize) {
        share(t, self.threads)
    }
}

/// Thread `t`'s samples of a step: `[t·n/T, (t+1)·n/T)` rounded up, as in `team.rs`.
fn share(t: usize, threads: usize) -> (usize, usize) {
    (
        (t * SAMPLES).div_ceil(threads),
        ((t + 1) * SAMPLES).div_ceil(threads),
    )
}

/// The value of sample `i` in step `step`, and a piece's gradient from a sum of samples.
fn sample(step: usize, i: usize) -> i64 {
    (step * 10 + i + 1) as i64
}
fn gradient(sum: i64, weight: i64, piece: usize) -> i64 {
    sum * (piece as i64 + 1) + weight % 7
}

/// What a share's loss head adds for the batch's row count under a mask (0 without one).
fn rows_term(rows: usize, masked: bool) -> i64 {
    if masked {
        1000 * rows as i64
    } else {
        0
    }
}

/// `Shared::batch_rows`: adds this share's rows, then waits for every thread's (or for
/// `failed`), and returns the batch's.
fn batch_rows(shared: &Shared, rows: usize) -> usize {
    shared.rows.fetch_add(rows, Ordering::Relaxed);
    shared.arrived.fetch_add(1, Ordering::Release);
    while shared.arrived.load(Ordering::Acquire) < shared.threads {
        if shared.failed.load(Ordering::Acquire) {
            break;
        }
        thread::yield_now();
    }
    shared.rows.load(Ordering::Relaxed)
}

/// `pass_share`: reads the orders and every piece of the weights, writes its own board.
fn pass_share(shared: &Shared, t: usize) {
    let step = shared.orders.with(|o| unsafe { (*o).step });
    let (lo, hi) = shared.share(t);
    let mut sum: i64 = (lo..hi).map(|i| sample(step, i)).sum();
    if shared.masked {
        sum += rows_term(batch_rows(shared, hi - lo), true);
    }
    for p in 0..shared.threads {
        let weight = shared.weights[p].with(|w| unsafe { *w });
        shared.grads[t][p].with_mut(|g| unsafe { *g = gradient(sum, weight, p) });
    }
    shared.losses[t].with_mut(|l| unsafe { *l = sum });
}

/// `update_pieces` (with `combine`): piece `t` of every board into its own, then its piece
/// of the weight.
fn update_pieces(shared: &Shared, t: usize) {
    shared
        .orders
        .with(|o| unsafe { assert_eq!((*o).phase, Phase::Update) });
    let others: i64 = (0..shared.threads)
        .filter(|&s| s != t)
        .map(|s| shared.grads[s][t].with(|g| unsafe { *g }))
        .sum();
    let total = shared.grads[t][t].with_mut(|g| unsafe {
        *g += others;
        *g
    });
    shared.weights[t].with_mut(|w| unsafe { *w -= total });
    shared.regularization[t].with_mut(|r| unsafe { *r = total % 3 });
}

/// `work`: worker `t`'s loop.
fn work(shared: &Shared, t: usize, fault: Fault) {
    let mut seen = 0;
    let mut first_step = true;
    loop {
        loop {
            let generation = shared.generation.load(Ordering::Acquire);
            if generation != seen {
                seen = generation;
                break;
            }
            thread::yield_now();
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let phase = shared.orders.with(|o| unsafe { (*o).phase });
        if first_step && fault == Fault::WorkerPanics(t, phase) {
            // The `catch_unwind` branch: flag, count the phase as done, keep the buffers
            // alive until thread 0 stops the team, then unwind (freeing them).
            shared.failed.store(true, Ordering::Release);
            shared.done.fetch_add(1, Ordering::Release);
            while !shared.stop.load(Ordering::Acquire) {
                thread::yield_now();
            }
            for piece in &shared.grads[t] {
                piece.with_mut(|g| unsafe { *g = -1 });
            }
            return;
        }
        match phase {
            Phase::Pass => pass_share(shared, t),
            Phase::Update => {
                update_pieces(shared, t);
                first_step = false;
            }
        }
        shared.done.fetch_add(1, Ordering::Release);
    }
}

/// Thread 0's `Team`: the workers it started and whether a phase is open.
struct Team<'a> {
    shared: &'a Shared,
    workers: usize,
    in_phase: bool,
}

impl Team<'_> {
    /// `Team::phase`; `Err` when a worker failed (where thread 0 panics) or thread 0's own
    /// part panicked (`own` returned `Err`).
    fn phase(&mut self, phase: Phase, own: impl FnOnce() -> Result<(), ()>) -> Result<(), ()> {
        let shared = self.shared;
        shared.orders.with_mut(|o| unsafe { (*o).phase = phase });
        shared.done.store(0, Ordering::Relaxed);
        shared.generation.fetch_add(1, Ordering::Release);
        self.in_phase = true;
        own()?;
        while shared.done.load(Ordering::Acquire) < self.workers {
            thread::yield_now();
        }
        self.in_phase = false;
        if shared.failed.load(Ordering::Acquire) {
            return Err(());
        }
        Ok(())
    }

    /// `Steps::step`: orders, phase A, combine the losses, phase B, the regularization.
    fn step(&mut self, step: usize, fault: Fault) -> Result<i64, ()> {
        let shared = self.shared;
        shared.orders.with_mut(|o| unsafe { (*o).step = step });
        // Between phases: the workers see these zeros through the phase's generation.
        shared.rows.store(0, Ordering::Relaxed);
        shared.arrived.store(0, Ordering::Relaxed);
        self.phase(Phase::Pass, || {
            pass_share(shared, 0);
            Ok(())
        })?;
        let mut loss: i64 = shared
            .losses
            .iter()
            .map(|l| l.with(|l| unsafe { *l }))
            .sum();
        self.phase(Phase::Update, || {
            if fault == Fault::LeaderPanicsInUpdate {
                return Err(());
            }
            update_pieces(shared, 0);
            Ok(())
        })?;
        loss += shared
            .regularization
            .iter()
            .map(|r| r.with(|r| unsafe { *r }))
            .sum::<i64>();
        Ok(loss)
    }

    /// `Drop for Team`: waits out an open phase, then stops the workers.
    fn stop(self) {
        if self.in_phase {
            while self.shared.done.load(Ordering::Acquire) < self.workers {
                thread::yield_now();
            }
        }
        self.shared.stop.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::Release);
    }
}

/// One execution: `threads` threads, `steps` steps, `fault`. Returns the weights when the
/// run succeeds.
fn run(threads: usize, steps: usize, fault: Fault) -> Option<Vec<i64>> {
    run_with(threads, steps, fault, false)
}

/// [`run`] with or without an output mask.
fn run_with(threads: usize, steps: usize, fault: Fault, masked: bool) -> Option<Vec<i64>> {
    let shared = Arc::new(Shared::new(threads, masked));
    let mut handles = Vec::new();
    let mut team_ok = true;
    for t in 1..threads {
        if fault == Fault::SpawnFails(t) {
            team_ok = false;
            break;
        }
        let shared = Arc::clone(&shared);
        handles.push(thread::spawn(move || work(&shared, t, fault)));
    }
    let mut team = Team {
        shared: &shared,
        workers: handles.len(),
        in_phase: false,
    };
    let mut result = team_ok;
    if team_ok {
        for step in 0..steps {
            if team.step(step, fault).is_err() {
                result = false;
                break;
            }
        }
    }
    team.stop();
    for handle in handles {
        handle.join().expect("a worker thread");
    }
    // The scope has ended: thread 0 owns everything again (and frees it).
    let weights: Vec<i64> = shared
        .weights
        .iter()
        .map(|w| w.with(|w| unsafe { *w }))
        .collect();
    for board in &shared.grads {
        for piece in board {
            piece.with_mut(|g| unsafe { *g = 0 });
        }
    }
    result.then_some(weights)
}

/// What one thread computes for the same steps.
fn expected(threads: usize, steps: usize) -> Vec<i64> {
    expected_with(threads, steps, false)
}

/// [`expected`] with or without an output mask (every share then adds the batch's rows).
fn expected_with(threads: usize, steps: usize, masked: bool) -> Vec<i64> {
    let mut weights: Vec<i64> = (0..threads).map(|p| 100 * p as i64).collect();
    for step in 0..steps {
        let sums: Vec<i64> = (0..threads)
            .map(|t| {
                let (lo, hi) = share(t, threads);
                (lo..hi).map(|i| sample(step, i)).sum::<i64>() + rows_term(SAMPLES, masked)
            })
            .collect();
        let new: Vec<i64> = (0..threads)
            .map(|p| {
                weights[p]
                    - sums
                        .iter()
                        .map(|&s| gradient(s, weights[p], p))
                        .sum::<i64>()
            })
            .collect();
        weights = new;
    }
    weights
}

/// Runs `body` under loom with a preemption bound, exhaustively or, with `budget`, for at
/// most that long (three threads spinning on atomics give loom more interleavings than a
/// test can wait for: those runs are a sample, counted and recorded, not a proof). Returns
/// how many executions loom explored (printed for BENCHMARKS.md's record).
fn explore(
    name: &str,
    bound: usize,
    budget: Option<Duration>,
    body: impl Fn() + Sync + Send + 'static,
) -> usize {
    let executions = std::sync::Arc::new(StdCounter::new(0));
    let counter = std::sync::Arc::clone(&executions);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    // Every pass of a spin-wait is a branch; the waits here spin while other threads work.
    builder.max_branches = 100_000;
    builder.max_duration = budget;
    let start = Instant::now();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        body();
    });
    let n = executions.load(std::sync::atomic::Ordering::Relaxed);
    let how = match budget {
        Some(_) => "sampled",
        None => "exhaustive",
    };
    eprintln!(
        "loom {name}: {n} executions ({how}, preemption bound {bound}, {:.1} s)",
        start.elapsed().as_secs_f64()
    );
    n
}

/// The time a three-thread scenario may explore.
const SAMPLE: Option<Duration> = Some(Duration::from_secs(20));

#[test]
fn two_threads_two_steps_match_one_thread() {
    let want = expected(2, 2);
    let n = explore("2 threads, 2 steps", 3, None, move || {
        assert_eq!(run(2, 2, Fault::None).as_deref(), Some(&want[..]));
    });
    assert!(n > 1);
}

#[test]
fn three_threads_one_step_match_one_thread() {
    let want = expected(3, 1);
    explore("3 threads, 1 step", 2, SAMPLE, move || {
        assert_eq!(run(3, 1, Fault::None).as_deref(), Some(&want[..]));
    });
}

#[test]
fn a_worker_panicking_in_phase_a_stops_the_team_cleanly() {
    explore("2 threads, worker 1 panics in Pass", 3, None, || {
        assert_eq!(run(2, 2, Fault::WorkerPanics(1, Phase::Pass)), None);
    });
}

#[test]
fn a_worker_panicking_in_phase_b_stops_the_team_cleanly() {
    explore("2 threads, worker 1 panics in Update", 3, None, || {
        assert_eq!(run(2, 2, Fault::WorkerPanics(1, Phase::Update)), None);
    });
}

#[test]
fn a_worker_panicking_beside_another_worker_stops_the_team_cleanly() {
    explore("3 threads, worker 2 panics in Update", 2, SAMPLE, || {
        assert_eq!(run(3, 1, Fault::WorkerPanics(2, Phase::Update)), None);
    });
}

#[test]
fn thread_0_panicking_mid_phase_waits_for_the_workers() {
    explore("2 threads, thread 0 panics in Update", 3, None, || {
        assert_eq!(run(2, 1, Fault::LeaderPanicsInUpdate), None);
    });
}

#[test]
fn thread_0_panicking_mid_phase_waits_for_two_workers() {
    explore("3 threads, thread 0 panics in Update", 2, SAMPLE, || {
        assert_eq!(run(3, 1, Fault::LeaderPanicsInUpdate), None);
    });
}

#[test]
fn a_failed_thread_start_stops_the_workers_already_started() {
    explore("3 threads, worker 2 fails to start", 3, None, || {
        assert_eq!(run(3, 1, Fault::SpawnFails(2)), None);
    });
}

#[test]
fn two_threads_exchanging_row_counts_match_one_thread() {
    let want = expected_with(2, 2, true);
    let n = explore("2 threads, 2 steps, output mask", 3, None, move || {
        assert_eq!(
            run_with(2, 2, Fault::None, true).as_deref(),
            Some(&want[..])
        );
    });
    assert!(n > 1);
}

#[test]
fn a_worker_panicking_before_its_row_count_stops_the_team_cleanly() {
    explore(
        "2 threads, output mask, worker 1 panics in Pass",
        3,
        None,
        || {
            assert_eq!(
                run_with(2, 2, Fault::WorkerPanics(1, Phase::Pass), true),
                None
            );
        },
    );
}

#[test]
fn three_threads_exchanging_row_counts_match_one_thread() {
    let want = expected_with(3, 1, true);
    explore("3 threads, 1 step, output mask", 2, SAMPLE, move || {
        assert_eq!(
            run_with(3, 1, Fault::None, true).as_deref(),
            Some(&want[..])
        );
    });
}
