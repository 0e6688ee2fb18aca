//! The threaded trainer's failure paths, reached on purpose through the runtime's test-only
//! fault injection (`kiln::training::fault_injection`, feature `fault-injection`, on in
//! kiln's dev builds): a worker thread the system refuses to start, a worker panicking in
//! phase B (its piece of the update), and the calling thread panicking there while the
//! workers run theirs. Each must end `fit` (an error, or a panic on the calling thread)
//! without hanging, and leave the trainer able to `fit` again. The protocol behind these
//! paths is model-checked in `runtime/tests/team_loom.rs`.

use kiln::training::fault_injection;
use kiln::{Error, FitOptions, Loss, Model, Sgd, Trainable, Trainer};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::Duration;

kiln::model! {
    Net = Sequential([
        Input(shape = (12,)),
        Dense(40, activation = "relu", kernel_regularizer = l2(0.01)),
        Dense(24, activation = "tanh"),
        Dense(5, activation = "softmax"),
    ]);
}

/// The faults are process-wide: one test at a time arms them.
static SERIAL: Mutex<()> = Mutex::new(());

const THREADS: usize = 4;

fn data() -> (Vec<f32>, Vec<f32>) {
    let x = (0..96 * 12)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let y = (0..96).map(|i| ((i * 7) % 5) as f32).collect();
    (x, y)
}

fn trainer() -> Trainer<Net, Sgd> {
    Net::new(3).compile(
        Sgd {
            learning_rate: 0.05,
            ..Sgd::default()
        },
        Loss::SparseCategoricalCrossentropy { from_logits: false },
    )
}

fn options() -> FitOptions<'static> {
    FitOptions {
        epochs: 2,
        batch_size: 16,
        seed: 5,
        verbose: false,
        threads: THREADS,
        ..FitOptions::default()
    }
}

fn weights(trainer: &Trainer<Net, Sgd>) -> Vec<Vec<f32>> {
    Net::WEIGHT_NAMES
        .iter()
        .map(|name| trainer.model().get_weight(name).expect("weight"))
        .collect()
}

/// Runs `f` on a thread of its own and fails the test if it takes more than a minute (a
/// team that never stops would hang `fit` forever).
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    receive
        .recv_timeout(Duration::from_secs(60))
        .expect("fit hung after an injected fault")
}

/// What [`fit_with_fault`] saw.
struct Seen {
    /// `fit`'s result, or its panic message.
    outcome: Result<Result<(), Error>, String>,
    before: Vec<Vec<f32>>,
    after: Vec<Vec<f32>>,
    /// Whether a second `fit`, without a fault, then succeeded.
    again: bool,
}

/// `fit` with the fault `arm` sets up.
fn fit_with_fault(arm: fn()) -> Seen {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    within_a_minute(move || {
        let (x, y) = data();
        let mut trainer = trainer();
        let before = weights(&trainer);
        arm();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            trainer.fit(&x, &y, &options()).map(|_| ())
        }))
        .map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        fault_injection::clear();
        let after = weights(&trainer);
        let again = trainer.fit(&x, &y, &options()).is_ok();
        Seen {
            outcome,
            before,
            after,
            again,
        }
    })
}

#[test]
fn a_refused_thread_start_is_an_error_and_stops_the_workers_already_started() {
    // Worker 1 is running when worker 2's start fails.
    let Seen {
        outcome,
        before,
        after,
        again,
    } = fit_with_fault(|| fault_injection::refuse_spawn(2));
    match outcome {
        Ok(Err(Error::InvalidOption {
            name: "threads", ..
        })) => {}
        other => panic!("expected the `threads` error, got {other:?}"),
    }
    assert_eq!(before, after, "no step may run when the team cannot start");
    assert!(again, "the trainer fits again afterwards");
}

#[test]
fn a_worker_panicking_in_phase_b_makes_fit_panic_and_stop_the_team() {
    let Seen {
        outcome,
        after,
        again,
        ..
    } = fit_with_fault(|| fault_injection::panic_in_update(2));
    match outcome {
        Err(message) => assert!(
            message.contains("panicked"),
            "the calling thread reports the worker's panic: {message:?}"
        ),
        Ok(result) => panic!("expected a panic, got {result:?}"),
    }
    assert!(after.iter().flatten().all(|v| v.is_finite()));
    assert!(again, "the trainer fits again afterwards");
}

#[test]
fn the_calling_thread_panicking_in_phase_b_waits_for_the_workers_then_stops_them() {
    let Seen { outcome, again, .. } = fit_with_fault(|| fault_injection::panic_in_update(0));
    match outcome {
        Err(message) => assert!(
            message.contains("fault injection: thread 0 panics in phase B"),
            "{message:?}"
        ),
        Ok(result) => panic!("expected a panic, got {result:?}"),
    }
    assert!(again, "the trainer fits again afterwards");
}

#[test]
fn without_a_fault_the_threaded_fit_runs() {
    let Seen {
        outcome,
        before,
        after,
        again,
    } = fit_with_fault(fault_injection::clear);
    assert!(matches!(outcome, Ok(Ok(()))), "{outcome:?}");
    assert_ne!(before, after);
    assert!(again);
}

/// The trainer must be usable from the watchdog thread.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Trainer<Net, Sgd>>();
    fn trainable<T: Trainable>() {}
    trainable::<Net>();
};
