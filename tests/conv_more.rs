//! DepthwiseConv2D, SeparableConv2D and Conv2DTranspose against Keras 3 (tests/golden/
//! conv_more.json, from tools/oracle/conv_more.py): outputs, shapes, names and parameter
//! counts for every argument combination; every weight's gradient and the input gradient of
//! `Σ (y - t)² / (2 · batch) + activity loss` as `jax.grad` computes them; one SGD step with
//! regularizers and constraints on every weight; a model with baked weights. Then finite
//! differences, training, and `predict` on large images within its stack bound.

mod common;
use common::{assert_close, case, check_gradients, check_model_case, floats, golden, load};
use kiln::{Activation, Loss, Model, Pool, Sgd, Trainable};
use serde_json::Value;

kiln::model! {
    DepthwiseValid = Sequential([Input(shape = (6, 5, 3)), DepthwiseConv2D(3)]);
    DepthwiseSameStride2 = Sequential([
        Input(shape = (7, 6, 2)),
        DepthwiseConv2D((3, 2), strides = 2, padding = "same"),
    ]);
    DepthwiseDilation2Relu = Sequential([
        Input(shape = (7, 7, 3)),
        DepthwiseConv2D(3, dilation_rate = 2, padding = "same", activation = "relu"),
    ]);
    DepthwiseStride2Dilation2 = Sequential([
        Input(shape = (9, 8, 2)),
        DepthwiseConv2D(3, strides = 2, dilation_rate = 2),
    ]);
    DepthwiseMultiplier2Tanh = Sequential([
        Input(shape = (5, 6, 3)),
        DepthwiseConv2D(2, depth_multiplier = 2, activation = "tanh"),
    ]);
    DepthwiseChannelsFirstMultiplier2 = Sequential([
        Input(shape = (3, 6, 5)),
        DepthwiseConv2D(3, padding = "same", depth_multiplier = 2, data_format = "channels_first"),
    ]);
    DepthwiseChannelsFirstStride2NoBias = Sequential([
        Input(shape = (2, 7, 6)),
        DepthwiseConv2D(
            (2, 3),
            strides = (2, 1),
            use_bias = False,
            data_format = "channels_first",
            activation = "sigmoid",
        ),
    ]);
    DepthwiseNoBias = Sequential([
        Input(shape = (5, 5, 4)),
        DepthwiseConv2D((2, 3), strides = (1, 2), use_bias = False),
    ]);
    SeparableValid = Sequential([Input(shape = (6, 5, 3)), SeparableConv2D(4, 3)]);
    SeparableSameStride2 = Sequential([
        Input(shape = (7, 6, 2)),
        SeparableConv2D(3, (3, 2), strides = 2, padding = "same"),
    ]);
    SeparableDilation2Relu = Sequential([
        Input(shape = (7, 7, 2)),
        SeparableConv2D(4, 3, dilation_rate = 2, padding = "same", activation = "relu"),
    ]);
    SeparableMultiplier2Tanh = Sequential([
        Input(shape = (5, 6, 3)),
        SeparableConv2D(5, 2, depth_multiplier = 2, activation = "tanh"),
    ]);
    SeparableChannelsFirstMultiplier2 = Sequential([
        Input(shape = (3, 6, 5)),
        SeparableConv2D(
            4,
            3,
            padding = "same",
            depth_multiplier = 2,
            data_format = "channels_first",
        ),
    ]);
    SeparableChannelsFirstStride2Dilation2 = Sequential([
        Input(shape = (2, 9, 9)),
        SeparableConv2D(3, 3, strides = 2, dilation_rate = 2, data_format = "channels_first"),
    ]);
    SeparableNoBias = Sequential([
        Input(shape = (5, 5, 2)),
        SeparableConv2D(3, (2, 3), strides = (2, 1), use_bias = False),
    ]);
    TransposeValid = Sequential([Input(shape = (4, 5, 3)), Conv2DTranspose(2, 3)]);
    TransposeSameStride2 = Sequential([
        Input(shape = (4, 5, 3)),
        Conv2DTranspose(3, 3, strides = 2, padding = "same"),
    ]);
    TransposeSameEvenKernelStrides23 = Sequential([
        Input(shape = (3, 4, 2)),
        Conv2DTranspose(2, (4, 3), strides = (2, 3), padding = "same"),
    ]);
    TransposeValidOutputPadding = Sequential([
        Input(shape = (3, 3, 2)),
        Conv2DTranspose(2, (3, 2), strides = 2, output_padding = (1, 0)),
    ]);
    TransposeSameOutputPaddingTanh = Sequential([
        Input(shape = (3, 4, 2)),
        Conv2DTranspose(
            3,
            4,
            strides = (3, 2),
            padding = "same",
            output_padding = (2, 1),
            activation = "tanh",
        ),
    ]);
    TransposeDilation2Relu = Sequential([
        Input(shape = (4, 3, 2)),
        Conv2DTranspose(2, 3, dilation_rate = 2, padding = "same", activation = "relu"),
    ]);
    TransposeKernelSmallerThanStride = Sequential([
        Input(shape = (3, 3, 2)),
        Conv2DTranspose(2, 2, strides = 3),
    ]);
    TransposeChannelsFirstSameStride2 = Sequential([
        Input(shape = (2, 4, 5)),
        Conv2DTranspose(3, 3, strides = 2, padding = "same", data_format = "channels_first"),
    ]);
    TransposeChannelsFirstNoBias = Sequential([
        Input(shape = (3, 4, 3)),
        Conv2DTranspose(
            2,
            (2, 3),
            strides = (2, 1),
            output_padding = (1, 0),
            data_format = "channels_first",
            use_bias = False,
            activation = "sigmoid",
        ),
    ]);
    ChainSeparable = Sequential([
        Input(shape = (6, 6, 2)),
        Dense(3),
        SeparableConv2D(
            4,
            3,
            padding = "same",
            activation = "elu",
            activity_regularizer = l1_l2(l1 = 0.01, l2 = 0.02),
        ),
        DepthwiseConv2D(2, strides = 2, depth_multiplier = 2),
        Conv2DTranspose(2, 3, strides = 2),
        Flatten(),
        Dense(2),
    ]);
    ChainAllChannelsFirst = Sequential([
        Input(shape = (4, 4, 2)),
        Dense(3),
        Conv2DTranspose(
            4,
            3,
            strides = 2,
            padding = "same",
            data_format = "channels_first",
            activation = "tanh",
        ),
        DepthwiseConv2D(3, data_format = "channels_first", depth_multiplier = 2),
        SeparableConv2D(2, 2, strides = 2, data_format = "channels_first"),
        Flatten(),
        Dense(2),
    ]);
}

