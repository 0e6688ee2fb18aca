//! Training steps of a conv net with BatchNormalization against Keras 3 on JAX (golden data:
//! tests/golden/conv_training.json, from tools/oracle/conv_training.py): Conv2D(same) ->
//! BatchNormalization -> ReLU -> MaxPooling2D -> Conv2D -> GlobalAveragePooling2D ->
//! Dense(softmax), trained by `train_on_batch` with categorical cross-entropy.
//!
//! - names, shapes, trainability and parameter counts as Keras declares them;
//! - the training pass of the first batch: every trainable weight's gradient as `jax.grad`
//!   takes it through the batch statistics, and the moving statistics after the update;
//! - three `train_on_batch` steps with SGD (momentum) and with Adam: the returned loss and
//!   every weight, moving statistics included, after each step, and each weight's change
//!   from the start (`after - start`), which a weight's own tolerance would hide.
//!
//! The first Conv2D's bias feeds BatchNormalization, which subtracts the batch mean and with
//! it any per-channel shift: its true gradient is zero, and what each side computes is its
//! own rounding noise — 1e-9 to 4e-8 in Keras's `jax.grad`, up to 4e-7 (3e-6 of the kernel's
//! largest gradient) in kiln's, whose sums over the 8 · 144 positions (BatchNormalization's
//! `Σ dy`, Conv's `Σ dz`) run sequentially in float32. SGD turns that into nothing; Adam's first step is
//! `lr · g / (|g| + ε / sqrt(1 - β₂))` = `lr · g / (|g| + 3.2e-6)`, so it moves this bias by
//! noise: after the first step here Keras's by 0.002 `lr`, kiln's by 0.1 `lr`, where any
//! real gradient would move it by about `lr`. Neither changes the training pass's outputs
//! (the batch mean removes the shift). So that bias is checked against the rule rather than against Keras's
//! noise: a gradient below 1e-5 of the kernel's, and a drift below half a learning rate per
//! step. The bias does reach one weight: the moving mean averages the convolution's output,
//! bias included, so it is compared after removing the part the two biases' difference put
//! there (`(1 - momentum)` of it per step, 2.5e-5 after three Adam steps).

mod common;
use common::{assert_close, dims, floats, golden};
use kiln::optimizers::Optimizer;
use kiln::{Adam, Gradients, Loss, Model, Pass, Sgd, Trainable};
use serde_json::Value;

kiln::model! {
    /// The parity net of tools/oracle/conv_training.py.
    ConvBnNet = Sequential([
        Input(shape = (12, 12, 2)),
        Conv2D(4, 3, padding = "same"),
        BatchNormalization(),
        ReLU(),
        MaxPooling2D(),
        Conv2D(6, 3),
        GlobalAveragePooling2D(),
        Dense(3, activation = "softmax"),
    ]);
}

/// The brief's bound on every weight and loss: 1e-4 relative. The absolute floor is one
/// float32 ulp of a weight near 0.5 (6e-8) times a few: both sides round each update. (Every
/// check here also passes with all three relative tolerances ten times tighter.)
const RTOL: f32 = 1e-4;
const ATOL: f32 = 3e-7;
/// Gradients of the first training pass: float32 sums over 8 · 144 positions and the batch
/// statistics, in another order than XLA's.
const GRAD_RTOL: f32 = 1e-4;
const GRAD_ATOL: f32 = 1e-6;
/// The step `after - start`: a difference of weights near 0.5 carries up to an ulp of each
/// (6e-8), the floor; above it Adam divides each gradient by its own RMS, so small gradient
/// entries keep their relative rounding undamped (see tests/keras_training.rs).
const STEP_RTOL: f32 = 1e-3;
const STEP_ATOL: f32 = 2e-7;
/// The bias whose true gradient is zero (see the module docs).
const DEAD_BIAS: &str = "conv2d/bias";
/// The moving mean that follows it: each step adds `(1 - momentum)` times the batch mean of
/// the convolution's output, bias included, so the two sides' different bias noise shifts
/// it by a known amount.
const MOVING_MEAN: &str = "batch_normalization/moving_mean";
/// BatchNormalization's default momentum.
const MOMENTUM: f32 = 0.99;

fn file() -> Value {
    golden("conv_training")
}

fn find<'a>(file: &'a Value, name: &str) -> &'a Value {
    file["steps"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| {
            panic!(
                "golden case {name} missing (regenerate with tools/keras_oracle.py conv_training)"
            )
        })
}

fn number(v: &Value) -> f32 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, found {v}")) as f32
}

