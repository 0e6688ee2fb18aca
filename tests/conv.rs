//! Conv1D and Conv2D against Keras 3 (tests/golden/conv.json, from tools/oracle/conv.py):
//! outputs, shapes, names and parameter counts for every argument combination; every
//! weight's gradient and the input gradient of `Σ (y - t)² / (2 · batch) + activity loss` as
//! `jax.grad` computes them; one SGD step with weight regularizers and constraints; Keras 1's
//! `Convolution2D` spelling; a model with baked weights. Then finite differences.

mod common;
use common::{assert_close, case, check_gradients, check_model_case, floats, golden, load};
use kiln::{Activation, Loss, Model, Pool, Sgd, Trainable};
use serde_json::Value;

kiln::model! {
    Conv1dValid = Sequential([Input(shape = (9, 3)), Conv1D(4, 3)]);
    Conv1dSameStride2EvenKernel = Sequential([
        Input(shape = (10, 3)),
        Conv1D(5, 4, strides = 2, padding = "same"),
    ]);
    Conv1dCausalDilation2 = Sequential([
        Input(shape = (11, 2)),
        Conv1D(3, 3, padding = "causal", dilation_rate = 2),
    ]);
    Conv1dCausalStride3Groups2 = Sequential([
        Input(shape = (9, 4)),
        Conv1D(6, 3, strides = 3, padding = "causal", groups = 2),
    ]);
    Conv1dChannelsFirstGroups2 = Sequential([
        Input(shape = (4, 9)),
        Conv1D(4, 3, groups = 2, data_format = "channels_first", activation = "tanh"),
    ]);
    Conv1dSameDilation3NoBias = Sequential([
        Input(shape = (7, 2)),
        Conv1D(2, 3, padding = "same", dilation_rate = 3, use_bias = False),
    ]);
    Conv1dActivityRegularizer = Sequential([
        Input(shape = (8, 3)),
        Conv1D(3, 2, activation = "relu", activity_regularizer = l1_l2(l1 = 0.01, l2 = 0.02)),
    ]);
    Conv2dValid = Sequential([Input(shape = (6, 5, 3)), Conv2D(4, 3)]);
    Conv2dSameStride2Odd = Sequential([
        Input(shape = (7, 6, 2)),
        Conv2D(3, (3, 2), strides = 2, padding = "same"),
    ]);
    Conv2dStrides21Valid = Sequential([
        Input(shape = (7, 6, 2)),
        Conv2D(3, (2, 3), strides = (2, 1)),
    ]);
    Conv2dDilation2SameRelu = Sequential([
        Input(shape = (7, 7, 3)),
        Conv2D(4, 3, dilation_rate = 2, padding = "same", activation = "relu"),
    ]);
    Conv2dGroups2Tanh = Sequential([
        Input(shape = (5, 4, 4)),
        Conv2D(6, 2, groups = 2, activation = "tanh"),
    ]);
    Conv2dChannelsFirstSame = Sequential([
        Input(shape = (3, 6, 5)),
        Conv2D(4, 3, padding = "same", data_format = "channels_first"),
    ]);
    Conv2dChannelsFirstStride2NoBias = Sequential([
        Input(shape = (2, 7, 6)),
        Conv2D(
            5,
            (2, 3),
            strides = (2, 1),
            data_format = "channels_first",
            use_bias = False,
            activation = "sigmoid",
        ),
    ]);
    Conv2dKernelLargerThanInputSame = Sequential([
        Input(shape = (3, 4, 2)),
        Conv2D(2, 5, padding = "same"),
    ]);
    Conv2dChannelsFirstGroups2Dilation2 = Sequential([
        Input(shape = (4, 7, 6)),
        Conv2D(
            2,
            (2, 3),
            dilation_rate = (2, 1),
            groups = 2,
            data_format = "channels_first",
            padding = "same",
        ),
    ]);
    ChainConv1d = Sequential([
        Input(shape = (8, 3)),
        Dense(4),
        Conv1D(5, 3, padding = "causal", activation = "elu"),
        Conv1D(3, 2, strides = 2),
        Flatten(),
        Dense(2),
    ]);
    ChainConv2dChannelsFirst = Sequential([
        Input(shape = (5, 6, 2)),
        Dense(3),
        Conv2D(4, 3, padding = "same", data_format = "channels_first", activation = "relu"),
        Conv2D(2, 2, strides = 2),
        Flatten(),
        Dense(2),
    ]);
    Conv2dSoftmaxLast = Sequential([
        Input(shape = (4, 4, 2)),
        Conv2D(3, 2, activation = "softmax"),
    ]);
    /// The seed notes' Keras 1 model, smaller: `Convolution2D(64, 3, 3, border_mode = "same",
    /// input_shape = (3, 32, 32), dim_ordering = "th")` then `Flatten()`.
    Keras1Notes = Sequential([
        Convolution2D(4, 3, 3, border_mode = "same", input_shape = (3, 6, 5), dim_ordering = "th"),
        Flatten(),
    ]);
}