fn file() -> Value {
    golden("conv_more")
}

/// Outputs (batch, slice, typed and `predict_into`), shapes, parameter count, weight names,
/// and the layers' names and classes in the summary, against Keras.
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

/// Runs the generated backward pass with the loss `Σ (y - t)² / (2 · batch)` and compares
/// every weight's gradient with Keras's.
fn check_keras_gradients<M: Trainable>(name: &str) {
    common::check_keras_gradients::<M>(&case(&file(), name), 1e-4, 1e-5);
}

#[test]
fn depthwise_conv2d_matches_keras_for_every_argument() {
    parity::<DepthwiseValid>("depthwise_valid");
    parity::<DepthwiseSameStride2>("depthwise_same_stride2");
    parity::<DepthwiseDilation2Relu>("depthwise_dilation2_relu");
    parity::<DepthwiseStride2Dilation2>("depthwise_stride2_dilation2");
    parity::<DepthwiseMultiplier2Tanh>("depthwise_multiplier2_tanh");
    parity::<DepthwiseChannelsFirstMultiplier2>("depthwise_channels_first_multiplier2");
    parity::<DepthwiseChannelsFirstStride2NoBias>("depthwise_channels_first_stride2_no_bias");
    parity::<DepthwiseNoBias>("depthwise_no_bias");
}

