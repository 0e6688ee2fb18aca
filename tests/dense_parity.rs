//! `Dense` and `Activation` against real Keras 3: models with Keras's weights loaded, on
//! rank-1, rank-2 and rank-3 inputs (golden data: tools/oracle/dense.py).

mod common;
use common::{case, check_model_case, golden};

kiln::model! {
    MlpReluSoftmax = Sequential([
        Input(shape = (6,)),
        Dense(5, activation = "relu"),
        Dense(3, activation = "softmax"),
    ]);
    TanhNoBias = Sequential([
        Input(shape = (4,)),
        Dense(7, activation = "tanh", use_bias = False),
        Dense(2),
    ]);
    ActivationLayers = Sequential([
        Input(shape = (5,)),
        Dense(8),
        Activation("gelu"),
        Dense(4),
        Activation("log_softmax"),
    ]);
    Rank2LastAxis = Sequential([
        Input(shape = (3, 4)),
        Dense(5, activation = "sigmoid"),
        Dense(2, activation = "softmax"),
    ]);
    Rank3LastAxis = Sequential([
        Input(shape = (2, 3, 4)),
        Dense(6, activation = "elu"),
        Activation("softplus"),
        Dense(3),
    ]);
    SeluMish = Sequential([
        Input(shape = (8,)),
        Dense(8, activation = "selu"),
        Dense(8, activation = "mish"),
        Dense(1, activation = "sigmoid"),
    ]);
    /// Layers large enough (`kiln::layers::dense::DISPATCH_MIN`) to run on the dispatched kernels.
    WideDispatched = Sequential([
        Input(shape = (96,)),
        Dense(70, activation = "relu"),
        Dense(40, use_bias = False),
        Dense(1),
    ]);
    WideRank2Dispatched = Sequential([
        Input(shape = (3, 40)),
        Dense(50, activation = "tanh"),
        Dense(20),
    ]);
}

const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-6;

#[test]
fn dense_relu_softmax_matches_keras() {
    check_model_case::<MlpReluSoftmax>(&case(&golden("dense"), "mlp_relu_softmax"), RTOL, ATOL);
}

#[test]
fn dense_without_bias_matches_keras() {
    check_model_case::<TanhNoBias>(&case(&golden("dense"), "tanh_no_bias"), RTOL, ATOL);
}

#[test]
fn activation_layers_match_keras() {
    check_model_case::<ActivationLayers>(&case(&golden("dense"), "activation_layers"), RTOL, ATOL);
}

#[test]
fn dense_on_rank_2_uses_the_last_axis_like_keras() {
    check_model_case::<Rank2LastAxis>(&case(&golden("dense"), "rank2_last_axis"), RTOL, ATOL);
}

#[test]
fn dense_on_rank_3_uses_the_last_axis_like_keras() {
    check_model_case::<Rank3LastAxis>(&case(&golden("dense"), "rank3_last_axis"), RTOL, ATOL);
}

#[test]
fn selu_mish_sigmoid_stack_matches_keras() {
    check_model_case::<SeluMish>(&case(&golden("dense"), "selu_mish"), RTOL, ATOL);
}

#[test]
fn dense_on_the_dispatched_kernels_matches_keras() {
    check_model_case::<WideDispatched>(&case(&golden("dense"), "wide_dispatched"), RTOL, ATOL);
    check_model_case::<WideRank2Dispatched>(
        &case(&golden("dense"), "wide_rank2_dispatched"),
        RTOL,
        ATOL,
    );
}
