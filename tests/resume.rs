//! Checkpoints that resume: training 10 epochs equals training 5, `Trainer::save`, loading
//! in a new process (this test binary, run again with `KILN_RESUME_CHILD` set) and training
//! 5 more — bit for bit, with Dropout's randomness, a scheduled Adam, shuffling and Nadam's
//! extra state in play.

use kiln::schedules::ExponentialDecay;
use kiln::{Adam, Error, FitOptions, Loss, Model, Nadam, Trainer};
use std::path::PathBuf;

kiln::model! {
    Net = Sequential([
        Input(shape = (6,)),
        Dense(16, activation = "relu"),
        Dropout(0.3),
        Dense(3, activation = "softmax"),
    ]);
}

fn data() -> (Vec<f32>, Vec<f32>) {
    let x = (0..40 * 6)
        .map(|i| ((i * 13) % 11) as f32 * 0.1 - 0.5)
        .collect();
    let y = (0..40).map(|i| ((i * 7) % 3) as f32).collect();
    (x, y)
}

fn trainer() -> Trainer<Net, Adam> {
    Net::new(5).compile(
        Adam {
            schedule: Some(ExponentialDecay::new(0.01, 7, 0.8).into()),
            ..Adam::default()
        },
        Loss::SparseCategoricalCrossentropy { from_logits: false },
    )
}

fn options(initial_epoch: usize, epochs: usize) -> FitOptions<'static> {
    FitOptions {
        epochs,
        initial_epoch,
        batch_size: 8,
        seed: 11,
        verbose: false,
        ..FitOptions::default()
    }
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kiln-resume-{}-{name}", std::process::id()))
}

/// The child's half: load the trainer, train epochs 5..10, save the weights.
#[test]
fn resume_child() {
    let Ok(paths) = std::env::var("KILN_RESUME_CHILD") else {
        return; // run only when the parent spawns this binary
    };
    let (checkpoint, out) = paths.split_once('|').expect("two paths");
    let (x, y) = data();
    let mut resumed = trainer();
    resumed.load(checkpoint).expect("load the checkpoint");
    resumed.fit(&x, &y, &options(5, 10)).expect("fit");
    resumed.model().save_weights(out).expect("save");
}

#[test]
fn ten_epochs_equal_five_saved_loaded_in_a_new_process_and_five_more() {
    let (x, y) = data();
    let mut straight = trainer();
    straight.fit(&x, &y, &options(0, 10)).unwrap();

    let mut first = trainer();
    first.fit(&x, &y, &options(0, 5)).unwrap();
    let checkpoint = scratch("trainer.safetensors");
    let out = scratch("weights.safetensors");
    first.save(&checkpoint).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "resume_child", "--test-threads", "1"])
        .env(
            "KILN_RESUME_CHILD",
            format!("{}|{}", checkpoint.display(), out.display()),
        )
        .status()
        .expect("run the child");
    assert!(status.success(), "the child failed: {status}");
    let mut resumed = Net::new(0);
    resumed.load_weights(&out).unwrap();
    assert_eq!(
        resumed.weights_to_bytes(),
        straight.model().weights_to_bytes()
    );

    // In this process, a fresh trainer loaded from the file does the same.
    let mut again = trainer();
    again.load(&checkpoint).unwrap();
    again.fit(&x, &y, &options(5, 10)).unwrap();
    assert_eq!(
        again.model().weights_to_bytes(),
        straight.model().weights_to_bytes()
    );
    // And so does the first trainer, simply continuing.
    first.fit(&x, &y, &options(5, 10)).unwrap();
    assert_eq!(
        first.model().weights_to_bytes(),
        straight.model().weights_to_bytes()
    );
    std::fs::remove_file(&checkpoint).ok();
    std::fs::remove_file(&out).ok();
}

#[test]
fn nadams_extra_state_round_trips() {
    let (x, y) = data();
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false };
    let make = || {
        Net::new(2).compile(
            Nadam {
                ema: Some(kiln::Ema::default()),
                ..Nadam::default()
            },
            loss,
        )
    };
    let mut a = make();
    a.fit(&x, &y, &options(0, 2)).unwrap();
    let bytes = a.to_bytes().unwrap();
    let mut b = make();
    b.load_from_bytes(&bytes).unwrap();
    assert!(
        b.optimizer() == a.optimizer(),
        "optimizer state after the round trip"
    );
    assert!(b.model().weights_to_bytes() == a.model().weights_to_bytes());
    assert_ne!(a.optimizer().u_product, 1.0, "Nadam's product moved");
}

#[test]
fn a_checkpoint_for_another_optimizer_or_a_weight_file_is_refused() {
    let (x, y) = data();
    let mut a = trainer();
    a.fit(&x, &y, &options(0, 1)).unwrap();
    let bytes = a.to_bytes().unwrap();
    let mut other = Net::new(2).compile(
        Nadam::default(),
        Loss::SparseCategoricalCrossentropy { from_logits: false },
    );
    let before = other.model().weights_to_bytes();
    assert!(matches!(
        other.load_from_bytes(&bytes),
        Err(Error::Checkpoint { .. })
    ));
    assert_eq!(other.model().weights_to_bytes(), before);
    let mut fresh = trainer();
    let weights_only = a.model().weights_to_bytes();
    assert!(matches!(
        fresh.load_from_bytes(&weights_only),
        Err(Error::Checkpoint { .. })
    ));
}
