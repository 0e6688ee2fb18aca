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

kiln::model! {
    ActivationChain = Sequential([
        Input(shape = (24,)),
        Dense(40, activation = "relu"),
        Dense(33, activation = "tanh"),
        Dense(17, activation = "elu"),
        Dense(20, activation = "gelu"),
        Dense(9, activation = "softmax"),
    ]);
}

/// The generated `predict`, `predict_into`, batch forward and training pass each run a copy
/// compiled for the CPU's widest vectors (`kiln::isa::dispatch`, in release builds; CI runs
/// this file in release under every `KILN_ISA`). Each copy gives the bits of the same body
/// compiled for the build's baseline and called directly: the compiler may vectorise the
/// body's loops, never reorder or fuse their arithmetic. (In a debug build both are one call.)
#[test]
fn dispatched_passes_give_the_bits_of_their_baseline_bodies() {
    use kiln::{Gradients, Model, Pass, Tensor, Trainable};
    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }
    let model = ActivationChain::new(3);
    let xs: Vec<f32> = (0..24 * 7)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();

    let train = |dispatched: bool| {
        let mut seen = Vec::new();
        let mut head = |y: &[f32], _: Option<&[bool]>, dy: &mut [f32]| {
            seen = y.to_vec();
            for (d, v) in dy.iter_mut().zip(y) {
                *d = v - 0.1;
            }
            false
        };
        let mut pass = Pass {
            training: true,
            ..Pass::default()
        };
        let mut grads = Gradients::for_model::<ActivationChain>();
        if dispatched {
            model.__train_batch_with_mask(&xs, &mut pass, &mut head, &mut grads);
        } else {
            model.__train_pass(&xs, &mut pass, &mut head, &mut grads);
        }
        let mut all = bits(&seen);
        for slot in grads.all_mut().iter() {
            all.extend(bits(slot));
        }
        all
    };
    assert_eq!(train(true), train(false), "training pass");

    let batch = |dispatched: bool| {
        let mut pass = Pass::inference();
        let (y, _) = if dispatched {
            model.__forward_batch(&xs, &mut pass)
        } else {
            model.__forward_batch_body(&xs, &mut pass)
        };
        bits(&y)
    };
    assert_eq!(batch(true), batch(false), "batch forward");

    for x in xs.chunks(24) {
        let x = <ActivationChain as Model>::Input::from_values(x);
        let typed = model.predict(&x);
        assert_eq!(
            bits(typed.values()),
            bits(model.__predict_sample(&x).values()),
            "predict"
        );
        let (mut a, mut b) = (ActivationChain::new_output(), ActivationChain::new_output());
        let mut scratch = ActivationChain::new_scratch();
        model.predict_into(&x, &mut a, &mut scratch);
        model.__predict_into_body(&x, &mut b, &mut scratch);
        assert_eq!(bits(a.values()), bits(b.values()), "predict_into");
    }
}
