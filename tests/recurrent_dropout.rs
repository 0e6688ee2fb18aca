//! `recurrent_dropout` (and `dropout` with it) on SimpleRNN, LSTM and GRU, against Keras 3
//! (tests/golden/recurrent_dropout.json, from tools/oracle/recurrent_dropout.py):
//! - inference equals Keras (no dropout outside training), Bidirectional included;
//! - Keras's own training step with masks chosen by the oracle (Keras's random draws cannot
//!   be matched bit for bit, so the oracle presets the cell's cached masks): the runtime's
//!   training forward and backward pass with the same masks give Keras's outputs and
//!   `jax.grad`'s gradients, per-gate masks (LSTM and GRU's `implementation = 1`) included;
//! - the masks a model draws: one per sequence shared by every timestep, one per gate for
//!   LSTM and GRU, each value 0 or `1 / (1 - rate)` kept at about `1 - rate`, the same for
//!   the same seed and step and new for a new step;
//! - the generated backward pass against finite differences with the masks fixed, and a
//!   linear cell's mean training output against its inference output.

mod common;
use common::{assert_close, check_model_case, floats, golden};
use kiln::activations::Activation;
use kiln::layers::recurrent::{Cell, GateDropout};
use kiln::layers::{Gru, Lstm, Sequence, SimpleRnn};
use kiln::{Gradients, Model, Pass, Trainable};
use serde_json::Value;

kiln::model! {
    LstmRd = Sequential([Input(shape = (5, 3)), LSTM(4, recurrent_dropout = 0.3)]);
    LstmDRdSeqBackwards = Sequential([
        Input(shape = (5, 3)),
        LSTM(3, dropout = 0.2, recurrent_dropout = 0.4, return_sequences = True, go_backwards = True),
    ]);
    GruDRd = Sequential([Input(shape = (5, 3)), GRU(4, dropout = 0.3, recurrent_dropout = 0.3)]);
    GruResetBeforeRdSeq = Sequential([
        Input(shape = (5, 3)),
        GRU(3, reset_after = False, recurrent_dropout = 0.5, return_sequences = True),
    ]);
    SimpleRnnDRd = Sequential([Input(shape = (5, 3)), SimpleRNN(4, dropout = 0.25, recurrent_dropout = 0.25)]);
    MaskingLstmDRd = Sequential([Input(shape = (6, 3)), Masking(), LSTM(3, dropout = 0.1, recurrent_dropout = 0.2)]);
    BiGruDRdSeqSum = Sequential([
        Input(shape = (5, 3)),
        Bidirectional(GRU(3, dropout = 0.2, recurrent_dropout = 0.3, return_sequences = True), merge_mode = "sum"),
    ]);
    BiLstmRd = Sequential([Input(shape = (5, 3)), Bidirectional(LSTM(2, recurrent_dropout = 0.3))]);
}

fn file() -> Value {
    golden("recurrent_dropout")
}

fn named(list: &Value, name: &str) -> Value {
    list.as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| {
            panic!("golden case {name} missing (tools/keras_oracle.py recurrent_dropout)")
        })
}

/// `recurrent_dropout` changes nothing in inference: Keras's outputs, through every predict
/// method.
#[test]
fn inference_matches_keras() {
    let cases = &file()["cases"];
    check_model_case::<LstmRd>(&named(cases, "lstm_rd"), 1e-4, 1e-5);
    check_model_case::<LstmDRdSeqBackwards>(&named(cases, "lstm_d_rd_seq_backwards"), 1e-4, 1e-5);
    check_model_case::<GruDRd>(&named(cases, "gru_d_rd"), 1e-4, 1e-5);
    check_model_case::<GruResetBeforeRdSeq>(&named(cases, "gru_reset_before_rd_seq"), 1e-4, 1e-5);
    check_model_case::<SimpleRnnDRd>(&named(cases, "simple_rnn_d_rd"), 1e-4, 1e-5);
    check_model_case::<MaskingLstmDRd>(&named(cases, "masking_lstm_d_rd"), 1e-4, 1e-5);
    check_model_case::<BiGruDRdSeqSum>(&named(cases, "bidirectional_gru_d_rd_seq_sum"), 1e-4, 1e-5);
    check_model_case::<BiLstmRd>(&named(cases, "bidirectional_lstm_rd"), 1e-4, 1e-5);
}

/// One of the three runtime layers, built from a golden case's weights.
enum Rnn {
    Simple(SimpleRnn),
    Lstm(Lstm),
    Gru(Gru),
}

