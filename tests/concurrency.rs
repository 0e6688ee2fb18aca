//! Models are `Send + Sync` (asserted at compile time): one model shared by 8 threads for
//! 3 seconds (`KILN_CONCURRENCY_SECONDS`) predicts exactly, bit for bit, what it predicts
//! on one thread, with each of `predict`, `predict_slice`, `predict_batch` and
//! `predict_into`.

use kiln::Model;
use std::sync::Arc;
use std::time::{Duration, Instant};

kiln::model! {
    Shared = Sequential([
        Input(shape = (6, 8)),
        Permute((2, 1)),
        Reshape((6, 8)),
        Masking(),
        Dense(16, activation = "tanh"),
        PReLU(),
        Softmax(axis = -2),
        Dense(5, activation = "softmax"),
    ]);
}

const fn assert_send_sync<T: Send + Sync>() {}
const _: () = assert_send_sync::<Shared>();

fn sample(i: usize) -> Vec<f32> {
    (0..Shared::INPUT_LEN)
        .map(|j| {
            // Some positions all zero, so the mask is exercised.
            if (i + j / 8).is_multiple_of(5) {
                0.0
            } else {
                ((i * 31 + j * 7) % 23) as f32 * 0.1 - 1.1
            }
        })
        .collect()
}

#[test]
fn eight_threads_sharing_one_model_get_the_single_thread_outputs() {
    const THREADS: usize = 8;
    let seconds: u64 = std::env::var("KILN_CONCURRENCY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let model = Arc::new(Shared::new(11));
    let inputs: Vec<Vec<f32>> = (0..16).map(sample).collect();
    let batch: Vec<f32> = inputs.concat();
    let single: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| model.predict_slice(x).expect("predict_slice"))
        .collect();
    let single_batch = model.predict_batch(&batch).expect("predict_batch");
    // `predict_into` runs on slices, a path of its own: its single-thread outputs.
    let single_into: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| {
            let (mut output, mut scratch) = (Shared::new_output(), Shared::new_scratch());
            let x = <Shared as Model>::Input::from_column_slice(x);
            model.predict_into(&x, &mut output, &mut scratch);
            output.iter().copied().collect()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (model, inputs, single, single_into, batch, single_batch) = (
                Arc::clone(&model),
                inputs.clone(),
                single.clone(),
                single_into.clone(),
                batch.clone(),
                single_batch.clone(),
            );
            std::thread::spawn(move || {
                let mut calls = 0u64;
                let (mut output, mut scratch) = (Shared::new_output(), Shared::new_scratch());
                while Instant::now() < deadline {
                    let i = (t + calls as usize) % inputs.len();
                    let x = <Shared as Model>::Input::from_column_slice(&inputs[i]);
                    let typed: Vec<f32> = model.predict(&x).iter().copied().collect();
                    assert_eq!(typed, single[i], "thread {t}: predict");
                    assert_eq!(
                        model.predict_slice(&inputs[i]).expect("slice"),
                        single[i],
                        "thread {t}: predict_slice"
                    );
                    model.predict_into(&x, &mut output, &mut scratch);
                    let into: Vec<f32> = output.iter().copied().collect();
                    assert_eq!(into, single_into[i], "thread {t}: predict_into");
                    if calls.is_multiple_of(8) {
                        assert_eq!(
                            model.predict_batch(&batch).expect("batch"),
                            single_batch,
                            "thread {t}: predict_batch"
                        );
                    }
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let calls: u64 = workers
        .into_iter()
        .map(|w| w.join().expect("a worker panicked"))
        .sum();
    assert!(calls >= THREADS as u64, "every thread ran ({calls} calls)");
    eprintln!("{THREADS} threads, {seconds} s: {calls} checked calls");
}