#[test]
fn separable_conv2d_matches_keras_for_every_argument() {
    parity::<SeparableValid>("separable_valid");
    parity::<SeparableSameStride2>("separable_same_stride2");
    parity::<SeparableDilation2Relu>("separable_dilation2_relu");
    parity::<SeparableMultiplier2Tanh>("separable_multiplier2_tanh");
    parity::<SeparableChannelsFirstMultiplier2>("separable_channels_first_multiplier2");
    parity::<SeparableChannelsFirstStride2Dilation2>("separable_channels_first_stride2_dilation2");
    parity::<SeparableNoBias>("separable_no_bias");
}

#[test]
fn conv2d_transpose_matches_keras_for_every_argument() {
    parity::<TransposeValid>("transpose_valid");
    parity::<TransposeSameStride2>("transpose_same_stride2");
    parity::<TransposeSameEvenKernelStrides23>("transpose_same_even_kernel_strides_2_3");
    parity::<TransposeValidOutputPadding>("transpose_valid_output_padding");
    parity::<TransposeSameOutputPaddingTanh>("transpose_same_output_padding_tanh");
    parity::<TransposeDilation2Relu>("transpose_dilation2_relu");
    parity::<TransposeKernelSmallerThanStride>("transpose_kernel_smaller_than_stride");
    parity::<TransposeChannelsFirstSameStride2>("transpose_channels_first_same_stride2");
    parity::<TransposeChannelsFirstNoBias>("transpose_channels_first_no_bias");
}

#[test]
fn chains_match_keras() {
    parity::<ChainSeparable>("chain_separable");
    parity::<ChainAllChannelsFirst>("chain_all_channels_first");
}

#[test]
fn weight_gradients_match_keras() {
    check_keras_gradients::<DepthwiseValid>("depthwise_valid");
    check_keras_gradients::<DepthwiseSameStride2>("depthwise_same_stride2");
    check_keras_gradients::<DepthwiseDilation2Relu>("depthwise_dilation2_relu");
    check_keras_gradients::<DepthwiseStride2Dilation2>("depthwise_stride2_dilation2");
    check_keras_gradients::<DepthwiseMultiplier2Tanh>("depthwise_multiplier2_tanh");
    check_keras_gradients::<DepthwiseChannelsFirstMultiplier2>(
        "depthwise_channels_first_multiplier2",
    );
    check_keras_gradients::<DepthwiseChannelsFirstStride2NoBias>(
        "depthwise_channels_first_stride2_no_bias",
    );
    check_keras_gradients::<DepthwiseNoBias>("depthwise_no_bias");
    check_keras_gradients::<SeparableValid>("separable_valid");
    check_keras_gradients::<SeparableSameStride2>("separable_same_stride2");
    check_keras_gradients::<SeparableDilation2Relu>("separable_dilation2_relu");
    check_keras_gradients::<SeparableMultiplier2Tanh>("separable_multiplier2_tanh");
    check_keras_gradients::<SeparableChannelsFirstMultiplier2>(
        "separable_channels_first_multiplier2",
    );
    check_keras_gradients::<SeparableChannelsFirstStride2Dilation2>(
        "separable_channels_first_stride2_dilation2",
    );
    check_keras_gradients::<SeparableNoBias>("separable_no_bias");
    check_keras_gradients::<TransposeValid>("transpose_valid");
    check_keras_gradients::<TransposeSameStride2>("transpose_same_stride2");
    check_keras_gradients::<TransposeSameEvenKernelStrides23>(
        "transpose_same_even_kernel_strides_2_3",
    );
    check_keras_gradients::<TransposeValidOutputPadding>("transpose_valid_output_padding");
    check_keras_gradients::<TransposeSameOutputPaddingTanh>("transpose_same_output_padding_tanh");
    check_keras_gradients::<TransposeDilation2Relu>("transpose_dilation2_relu");
    check_keras_gradients::<TransposeKernelSmallerThanStride>(
        "transpose_kernel_smaller_than_stride",
    );
    check_keras_gradients::<TransposeChannelsFirstSameStride2>(
        "transpose_channels_first_same_stride2",
    );
    check_keras_gradients::<TransposeChannelsFirstNoBias>("transpose_channels_first_no_bias");
}