fn file() -> Value {
    golden("conv")
}

/// Outputs (batch, slice and typed `predict`), shapes, parameter count, weight names, and
/// the layers' names and classes in the summary, against Keras.
fn parity<M: Model>(name: &str) {
    let case = case(&file(), name);
    check_model_case::<M>(&case, 1e-5, 1e-5);
    let names: Vec<&str> = M::LAYERS.iter().map(|l| l.name).collect();
    let classes: Vec<&str> = M::LAYERS.iter().map(|l| l.class).collect();
    let strings = |key: &str| -> Vec<String> {
        case[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names, strings("layer_names"), "{name}: layer names");
    assert_eq!(classes, strings("layer_classes"), "{name}: layer classes");
}

/// Runs the generated backward pass (inference-mode pass, as Keras's `training=False`) with
/// the loss `Σ (y - t)² / (2 · batch)` and compares every weight's gradient with Keras's.
fn check_keras_gradients<M: Trainable>(name: &str) {
    common::check_keras_gradients::<M>(&case(&file(), name), 1e-4, 1e-5);
}

#[test]
fn conv1d_matches_keras_for_every_argument() {
    parity::<Conv1dValid>("conv1d_valid");
    parity::<Conv1dSameStride2EvenKernel>("conv1d_same_stride2_even_kernel");
    parity::<Conv1dCausalDilation2>("conv1d_causal_dilation2");
    parity::<Conv1dCausalStride3Groups2>("conv1d_causal_stride3_groups2");
    parity::<Conv1dChannelsFirstGroups2>("conv1d_channels_first_groups2");
    parity::<Conv1dSameDilation3NoBias>("conv1d_same_dilation3_no_bias");
    parity::<Conv1dActivityRegularizer>("conv1d_activity_regularizer");
}

#[test]
fn conv2d_matches_keras_for_every_argument() {
    parity::<Conv2dValid>("conv2d_valid");
    parity::<Conv2dSameStride2Odd>("conv2d_same_stride2_odd");
    parity::<Conv2dStrides21Valid>("conv2d_strides_2_1_valid");
    parity::<Conv2dDilation2SameRelu>("conv2d_dilation2_same_relu");
    parity::<Conv2dGroups2Tanh>("conv2d_groups2_tanh");
    parity::<Conv2dChannelsFirstSame>("conv2d_channels_first_same");
    parity::<Conv2dChannelsFirstStride2NoBias>("conv2d_channels_first_stride2_no_bias");
    parity::<Conv2dKernelLargerThanInputSame>("conv2d_kernel_larger_than_input_same");
    parity::<Conv2dChannelsFirstGroups2Dilation2>("conv2d_channels_first_groups2_dilation2");
    parity::<Conv2dSoftmaxLast>("conv2d_softmax_last");
}

#[test]
fn chains_match_keras() {
    parity::<ChainConv1d>("chain_conv1d");
    parity::<ChainConv2dChannelsFirst>("chain_conv2d_channels_first");
}

#[test]
fn weight_gradients_match_keras() {
    check_keras_gradients::<Conv1dValid>("conv1d_valid");
    check_keras_gradients::<Conv1dSameStride2EvenKernel>("conv1d_same_stride2_even_kernel");
    check_keras_gradients::<Conv1dCausalDilation2>("conv1d_causal_dilation2");
    check_keras_gradients::<Conv1dCausalStride3Groups2>("conv1d_causal_stride3_groups2");
    check_keras_gradients::<Conv1dChannelsFirstGroups2>("conv1d_channels_first_groups2");
    check_keras_gradients::<Conv1dSameDilation3NoBias>("conv1d_same_dilation3_no_bias");
    check_keras_gradients::<Conv1dActivityRegularizer>("conv1d_activity_regularizer");
    check_keras_gradients::<Conv2dValid>("conv2d_valid");
    check_keras_gradients::<Conv2dSameStride2Odd>("conv2d_same_stride2_odd");
    check_keras_gradients::<Conv2dStrides21Valid>("conv2d_strides_2_1_valid");
    check_keras_gradients::<Conv2dDilation2SameRelu>("conv2d_dilation2_same_relu");
    check_keras_gradients::<Conv2dGroups2Tanh>("conv2d_groups2_tanh");
    check_keras_gradients::<Conv2dChannelsFirstSame>("conv2d_channels_first_same");
    check_keras_gradients::<Conv2dChannelsFirstStride2NoBias>(
        "conv2d_channels_first_stride2_no_bias",
    );
    check_keras_gradients::<Conv2dKernelLargerThanInputSame>(
        "conv2d_kernel_larger_than_input_same",
    );
    check_keras_gradients::<Conv2dChannelsFirstGroups2Dilation2>(
        "conv2d_channels_first_groups2_dilation2",
    );
    check_keras_gradients::<Conv2dSoftmaxLast>("conv2d_softmax_last");
    check_keras_gradients::<Keras1Notes>("keras1_notes");
}

/// Through a Dense before the convolutions, the Dense kernel's gradient is `xᵀ` times the
/// convolutions' input gradients: it matches Keras only if they do.
#[test]
fn input_gradients_reach_earlier_layers_like_keras() {
    check_keras_gradients::<ChainConv1d>("chain_conv1d");
    check_keras_gradients::<ChainConv2dChannelsFirst>("chain_conv2d_channels_first");
}

/// The input gradient itself, from the runtime kernel (`Conv::backward`) of a one-layer
/// model, against `jax.grad` with respect to `x`: the loss gradient goes back through the
/// activation first, as the generated backward pass does it.
fn check_input_gradient<M: Model>(
    name: &str,
    conv: impl Fn(&M) -> &kiln::layers::Conv,
    activation: Activation,
) {
    let case = case(&file(), name);
    let model: M = load(&case);
    let layer = conv(&model);
    let x = floats(&case["x"]);
    let t = floats(&case["t"]);
    let samples = x.len() / M::INPUT_LEN;
    let mut z = vec![0.0; samples * M::OUTPUT_LEN];
    layer.forward(&x, &mut z);
    let mut y = z.clone();
    let last = *M::OUTPUT_SHAPE.last().expect("rank");
    activation.apply(&mut y, last);
    let mut dz: Vec<f32> = y
        .iter()
        .zip(&t)
        .map(|(a, b)| (a - b) / samples as f32)
        .collect();
    activation.backward(&z, &y, &mut dz, last);
    let mut dx = vec![f32::NAN; x.len()];
    let mut grad_kernel = vec![0.0; M::WEIGHT_SHAPES[0].iter().product()];
    layer.backward(
        &x,
        &dz,
        Some(&mut dx),
        &mut grad_kernel,
        None,
        &mut Pool::default(),
    );
    assert_close(
        &format!("{name}: dx"),
        &dx,
        &floats(&case["dx"]),
        1e-4,
        1e-5,
    );
    assert_close(
        &format!("{name}: kernel gradient"),
        &grad_kernel,
        &floats(&case["grads"][M::WEIGHT_NAMES[0]]),
        1e-4,
        1e-5,
    );
}

#[test]
fn input_gradients_match_keras() {
    check_input_gradient::<Conv1dValid>("conv1d_valid", |m| &m.l0, Activation::Linear);
    check_input_gradient::<Conv1dSameStride2EvenKernel>(
        "conv1d_same_stride2_even_kernel",
        |m| &m.l0,
        Activation::Linear,
    );
    check_input_gradient::<Conv1dCausalDilation2>(
        "conv1d_causal_dilation2",
        |m| &m.l0,
        Activation::Linear,
    );
    check_input_gradient::<Conv1dCausalStride3Groups2>(
        "conv1d_causal_stride3_groups2",
        |m| &m.l0,
        Activation::Linear,
    );
    check_input_gradient::<Conv1dChannelsFirstGroups2>(
        "conv1d_channels_first_groups2",
        |m| &m.l0,
        Activation::Tanh,
    );
    check_input_gradient::<Conv1dSameDilation3NoBias>(
        "conv1d_same_dilation3_no_bias",
        |m| &m.l0,
        Activation::Linear,
    );
    check_input_gradient::<Conv2dValid>("conv2d_valid", |m| &m.l0, Activation::Linear);
    check_input_gradient::<Conv2dSameStride2Odd>(
        "conv2d_same_stride2_odd",
        |m| &m.l0,
        Activation::Linear,
    );
    check_input_gradient::<Conv2dStrides21Valid>(
        "conv2d_strides_2_1_valid",
        |m| &m.l0,
        Activation::Linear,
    );
    check_input_gradient::<Conv2dDilation2SameRelu>(
        "conv2d_dilation2_same_relu",
        |m| &m.l0,
        Activation::Relu {
            negative_slope: 0.0,
            max_value: None,
            threshold: 0.0,
        },
    );
    check_input_gradient::<Conv2dGroups2Tanh>("conv2d_groups2_tanh", |m| &m.l0, Activation::Tanh);
    check_input_gradient::<Conv2dChannelsFirstSame>(
        "conv2d_channels_first_same",
        |m| &m.l0,
        Activation::Linear,
    );
    check_input_gradient::<Conv2dChannelsFirstStride2NoBias>(
        "conv2d_channels_first_stride2_no_bias",
        |m| &m.l0,
        Activation::Sigmoid,
    );
    check_input_gradient::<Conv2dKernelLargerThanInputSame>(
        "conv2d_kernel_larger_than_input_same",
        |m| &m.l0,
        Activation::Linear,
    );
    check_input_gradient::<Conv2dChannelsFirstGroups2Dilation2>(
        "conv2d_channels_first_groups2_dilation2",
        |m| &m.l0,
        Activation::Linear,
    );
    check_input_gradient::<Conv2dSoftmaxLast>(
        "conv2d_softmax_last",
        |m| &m.l0,
        Activation::Softmax,
    );
}

#[test]
fn activity_regularizer_loss_matches_keras() {
    let case = case(&file(), "conv1d_activity_regularizer");
    let model: Conv1dActivityRegularizer = load(&case);
    let loss = model
        .activity_loss(&floats(&case["x"]))
        .expect("activity_loss");
    let expected = case["activity_loss"].as_f64().expect("activity_loss") as f32;
    assert!(expected > 0.0);
    assert_close("activity loss", &[loss], &[expected], 1e-5, 1e-7);
}

kiln::model! {
    Conv2dL2MaxNorm = Sequential([
        Input(shape = (5, 5, 2)),
        Conv2D(
            3,
            2,
            kernel_regularizer = l2(0.05),
            bias_regularizer = l1(0.02),
            kernel_constraint = max_norm(0.9, axis = 3),
            bias_constraint = non_neg(),
        ),
        Flatten(),
        Dense(2),
    ]);
    Conv1dL1UnitNorm = Sequential([
        Input(shape = (6, 2)),
        Conv1D(3, 3, padding = "same", kernel_regularizer = l1(0.03), kernel_constraint = unit_norm(axis = 0)),
    ]);
}

/// One `train_on_batch` with Keras's SGD against Keras's: the reported loss (with the
/// regularization terms) and every weight afterwards (after the constraints).
fn check_keras_step<M: Trainable>(name: &str) {
    let all = file();
    let case = all["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("golden step {name} missing"));
    let model: M = load(&case);
    let lr = case["lr"].as_f64().expect("lr") as f32;
    let mut trainer = model.compile(
        Sgd {
            learning_rate: lr,
            ..Sgd::default()
        },
        Loss::MeanSquaredError,
    );
    let logs = trainer
        .train_on_batch(&floats(&case["x"]), &floats(&case["t"]))
        .expect("train_on_batch");
    let expected = case["loss"].as_f64().expect("loss") as f32;
    assert_close(
        &format!("{name}: loss"),
        &[logs.loss],
        &[expected],
        1e-5,
        1e-6,
    );
    for weight in M::WEIGHT_NAMES {
        let after = trainer.model().get_weight(weight).expect("get_weight");
        assert_close(
            &format!("{name}: {weight} after the step"),
            &after,
            &floats(&case["after"][*weight]),
            1e-4,
            1e-6,
        );
    }
}

#[test]
fn regularizers_and_constraints_train_like_keras() {
    check_keras_step::<Conv2dL2MaxNorm>("conv2d_l2_max_norm");
    check_keras_step::<Conv1dL1UnitNorm>("conv1d_l1_unit_norm");
}

/// The seed notes' spelling builds Keras 3's `Conv2D`: same names (`conv2d`), weights
/// (`conv2d/kernel` in Keras 3's layout) and numbers.
#[test]
fn keras1_convolution2d_is_keras3_conv2d() {
    parity::<Keras1Notes>("keras1_notes");
    assert_eq!(Keras1Notes::WEIGHT_NAMES, &["conv2d/kernel", "conv2d/bias"]);
    assert_eq!(Keras1Notes::WEIGHT_SHAPES, &[&[3, 3, 3, 4][..], &[4][..]]);
    assert_eq!(Keras1Notes::OUTPUT_SHAPE, &[120]);
    assert!(Keras1Notes::summary().contains("conv2d (Conv2D)"));
}

kiln::model! {
    #[weights = "tests/data/baked/conv.safetensors"]
    BakedChain = Sequential([
        Input(shape = (5, 6, 2)),
        Dense(3),
        Conv2D(4, 3, padding = "same", data_format = "channels_first", activation = "relu"),
        Conv2D(2, 2, strides = 2),
        Flatten(),
        Dense(2),
    ]);
}

/// Weights baked into the binary (`Conv::baked`) give Keras's outputs, in a `static`.
#[test]
fn baked_convolutions_match_keras() {
    static MODEL: BakedChain = BakedChain::pretrained();
    let case = case(&file(), "chain_conv2d_channels_first");
    let y = MODEL
        .predict_batch(&floats(&case["x"]))
        .expect("predict_batch");
    assert_close("baked chain", &y, &floats(&case["y"]), 1e-5, 1e-5);
    for (xs, ys) in floats(&case["x"])
        .chunks(BakedChain::INPUT_LEN)
        .zip(floats(&case["y"]).chunks(BakedChain::OUTPUT_LEN))
    {
        use kiln::Tensor;
        let typed = MODEL.predict(&<BakedChain as Model>::Input::from_values(xs));
        assert_close("baked chain, typed", typed.values(), ys, 1e-5, 1e-5);
    }
}

#[test]
fn convolutions_pass_finite_difference_checks() {
    check_gradients::<Conv1dCausalStride3Groups2>(1, 3, 12, 2e-3);
    check_gradients::<Conv1dChannelsFirstGroups2>(2, 3, 12, 2e-3);
    check_gradients::<Conv2dSameStride2Odd>(3, 2, 12, 2e-3);
    check_gradients::<Conv2dChannelsFirstGroups2Dilation2>(4, 2, 12, 2e-3);
    check_gradients::<Conv2dChannelsFirstStride2NoBias>(5, 2, 12, 2e-3);
    check_gradients::<ChainConv1d>(6, 3, 12, 2e-3);
    check_gradients::<SmoothChain2d>(7, 2, 12, 2e-3);
}

kiln::model! {
    /// `ChainConv2dChannelsFirst` with `tanh` for `relu`: finite differences across relu's
    /// kink at 0 are off by design.
    SmoothChain2d = Sequential([
        Input(shape = (5, 6, 2)),
        Dense(3),
        Conv2D(4, 3, padding = "same", data_format = "channels_first", activation = "tanh"),
        Conv2D(2, 2, strides = 2, activation = "softsign"),
        Flatten(),
        Dense(2),
    ]);
}

/// Training lowers the loss through convolutions of both data formats.
#[test]
fn fit_lowers_the_loss() {
    let x: Vec<f32> = (0..16 * 60)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.15)
        .collect();
    let y: Vec<f32> = (0..16 * 2)
        .map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.2)
        .collect();
    let mut trainer = ChainConv2dChannelsFirst::new(3).compile(
        Sgd {
            learning_rate: 0.05,
            ..Sgd::default()
        },
        Loss::MeanSquaredError,
    );
    let options = kiln::FitOptions {
        epochs: 30,
        batch_size: 8,
        verbose: false,
        ..kiln::FitOptions::default()
    };
    let history = trainer.fit(&x, &y, &options).expect("fit");
    let loss = history.get("loss").expect("loss");
    let (first, last) = (loss[0], loss[loss.len() - 1]);
    assert!(last < 0.5 * first, "loss {first} -> {last}");
}

