//! Bidirectional and TimeDistributed against Keras 3 (tests/golden/wrappers.json, from
//! tools/oracle/wrappers.py): outputs of every predict method, Keras's weight paths and
//! parameter counts, masks passed on (and Bidirectional's zeros at masked timesteps), every
//! weight's gradient of `Σ (y - t)² / (2 · batch)` as `jax.grad` computes it, finite
//! differences on the generated backward passes, and weights baked into the binary.

mod common;
use common::{
    assert_close, case, check_gradients, check_keras_gradients, check_model_case, floats, golden,
    load,
};
use kiln::{Gradients, Model, Pass, Tensor, Trainable};
use serde_json::Value;

kiln::model! {
    BiLstmConcat = Sequential([Input(shape = (5, 3)), Bidirectional(LSTM(4))]);
    BiGruSeqSum = Sequential([Input(shape = (5, 3)), Bidirectional(GRU(3, return_sequences = True), merge_mode = "sum")]);
    BiSimpleRnnSeqMul = Sequential([Input(shape = (4, 2)), Bidirectional(SimpleRNN(3, return_sequences = True), merge_mode = "mul")]);
    BiGruResetBeforeAve = Sequential([Input(shape = (5, 3)), Bidirectional(GRU(3, reset_after = False), merge_mode = "ave")]);
    MaskingBiLstmSeqDense = Sequential([Input(shape = (6, 3)), Masking(), Bidirectional(LSTM(3, return_sequences = True)), Dense(2)]);
    MaskingBiGruMul = Sequential([Input(shape = (6, 3)), Masking(), Bidirectional(GRU(3), merge_mode = "mul")]);
    MaskingBiSimpleRnnSeqAve = Sequential([Input(shape = (5, 2)), Masking(), Bidirectional(SimpleRNN(2, return_sequences = True), merge_mode = "ave")]);
    StackedNames = Sequential([
        Input(shape = (5, 2)),
        LSTM(3, return_sequences = True),
        Bidirectional(LSTM(2, return_sequences = True)),
        Bidirectional(GRU(2), merge_mode = "sum"),
        Dense(1),
    ]);
    BiCustomBackward = Sequential([
        Input(shape = (5, 3)),
        Bidirectional(
            LSTM(3, return_sequences = True),
            backward_layer = LSTM(3, return_sequences = True, go_backwards = True, activation = "relu"),
        ),
    ]);
    EmbeddingBiLstmSeq = Sequential([Input(shape = (6,)), Embedding(9, 3, mask_zero = True), Bidirectional(LSTM(2, return_sequences = True))]);
    TdDenseRelu = Sequential([Input(shape = (5, 3)), TimeDistributed(Dense(4, activation = "relu"))]);
    MaskingTdDenseLstm = Sequential([Input(shape = (6, 3)), Masking(), TimeDistributed(Dense(4)), LSTM(3)]);
    MaskingTdDenseSeq = Sequential([Input(shape = (6, 3)), Masking(), TimeDistributed(Dense(2, activation = "tanh"))]);
    TdConv1dPoolFlatten = Sequential([
        Input(shape = (4, 6, 2)),
        TimeDistributed(Conv1D(3, 3, activation = "relu")),
        TimeDistributed(MaxPooling1D(2)),
        TimeDistributed(Flatten()),
        TimeDistributed(Dense(2, name = "head")),
    ]);
    TdDenseSoftmax = Sequential([Input(shape = (4, 3)), TimeDistributed(Dense(5)), TimeDistributed(Dense(3, activation = "softmax"))]);
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
    let file = golden("wrappers");
    let c = case(&file, name);
    check_model_case::<M>(&c, 1e-4, 1e-5);
    check_mask::<M>(&c);
    check_keras_gradients::<M>(&c, 1e-3, 1e-5);
}

#[test]
fn bidirectional_merge_modes_match_keras() {
    parity::<BiLstmConcat>("bi_lstm_concat");
    parity::<BiGruSeqSum>("bi_gru_seq_sum");
    parity::<BiSimpleRnnSeqMul>("bi_simple_rnn_seq_mul");
    parity::<BiGruResetBeforeAve>("bi_gru_reset_before_ave");
}