macro_rules! each {
    ($rnn:expr, $l:ident => $e:expr) => {
        match $rnn {
            Rnn::Simple($l) => $e,
            Rnn::Lstm($l) => $e,
            Rnn::Gru($l) => $e,
        }
    };
}

fn leak(v: Vec<f32>) -> &'static [f32] {
    Box::leak(v.into_boxed_slice())
}

impl Rnn {
    fn from_case(c: &Value) -> (Rnn, Vec<String>) {
        let class = c["class"].as_str().unwrap_or_default();
        let seq = Sequence {
            timesteps: c["timesteps"].as_u64().unwrap_or_default() as usize,
            features: c["features"].as_u64().unwrap_or_default() as usize,
            return_sequences: c["return_sequences"] == true,
            go_backwards: c["go_backwards"] == true,
        };
        let units = c["units"].as_u64().unwrap_or_default() as usize;
        let cell = match class {
            "SimpleRNN" => "simple_rnn/simple_rnn_cell",
            "LSTM" => "lstm/lstm_cell",
            _ => "gru/gru_cell",
        };
        let mut names = vec![format!("{cell}/kernel"), format!("{cell}/recurrent_kernel")];
        if c["use_bias"] == true {
            names.push(format!("{cell}/bias"));
        }
        let w = |i: usize| leak(floats(&c["weights"][&names[i]]["values"]));
        let (kernel, recurrent) = (w(0), w(1));
        let bias = names.get(2).map(|_| w(2));
        let (tanh, sigmoid) = (Activation::Tanh, Activation::Sigmoid);
        let rnn = match class {
            "SimpleRNN" => Rnn::Simple(SimpleRnn::baked(seq, units, tanh, kernel, recurrent, bias)),
            "LSTM" => Rnn::Lstm(Lstm::baked(
                seq, units, tanh, sigmoid, kernel, recurrent, bias,
            )),
            _ => {
                let reset_after = c["reset_after"] == true;
                Rnn::Gru(Gru::baked(
                    seq,
                    units,
                    tanh,
                    sigmoid,
                    reset_after,
                    kernel,
                    recurrent,
                    bias,
                ))
            }
        };
        (rnn, names)
    }

