//! The digits example's training recipe, shortened for a debug build: real data, Adam,
//! sparse categorical cross-entropy, `fit` then `evaluate` (the full run is
//! `cargo run --release --example digits`, which reaches >= 0.97).

use kiln::{Adam, FitOptions, Loss, Metric, Model};

kiln::model! {
    DigitNet = Sequential([
        Input(shape = (64,)),
        Dense(64, activation = "relu"),
        Dense(10, activation = "softmax"),
    ]);
}

#[test]
fn a_few_epochs_on_the_uci_digits_generalise() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/digits/digits.csv"
    );
    let text = std::fs::read_to_string(path).expect("digits.csv ships with the repository");
    let (mut train_x, mut train_y, mut test_x, mut test_y) = (vec![], vec![], vec![], vec![]);
    for (i, line) in text.lines().enumerate() {
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.parse().expect("a number"))
            .collect();
        let (x, y) = if i % 5 == 4 {
            (&mut test_x, &mut test_y)
        } else {
            (&mut train_x, &mut train_y)
        };
        x.extend(values[..64].iter().map(|p| p / 16.0));
        y.push(values[64]);
    }
    assert_eq!(train_y.len() + test_y.len(), 1797);
    let mut trainer = DigitNet::new(3)
        .compile(
            Adam {
                learning_rate: 0.003,
                ..Adam::default()
            },
            Loss::SparseCategoricalCrossentropy { from_logits: false },
        )
        .with_metrics(&[Metric::Accuracy]);
    let before = trainer.evaluate(&test_x, &test_y).expect("evaluate");
    let options = FitOptions {
        epochs: 8,
        batch_size: 32,
        seed: 3,
        verbose: false,
        ..FitOptions::default()
    };
    let history = trainer.fit(&train_x, &train_y, &options).expect("fit");
    let after = trainer.evaluate(&test_x, &test_y).expect("evaluate");
    let accuracy = after.get("accuracy").expect("accuracy is reported");
    assert!(
        before.loss > 2.0 * after.loss,
        "test loss {} -> {}",
        before.loss,
        after.loss
    );
    assert!(accuracy > 0.93, "test accuracy {accuracy} after 8 epochs");
    let losses = history.get("loss").expect("loss history");
    assert!(
        losses.windows(2).all(|w| w[1] < w[0] * 1.05),
        "training loss should fall: {losses:?}"
    );
}