/// With `return_sequences`, each direction outputs zeros at masked timesteps (Keras 3
/// forces `zero_output_for_mask`), and the mask is passed on; without, it is consumed.
#[test]
fn bidirectional_masks_match_keras() {
    parity::<MaskingBiLstmSeqDense>("masking_bi_lstm_seq_dense");
    parity::<MaskingBiGruMul>("masking_bi_gru_mul");
    parity::<MaskingBiSimpleRnnSeqAve>("masking_bi_simple_rnn_seq_ave");
    parity::<EmbeddingBiLstmSeq>("embedding_bi_lstm_seq");
    // The fully masked last sample outputs zeros at every step.
    let c = case(&golden("wrappers"), "masking_bi_simple_rnn_seq_ave");
    let model: MaskingBiSimpleRnnSeqAve = load(&c);
    let y = model
        .predict_batch(&floats(&c["x"]))
        .expect("predict_batch");
    let last = &y[y.len() - MaskingBiSimpleRnnSeqAve::OUTPUT_LEN..];
    assert!(last.iter().all(|v| *v == 0.0), "{last:?}");
}

/// Nested layers are named before their wrapper, counted with the model's other layers
/// (`bidirectional/forward_lstm_1/...` after an `lstm`); a `backward_layer` keeps its name.
#[test]
fn nested_names_and_custom_backward_layers_match_keras() {
    parity::<StackedNames>("stacked_names");
    parity::<BiCustomBackward>("bi_custom_backward");
    let summary = StackedNames::summary();
    assert!(
        summary.contains("bidirectional_1 (Bidirectional)"),
        "{summary}"
    );
}

#[test]
fn time_distributed_matches_keras() {
    parity::<TdDenseRelu>("td_dense_relu");
    parity::<MaskingTdDenseLstm>("masking_td_dense_lstm");
    parity::<MaskingTdDenseSeq>("masking_td_dense_seq");
    parity::<TdConv1dPoolFlatten>("td_conv1d_pool_flatten");
    parity::<TdDenseSoftmax>("td_dense_softmax");
}

#[test]
fn backward_passes_match_finite_differences() {
    check_gradients::<BiLstmConcat>(1, 3, 12, 2e-2);
    check_gradients::<BiGruSeqSum>(2, 3, 12, 2e-2);
    check_gradients::<BiSimpleRnnSeqMul>(3, 3, 12, 2e-2);
    check_gradients::<StackedNames>(4, 2, 12, 2e-2);
    // A seed whose draws stay clear of ReLU and max-pooling kinks at the check's step.
    check_gradients::<TdConv1dPoolFlatten>(11, 3, 12, 2e-2);
    check_gradients::<TdDenseSoftmax>(6, 3, 12, 2e-2);
}

kiln::model! {
    #[weights = "tests/data/baked/wrappers_stacked_names.safetensors"]
    BakedStackedNames = Sequential([
        Input(shape = (5, 2)),
        LSTM(3, return_sequences = True),
        Bidirectional(LSTM(2, return_sequences = True)),
        Bidirectional(GRU(2), merge_mode = "sum"),
        Dense(1),
    ]);
    #[weights = "tests/data/baked/wrappers_td_conv1d_pool_flatten.safetensors"]
    BakedTdConv = Sequential([
        Input(shape = (4, 6, 2)),
        TimeDistributed(Conv1D(3, 3, activation = "relu")),
        TimeDistributed(MaxPooling1D(2)),
        TimeDistributed(Flatten()),
        TimeDistributed(Dense(2, name = "head")),
    ]);
}