/// Through a Dense before the layers, the Dense kernel's gradient is `xᵀ` times the layers'
/// input gradients: it matches Keras only if they do. One chain has an activity
/// regularizer, whose gradient joins the backward pass.
#[test]
fn input_gradients_reach_earlier_layers_like_keras() {
    check_keras_gradients::<ChainSeparable>("chain_separable");
    check_keras_gradients::<ChainAllChannelsFirst>("chain_all_channels_first");
}

/// The input gradient itself, from the runtime kernel of a one-layer model, against
/// `jax.grad` with respect to `x`: `backward` gets the loss gradient taken back through the
/// activation, as the generated backward pass does it, and returns `dx`.
fn check_input_gradient<M: Model>(
    name: &str,
    activation: Activation,
    backward: impl Fn(&M, &[f32], &mut [f32], &[f32]) -> Vec<f32>,
) {
    let case = case(&file(), name);
    let model: M = load(&case);
    let x = floats(&case["x"]);
    let t = floats(&case["t"]);
    let samples = x.len() / M::INPUT_LEN;
    let mut z = vec![0.0; samples * M::OUTPUT_LEN];
    let dx = backward(&model, &x, &mut z, &[]);
    assert!(dx.is_empty());
    let mut y = z.clone();
    let last = *M::OUTPUT_SHAPE.last().expect("rank");
    activation.apply(&mut y, last);
    let mut dz: Vec<f32> = y
        .iter()
        .zip(&t)
        .map(|(a, b)| (a - b) / samples as f32)
        .collect();
    activation.backward(&z, &y, &mut dz, last);
    let dx = backward(&model, &x, &mut z, &dz);
    assert_close(
        &format!("{name}: dx"),
        &dx,
        &floats(&case["dx"]),
        1e-4,
        1e-5,
    );
}

/// `check_input_gradient`'s kernel call for a layer on `Conv` (`DepthwiseConv2D`): the
/// forward pass into `z` when `dz` is empty, else the input gradient.
fn depthwise(layer: &kiln::layers::Conv, x: &[f32], z: &mut [f32], dz: &[f32]) -> Vec<f32> {
    if dz.is_empty() {
        layer.forward(x, z);
        return Vec::new();
    }
    let mut dx = vec![f32::NAN; x.len()];
    let mut grad_kernel = vec![0.0; layer.kernel.len()];
    layer.backward(
        x,
        dz,
        Some(&mut dx),
        &mut grad_kernel,
        None,
        &mut Pool::default(),
    );
    dx
}

fn separable(
    layer: &kiln::layers::SeparableConv,
    x: &[f32],
    z: &mut [f32],
    dz: &[f32],
) -> Vec<f32> {
    if dz.is_empty() {
        layer.forward(x, z);
        return Vec::new();
    }
    let samples = x.len() / layer.depthwise.geometry().input_len();
    let mut middle = vec![0.0; samples * layer.depthwise.geometry().output_len()];
    let mut y = vec![0.0; z.len()];
    layer.forward_through(x, &mut middle, &mut y);
    assert_close("forward_through", &y, z, 1e-5, 1e-6);
    let mut dx = vec![f32::NAN; x.len()];
    let mut grad_depthwise = vec![0.0; layer.depthwise.kernel.len()];
    let mut grad_pointwise = vec![0.0; layer.pointwise.kernel.len()];
    layer.backward(
        x,
        &middle,
        dz,
        Some(&mut dx),
        [&mut grad_depthwise, &mut grad_pointwise],
        None,
        &mut Pool::default(),
    );
    dx
}

