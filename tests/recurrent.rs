//! Embedding, SimpleRNN, LSTM and GRU against Keras 3 (tests/golden/recurrent.json, from
//! tools/oracle/recurrent.py): outputs of every predict method, masks passed on, and every
//! weight's gradient of `Σ (y - t)² / (2 · batch)` as `jax.grad` computes it (masks,
//! `go_backwards`, `return_sequences`, GRU `reset_after` both ways, activations, no bias).
//! `train_on_batch` steps with SGD and Adam against Keras's, and finite differences on the
//! generated backward passes.

mod common;
use common::{
    assert_close, case, check_gradients, check_keras_gradients, check_model_case, floats, golden,
    load,
};
use kiln::optimizers::Optimizer;
use kiln::{Adam, Loss, Model, Sgd, Tensor, Trainable};
use serde_json::Value;

kiln::model! {
    SimpleRnnLast = Sequential([Input(shape = (5, 3)), SimpleRNN(4)]);
    SimpleRnnSeqRelu = Sequential([Input(shape = (5, 3)), SimpleRNN(4, activation = "relu", return_sequences = True)]);
    SimpleRnnBackwardsNoBias = Sequential([Input(shape = (4, 2)), SimpleRNN(3, use_bias = False, go_backwards = True)]);
    LstmLast = Sequential([Input(shape = (5, 3)), LSTM(4)]);
    LstmSeqBackwards = Sequential([Input(shape = (5, 3)), LSTM(4, return_sequences = True, go_backwards = True)]);
    LstmNoBiasActivations = Sequential([Input(shape = (4, 3)), LSTM(3, use_bias = False, activation = "relu", recurrent_activation = "hard_sigmoid")]);
    GruLast = Sequential([Input(shape = (5, 3)), GRU(4)]);
    GruResetBeforeSeq = Sequential([Input(shape = (5, 3)), GRU(4, reset_after = False, return_sequences = True)]);
    GruBackwardsNoBiasSoftsign = Sequential([Input(shape = (4, 2)), GRU(3, use_bias = False, go_backwards = True, activation = "softsign")]);
    GruResetBeforeBackwardsSeq = Sequential([Input(shape = (4, 2)), GRU(3, reset_after = False, go_backwards = True, return_sequences = True)]);
    LstmGruStack = Sequential([Input(shape = (6, 2)), LSTM(4, return_sequences = True), GRU(3)]);
    MaskingLstm = Sequential([Input(shape = (6, 3)), Masking(), LSTM(4)]);
    MaskingLstmSeqBackwards = Sequential([Input(shape = (6, 3)), Masking(), LSTM(3, return_sequences = True, go_backwards = True)]);
    MaskingGruSeqDense = Sequential([Input(shape = (6, 3)), Masking(), GRU(3, return_sequences = True), Dense(2)]);
    MaskingGruResetBefore = Sequential([Input(shape = (6, 3)), Masking(), GRU(3, reset_after = False)]);
    MaskingSimpleRnnSeqLstm = Sequential([Input(shape = (6, 3)), Masking(), SimpleRNN(4, return_sequences = True), LSTM(2)]);
    EmbeddingOnly = Sequential([Input(shape = (6,)), Embedding(10, 4)]);
    EmbeddingMaskLstm = Sequential([Input(shape = (7,)), Embedding(12, 4, mask_zero = True), LSTM(3)]);
    EmbeddingMaskGruSeq = Sequential([Input(shape = (7,)), Embedding(12, 3, mask_zero = True), GRU(3, return_sequences = True)]);
    EmbeddingMaskSimpleRnnBackwards = Sequential([Input(shape = (5,)), Embedding(8, 3, mask_zero = True), SimpleRNN(2, go_backwards = True)]);
    /// The training-step models.
    StepsLstm = Sequential([
        Input(shape = (7,)),
        Embedding(12, 4, mask_zero = True),
        LSTM(5),
        Dense(3, activation = "softmax"),
    ]);
    StepsGru = Sequential([
        Input(shape = (6, 3)),
        Masking(),
        GRU(4, return_sequences = True),
        GRU(3, reset_after = False, go_backwards = True),
        Dense(2),
    ]);
    /// The notes' example, as written.
    NotesMaskingLstm = Sequential([
        Masking(mask_value = 0., input_shape = (10, 8)),
        LSTM(32),
    ]);
}

