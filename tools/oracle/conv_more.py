"""DepthwiseConv2D, SeparableConv2D and Conv2DTranspose: every argument kiln supports.

Cases are built, weighted and recorded exactly as in `conv.py` (whose `case` and
`step_case` this module uses): a fresh keras.Sequential per case, weights uniform in
[-0.8, 0.8) from a seeded generator, and per case `y` (inference), `t`, `grads` (`jax.grad`
of `sum((y - t)^2) / (2 * batch) + sum(model losses)` with respect to every weight, through
`stateless_call(training=False)`) and `dx` (the same with respect to the input).

Each layer appears with `valid` and `same` padding, strides 2, dilation 2, channels_first
and `use_bias=False`; the depthwise ones with `depth_multiplier=2` and with strides 2
together with dilation 2 (Keras 3's depthwise constructors allow it, and JAX computes it);
Conv2DTranspose with `output_padding` under both paddings, a kernel smaller than its stride,
and even kernels under `same` (where JAX's padding is lopsided). Chains put a Dense first so
that the layers' input gradients reach a weight, and one carries an activity regularizer.

`steps`: one `train_on_batch` with SGD on each layer with weight regularizers and
constraints on every weight: the reported loss and every weight after the step.

Also writes tests/data/baked/conv_more.safetensors: the weights of
`chain_all_channels_first`, which tests/conv_more.rs bakes into a model with
`#[weights = ...]`.
"""
import pathlib

import keras
import numpy as np

from oracle.conv import case, step_case

L = keras.layers


def cases():
    R = keras.regularizers
    return [
        # DepthwiseConv2D
        case("depthwise_valid", (6, 5, 3), lambda: [L.DepthwiseConv2D(3)], 2, 101),
        case("depthwise_same_stride2", (7, 6, 2),
             lambda: [L.DepthwiseConv2D((3, 2), strides=2, padding="same")], 2, 102),
        case("depthwise_dilation2_relu", (7, 7, 3),
             lambda: [L.DepthwiseConv2D(3, dilation_rate=2, padding="same",
                                        activation="relu")], 2, 103),
        case("depthwise_stride2_dilation2", (9, 8, 2),
             lambda: [L.DepthwiseConv2D(3, strides=2, dilation_rate=2)], 2, 104),
        case("depthwise_multiplier2_tanh", (5, 6, 3),
             lambda: [L.DepthwiseConv2D(2, depth_multiplier=2, activation="tanh")], 2, 105),
        case("depthwise_channels_first_multiplier2", (3, 6, 5),
             lambda: [L.DepthwiseConv2D(3, padding="same", depth_multiplier=2,
                                        data_format="channels_first")], 2, 106),
        case("depthwise_channels_first_stride2_no_bias", (2, 7, 6),
             lambda: [L.DepthwiseConv2D((2, 3), strides=(2, 1), use_bias=False,
                                        data_format="channels_first",
                                        activation="sigmoid")], 2, 107),
        case("depthwise_no_bias", (5, 5, 4),
             lambda: [L.DepthwiseConv2D((2, 3), strides=(1, 2), use_bias=False)], 2, 108),
        # SeparableConv2D
        case("separable_valid", (6, 5, 3), lambda: [L.SeparableConv2D(4, 3)], 2, 111),
        case("separable_same_stride2", (7, 6, 2),
             lambda: [L.SeparableConv2D(3, (3, 2), strides=2, padding="same")], 2, 112),
        case("separable_dilation2_relu", (7, 7, 2),
             lambda: [L.SeparableConv2D(4, 3, dilation_rate=2, padding="same",
                                        activation="relu")], 2, 113),
        case("separable_multiplier2_tanh", (5, 6, 3),
             lambda: [L.SeparableConv2D(5, 2, depth_multiplier=2, activation="tanh")], 2, 114),
        case("separable_channels_first_multiplier2", (3, 6, 5),
             lambda: [L.SeparableConv2D(4, 3, padding="same", depth_multiplier=2,
                                        data_format="channels_first")], 2, 115),
        case("separable_channels_first_stride2_dilation2", (2, 9, 9),
             lambda: [L.SeparableConv2D(3, 3, strides=2, dilation_rate=2,
                                        data_format="channels_first")], 2, 116),
        case("separable_no_bias", (5, 5, 2),
             lambda: [L.SeparableConv2D(3, (2, 3), strides=(2, 1), use_bias=False)], 2, 117),
        # Conv2DTranspose
        case("transpose_valid", (4, 5, 3), lambda: [L.Conv2DTranspose(2, 3)], 2, 121),
        case("transpose_same_stride2", (4, 5, 3),
             lambda: [L.Conv2DTranspose(3, 3, strides=2, padding="same")], 2, 122),
        case("transpose_same_even_kernel_strides_2_3", (3, 4, 2),
             lambda: [L.Conv2DTranspose(2, (4, 3), strides=(2, 3), padding="same")], 2, 123),
        case("transpose_valid_output_padding", (3, 3, 2),
             lambda: [L.Conv2DTranspose(2, (3, 2), strides=2, output_padding=(1, 0))], 2, 124),
        case("transpose_same_output_padding_tanh", (3, 4, 2),
             lambda: [L.Conv2DTranspose(3, 4, strides=(3, 2), padding="same",
                                        output_padding=(2, 1), activation="tanh")], 2, 125),
        case("transpose_dilation2_relu", (4, 3, 2),
             lambda: [L.Conv2DTranspose(2, 3, dilation_rate=2, padding="same",
                                        activation="relu")], 2, 126),
        case("transpose_kernel_smaller_than_stride", (3, 3, 2),
             lambda: [L.Conv2DTranspose(2, 2, strides=3)], 2, 127),
        case("transpose_channels_first_same_stride2", (2, 4, 5),
             lambda: [L.Conv2DTranspose(3, 3, strides=2, padding="same",
                                        data_format="channels_first")], 2, 128),
        case("transpose_channels_first_no_bias", (3, 4, 3),
             lambda: [L.Conv2DTranspose(2, (2, 3), strides=(2, 1), output_padding=(1, 0),
                                        data_format="channels_first", use_bias=False,
                                        activation="sigmoid")], 2, 129),
        # Chains: the Dense kernels' gradients carry the layers' input gradients.
        case("chain_separable", (6, 6, 2),
             lambda: [L.Dense(3),
                      L.SeparableConv2D(4, 3, padding="same", activation="elu",
                                        activity_regularizer=R.L1L2(l1=0.01, l2=0.02)),
                      L.DepthwiseConv2D(2, strides=2, depth_multiplier=2),
                      L.Conv2DTranspose(2, 3, strides=2),
                      L.Flatten(), L.Dense(2)], 3, 131),
        case("chain_all_channels_first", (4, 4, 2),
             lambda: [L.Dense(3),
                      L.Conv2DTranspose(4, 3, strides=2, padding="same",
                                        data_format="channels_first", activation="tanh"),
                      L.DepthwiseConv2D(3, data_format="channels_first", depth_multiplier=2),
                      L.SeparableConv2D(2, 2, strides=2, data_format="channels_first"),
                      L.Flatten(), L.Dense(2)], 2, 132),
    ]