/// Weights baked into the binary give Keras's outputs, in `static`s.
#[test]
fn baked_wrapper_models_match_keras() {
    fn check<M: Model>(model: &M, name: &str) {
        let c = case(&golden("wrappers"), name);
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
    static STACKED: BakedStackedNames = BakedStackedNames::pretrained();
    static TD_CONV: BakedTdConv = BakedTdConv::pretrained();
    check(&STACKED, "stacked_names");
    check(&TD_CONV, "td_conv1d_pool_flatten");
}

kiln::model! {
    DropoutLstm = Sequential([Input(shape = (5, 3)), LSTM(4, dropout = 0.3, recurrent_dropout = 0.2, return_sequences = True)]);
    DropoutGru = Sequential([Input(shape = (5, 3)), GRU(3, dropout = 0.25, recurrent_dropout = 0.4)]);
    DropoutSimpleRnn = Sequential([Input(shape = (5, 3)), SimpleRNN(3, dropout = 0.5, recurrent_dropout = 0.5)]);
    /// `dropout` alone trains.
    DropoutTrainLstm = Sequential([Input(shape = (5, 3)), TimeDistributed(Dense(3)), LSTM(4, dropout = 0.3, return_sequences = True)]);
    DropoutTrainGru = Sequential([Input(shape = (5, 3)), GRU(3, dropout = 0.4, reset_after = False), Dense(2)]);
    DropoutTrainBi = Sequential([Input(shape = (5, 3)), Dense(3), Bidirectional(SimpleRNN(2, dropout = 0.5, return_sequences = True), merge_mode = "mul")]);
    DropoutLinear = Sequential([Input(shape = (4, 3)), SimpleRNN(3, activation = "linear", use_bias = False, dropout = 0.4, return_sequences = True)]);
}

/// `dropout`/`recurrent_dropout` change nothing in inference: Keras's outputs.
#[test]
fn rnn_dropout_inference_matches_keras() {
    let file = golden("wrappers");
    let find = |name: &str| {
        file["dropout"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("dropout case {name} missing"))
    };
    check_model_case::<DropoutLstm>(&find("dropout_lstm"), 1e-4, 1e-5);
    check_model_case::<DropoutGru>(&find("dropout_gru"), 1e-4, 1e-5);
    check_model_case::<DropoutSimpleRnn>(&find("dropout_simple_rnn"), 1e-4, 1e-5);
}

/// The outputs of one training forward pass with `pass`'s seed and step.
fn train_outputs<M: Trainable>(model: &M, x: &[f32], seed: u64, step: u64) -> Vec<f32> {
    let mut y = Vec::new();
    let mut grads = Gradients::for_model::<M>();
    let mut keep = |out: &[f32], dy: &mut [f32]| {
        y.extend_from_slice(out);
        dy.fill(0.0);
        false
    };
    let mut pass = Pass {
        training: true,
        seed,
        step,
        ..Pass::default()
    };
    model.__train_batch(x, &mut pass, &mut keep, &mut grads);
    y
}

/// Keras 3: one keep-mask over the features per sequence, the same at every timestep,
/// scaled by `1 / (1 - rate)`; drawn per training step (Keras's random draws cannot be
/// matched bit for bit, so this checks the rule, not Keras's numbers).
#[test]
fn rnn_input_dropout_is_one_mask_per_sequence() {
    let mut model = DropoutLinear::new(0);
    let name = |suffix: &str| format!("simple_rnn/simple_rnn_cell/{suffix}");
    model
        .set_weight(&name("kernel"), &[1., 0., 0., 0., 1., 0., 0., 0., 1.])
        .expect("kernel");
    model
        .set_weight(&name("recurrent_kernel"), &[0.0; 9])
        .expect("recurrent kernel");
    let samples = 64;
    let x = vec![1.0f32; samples * DropoutLinear::INPUT_LEN];
    let y = train_outputs(&model, &x, 7, 3);
    let (mut kept, mut masks) = (0, std::collections::HashSet::new());
    for sample in y.chunks(DropoutLinear::OUTPUT_LEN) {
        let first = &sample[..3];
        for step in sample.chunks(3) {
            assert_eq!(step, first, "the mask is shared by every timestep");
        }
        assert!(first
            .iter()
            .all(|v| *v == 0.0 || (*v - 1.0 / 0.6).abs() < 1e-6));
        kept += first.iter().filter(|v| **v != 0.0).count();
        masks.insert(first.iter().map(|v| *v != 0.0).collect::<Vec<_>>());
    }
    assert!(masks.len() > 4, "each sequence draws its own mask");
    let fraction = kept as f64 / (samples * 3) as f64;
    assert!((fraction - 0.6).abs() < 0.1, "kept {fraction}");
    assert_eq!(
        y,
        train_outputs(&model, &x, 7, 3),
        "same seed and step, same masks"
    );
    assert_ne!(
        y,
        train_outputs(&model, &x, 7, 4),
        "a new step draws new masks"
    );
    assert_eq!(
        model.predict_batch(&x).expect("predict"),
        x,
        "inference: no dropout"
    );
}

/// In expectation a training pass gives the inference output (the model is linear in its
/// input, and inverted dropout keeps each input's mean).
#[test]
fn rnn_input_dropout_keeps_the_expected_output() {
    let model = DropoutLinear::new(5);
    let one: Vec<f32> = (0..DropoutLinear::INPUT_LEN)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let samples = 4000;
    let x: Vec<f32> = one
        .iter()
        .copied()
        .cycle()
        .take(samples * one.len())
        .collect();
    let y = train_outputs(&model, &x, 11, 0);
    let expected = model.predict_slice(&one).expect("predict");
    let n = DropoutLinear::OUTPUT_LEN;
    let mean: Vec<f32> = (0..n)
        .map(|i| y.iter().skip(i).step_by(n).sum::<f32>() / samples as f32)
        .collect();
    assert_close("mean training output", &mean, &expected, 0.0, 0.06);
}

/// Finite differences of the training loss with the masks held fixed (same seed and step)
/// against the generated backward pass, the input gradient included (through the layers
/// before the dropout).
fn check_dropout_gradients<M: Trainable>(seed: u64, tolerance: f64) {
    let mut model = M::new(seed);
    let samples = 3;
    let x: Vec<f32> = (0..samples * M::INPUT_LEN)
        .map(|i| (((i * 37 + seed as usize) % 29) as f32 - 14.0) / 10.0)
        .collect();
    let t: Vec<f32> = (0..samples * M::OUTPUT_LEN)
        .map(|i| ((i * 13 % 7) as f32 - 3.0) / 4.0)
        .collect();
    let loss = |model: &M| -> f64 {
        let y = train_outputs(model, &x, 9, 2);
        y.iter()
            .zip(&t)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            / (2.0 * samples as f64)
    };
    let mut grads = Gradients::for_model::<M>();
    let mut head = |y: &[f32], dy: &mut [f32]| {
        for ((d, a), b) in dy.iter_mut().zip(y).zip(&t) {
            *d = (a - b) / samples as f32;
        }
        false
    };
    let mut pass = Pass {
        training: true,
        seed: 9,
        step: 2,
        ..Pass::default()
    };
    model.__train_batch(&x, &mut pass, &mut head, &mut grads);
    let eps = 1e-2f32;
    for (index, name) in M::WEIGHT_NAMES.iter().enumerate() {
        let values = model.get_weight(name).expect("get_weight");
        for i in 0..values.len() {
            let mut w = values.clone();
            w[i] = values[i] + eps;
            model.set_weight(name, &w).expect("set_weight");
            let plus = loss(&model);
            w[i] = values[i] - eps;
            model.set_weight(name, &w).expect("set_weight");
            let minus = loss(&model);
            model.set_weight(name, &values).expect("set_weight");
            let numeric = (plus - minus) / (2.0 * eps as f64);
            let analytic = grads.get(index)[i] as f64;
            let scale = 1.0f64.max(numeric.abs()).max(analytic.abs());
            assert!(
                (numeric - analytic).abs() <= tolerance * scale,
                "{name}[{i}]: backward {analytic:e}, finite difference {numeric:e}"
            );
        }
    }
}

#[test]
fn rnn_input_dropout_gradients_match_finite_differences() {
    check_dropout_gradients::<DropoutTrainLstm>(1, 2e-2);
    check_dropout_gradients::<DropoutTrainGru>(2, 2e-2);
    check_dropout_gradients::<DropoutTrainBi>(3, 2e-2);
    // The masks drop something, so the training loss differs from the inference one.
    let model = DropoutTrainGru::new(2);
    let x = vec![0.5f32; 4 * DropoutTrainGru::INPUT_LEN];
    assert_ne!(
        train_outputs(&model, &x, 9, 2),
        model.predict_batch(&x).expect("predict")
    );
}