/// The mask at the output, when Keras has one there.
fn check_mask<M: Model>(case: &Value) {
    let name = case["name"].as_str().unwrap_or("case");
    let model: M = load(case);
    let (_, mask) = model
        .predict_batch_with_mask(&floats(&case["x"]))
        .expect("predict_batch_with_mask");
    let expected: Option<Vec<bool>> = case
        .get("mask")
        .and_then(Value::as_array)
        .map(|m| m.iter().map(|v| v.as_u64() == Some(1)).collect());
    assert_eq!(mask, expected, "{name}: mask");
}

fn parity<M: Trainable>(name: &str) {
    let file = golden("recurrent");
    let c = case(&file, name);
    check_model_case::<M>(&c, 1e-4, 1e-5);
    check_mask::<M>(&c);
    check_keras_gradients::<M>(&c, 1e-3, 1e-5);
}

#[test]
fn simple_rnn_matches_keras() {
    parity::<SimpleRnnLast>("simple_rnn");
    parity::<SimpleRnnSeqRelu>("simple_rnn_seq_relu");
    parity::<SimpleRnnBackwardsNoBias>("simple_rnn_backwards_no_bias");
}

#[test]
fn lstm_matches_keras() {
    parity::<LstmLast>("lstm");
    parity::<LstmSeqBackwards>("lstm_seq_backwards");
    parity::<LstmNoBiasActivations>("lstm_no_bias_activations");
}

#[test]
fn gru_matches_keras() {
    parity::<GruLast>("gru");
    parity::<GruResetBeforeSeq>("gru_reset_before_seq");
    parity::<GruBackwardsNoBiasSoftsign>("gru_backwards_no_bias_softsign");
    parity::<GruResetBeforeBackwardsSeq>("gru_reset_before_backwards_seq");
    parity::<LstmGruStack>("lstm_gru_stack");
}

#[test]
fn masks_match_keras() {
    parity::<MaskingLstm>("masking_lstm");
    parity::<MaskingLstmSeqBackwards>("masking_lstm_seq_backwards");
    parity::<MaskingGruSeqDense>("masking_gru_seq_dense");
    parity::<MaskingGruResetBefore>("masking_gru_reset_before");
    parity::<MaskingSimpleRnnSeqLstm>("masking_simple_rnn_seq_lstm");
}

#[test]
fn embedding_matches_keras() {
    parity::<EmbeddingOnly>("embedding");
    parity::<EmbeddingMaskLstm>("embedding_mask_lstm");
    parity::<EmbeddingMaskGruSeq>("embedding_mask_gru_seq");
    parity::<EmbeddingMaskSimpleRnnBackwards>("embedding_mask_simple_rnn_backwards");
}

#[test]
fn notes_example_matches_keras() {
    assert_eq!(
        NotesMaskingLstm::WEIGHT_NAMES,
        &[
            "lstm/lstm_cell/kernel",
            "lstm/lstm_cell/recurrent_kernel",
            "lstm/lstm_cell/bias"
        ]
    );
    parity::<NotesMaskingLstm>("notes_masking_lstm");
}

#[test]
fn backward_passes_match_finite_differences() {
    check_gradients::<LstmSeqBackwards>(3, 3, 12, 2e-2);
    check_gradients::<GruResetBeforeSeq>(4, 3, 12, 2e-2);
    check_gradients::<GruLast>(5, 3, 12, 2e-2);
    check_gradients::<SimpleRnnLast>(6, 3, 12, 2e-2);
    check_gradients::<LstmGruStack>(7, 2, 12, 2e-2);
}

