//! How many threads `Model::predict_batch` may split a batch across: [`max_threads`],
//! [`set_max_threads`], and the `KILN_THREADS` environment variable (read once per
//! process, like the `OMP_NUM_THREADS` and intra-op thread settings Keras users set for
//! TensorFlow or JAX).
//!
//! A batch is split only when its estimated work repays waking a thread: each thread beyond
//! the calling one must get at least [`MIN_WORK_PER_THREAD`] multiply-adds, and at least two
//! samples (BENCHMARKS.md, "Performance (issue 11)", has the measurements). The batch is cut
//! into contiguous runs of rows, two per thread, which the calling thread and the pool's
//! threads claim one at a time; the outputs (and masks) are concatenated in order. The pool
//! starts at the first split and its threads then wait, blocked, for the next: on the shared
//! 2-core machine of BENCHMARKS.md, starting a thread per call took a median of 28 µs but
//! often milliseconds when the other core was busy, and the calling thread had to wait for
//! it; a pool thread that wakes late finds its runs taken by the caller. One batch has the
//! pool at a time: a batch split while another one runs stays on its calling thread.
//!
//! Every row's output has the bits the one-thread call gives it: the kernels compute each
//! sample's column of a product on its own, whatever the batch around it (the AVX-512 GEMM's
//! register tiles hold whole columns, so where a run starts does not matter), and no run is
//! a single sample, which Dense would send to its one-vector kernel (that one sums a kernel
//! deeper than 256 rows in one pass where the GEMM adds 256-row blocks: other last bits).
//!
//! The estimate of a sample's work ([`work_per_sample`]) is computed at compile time from
//! the model's layer table: weights times the positions they are applied at, plus one
//! operation per value each layer outputs. It errs low, so a batch it misjudges runs on
//! fewer threads, never on more than its work repays.

use crate::model::LayerInfo;
use crate::Model;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::panic::AssertUnwindSafe;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

/// The multiply-adds each thread beyond the calling one must get before `predict_batch`
/// wakes it (measured: `benches/dense.rs`, group `W3 batches, threads`; BENCHMARKS.md,
/// "Performance (issue 11)").
pub const MIN_WORK_PER_THREAD: usize = 3_500_000;

/// The most threads the default ([`std::thread::available_parallelism`]) gives; more cores
/// than this need `KILN_THREADS` or [`set_max_threads`].
pub const DEFAULT_THREAD_CAP: usize = 16;

/// Set by [`set_max_threads`]; 0 = not set.
static OVERRIDE: AtomicUsize = AtomicUsize::new(0);

/// The most threads `predict_batch` splits a batch across, the calling thread included:
/// the value of [`set_max_threads`] if one is set, else `KILN_THREADS` if it holds a
/// positive integer (read once per process; `KILN_THREADS=1` keeps every batch on the
/// calling thread), else the CPUs the process may use
/// ([`std::thread::available_parallelism`]) up to [`DEFAULT_THREAD_CAP`].
pub fn max_threads() -> usize {
    match OVERRIDE.load(Ordering::Relaxed) {
        0 => default_threads(),
        n => n,
    }
}

/// Sets [`max_threads`] for the whole process (`1`: never split a batch); `0` goes back to
/// `KILN_THREADS` or the CPU count. Like `torch.set_num_threads` or TensorFlow's
/// `set_intra_op_parallelism_threads`, it affects only how fast results come, never their
/// values: every row's output is the same whatever the thread count.
pub fn set_max_threads(threads: usize) {
    OVERRIDE.store(threads, Ordering::Relaxed);
}

/// `KILN_THREADS` or the CPU count, looked up once (the CPU count reads cgroup files: about
/// 30 µs, more than a small batch's whole forward pass).
fn default_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        let requested = std::env::var("KILN_THREADS").ok();
        threads_from(requested.as_deref(), || {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        })
    })
}

/// A `KILN_THREADS` value if it is a positive integer, else `cpus()` up to
/// [`DEFAULT_THREAD_CAP`].
fn threads_from(requested: Option<&str>, cpus: impl FnOnce() -> usize) -> usize {
    match requested.and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(n) if n > 0 => n,
        _ => cpus().clamp(1, DEFAULT_THREAD_CAP),
    }
}

