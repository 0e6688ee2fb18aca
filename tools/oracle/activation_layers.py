"""Activation layers: LeakyReLU, PReLU, ELU, ThresholdedReLU, Softmax, ReLU.

Every case is a keras.Sequential model except `thresholded_relu_*` (Keras 3 removed the
layer; its Keras 2 formula `x if x > theta else 0` is computed with NumPy) and
`masked_softmax` (a Softmax layer called with an explicit mask broadcast to the input's
shape, what a Keras mask of one bool per position amounts to).

Inputs are seeded normals with values at and right beside the interesting points (0, the
ReLU threshold 0.5, theta 1.0, max_value 6) written over the first entries.
"""
import keras
import numpy as np

from oracle._util import floats, rng

# Values at and beside every kink the layers below have.
EDGES = [0.0, -0.0, 0.5, 0.5 - 1e-6, 0.5 + 1e-6, 1.0, 1.0 - 1e-6, 1.0 + 1e-6,
         6.0, 6.0 - 1e-5, 6.0 + 1e-5, -0.5, -1e-7, 1e-7, 7.5, -3.0]


def inputs(g, batch, input_shape):
    x = g.normal(0.0, 3.0, size=(batch,) + tuple(input_shape)).astype(np.float32)
    flat = x.reshape(-1)
    n = min(len(EDGES), flat.size)
    flat[:n] = np.asarray(EDGES[:n], dtype=np.float32)
    return flat.reshape(x.shape)


def model_case(name, input_shape, layers, batch, seed, weights_from=None):
    """A Sequential model; every weight set to seeded non-trivial values."""
    g = rng(seed)
    keras.backend.clear_session()  # layer names restart at `p_re_lu`, as in a fresh kiln model
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers)
    weights = {}
    for layer in model.layers:
        for w in layer.weights:
            # PReLU alphas in (-0.5, 1.5): negative, above 1, and ordinary slopes all occur.
            lo, hi = (-0.5, 1.5) if w.name == "alpha" else (-1.0, 1.0)
            value = g.uniform(lo, hi, size=tuple(w.shape)).astype(np.float32)
            w.assign(value)
            weights[f"{layer.name}/{w.name}"] = {"shape": list(w.shape), "values": floats(value)}
    x = inputs(g, batch, input_shape)
    y = np.asarray(model(x))
    return {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "weight_names": [f"{l.name}/{w.name}" for l in model.layers for w in l.weights],
        "weight_shapes": [list(w.shape) for l in model.layers for w in l.weights],
        "weights": weights,
        "batch": batch,
        "x": floats(x),
        "y": floats(y),
    }


def thresholded_relu_case(name, input_shape, theta, batch, seed):
    """Keras 2's ThresholdedReLU, `x * (x > theta)`, which Keras 3 no longer ships."""
    g = rng(seed)
    x = inputs(g, batch, input_shape)
    y = np.where(x > np.float32(theta), x, np.float32(0.0)).astype(np.float32)
    return {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(input_shape),
        "param_count": 0,
        "weight_names": [],
        "weight_shapes": [],
        "weights": {},
        "batch": batch,
        "theta": theta,
        "x": floats(x),
        "y": floats(y),
    }


def masked_softmax_case(name, input_shape, axis, batch, seed):
    """`Softmax(axis)(x, mask=m[..., None])` with `m` one bool per position (all axes but
    the last), including rows along `axis` that are entirely masked."""
    g = rng(seed)
    x = inputs(g, batch, input_shape)
    positions = (batch,) + tuple(input_shape[:-1])
    mask = g.uniform(size=positions) > 0.35
    # One position masked in every sample: its last-axis row is all masked. And, for a
    # non-last axis, one whole line along `axis` masked in the first sample.
    mask.reshape(batch, -1)[:, 1] = False
    if axis not in (-1, len(input_shape)):
        # The mask's axes are Keras's: 0 is the batch, `axis` the softmax axis.
        index = [slice(None) if i == axis else 0 for i in range(len(input_shape))]
        mask[tuple(index)] = False
    full = np.broadcast_to(mask[..., None], x.shape)
    keras.backend.clear_session()
    y = np.asarray(keras.layers.Softmax(axis=axis)(x, mask=full))
    return {
        "name": name,
        "input_shape": list(input_shape),
        "axis": axis,
        "batch": batch,
        "mask": [bool(v) for v in mask.reshape(-1)],
        "x": floats(x),
        "y": floats(y),
    }


def generate():
    L = keras.layers
    shape3 = (4, 5, 3)
    cases = [
        model_case("prelu_shared_none", shape3, [L.PReLU()], 3, 11),
        model_case("prelu_shared_1", shape3, [L.PReLU(shared_axes=[1])], 3, 12),
        model_case("prelu_shared_1_2", shape3, [L.PReLU(shared_axes=[1, 2])], 3, 13),
        model_case("prelu_rank1", (7,), [L.PReLU()], 4, 14),
        model_case("dense_prelu_dense", (6,), [L.Dense(8), L.PReLU(), L.Dense(3)], 4, 15),
        model_case("softmax_axis_1", shape3, [L.Softmax(axis=1)], 3, 21),
        model_case("softmax_axis_minus_1", shape3, [L.Softmax(axis=-1)], 3, 22),
        model_case("softmax_axis_minus_2", shape3, [L.Softmax(axis=-2)], 3, 23),
        model_case("softmax_rank1", (6,), [L.Softmax()], 4, 24),
        model_case("relu_default", shape3, [L.ReLU()], 2, 31),
        model_case("relu_max_value_6", shape3, [L.ReLU(max_value=6)], 2, 32),
        model_case("relu_negative_slope", shape3, [L.ReLU(negative_slope=0.1)], 2, 33),
        model_case("relu_threshold", shape3, [L.ReLU(threshold=0.5)], 2, 34),
        model_case("relu_all_three", shape3,
                   [L.ReLU(max_value=6, negative_slope=0.1, threshold=0.5)], 2, 35),
        model_case("leaky_relu_default", shape3, [L.LeakyReLU()], 2, 41),
        model_case("leaky_relu_alpha", shape3, [L.LeakyReLU(alpha=0.1)], 2, 42),
        model_case("elu_default", shape3, [L.ELU()], 2, 51),
        model_case("elu_alpha", shape3, [L.ELU(alpha=0.5)], 2, 52),
        thresholded_relu_case("thresholded_relu_default", shape3, 1.0, 2, 61),
        thresholded_relu_case("thresholded_relu_theta", shape3, 0.5, 2, 62),
    ]
    masked = [
        masked_softmax_case("masked_axis_1", shape3, 1, 3, 71),
        masked_softmax_case("masked_axis_2", shape3, 2, 2, 72),
        masked_softmax_case("masked_axis_last", shape3, -1, 2, 73),
        masked_softmax_case("masked_rank2_axis_1", (6, 4), 1, 2, 74),
    ]
    return {"cases": cases, "masked_softmax": masked}