/// The net with the case's start weights, after checking that kiln names, shapes and
/// marks as trainable every weight as Keras does.
fn load(case: &Value) -> ConvBnNet {
    let name = case["name"].as_str().unwrap_or("case");
    let keras_names: Vec<&str> = case["weight_names"]
        .as_array()
        .expect("weight_names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        ConvBnNet::WEIGHT_NAMES,
        keras_names.as_slice(),
        "{name}: weight names"
    );
    let trainable: Vec<bool> = case["trainable"]
        .as_array()
        .expect("trainable")
        .iter()
        .map(|v| v.as_bool().expect("a bool"))
        .collect();
    let kiln_trainable: Vec<bool> = ConvBnNet::UPDATES
        .iter()
        .map(|u| u.is_trainable())
        .collect();
    assert_eq!(kiln_trainable, trainable, "{name}: trainable weights");
    assert_eq!(
        ConvBnNet::INPUT_SHAPE,
        dims(&case["input_shape"]).as_slice()
    );
    assert_eq!(
        ConvBnNet::OUTPUT_SHAPE,
        dims(&case["output_shape"]).as_slice()
    );
    assert_eq!(
        ConvBnNet::PARAM_COUNT as u64,
        case["param_count"].as_u64().expect("param_count")
    );
    assert_eq!(
        ConvBnNet::TRAINABLE_PARAM_COUNT as u64,
        case["trainable_param_count"]
            .as_u64()
            .expect("trainable_param_count")
    );
    let layer_names: Vec<&str> = ConvBnNet::LAYERS.iter().map(|l| l.name).collect();
    let keras_layers: Vec<&str> = case["layer_names"]
        .as_array()
        .expect("layer_names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(layer_names, keras_layers, "{name}: layer names");
    let mut model = ConvBnNet::new(0);
    for (index, weight) in ConvBnNet::WEIGHT_NAMES.iter().enumerate() {
        let spec = &case["weights"][*weight];
        assert_eq!(
            ConvBnNet::WEIGHT_SHAPES[index],
            dims(&spec["shape"]).as_slice(),
            "{name}: shape of {weight}"
        );
        model
            .set_weight(weight, &floats(&spec["values"]))
            .unwrap_or_else(|e| panic!("{name}: set_weight({weight}): {e}"));
    }
    model
}

/// Sample `i`'s slice of a `(steps, batch, ...)` list.
fn batch(values: &[f32], steps: usize, i: usize) -> &[f32] {
    let len = values.len() / steps;
    &values[i * len..(i + 1) * len]
}

/// The first batch's training pass with the trainer's (fused) loss gradient: the loss, every
/// trainable weight's gradient against `jax.grad`, and the moving statistics after the
/// update against the ones `stateless_call(training=True)` returned.
fn check_first_pass(name: &str) {
    let file = file();
    let case = find(&file, name);
    let model = load(case);
    let steps = case["steps"].as_u64().expect("steps") as usize;
    let (xs, ys) = (floats(&case["x"]), floats(&case["y"]));
    let (x, y) = (batch(&xs, steps, 0), batch(&ys, steps, 0));
    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let classes = 3;
    let mut value = f32::NAN;
    let mut head = |pred: &[f32], dy: &mut [f32]| {
        value = loss.value(pred, y, classes);
        assert!(
            loss.fused_gradient(pred, y, classes, dy),
            "softmax + CCE fuse"
        );
        true
    };
    let mut grads = Gradients::for_model::<ConvBnNet>();
    let mut pass = Pass {
        training: true,
        ..Pass::default()
    };
    model.__train_batch(x, &mut pass, &mut head, &mut grads);
    assert_close(
        &format!("{name}: first batch loss"),
        &[value],
        &[number(&case["loss"])],
        GRAD_RTOL,
        GRAD_ATOL,
    );
    let kernel_grad_max = grads.get(0).iter().fold(0.0f32, |m, g| m.max(g.abs()));
    for (index, weight) in ConvBnNet::WEIGHT_NAMES.iter().enumerate() {
        let update = ConvBnNet::UPDATES[index];
        if *weight == DEAD_BIAS {
            let worst = grads.get(index).iter().fold(0.0f32, |m, g| m.max(g.abs()));
            assert!(
                worst < 1e-5 * kernel_grad_max,
                "{name}: d loss / d {weight} should vanish, max |g| {worst:e} (kernel's {kernel_grad_max:e})"
            );
        } else if update.is_trainable() {
            assert_close(
                &format!("{name}: d loss / d {weight}"),
                grads.get(index),
                &floats(&case["gradients"][*weight]),
                GRAD_RTOL,
                GRAD_ATOL,
            );
        } else {
            let mut moving = model.get_weight(weight).expect("get_weight");
            update.apply(&mut moving, grads.get(index));
            assert_close(
                &format!("{name}: {weight} after one update"),
                &moving,
                &floats(&case["updated"][*weight]),
                RTOL,
                ATOL,
            );
        }
    }
}

fn index_of(weight: &str) -> usize {
    ConvBnNet::WEIGHT_NAMES
        .iter()
        .position(|w| *w == weight)
        .unwrap_or_else(|| panic!("no weight {weight}"))
}

/// `steps` calls of `train_on_batch` with `optimizer`, each compared with Keras's returned
/// loss, every weight after the call and every weight's change from the start.
fn check_steps<O: Optimizer>(name: &str, optimizer: O) {
    let file = file();
    let case = find(&file, name);
    let config = &case["config"];
    assert_eq!(
        optimizer.learning_rate(),
        number(&config["learning_rate"]),
        "{name}: learning rate differs from the Keras optimizer's {config}"
    );
    let model = load(case);
    let start: Vec<Vec<f32>> = ConvBnNet::WEIGHT_NAMES
        .iter()
        .map(|w| model.get_weight(w).expect("get_weight"))
        .collect();
    let steps = case["steps"].as_u64().expect("steps") as usize;
    let (xs, ys) = (floats(&case["x"]), floats(&case["y"]));
    let mut trainer = model.compile(
        optimizer,
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    let losses = floats(&case["losses"]);
    let after = case["after"].as_array().expect("after");
    assert_eq!((losses.len(), after.len()), (steps, steps));
    let lr = trainer.optimizer().learning_rate();
    let dead = index_of(DEAD_BIAS);
    // kiln's moving mean less Keras's owed to the two biases' noise (see MOVING_MEAN).
    let mut bias_shift = vec![0.0f32; start[dead].len()];
    for (step, (keras_loss, keras_after)) in losses.iter().zip(after).enumerate() {
        let what = format!("{name}: step {}", step + 1);
        let kiln_bias = trainer.model().get_weight(DEAD_BIAS).expect("get_weight");
        let keras_bias = match step {
            0 => start[dead].clone(),
            _ => floats(&after[step - 1][DEAD_BIAS]),
        };
        for (shift, (a, b)) in bias_shift.iter_mut().zip(kiln_bias.iter().zip(&keras_bias)) {
            *shift = MOMENTUM * *shift + (1.0 - MOMENTUM) * (a - b);
        }
        let logs = trainer
            .train_on_batch(batch(&xs, steps, step), batch(&ys, steps, step))
            .expect("train_on_batch");
        assert_close(
            &format!("{what}: train_on_batch loss"),
            &[logs.loss],
            &[*keras_loss],
            RTOL,
            ATOL,
        );
        for (index, weight) in ConvBnNet::WEIGHT_NAMES.iter().enumerate() {
            let mut kiln = trainer.model().get_weight(weight).expect("get_weight");
            if *weight == MOVING_MEAN {
                // Compared as if kiln's bias had followed Keras's.
                kiln.iter_mut()
                    .zip(&bias_shift)
                    .for_each(|(v, shift)| *v -= shift);
            }
            let keras = floats(&keras_after[*weight]);
            let change = |w: &[f32]| -> Vec<f32> {
                w.iter().zip(&start[index]).map(|(a, b)| a - b).collect()
            };

            if *weight == DEAD_BIAS {
                // Noise either way; both must stay below half a learning rate per step (a
                // real gradient moves an Adam weight by about `lr` per step).
                let bound = 0.5 * lr * (step + 1) as f32;
                for (side, values) in [("kiln", &kiln), ("Keras", &keras)] {
                    let drift = change(values).iter().fold(0.0f32, |m, d| m.max(d.abs()));
                    assert!(
                        drift <= bound,
                        "{what}: {side}'s {weight} drifted by {drift:e} (bound {bound:e})"
                    );
                }
                continue;
            }
            assert_close(&format!("{what}: {weight}"), &kiln, &keras, RTOL, ATOL);
            assert_close(
                &format!("{what}: {weight} - start"),
                &change(&kiln),
                &change(&keras),
                STEP_RTOL,
                STEP_ATOL,
            );
        }
    }
    assert_eq!(trainer.optimizer().iterations(), steps as u64);
}

#[test]
fn first_training_pass_matches_jax_grad() {
    check_first_pass("sgd_momentum");
    check_first_pass("adam");
}

#[test]
fn sgd_momentum_steps_match_keras_train_on_batch() {
    check_steps(
        "sgd_momentum",
        Sgd {
            learning_rate: 0.05,
            momentum: 0.9,
            ..Sgd::default()
        },
    );
}

#[test]
fn adam_steps_match_keras_train_on_batch() {
    check_steps(
        "adam",
        Adam {
            learning_rate: 0.01,
            ..Adam::default()
        },
    );
}