fn transpose(
    layer: &kiln::layers::ConvTranspose,
    x: &[f32],
    z: &mut [f32],
    dz: &[f32],
) -> Vec<f32> {
    if dz.is_empty() {
        layer.forward(x, z);
        return Vec::new();
    }
    let mut dx = vec![f32::NAN; x.len()];
    let mut grad_kernel = vec![0.0; layer.conv.kernel.len()];
    layer.backward(
        x,
        dz,
        Some(&mut dx),
        &mut grad_kernel,
        None,
        &mut Pool::default(),
    );
    dx
}

#[test]
fn input_gradients_match_keras() {
    use Activation::{Linear, Sigmoid, Tanh};
    let relu = Activation::Relu {
        negative_slope: 0.0,
        max_value: None,
        threshold: 0.0,
    };
    check_input_gradient::<DepthwiseValid>("depthwise_valid", Linear, |m, x, z, d| {
        depthwise(&m.l0, x, z, d)
    });
    check_input_gradient::<DepthwiseSameStride2>("depthwise_same_stride2", Linear, |m, x, z, d| {
        depthwise(&m.l0, x, z, d)
    });
    check_input_gradient::<DepthwiseDilation2Relu>(
        "depthwise_dilation2_relu",
        relu,
        |m, x, z, d| depthwise(&m.l0, x, z, d),
    );
    check_input_gradient::<DepthwiseStride2Dilation2>(
        "depthwise_stride2_dilation2",
        Linear,
        |m, x, z, d| depthwise(&m.l0, x, z, d),
    );
    check_input_gradient::<DepthwiseMultiplier2Tanh>(
        "depthwise_multiplier2_tanh",
        Tanh,
        |m, x, z, d| depthwise(&m.l0, x, z, d),
    );
    check_input_gradient::<DepthwiseChannelsFirstMultiplier2>(
        "depthwise_channels_first_multiplier2",
        Linear,
        |m, x, z, d| depthwise(&m.l0, x, z, d),
    );
    check_input_gradient::<DepthwiseChannelsFirstStride2NoBias>(
        "depthwise_channels_first_stride2_no_bias",
        Sigmoid,
        |m, x, z, d| depthwise(&m.l0, x, z, d),
    );
    check_input_gradient::<DepthwiseNoBias>("depthwise_no_bias", Linear, |m, x, z, d| {
        depthwise(&m.l0, x, z, d)
    });
    check_input_gradient::<SeparableValid>("separable_valid", Linear, |m, x, z, d| {
        separable(&m.l0, x, z, d)
    });
    check_input_gradient::<SeparableSameStride2>("separable_same_stride2", Linear, |m, x, z, d| {
        separable(&m.l0, x, z, d)
    });
    check_input_gradient::<SeparableDilation2Relu>(
        "separable_dilation2_relu",
        relu,
        |m, x, z, d| separable(&m.l0, x, z, d),
    );
    check_input_gradient::<SeparableMultiplier2Tanh>(
        "separable_multiplier2_tanh",
        Tanh,
        |m, x, z, d| separable(&m.l0, x, z, d),
    );
    check_input_gradient::<SeparableChannelsFirstMultiplier2>(
        "separable_channels_first_multiplier2",
        Linear,
        |m, x, z, d| separable(&m.l0, x, z, d),
    );
    check_input_gradient::<SeparableChannelsFirstStride2Dilation2>(
        "separable_channels_first_stride2_dilation2",
        Linear,
        |m, x, z, d| separable(&m.l0, x, z, d),
    );
    check_input_gradient::<SeparableNoBias>("separable_no_bias", Linear, |m, x, z, d| {
        separable(&m.l0, x, z, d)
    });
    check_input_gradient::<TransposeValid>("transpose_valid", Linear, |m, x, z, d| {
        transpose(&m.l0, x, z, d)
    });
    check_input_gradient::<TransposeSameStride2>("transpose_same_stride2", Linear, |m, x, z, d| {
        transpose(&m.l0, x, z, d)
    });
    check_input_gradient::<TransposeSameEvenKernelStrides23>(
        "transpose_same_even_kernel_strides_2_3",
        Linear,
        |m, x, z, d| transpose(&m.l0, x, z, d),
    );
    check_input_gradient::<TransposeValidOutputPadding>(
        "transpose_valid_output_padding",
        Linear,
        |m, x, z, d| transpose(&m.l0, x, z, d),
    );
    check_input_gradient::<TransposeSameOutputPaddingTanh>(
        "transpose_same_output_padding_tanh",
        Tanh,
        |m, x, z, d| transpose(&m.l0, x, z, d),
    );
    check_input_gradient::<TransposeDilation2Relu>(
        "transpose_dilation2_relu",
        relu,
        |m, x, z, d| transpose(&m.l0, x, z, d),
    );
    check_input_gradient::<TransposeKernelSmallerThanStride>(
        "transpose_kernel_smaller_than_stride",
        Linear,
        |m, x, z, d| transpose(&m.l0, x, z, d),
    );
    check_input_gradient::<TransposeChannelsFirstSameStride2>(
        "transpose_channels_first_same_stride2",
        Linear,
        |m, x, z, d| transpose(&m.l0, x, z, d),
    );
    check_input_gradient::<TransposeChannelsFirstNoBias>(
        "transpose_channels_first_no_bias",
        Sigmoid,
        |m, x, z, d| transpose(&m.l0, x, z, d),
    );
}