def steps():
    R, C = keras.regularizers, keras.constraints
    return [
        step_case("depthwise_l2_non_neg", (5, 5, 2),
                  lambda: [L.DepthwiseConv2D(2, depth_multiplier=2,
                                             depthwise_regularizer=R.L2(0.05),
                                             bias_regularizer=R.L1(0.02),
                                             depthwise_constraint=C.NonNeg(),
                                             bias_constraint=C.MaxNorm(0.5)),
                           L.Flatten(), L.Dense(2)], 4, 141, 0.3),
        step_case("separable_every_weight", (5, 5, 2),
                  lambda: [L.SeparableConv2D(3, 2, depth_multiplier=2,
                                             depthwise_regularizer=R.L2(0.05),
                                             pointwise_regularizer=R.L1(0.03),
                                             bias_regularizer=R.L2(0.02),
                                             depthwise_constraint=C.MaxNorm(0.9, axis=2),
                                             pointwise_constraint=C.UnitNorm(axis=2),
                                             bias_constraint=C.NonNeg()),
                           L.Flatten(), L.Dense(2)], 4, 142, 0.3),
        step_case("transpose_l1_max_norm", (3, 3, 2),
                  lambda: [L.Conv2DTranspose(3, 2, strides=2,
                                             kernel_regularizer=R.L1(0.03),
                                             bias_regularizer=R.L2(0.05),
                                             kernel_constraint=C.MaxNorm(0.7, axis=3),
                                             bias_constraint=C.NonNeg())], 3, 143, 0.2),
    ]


def write_baked(case):
    from safetensors.numpy import save_file

    path = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "baked"
    path.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: np.asarray(spec["values"], dtype=np.float32).reshape(spec["shape"])
        for name, spec in case["weights"].items()
    }
    save_file(tensors, str(path / "conv_more.safetensors"))


def generate():
    all_cases = cases()
    write_baked(next(c for c in all_cases if c["name"] == "chain_all_channels_first"))
    return {"cases": all_cases, "steps": steps()}