    fn train(&self, x: &[f32], mask: &[bool], d: GateDropout, y: &mut [f32], cache: &mut Vec<f32>) {
        each!(self, l => {
            let n = mask.len() / l.sequence.timesteps;
            cache.resize(n * l.cache_len(), 0.0);
            let mut work = vec![0.0; l.work_len(true) + l.dropout_work_len()];
            l.forward_train_dropout(x, Some(mask), d, y, &mut work, cache);
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        x: &[f32],
        mask: &[bool],
        d: GateDropout,
        cache: &[f32],
        dy: &[f32],
        grads: &mut [Vec<f32>],
        dx: &mut [f32],
    ) {
        each!(self, l => {
            let t = l.sequence.timesteps;
            let n = mask.len() / t;
            let mut dp = vec![0.0; n * t * l.cell.gates()];
            let mut work = vec![0.0; l.work_len(false) + l.dropout_work_len()];
            l.backward_dropout(x, Some(mask), d, cache, dy, &mut dp, &mut work, grads, Some(dx));
        })
    }
}

/// Keras's training step with the oracle's masks: the runtime's training output with the
/// same masks, and its gradients of `Σ (y - t)² / (2 · batch)` (every weight and the input)
/// against `jax.grad`.
#[test]
fn training_with_fixed_masks_matches_keras() {
    let file = file();
    let cases = file["fixed_masks"].as_array().expect("fixed_masks");
    assert_eq!(cases.len(), 6);
    for c in cases {
        let name = c["name"].as_str().unwrap_or_default();
        // Keras's masks: per gate for LSTM and GRU (`implementation = 1`), one for SimpleRNN.
        let blocks = c["mask_blocks"].as_u64().unwrap_or_default();
        match c["class"].as_str() {
            Some("LSTM") => assert_eq!(
                (blocks, c["implementation"].as_u64()),
                (4, Some(1)),
                "{name}"
            ),
            Some("GRU") => assert_eq!(
                (blocks, c["implementation"].as_u64()),
                (3, Some(1)),
                "{name}"
            ),
            _ => assert_eq!(blocks, 1, "{name}"),
        }
        let (rnn, names) = Rnn::from_case(c);
        let x = floats(&c["x"]);
        let mask: Vec<bool> = c["timestep_mask"]
            .as_array()
            .expect("timestep_mask")
            .iter()
            .map(|v| v != 0)
            .collect();
        let input = (!c["input_masks"].is_null()).then(|| floats(&c["input_masks"]));
        let recurrent = floats(&c["recurrent_masks"]);
        let d = GateDropout {
            input: input.as_deref(),
            recurrent: Some(&recurrent),
        };
        let expected = floats(&c["y"]);
        let mut y = vec![0.0; expected.len()];
        let mut cache = Vec::new();
        rnn.train(&x, &mask, d, &mut y, &mut cache);
        assert_close(
            &format!("{name}: training output"),
            &y,
            &expected,
            1e-4,
            1e-5,
        );
        let n = c["batch"].as_u64().unwrap_or(1) as f32;
        let t = floats(&c["t"]);
        let dy: Vec<f32> = y.iter().zip(&t).map(|(a, b)| (a - b) / n).collect();
        let mut grads: Vec<Vec<f32>> = names
            .iter()
            .map(|w| vec![0.0; floats(&c["grads"][w]).len()])
            .collect();
        let mut dx = vec![0.0; x.len()];
        rnn.backward(&x, &mask, d, &cache, &dy, &mut grads, &mut dx);
        for (w, grad) in names.iter().zip(&grads) {
            assert_close(
                &format!("{name}: gradient of {w}"),
                grad,
                &floats(&c["grads"][w]),
                1e-3,
                1e-5,
            );
        }
        assert_close(
            &format!("{name}: gradient of x"),
            &dx,
            &floats(&c["dx"]),
            1e-3,
            1e-5,
        );
    }
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

kiln::model! {
    /// Kernel and recurrent kernel the identity, no bias, linear: an input of ones at the
    /// first timestep and zeros after gives `h = 1`, then `1 * m`, then `1 * m * m`.
    RecurrentProbe = Sequential([
        Input(shape = (3, 3)),
        SimpleRNN(3, activation = "linear", use_bias = False, recurrent_dropout = 0.4, return_sequences = True),
    ]);
}

/// `recurrent_dropout`'s mask on `h`: one per sequence, the same at every timestep, each
/// value 0 or `1 / (1 - rate)`, kept at about `1 - rate`; drawn anew per sequence and per
/// training step, the same for the same seed and step; inference applies none.
#[test]
fn recurrent_mask_is_one_per_sequence_scaled_at_the_keep_rate() {
    let mut model = RecurrentProbe::new(0);
    let eye = [1., 0., 0., 0., 1., 0., 0., 0., 1.];
    let name = |suffix: &str| format!("simple_rnn/simple_rnn_cell/{suffix}");
    model.set_weight(&name("kernel"), &eye).expect("kernel");
    model
        .set_weight(&name("recurrent_kernel"), &eye)
        .expect("recurrent kernel");
    let samples = 200;
    let one = [1., 1., 1., 0., 0., 0., 0., 0., 0.];
    let x: Vec<f32> = one
        .iter()
        .copied()
        .cycle()
        .take(samples * one.len())
        .collect();
    let y = train_outputs(&model, &x, 7, 3);
    let scale = 1.0 / 0.6;
    let (mut kept, mut masks) = (0, std::collections::HashSet::new());
    for sample in y.chunks(9) {
        let (h0, m, h2) = (&sample[..3], &sample[3..6], &sample[6..]);
        assert_eq!(
            h0, [1.0; 3],
            "no mask on the input, none at the first step (h = 0)"
        );
        for k in 0..3 {
            assert!(m[k] == 0.0 || (m[k] - scale).abs() < 1e-6, "{m:?}");
            assert!(
                (h2[k] - m[k] * m[k]).abs() < 1e-5,
                "the mask is shared by every timestep: {sample:?}"
            );
        }
        kept += m.iter().filter(|v| **v != 0.0).count();
        masks.insert(m.iter().map(|v| *v != 0.0).collect::<Vec<_>>());
    }
    assert_eq!(masks.len(), 8, "each sequence draws its own mask");
    let fraction = kept as f64 / (samples * 3) as f64;
    assert!((fraction - 0.6).abs() < 0.07, "kept {fraction}");
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
    assert_ne!(
        y,
        train_outputs(&model, &x, 8, 3),
        "a new seed draws new masks"
    );
    let inference = model.predict_batch(&x).expect("predict");
    assert!(inference.iter().all(|v| *v == 1.0), "inference: no dropout");
}

kiln::model! {
    /// One unit and one feature over two timesteps: every mask value changes the output.
    GateProbeLstm = Sequential([
        Input(shape = (2, 1)),
        LSTM(1, dropout = 0.5, recurrent_dropout = 0.3, return_sequences = True),
    ]);
    GateProbeGru = Sequential([
        Input(shape = (2, 1)),
        GRU(1, dropout = 0.3, recurrent_dropout = 0.5, return_sequences = True),
    ]);
    GateProbeSimpleRnn = Sequential([
        Input(shape = (2, 1)),
        SimpleRNN(1, dropout = 0.5, recurrent_dropout = 0.5, return_sequences = True),
    ]);
}

/// Which masks a model draws, read back from its training outputs: with one unit and one
/// feature, each sample's output is that of exactly one combination of mask values (one
/// input and one recurrent value per gate block), found by running the runtime layer with
/// every combination. The values of each block are kept at about `1 - rate` and are
/// independent of each other (LSTM and GRU draw one mask per gate, as Keras's
/// `implementation = 1`), and the input mask is shared by both timesteps (otherwise no
/// combination would match).
fn check_gate_masks<M: Trainable>(rnn: &Rnn, blocks: usize, rates: (f64, f64), seed: u64) {
    let mut model = M::new(seed);
    // The runtime layer's weights, into the model.
    let names = M::WEIGHT_NAMES;
    for (i, name) in names.iter().enumerate() {
        let values = each!(rnn, l => kiln::layers::Weights::weight(l, i).to_vec());
        model.set_weight(name, &values).expect("set_weight");
    }
    let samples = 1000;
    let x: Vec<f32> = [0.9f32, -0.7]
        .iter()
        .copied()
        .cycle()
        .take(2 * samples)
        .collect();
    let y = train_outputs(&model, &x, seed, 1);
    let (keep_in, keep_rec) = (1.0 / (1.0 - rates.0) as f32, 1.0 / (1.0 - rates.1) as f32);
    // Every combination's output: bit k of `bits` keeps input block k, bit blocks + k
    // recurrent block k.
    let combos: Vec<(u32, Vec<f32>)> = (0..1u32 << (2 * blocks))
        .map(|bits| {
            let value = |k: usize, keep: f32| if bits >> k & 1 == 1 { keep } else { 0.0 };
            let input: Vec<f32> = (0..blocks).map(|k| value(k, keep_in)).collect();
            let recurrent: Vec<f32> = (0..blocks).map(|k| value(blocks + k, keep_rec)).collect();
            let d = GateDropout {
                input: Some(&input),
                recurrent: Some(&recurrent),
            };
            let mut out = vec![0.0; 2];
            rnn.train(&x[..2], &[true, true], d, &mut out, &mut Vec::new());
            (bits, out)
        })
        .collect();
    let mut counts = vec![0usize; 2 * blocks];
    let mut patterns = std::collections::HashSet::new();
    for sample in y.chunks(2) {
        let matches: Vec<u32> = combos
            .iter()
            .filter(|(_, out)| out.iter().zip(sample).all(|(a, b)| (a - b).abs() < 1e-6))
            .map(|(bits, _)| *bits)
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "{sample:?} matched combinations {matches:?}"
        );
        let bits = matches[0];
        for (k, count) in counts.iter_mut().enumerate() {
            *count += (bits >> k & 1) as usize;
        }
        patterns.insert(bits >> blocks);
    }
    for (k, count) in counts.iter().enumerate() {
        let rate = if k < blocks { rates.0 } else { rates.1 };
        let kept = *count as f64 / samples as f64;
        assert!(
            (kept - (1.0 - rate)).abs() < 0.07,
            "block {k}: kept {kept}, rate {rate}"
        );
    }
    assert_eq!(
        patterns.len(),
        1 << blocks,
        "recurrent masks per gate, independent"
    );
}

#[test]
fn lstm_and_gru_draw_one_mask_per_gate_simple_rnn_one() {
    let seq = Sequence {
        timesteps: 2,
        features: 1,
        return_sequences: true,
        go_backwards: false,
    };
    let (tanh, sigmoid) = (Activation::Tanh, Activation::Sigmoid);
    let lstm = Rnn::Lstm(Lstm::baked(
        seq,
        1,
        tanh,
        sigmoid,
        &[0.9, -1.3, 1.1, 0.7],
        &[1.4, 0.8, -1.2, 1.0],
        Some(&[0.1, 0.9, -0.2, 0.3]),
    ));
    check_gate_masks::<GateProbeLstm>(&lstm, 4, (0.5, 0.3), 1);
    let gru = Rnn::Gru(Gru::baked(
        seq,
        1,
        tanh,
        sigmoid,
        true,
        &[0.8, -1.1, 1.3],
        &[1.2, -0.9, 1.5],
        Some(&[0.2, -0.1, 0.3, 0.1, 0.4, -0.3]),
    ));
    check_gate_masks::<GateProbeGru>(&gru, 3, (0.3, 0.5), 2);
    let rnn = Rnn::Simple(SimpleRnn::baked(seq, 1, tanh, &[1.1], &[0.9], Some(&[0.2])));
    check_gate_masks::<GateProbeSimpleRnn>(&rnn, 1, (0.5, 0.5), 3);
}

kiln::model! {
    TrainLstm = Sequential([
        Input(shape = (5, 3)),
        Dense(3),
        LSTM(3, dropout = 0.3, recurrent_dropout = 0.4, return_sequences = True),
    ]);
    TrainGru = Sequential([Input(shape = (5, 3)), Dense(3), GRU(3, dropout = 0.3, recurrent_dropout = 0.4), Dense(2)]);
    TrainGruResetBefore = Sequential([
        Input(shape = (5, 3)),
        Dense(2),
        GRU(3, reset_after = False, recurrent_dropout = 0.5, go_backwards = True, return_sequences = True),
    ]);
    TrainSimpleRnn = Sequential([Input(shape = (5, 3)), Dense(3), SimpleRNN(3, dropout = 0.2, recurrent_dropout = 0.5)]);
    TrainBiLstm = Sequential([
        Input(shape = (5, 3)),
        Dense(3),
        Bidirectional(LSTM(2, dropout = 0.2, recurrent_dropout = 0.4, return_sequences = True)),
    ]);
    TrainBiGru = Sequential([
        Input(shape = (5, 3)),
        Dense(3),
        Bidirectional(GRU(2, recurrent_dropout = 0.5), merge_mode = "mul"),
    ]);
}

/// Finite differences of the training loss with the masks held fixed (same seed and step)
/// against the generated backward pass, the input gradient included (through the Dense
/// layer before the RNN).
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
    // The masks drop something: training differs from inference.
    assert_ne!(
        train_outputs(&model, &x, 9, 2),
        model.predict_batch(&x).expect("predict")
    );
}

#[test]
fn gradients_match_finite_differences_with_the_masks_fixed() {
    check_dropout_gradients::<TrainLstm>(1, 2e-2);
    check_dropout_gradients::<TrainGru>(2, 2e-2);
    check_dropout_gradients::<TrainGruResetBefore>(3, 2e-2);
    check_dropout_gradients::<TrainSimpleRnn>(4, 2e-2);
}

#[test]
fn bidirectional_gradients_match_finite_differences_with_the_masks_fixed() {
    check_dropout_gradients::<TrainBiLstm>(5, 2e-2);
    check_dropout_gradients::<TrainBiGru>(6, 2e-2);
}

kiln::model! {
    /// Linear, no bias, three timesteps: each output is a sum of products in which every
    /// mask value enters at most once when the recurrent kernel's diagonal is zero, so the
    /// mean over masks is the inference output.
    LinearRd = Sequential([
        Input(shape = (3, 3)),
        SimpleRNN(3, activation = "linear", use_bias = False, dropout = 0.3, recurrent_dropout = 0.4, return_sequences = True),
    ]);
}

/// Inverted dropout keeps each masked value's mean: a linear cell's mean training output
/// over many sequences and steps approaches its inference output.
#[test]
fn linear_cell_mean_training_output_is_the_inference_output() {
    let mut model = LinearRd::new(5);
    model
        .set_weight(
            "simple_rnn/simple_rnn_cell/recurrent_kernel",
            &[0.0, 0.6, -0.4, 0.5, 0.0, 0.7, -0.3, 0.8, 0.0],
        )
        .expect("recurrent kernel");
    let one: Vec<f32> = (0..LinearRd::INPUT_LEN)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let samples = 4000;
    let x: Vec<f32> = one
        .iter()
        .copied()
        .cycle()
        .take(samples * one.len())
        .collect();
    let n = LinearRd::OUTPUT_LEN;
    let mut sum = vec![0.0f64; n];
    let steps = 4;
    for step in 0..steps {
        let y = train_outputs(&model, &x, 11, step);
        for (i, v) in y.iter().enumerate() {
            sum[i % n] += f64::from(*v);
        }
    }
    let mean: Vec<f32> = sum
        .iter()
        .map(|s| (s / (samples as f64 * steps as f64)) as f32)
        .collect();
    let expected = model.predict_slice(&one).expect("predict");
    assert_close("mean training output", &mean, &expected, 0.0, 0.04);
}