/// How many threads (at most `threads`) share a batch of `samples` samples of `work`
/// multiply-adds each: 1 (the calling thread alone) unless every thread gets
/// [`MIN_WORK_PER_THREAD`] and two samples.
pub fn threads_for(samples: usize, work: usize, threads: usize) -> usize {
    let total = samples.saturating_mul(work);
    threads
        .min(total / MIN_WORK_PER_THREAD)
        .min(samples / 2)
        .max(1)
}

/// The first row of run `part` of `parts` runs over `samples` rows: runs differ by at most
/// one row, the longer ones first.
fn run_start(samples: usize, parts: usize, part: usize) -> usize {
    let (base, extra) = (samples / parts, samples % parts);
    part * base + part.min(extra)
}

/// The forward pass of `predict_batch` on `xs` (whole samples, at least one): on
/// [`max_threads`] threads when the batch's work repays them, else on the calling thread.
pub(crate) fn forward_batch<M: Model>(model: &M, xs: &[f32]) -> (Vec<f32>, Option<Vec<bool>>) {
    let work = const { work_per_sample(M::INPUT_SHAPE, M::LAYERS, M::WEIGHT_SHAPES) };
    let samples = xs.len() / M::INPUT_LEN.max(1);
    // Small batches stop here, before the thread count is even read.
    if samples.saturating_mul(work) < 2 * MIN_WORK_PER_THREAD {
        return model.__forward_batch(xs, &mut crate::Pass::inference());
    }
    forward_in_parts(model, xs, threads_for(samples, work, max_threads()))
}

/// The forward pass on `xs` split into runs of rows shared by up to `threads` threads
/// (the calling one and `threads - 1` of the pool's): `2 * threads` runs as [`run_start`]
/// cuts them (at most one per two samples), claimed one at a time, so a thread that starts
/// late takes fewer; the outputs and masks concatenated in order. `predict_batch` calls it
/// with [`threads_for`]'s count; tests call it with any count to check that the rows' bits
/// do not depend on the split.
#[doc(hidden)]
pub fn forward_in_parts<M: Model>(
    model: &M,
    xs: &[f32],
    threads: usize,
) -> (Vec<f32>, Option<Vec<bool>>) {
    let n_in = M::INPUT_LEN.max(1);
    let samples = xs.len() / n_in;
    let runs = threads
        .saturating_mul(RUNS_PER_THREAD)
        .min(samples / 2)
        .max(1);
    if threads <= 1 || runs == 1 {
        return model.__forward_batch(xs, &mut crate::Pass::inference());
    }
    type Output = (Vec<f32>, Option<Vec<bool>>);
    let slots: Vec<Mutex<Option<std::thread::Result<Output>>>> =
        (0..runs).map(|_| Mutex::new(None)).collect();
    let run = |i: usize| {
        let (start, end) = (run_start(samples, runs, i), run_start(samples, runs, i + 1));
        let rows = &xs[start * n_in..end * n_in];
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            model.__forward_batch(rows, &mut crate::Pass::inference())
        }));
        *lock(&slots[i]) = Some(result);
    };
    share(
        &Job {
            next: AtomicUsize::new(0),
            runs,
            run: &run,
        },
        threads - 1,
    );
    let mut outputs = Vec::with_capacity(samples * M::OUTPUT_LEN);
    let mut mask: Option<Vec<bool>> = None;
    for slot in slots {
        let result = slot.into_inner().unwrap_or_else(PoisonError::into_inner);
        // Every run was claimed and finished before `share` returned.
        let (y, m) = match result {
            Some(Ok(output)) => output,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("a run of predict_batch was not run"),
        };
        outputs.extend_from_slice(&y);
        if let Some(m) = m {
            mask.get_or_insert_with(Vec::new).extend_from_slice(&m);
        }
    }
    (outputs, mask)
}

/// Runs per thread: when a thread starts late (the machine's other cores busy), the
/// others claim its share run by run instead of waiting for it.
const RUNS_PER_THREAD: usize = 2;

/// One split batch: runs `0..runs` of `run`, claimed in order by whichever thread asks
/// next. `run` never unwinds (it catches its panic and stores it with its output).
struct Job<'a> {
    next: AtomicUsize,
    runs: usize,
    run: &'a (dyn Fn(usize) + Sync),
}

impl Job<'_> {
    /// Runs the job's runs until none is left.
    fn claim(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.runs {
                return;
            }
            (self.run)(i);
        }
    }
}