#[test]
fn activity_regularizer_loss_matches_keras() {
    let case = case(&file(), "chain_separable");
    let model: ChainSeparable = load(&case);
    let loss = model
        .activity_loss(&floats(&case["x"]))
        .expect("activity_loss");
    let expected = case["activity_loss"].as_f64().expect("activity_loss") as f32;
    assert!(expected > 0.0);
    assert_close("activity loss", &[loss], &[expected], 1e-5, 1e-7);
}

kiln::model! {
    DepthwiseL2NonNeg = Sequential([
        Input(shape = (5, 5, 2)),
        DepthwiseConv2D(
            2,
            depth_multiplier = 2,
            depthwise_regularizer = l2(0.05),
            bias_regularizer = l1(0.02),
            depthwise_constraint = non_neg(),
            bias_constraint = max_norm(0.5),
        ),
        Flatten(),
        Dense(2),
    ]);
    SeparableEveryWeight = Sequential([
        Input(shape = (5, 5, 2)),
        SeparableConv2D(
            3,
            2,
            depth_multiplier = 2,
            depthwise_regularizer = l2(0.05),
            pointwise_regularizer = l1(0.03),
            bias_regularizer = l2(0.02),
            depthwise_constraint = max_norm(0.9, axis = 2),
            pointwise_constraint = unit_norm(axis = 2),
            bias_constraint = non_neg(),
        ),
        Flatten(),
        Dense(2),
    ]);
    TransposeL1MaxNorm = Sequential([
        Input(shape = (3, 3, 2)),
        Conv2DTranspose(
            3,
            2,
            strides = 2,
            kernel_regularizer = l1(0.03),
            bias_regularizer = l2(0.05),
            kernel_constraint = max_norm(0.7, axis = 3),
            bias_constraint = non_neg(),
        ),
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
    check_keras_step::<DepthwiseL2NonNeg>("depthwise_l2_non_neg");
    check_keras_step::<SeparableEveryWeight>("separable_every_weight");
    check_keras_step::<TransposeL1MaxNorm>("transpose_l1_max_norm");
}

kiln::model! {
    #[weights = "tests/data/baked/conv_more.safetensors"]
    BakedChain = Sequential([
        Input(shape = (4, 4, 2)),
        Dense(3),
        Conv2DTranspose(
            4,
            3,
            strides = 2,
            padding = "same",
            data_format = "channels_first",
            activation = "tanh",
        ),
        DepthwiseConv2D(3, data_format = "channels_first", depth_multiplier = 2),
        SeparableConv2D(2, 2, strides = 2, data_format = "channels_first"),
        Flatten(),
        Dense(2),
    ]);
}

/// Weights baked into the binary (each layer's `baked`) give Keras's outputs, in a `static`.
#[test]
fn baked_layers_match_keras() {
    static MODEL: BakedChain = BakedChain::pretrained();
    let case = case(&file(), "chain_all_channels_first");
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

kiln::model! {
    /// `ChainSeparable` with smooth activations: finite differences across relu's kink at 0
    /// are off by design (its `elu` is smooth enough).
    SmoothChain = Sequential([
        Input(shape = (6, 6, 2)),
        Dense(3),
        SeparableConv2D(4, 3, padding = "same", activation = "tanh", depth_multiplier = 2),
        DepthwiseConv2D(2, strides = 2, depth_multiplier = 2, activation = "softsign"),
        Conv2DTranspose(2, 3, strides = 2, padding = "same", output_padding = 1),
        Flatten(),
        Dense(2),
    ]);
}

#[test]
fn layers_pass_finite_difference_checks() {
    check_gradients::<DepthwiseStride2Dilation2>(1, 3, 12, 2e-3);
    check_gradients::<DepthwiseChannelsFirstMultiplier2>(2, 2, 12, 2e-3);
    check_gradients::<SeparableSameStride2>(3, 2, 12, 2e-3);
    check_gradients::<SeparableChannelsFirstStride2Dilation2>(4, 2, 12, 2e-3);
    check_gradients::<TransposeSameOutputPaddingTanh>(5, 2, 12, 2e-3);
    check_gradients::<TransposeChannelsFirstNoBias>(6, 2, 12, 2e-3);
    check_gradients::<SmoothChain>(7, 3, 12, 2e-3);
    check_gradients::<ChainAllChannelsFirst>(8, 2, 12, 2e-3);
}

/// Training lowers the loss through all three layers in both data formats.
#[test]
fn fit_lowers_the_loss() {
    let x: Vec<f32> = (0..16 * 32)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.15)
        .collect();
    let y: Vec<f32> = (0..16 * 2)
        .map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.2)
        .collect();
    let mut trainer = ChainAllChannelsFirst::new(3).compile(
        Sgd {
            learning_rate: 0.2,
            ..Sgd::default()
        },
        Loss::MeanSquaredError,
    );
    let options = kiln::FitOptions {
        epochs: 60,
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
    /// Both data formats on images large enough for several stack tiles per row: the
    /// separable layer's fused pieces and the transposed layer's channels-first tile.
    StackBound = Sequential([
        Input(shape = (4, 20, 48)),
        SeparableConv2D(16, 3, padding = "same", depth_multiplier = 3, activation = "relu"),
        DepthwiseConv2D(3, strides = 2, depth_multiplier = 3),
        Reshape((3, 3, 48)),
        Conv2DTranspose(64, 3, strides = 2, padding = "same", data_format = "channels_first"),
        SeparableConv2D(8, (3, 2), data_format = "channels_first"),
    ]);
}

/// `predict` runs on a thread whose stack is `PREDICT_STACK_BYTES` plus what the thread
/// itself needs: the stack tiles fit the bound's kernel allowance (a debug build would abort
/// the test process on overflow); `predict_into` gives the same numbers.
#[test]
fn predict_fits_in_its_stack_bound() {
    use kiln::Tensor;
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
            let x = Box::new(<StackBound as Model>::Input::from_values(&input));
            runner.predict(&x).values().to_vec()
        })
        .expect("thread")
        .join()
        .expect("predict ran");
    assert_eq!(y, model.predict_slice(&x).expect("predict_slice"));
    let (mut into, mut scratch) = (StackBound::new_output(), StackBound::new_scratch());
    model.predict_into(
        &<StackBound as Model>::Input::from_values(&x),
        &mut into,
        &mut scratch,
    );
    assert_eq!(into.values(), y.as_slice());
}
