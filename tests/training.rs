//! Training end to end: the generated backward pass against finite differences, and the
//! trainer's Keras flow.

mod common;
use common::check_gradients;
use kiln::{Adam, FitOptions, Loss, Metric, Model};

kiln::model! {
    DenseStack = Sequential([
        Input(shape = (5,)),
        Dense(4, activation = "tanh"),
        Dense(3, activation = "softmax"),
        Activation("sigmoid"),
    ]);
    DenseRank3 = Sequential([
        Input(shape = (2, 3, 4)),
        Dense(3, activation = "elu"),
        Dense(2, activation = "gelu", use_bias = False),
    ]);
    Xor = Sequential([
        Input(shape = (2,)),
        Dense(8, activation = "tanh"),
        Dense(1, activation = "sigmoid"),
    ]);
}

#[test]
fn dense_and_activation_backward_match_finite_differences() {
    check_gradients::<DenseStack>(1, 4, 12, 2e-3);
    check_gradients::<DenseRank3>(2, 3, 12, 2e-3);
}

#[test]
fn fit_learns_xor_and_is_deterministic() {
    let x = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0f32];
    let y = [0.0, 1.0, 1.0, 0.0f32];
    let run = || {
        let mut trainer = Xor::new(1)
            .compile(
                Adam {
                    learning_rate: 0.05,
                    ..Adam::default()
                },
                Loss::BinaryCrossentropy { from_logits: false },
            )
            .with_metrics(&[Metric::Accuracy]);
        let options = FitOptions {
            epochs: 300,
            batch_size: 2,
            verbose: false,
            seed: 9,
            ..Default::default()
        };
        let history = trainer.fit(&x, &y, &options).expect("fit");
        (history, trainer.into_model())
    };
    let (history, model) = run();
    let losses = history.get("loss").expect("loss history");
    assert_eq!(losses.len(), 300);
    assert!(
        losses[299] < 0.05 * losses[0],
        "loss {} -> {}",
        losses[0],
        losses[299]
    );
    assert_eq!(history.get("accuracy").map(|a| a[299]), Some(1.0));
    let (_, again) = run();
    for name in Xor::WEIGHT_NAMES {
        let (a, b) = (
            model.get_weight(name).unwrap(),
            again.get_weight(name).unwrap(),
        );
        assert!(
            a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{name} differs between runs"
        );
    }
}

#[test]
fn trainer_rejects_mismatched_labels() {
    let mut trainer = Xor::new(0).compile(Adam::default(), Loss::MeanSquaredError);
    let err = trainer.train_on_batch(&[0.0; 4], &[0.0; 3]).unwrap_err();
    assert!(err.to_string().contains("expected 2 label values"), "{err}");
    assert!(trainer
        .fit(
            &[0.0; 4],
            &[0.0; 2],
            &FitOptions {
                batch_size: 0,
                ..Default::default()
            }
        )
        .is_err());
}