/// A pointer to the job on offer, its lifetime erased.
struct Offer(*const Job<'static>);

// SAFETY: a `Job` is `Sync` (atomics and a `Sync` closure); the pointer is dereferenced only
// by a worker counted in `State::inside`, and `share` keeps the job alive until that count
// is back to zero.
unsafe impl Send for Offer {}

/// The pool's shared state, behind `POOL`'s mutex.
struct State {
    /// The job on offer, while the thread that made it (in `share`) is still claiming runs.
    offer: Option<Offer>,
    /// Workers that may still join the job on offer.
    seats: usize,
    /// Workers that joined a job and have not left it yet.
    inside: usize,
    /// Workers started so far (they live as long as the process, blocked when idle).
    workers: usize,
}

/// The worker threads' meeting point: one job on offer at a time.
struct Pool {
    state: Mutex<State>,
    /// Workers wait here for a job.
    offered: Condvar,
    /// `share` waits here for the workers inside its job to leave.
    left: Condvar,
}

static POOL: Pool = Pool {
    state: Mutex::new(State {
        offer: None,
        seats: 0,
        inside: 0,
        workers: 0,
    }),
    offered: Condvar::new(),
    left: Condvar::new(),
};

/// Stack of a pool thread: the 8 MiB a process's main thread usually has, so a batch that
/// runs on the caller's thread runs on a worker too.
const WORKER_STACK: usize = 8 << 20;

/// A mutex's guard, whether or not a panic poisoned it (nothing here leaves the state
/// half-updated across a panic: the runs catch theirs).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `job` on the calling thread and up to `helpers` of the pool's, returning once every
/// run has finished and no worker holds the job any more. When another batch has the pool
/// (another thread's `predict_batch`), or no worker can be started, the calling thread runs
/// everything itself.
fn share(job: &Job<'_>, helpers: usize) {
    {
        let mut state = lock(&POOL.state);
        if state.offer.is_some() || state.inside > 0 {
            drop(state);
            return job.claim();
        }
        while state.workers < helpers {
            let started = std::thread::Builder::new()
                .name("kiln-predict".into())
                .stack_size(WORKER_STACK)
                .spawn(work);
            if started.is_err() {
                break;
            }
            state.workers += 1;
        }
        let erased: *const Job<'_> = job;
        state.offer = Some(Offer(erased.cast()));
        state.seats = helpers.min(state.workers);
    }
    // Withdraws the offer and waits for the workers inside when dropped, even if something
    // unwinds through here: until then they may read `job`.
    struct Withdraw;
    impl Drop for Withdraw {
        fn drop(&mut self) {
            let mut state = lock(&POOL.state);
            state.offer = None;
            state.seats = 0;
            while state.inside > 0 {
                state = POOL
                    .left
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
    let _withdraw = Withdraw;
    POOL.offered.notify_all();
    job.claim();
}

/// A pool thread: waits for an offer with a free seat, claims runs until none is left,
/// leaves, and waits again.
fn work() {
    let mut state = lock(&POOL.state);
    loop {
        let offer = match &state.offer {
            Some(offer) if state.seats > 0 => offer.0,
            _ => {
                state = POOL
                    .offered
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
        };
        state.seats -= 1;
        state.inside += 1;
        drop(state);
        // SAFETY: this worker is counted in `inside`, and `share` does not return (so the
        // job stays alive) until `inside` is back to zero.
        unsafe { &*offer }.claim();
        state = lock(&POOL.state);
        state.inside -= 1;
        if state.inside == 0 {
            POOL.left.notify_all();
        }
    }
}

/// An estimate of one sample's forward pass in multiply-adds, from the layer table: for
/// each layer, its weights times the positions it applies them at (a Dense layer: every
/// position of its input but the last axis; a convolution: every output position, its
/// filters counted from its kernel's shape; a recurrent layer: every timestep), plus the
/// larger of its input and output sizes (activations, pooling, copies). Embedding and the
/// normalisation layers cost their outputs only. Never panics, whatever the table holds: a
/// shape it cannot read counts as no work (which keeps a batch on fewer threads).
pub const fn work_per_sample(
    input: &[usize],
    layers: &[LayerInfo],
    weight_shapes: &[&[usize]],
) -> usize {
    let mut total = 0usize;
    let mut shape = input;
    let mut weight = 0;
    let mut i = 0;
    while i < layers.len() {
        let layer = &layers[i];
        let (in_len, out_len) = (product(shape), product(layer.output_shape));
        let first = weight;
        // The layer's weights: the next ones in `weight_shapes`, `params` values in all.
        let mut seen = 0usize;
        while seen < layer.params && weight < weight_shapes.len() {
            seen = seen.saturating_add(product(weight_shapes[weight]));
            weight += 1;
        }
        let kernel = nth(weight_shapes, first, weight);
        let class = layer.class.as_bytes();
        let params = layer.params;
        let positions = if params == 0
            || is(class, b"Embedding")
            || is(class, b"BatchNormalization")
            || is(class, b"LayerNormalization")
            || is(class, b"PReLU")
        {
            0
        } else if is(class, b"Conv1D") || is(class, b"Conv2D") {
            divide(out_len, last(kernel))
        } else if is(class, b"SeparableConv2D") {
            divide(out_len, last(nth(weight_shapes, first + 1, weight)))
        } else if is(class, b"DepthwiseConv2D") {
            divide(out_len, last(kernel).saturating_mul(second_last(kernel)))
        } else if is(class, b"Conv2DTranspose") {
            divide(in_len, last(kernel))
        } else if is(class, b"SimpleRNN")
            || is(class, b"LSTM")
            || is(class, b"GRU")
            || is(class, b"Bidirectional")
        {
            if shape.is_empty() {
                0
            } else {
                shape[0]
            }
        } else {
            // Dense (on any rank), TimeDistributed and anything else with weights.
            divide(in_len, last(shape))
        };
        let elementwise = if in_len > out_len { in_len } else { out_len };
        total = total
            .saturating_add(params.saturating_mul(positions))
            .saturating_add(elementwise);
        shape = layer.output_shape;
        i += 1;
    }
    total
}

/// The product of a shape's dimensions (saturating).
const fn product(shape: &[usize]) -> usize {
    let (mut p, mut i) = (1usize, 0);
    while i < shape.len() {
        p = p.saturating_mul(shape[i]);
        i += 1;
    }
    p
}

/// `weight_shapes[index]` if `index` is below `end` (one of the layer's own), else `&[]`.
const fn nth<'a>(weight_shapes: &[&'a [usize]], index: usize, end: usize) -> &'a [usize] {
    if index < end && index < weight_shapes.len() {
        weight_shapes[index]
    } else {
        &[]
    }
}

/// The last dimension, 0 for an empty shape.
const fn last(shape: &[usize]) -> usize {
    match shape.len() {
        0 => 0,
        n => shape[n - 1],
    }
}

/// The dimension before the last, 0 if there is none.
const fn second_last(shape: &[usize]) -> usize {
    match shape.len() {
        0 | 1 => 0,
        n => shape[n - 2],
    }
}

/// `a / b`, 0 when `b` is 0.
const fn divide(a: usize, b: usize) -> usize {
    match a.checked_div(b) {
        Some(q) => q,
        None => 0,
    }
}

/// Byte-wise string equality, usable in a `const fn`.
const fn is(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(class: &'static str, output_shape: &'static [usize], params: usize) -> LayerInfo {
        LayerInfo {
            name: "layer",
            class,
            output_shape,
            params,
        }
    }

    /// The pool hand-off itself, as CI runs it under Valgrind memcheck: every run of a job
    /// is claimed exactly once, by the caller or a worker, and the job's borrowed data is
    /// read only while `share` has not returned; callers on several threads at once (one
    /// gets the pool, the others run alone) included.
    #[test]
    fn every_run_of_a_shared_job_runs_once() {
        use std::sync::atomic::AtomicU32;
        let callers: Vec<_> = (0..3)
            .map(|caller| {
                std::thread::spawn(move || {
                    for round in 0..40 {
                        let runs = 1 + (round * 7 + caller) % 23;
                        let counts: Vec<AtomicU32> = (0..runs).map(|_| AtomicU32::new(0)).collect();
                        let run = |i: usize| {
                            counts[i].fetch_add(1, Ordering::Relaxed);
                        };
                        share(
                            &Job {
                                next: AtomicUsize::new(0),
                                runs,
                                run: &run,
                            },
                            2,
                        );
                        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().expect("caller thread");
        }
    }

    #[test]
    fn runs_cover_the_batch_in_order_and_differ_by_at_most_one_row() {
        for samples in 2..60 {
            for parts in 1..=samples / 2 {
                let starts: Vec<usize> =
                    (0..=parts).map(|p| run_start(samples, parts, p)).collect();
                assert_eq!((starts[0], starts[parts]), (0, samples));
                let lens: Vec<usize> = starts.windows(2).map(|w| w[1] - w[0]).collect();
                let (min, max) = (lens.iter().min(), lens.iter().max());
                assert!(
                    min >= Some(&2) && max <= min.map(|m| m + 1).as_ref(),
                    "{lens:?}"
                );
            }
        }
    }

    #[test]
    fn a_batch_splits_only_when_every_thread_gets_its_share_of_work() {
        assert_eq!(threads_for(256, 235_000, 2), 2);
        assert_eq!(threads_for(256, 235_000, 1), 1);
        assert_eq!(
            threads_for(256, 235_000, 64),
            256 * 235_000 / MIN_WORK_PER_THREAD
        );
        assert_eq!(threads_for(8, 235_000, 2), 1);
        // Enough work, too few samples: at least two each.
        assert_eq!(threads_for(3, usize::MAX, 8), 1);
        assert_eq!(threads_for(5, usize::MAX, 8), 2);
        assert_eq!(threads_for(0, 1, 8), 1);
    }

    #[test]
    fn kiln_threads_takes_a_positive_integer_else_the_cpu_count_capped() {
        assert_eq!(threads_from(Some("3"), || 2), 3);
        assert_eq!(threads_from(Some(" 1\n"), || 2), 1);
        assert_eq!(threads_from(Some("64"), || 2), 64);
        for ignored in ["0", "-1", "two", ""] {
            assert_eq!(threads_from(Some(ignored), || 2), 2, "{ignored:?}");
        }
        assert_eq!(threads_from(None, || 2), 2);
        assert_eq!(threads_from(None, || 96), DEFAULT_THREAD_CAP);
        assert_eq!(threads_from(None, || 0), 1);
    }

    #[test]
    fn work_counts_weights_times_the_positions_they_apply_at() {
        // W3: 784 -> Dense(256) -> Dense(128) -> Dense(10), one position each.
        let layers = [
            layer("Dense", &[256], 784 * 256 + 256),
            layer("Dense", &[128], 256 * 128 + 128),
            layer("Dense", &[10], 128 * 10 + 10),
        ];
        let shapes: [&[usize]; 6] = [&[784, 256], &[256], &[256, 128], &[128], &[128, 10], &[10]];
        let params = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10;
        assert_eq!(
            work_per_sample(&[784], &layers, &shapes),
            params + 784 + 256 + 128
        );
        // Conv2D (28, 28, 1) -> (26, 26, 32), 3 x 3: 676 positions of 320 weights; either
        // data format gives the same count (filters from the kernel's shape).
        let shapes: [&[usize]; 2] = [&[3, 3, 1, 32], &[32]];
        let last = [layer("Conv2D", &[26, 26, 32], 320)];
        let first = [layer("Conv2D", &[32, 26, 26], 320)];
        assert_eq!(
            work_per_sample(&[28, 28, 1], &last, &shapes),
            676 * 320 + 21_632
        );
        assert_eq!(
            work_per_sample(&[1, 28, 28], &first, &shapes),
            676 * 320 + 21_632
        );
        // An LSTM over 50 steps applies its weights at every step; an Embedding is lookups.
        let layers = [
            layer("Embedding", &[50, 8], 1000 * 8),
            layer("LSTM", &[16], 4 * 16 * (8 + 16 + 1)),
        ];
        let shapes: [&[usize]; 4] = [&[1000, 8], &[8, 64], &[16, 64], &[64]];
        assert_eq!(
            work_per_sample(&[50], &layers, &shapes),
            400 + 50 * 4 * 16 * 25 + 400
        );
    }

    #[test]
    fn work_of_a_table_that_does_not_add_up_is_finite() {
        let layers = [layer("Conv2D", &[4, 4, 2], 1_000), layer("Dense", &[], 7)];
        // No kernel shape: the Conv2D counts its outputs only; the Dense 16 positions.
        assert_eq!(work_per_sample(&[], &layers, &[]), 32 + 7 * 16 + 32);
        let huge = [layer("Dense", &[usize::MAX], usize::MAX)];
        assert_eq!(work_per_sample(&[usize::MAX], &huge, &[]), usize::MAX);
    }
}