kiln::model! {
    /// Both data formats on an image large enough for several stack tiles per row group.
    StackBound = Sequential([
        Input(shape = (16, 24, 20)),
        Conv2D(96, 3, padding = "same", data_format = "channels_first", activation = "relu"),
        Conv2D(8, (3, 2), strides = 2),
        Reshape((564, 8)),
        Conv1D(4, 5, padding = "causal"),
    ]);
}

/// `predict` runs on a thread whose stack is `PREDICT_STACK_BYTES` plus what the thread
/// itself needs: the channels-first stack tile fits the bound's kernel allowance (a debug
/// build would abort the test process on overflow).
#[test]
fn predict_fits_in_its_stack_bound() {
    const THREAD_START: usize = 32 * 1024;
    let model = std::sync::Arc::new(StackBound::new(1));
    let runner = std::sync::Arc::clone(&model);
    let x: Vec<f32> = (0..StackBound::INPUT_LEN)
        .map(|i| (i % 11) as f32 * 0.1 - 0.5)
        .collect();
    let input = x.clone();
    let y = std::thread::Builder::new()
        .stack_size(StackBound::PREDICT_STACK_BYTES + THREAD_START)
        .spawn(move || {
            use kiln::Tensor;
            let x = Box::new(<StackBound as Model>::Input::from_values(&input));
            runner.predict(&x).values().to_vec()
        })
        .expect("thread")
        .join()
        .expect("predict ran");
    assert_eq!(y, model.predict_slice(&x).expect("predict_slice"));
}