/// Two `train_on_batch` steps from Keras's start weights: the loss each returns and every
/// weight after it.
fn check_steps<M: Trainable, O: Optimizer>(name: &str, optimizer: O, loss: Loss) {
    let file = golden("recurrent");
    let case = file["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("steps case {name} missing"));
    let names: Vec<&str> = case["weight_names"]
        .as_array()
        .expect("weight_names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(M::WEIGHT_NAMES, names.as_slice(), "{name}: weight names");
    let model: M = load(case);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let mut trainer = model.compile(optimizer, loss);
    let losses = floats(&case["losses"]);
    let after = case["after"].as_array().expect("after");
    for (step, (keras_loss, keras_after)) in losses.iter().zip(after).enumerate() {
        let what = format!("{name}: step {}", step + 1);
        let logs = trainer.train_on_batch(&x, &y).expect("train_on_batch");
        assert_close(
            &format!("{what}: loss"),
            &[logs.loss],
            &[*keras_loss],
            1e-5,
            1e-6,
        );
        for weight in M::WEIGHT_NAMES {
            assert_close(
                &format!("{what}: {weight}"),
                &trainer.model().get_weight(weight).expect("get_weight"),
                &floats(&keras_after[*weight]),
                1e-5,
                1e-6,
            );
        }
    }
}

#[test]
fn training_steps_match_keras() {
    let sgd = || Sgd {
        learning_rate: 0.1,
        ..Sgd::default()
    };
    let adam = || Adam {
        learning_rate: 0.01,
        ..Adam::default()
    };
    let cce = Loss::CategoricalCrossentropy { from_logits: false };
    check_steps::<StepsLstm, _>("lstm_sgd", sgd(), cce);
    check_steps::<StepsLstm, _>("lstm_adam", adam(), cce);
    check_steps::<StepsGru, _>("gru_sgd", sgd(), Loss::MeanSquaredError);
    check_steps::<StepsGru, _>("gru_adam", adam(), Loss::MeanSquaredError);
}

/// Ids: the slice APIs refuse what is not a whole number in `0..input_dim`; the typed
/// `predict`, which cannot fail, does what Keras 3 on JAX does (truncate, negative from the
/// end, NaN outside the table).
#[test]
fn embedding_ids_are_checked_by_the_slice_apis() {
    assert_eq!(EmbeddingOnly::INPUT_IDS, Some(10));
    assert_eq!(LstmLast::INPUT_IDS, None);
    let model = EmbeddingOnly::new(3);
    let good = [0.0, 1.0, 9.0, 3.0, 4.0, 5.0];
    assert!(model.predict_slice(&good).is_ok());
    for (bad, index) in [(1.5, 2), (10.0, 0), (-1.0, 5)] {
        let mut ids = good;
        ids[index] = bad;
        let err = model.predict_slice(&ids).expect_err("an invalid id");
        assert_eq!(
            err,
            kiln::Error::InvalidId {
                index,
                value: bad,
                input_dim: 10
            }
        );
        assert!(err
            .to_string()
            .contains("expected an id: a whole number in 0..10"));
        let mut batch = good.to_vec();
        batch.extend_from_slice(&ids);
        assert!(matches!(
            model.predict_batch(&batch),
            Err(kiln::Error::InvalidId { index: i, .. }) if i == 6 + index
        ));
        let mut trainer = EmbeddingOnly::new(3).compile(Sgd::default(), Loss::MeanSquaredError);
        assert!(matches!(
            trainer.train_on_batch(&ids, &[0.0; 24]),
            Err(kiln::Error::InvalidId { .. })
        ));
    }
    let table = model.get_weight("embedding/embeddings").expect("table");
    let typed = model.predict(&<EmbeddingOnly as Model>::Input::from_values(&[
        1.7, -1.0, 10.0, 0.0, 2.0, 3.0,
    ]));
    let y = typed.values();
    assert_eq!(y[..4], table[4..8], "1.7 truncates to id 1");
    assert_eq!(y[4..8], table[36..40], "-1 is the last id");
    assert!(
        y[8..12].iter().all(|v| v.is_nan()),
        "10 is outside the table"
    );
}

kiln::model! {
    #[weights = "tests/data/baked/recurrent_embedding_mask_lstm.safetensors"]
    BakedEmbeddingLstm = Sequential([Input(shape = (7,)), Embedding(12, 4, mask_zero = True), LSTM(3)]);
    #[weights = "tests/data/baked/recurrent_lstm_gru_stack.safetensors"]
    BakedLstmGru = Sequential([Input(shape = (6, 2)), LSTM(4, return_sequences = True), GRU(3)]);
    #[weights = "tests/data/baked/recurrent_masking_simple_rnn_seq_lstm.safetensors"]
    BakedSimpleRnn = Sequential([Input(shape = (6, 3)), Masking(), SimpleRNN(4, return_sequences = True), LSTM(2)]);
}

/// Weights baked into the binary (`Lstm::baked`, ...) give Keras's outputs, in `static`s.
#[test]
fn baked_recurrent_models_match_keras() {
    fn check<M: Model>(model: &M, name: &str) {
        let c = case(&golden("recurrent"), name);
        let y = model
            .predict_batch(&floats(&c["x"]))
            .expect("predict_batch");
        assert_close(name, &y, &floats(&c["y"]), 1e-4, 1e-5);
        for (xs, ys) in floats(&c["x"])
            .chunks(M::INPUT_LEN)
            .zip(floats(&c["y"]).chunks(M::OUTPUT_LEN))
        {
            let typed = model.predict(&M::Input::from_values(xs));
            assert_close(name, typed.values(), ys, 1e-4, 1e-5);
        }
    }
    static EMBEDDING_LSTM: BakedEmbeddingLstm = BakedEmbeddingLstm::pretrained();
    static LSTM_GRU: BakedLstmGru = BakedLstmGru::pretrained();
    static SIMPLE_RNN: BakedSimpleRnn = BakedSimpleRnn::pretrained();
    check(&EMBEDDING_LSTM, "embedding_mask_lstm");
    check(&LSTM_GRU, "lstm_gru_stack");
    check(&SIMPLE_RNN, "masking_simple_rnn_seq_lstm");
}

kiln::model! {
    MaskedLstmSoftmax = Sequential([Input(shape = (4, 3)), Masking(), LSTM(5), Softmax()]);
    EmbeddingLstmSoftmax = Sequential([Input(shape = (4,)), Embedding(11, 3, mask_zero = True), LSTM(5), Softmax()]);
    MaskedPoolingSoftmax = Sequential([Input(shape = (4, 3)), Masking(), GlobalAveragePooling1D(), Softmax()]);
}

/// Regression (found by tests/random_models.rs): `predict_into` handed the mask of a
/// `Masking` or `Embedding(mask_zero = True)` on past the layer that consumes it (an RNN
/// without `return_sequences`, `GlobalAveragePooling1D`), so a `Softmax` after it read the
/// first step's mask bit as its own and gave all zeros when that step was masked.
#[test]
fn predict_into_drops_a_consumed_mask() {
    fn check<M: Model>(x: &[f32]) {
        let model = M::new(3);
        let expected = model.predict_slice(x).expect("predict_slice");
        let (mut out, mut scratch) = (M::new_output(), M::new_scratch());
        model.predict_into(&M::Input::from_values(x), &mut out, &mut scratch);
        assert_close("predict_into", out.values(), &expected, 1e-6, 1e-7);
        assert!(
            expected.iter().all(|&v| v > 0.0),
            "softmax outputs {expected:?}"
        );
    }
    // The first step masked.
    let x = [0.0, 0.0, 0.0, 1.0, -0.5, 0.3, 0.0, 0.0, 0.0, 0.2, 0.7, -1.0];
    check::<MaskedLstmSoftmax>(&x);
    check::<MaskedPoolingSoftmax>(&x);
    check::<EmbeddingLstmSoftmax>(&[0.0, 3.0, 0.0, 5.0]);
}
