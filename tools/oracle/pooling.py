"""Pooling, global pooling, zero padding, upsampling and cropping, alone and between Dense
layers.

Two kinds of cases:
- `layer_cases`: a keras.Sequential model holding one layer (a fresh session each, so
  names restart) on a seeded input batch. Stored: `y = model(x)`, and the layer's
  vector-Jacobian product `dx = jax.grad(sum(layer(x) * dy))(x)` for a seeded cotangent
  `dy`, plus `kernel`: the layer's configuration read from Keras (`get_config()` and the
  input shape) in the terms of kiln's runtime kernels (`kiln::layers::pooling::Pooling`,
  ...), so the Rust test can run each kernel's backward pass on `dy` and compare with `dx`.
  Inputs are normal draws (no ties), except the `*_ties` cases, whose small integers tie
  on purpose: JAX's gradient of windowed max pooling goes to the first maximum of a window
  (XLA's select-and-scatter), while `jnp.max` (global max pooling) splits it evenly.
- `model_case` (from misc_layers): the layers between Dense layers, with `jax.grad` of
  `sum((y - t)^2) / (2 * batch)` with respect to every weight, so the gradient flows back
  through each layer's backward pass.

GlobalAveragePooling1D is the one layer here that takes a mask (Keras 3 sets
`supports_masking` on it alone): after Masking it averages the unmasked steps,
`sum(where(mask, x, 0)) / sum(mask)`, which is NaN for a sample whose steps are all masked,
and its output carries no mask.
"""
import jax
import jax.numpy as jnp
import keras
import numpy as np

from keras.src.backend.common.masking import get_keras_mask

from oracle._util import floats, rng
from oracle.misc_layers import model_case

L = keras.layers


def kernel(layer, input_shape):
    """The runtime kernel kiln builds for `layer` on per-sample `input_shape`, from Keras's
    own view of the layer (its config), with 1D data as a grid of height 1."""
    cls = type(layer).__name__
    config = layer.get_config()
    first = config.get("data_format") == "channels_first"
    dims = len(input_shape) - 1
    if first:
        channels, space = input_shape[0], input_shape[1:]
    else:
        channels, space = input_shape[-1], input_shape[:-1]
    height, width = (1, space[0]) if dims == 1 else space
    grid = [height, width, channels, first]

    def pair(v):
        v = list(v)
        return [1] + v if dims == 1 else v

    if "Global" in cls:
        return {"kind": "global", "max": "Max" in cls, "grid": grid}
    if "Pooling" in cls:
        return {
            "kind": "pooling",
            "max": cls.startswith("Max"),
            "grid": grid,
            "pool": pair(config["pool_size"]),
            "strides": pair(config["strides"]),
            "same": config["padding"] == "same",
        }
    if cls.startswith("ZeroPadding"):
        p = config["padding"]
        sides = [[0, 0], list(p)] if dims == 1 else [list(p[0]), list(p[1])]
        return {"kind": "padding", "grid": grid, "sides": sides}
    if cls.startswith("Cropping"):
        c = config["cropping"]
        sides = [[0, 0], list(c)] if dims == 1 else [list(c[0]), list(c[1])]
        return {"kind": "cropping", "grid": grid, "sides": sides}
    if cls.startswith("UpSampling"):
        size = config["size"]
        size = [1, size] if dims == 1 else list(size)
        return {"kind": "upsampling", "grid": grid, "size": size}
    raise ValueError(cls)


def layer_case(name, input_shape, make, batch, seed, x=None, mask=None):
    """One layer alone: outputs and its vector-Jacobian product (see the module doc).
    `mask` (batch, steps) of 0/1 is given to the layer as Masking would (GlobalAveragePooling1D)."""
    g = rng(seed)
    keras.backend.clear_session()
    layer = make()
    layers = [L.Masking()] if mask is not None else []
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers + [layer])
    if x is None:
        x = g.normal(0.0, 1.5, size=(batch,) + tuple(input_shape)).astype(np.float32)
    if mask is not None:
        # Masked steps are all zeros, so Masking (mask_value 0) masks exactly them.
        x = x * np.asarray(mask, np.float32)[..., None]
    out = model(x)
    y = np.asarray(out)
    dy = g.normal(0.0, 1.0, size=y.shape).astype(np.float32)
    m = None if mask is None else jnp.asarray(np.asarray(mask, bool))

    def weighted(x):
        out = layer(x) if m is None else layer(x, mask=m)
        return jnp.sum(out * dy)

    dx = jax.grad(weighted)(jnp.asarray(x))
    case = {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "layer_names": [l.name for l in model.layers],
        "param_count": 0,
        "weight_names": [],
        "weights": {},
        "batch": batch,
        "x": floats(x),
        "y": floats(y),
        "dy": floats(dy),
        "dx": floats(dx),
        "kernel": kernel(layer, tuple(input_shape)),
        "has_output_mask": get_keras_mask(out) is not None,
    }
    if mask is not None:
        case["mask"] = [int(v) for v in np.asarray(mask).reshape(-1)]
    return case


def ties(shape, batch, seed):
    """Small integers: many equal values in every window."""
    g = rng(seed)
    return g.integers(-2, 3, size=(batch,) + tuple(shape)).astype(np.float32)


def steps_mask(batch, steps, full=True):
    """A (batch, steps) 0/1 mask: sample b masks steps b % steps and (b + 2) % steps; with
    `full`, the last sample is masked entirely."""
    mask = np.ones((batch, steps), np.int64)
    for b in range(batch):
        mask[b, b % steps] = 0
        mask[b, (b + 2) % steps] = 0
    if full:
        mask[-1, :] = 0
    return mask


def masked_steps_input(g, shape, batch):
    """Normal values with some whole steps zero (masked by Masking), none fully masked."""
    x = g.normal(0.0, 1.5, size=(batch,) + tuple(shape)).astype(np.float32)
    return x * steps_mask(batch, shape[0], full=False)[..., None].astype(np.float32)


def generate():
    cf = "channels_first"
    cases = [
        # Max pooling: Keras 3's default pool 2 (1D) and (2, 2) (2D).
        layer_case("max_pool1d_default", (7, 3), lambda: L.MaxPooling1D(), 3, 101),
        layer_case(
            "max_pool1d_same_strides",
            (8, 3),
            lambda: L.MaxPooling1D(3, strides=2, padding="same"),
            3,
            102,
        ),
        layer_case(
            "max_pool1d_channels_first",
            (3, 6),
            lambda: L.MaxPooling1D(2, strides=1, data_format=cf),
            2,
            103,
        ),
        layer_case("max_pool2d_default", (5, 6, 2), lambda: L.MaxPooling2D(), 2, 104),
        layer_case(
            "max_pool2d_same",
            (5, 5, 2),
            lambda: L.MaxPooling2D((3, 2), strides=(2, 1), padding="same"),
            2,
            105,
        ),
        layer_case(
            "max_pool2d_channels_first",
            (2, 4, 5),
            lambda: L.MaxPooling2D((2, 2), strides=1, data_format=cf),
            2,
            106,
        ),
        # Average pooling: `same` leaves the padding out of the mean.
        layer_case(
            "avg_pool1d_valid_strides",
            (9, 2),
            lambda: L.AveragePooling1D(3, strides=2),
            3,
            107,
        ),
        layer_case(
            "avg_pool1d_same",
            (5, 2),
            lambda: L.AveragePooling1D(4, strides=1, padding="same"),
            3,
            108,
        ),
        layer_case(
            "avg_pool1d_channels_first_same",
            (2, 7),
            lambda: L.AveragePooling1D(2, padding="same", data_format=cf),
            2,
            109,
        ),
        layer_case(
            "avg_pool2d_valid",
            (4, 7, 3),
            lambda: L.AveragePooling2D((2, 3), strides=(1, 2)),
            2,
            110,
        ),
        layer_case(
            "avg_pool2d_same",
            (6, 5, 2),
            lambda: L.AveragePooling2D(3, strides=2, padding="same"),
            2,
            111,
        ),
        layer_case(
            "avg_pool2d_channels_first_same",
            (3, 5, 5),
            lambda: L.AveragePooling2D(2, padding="same", data_format=cf),
            2,
            112,
        ),
        # Global pooling.
        layer_case("global_max_pool1d", (6, 3), lambda: L.GlobalMaxPooling1D(), 3, 113),
        layer_case(
            "global_max_pool1d_channels_first_keepdims",
            (3, 6),
            lambda: L.GlobalMaxPooling1D(data_format=cf, keepdims=True),
            3,
            114,
        ),
        layer_case("global_avg_pool1d", (6, 3), lambda: L.GlobalAveragePooling1D(), 3, 115),
        layer_case(
            "global_avg_pool1d_keepdims",
            (6, 3),
            lambda: L.GlobalAveragePooling1D(keepdims=True),
            3,
            116,
        ),
        layer_case(
            "global_avg_pool1d_channels_first",
            (3, 6),
            lambda: L.GlobalAveragePooling1D(data_format=cf),
            3,
            117,
        ),
        layer_case("global_max_pool2d", (4, 5, 3), lambda: L.GlobalMaxPooling2D(), 2, 118),
        layer_case(
            "global_max_pool2d_channels_first_keepdims",
            (3, 4, 5),
            lambda: L.GlobalMaxPooling2D(data_format=cf, keepdims=True),
            2,
            119,
        ),
        layer_case("global_avg_pool2d", (4, 5, 3), lambda: L.GlobalAveragePooling2D(), 2, 120),
        layer_case(
            "global_avg_pool2d_channels_first_keepdims",
            (3, 4, 5),
            lambda: L.GlobalAveragePooling2D(data_format=cf, keepdims=True),
            2,
            121,
        ),
        # GlobalAveragePooling1D after Masking: unmasked steps only; a fully masked sample
        # (the last) is NaN in Keras.
        layer_case(
            "global_avg_pool1d_masked",
            (6, 3),
            lambda: L.GlobalAveragePooling1D(),
            4,
            122,
            mask=steps_mask(4, 6),
        ),
        layer_case(
            "global_avg_pool1d_masked_keepdims",
            (5, 2),
            lambda: L.GlobalAveragePooling1D(keepdims=True),
            3,
            123,
            mask=steps_mask(3, 5, full=False),
        ),
        # Ties: windowed max picks the first, global max splits evenly.
        layer_case(
            "max_pool1d_ties",
            (8, 2),
            lambda: L.MaxPooling1D(3, strides=1, padding="same"),
            3,
            124,
            x=ties((8, 2), 3, 124),
        ),
        layer_case(
            "max_pool2d_ties",
            (4, 5, 2),
            lambda: L.MaxPooling2D((2, 3), strides=1),
            2,
            125,
            x=ties((4, 5, 2), 2, 125),
        ),
        layer_case(
            "global_max_pool1d_ties",
            (7, 3),
            lambda: L.GlobalMaxPooling1D(),
            3,
            126,
            x=ties((7, 3), 3, 126),
        ),
        layer_case(
            "global_max_pool2d_ties",
            (3, 4, 2),
            lambda: L.GlobalMaxPooling2D(),
            2,
            127,
            x=ties((3, 4, 2), 2, 127),
        ),
        # Zero padding: every form of `padding`.
        layer_case("zero_padding1d_default", (4, 3), lambda: L.ZeroPadding1D(), 2, 128),
        layer_case("zero_padding1d_pair", (4, 3), lambda: L.ZeroPadding1D((2, 0)), 2, 129),
        layer_case(
            "zero_padding1d_channels_first",
            (3, 4),
            lambda: L.ZeroPadding1D((1, 2), data_format=cf),
            2,
            130,
        ),
        layer_case("zero_padding2d_default", (3, 4, 2), lambda: L.ZeroPadding2D(), 2, 131),
        layer_case("zero_padding2d_int", (3, 4, 2), lambda: L.ZeroPadding2D(2), 2, 132),
        layer_case(
            "zero_padding2d_pairs",
            (3, 4, 2),
            lambda: L.ZeroPadding2D(((1, 0), (0, 2))),
            2,
            133,
        ),
        layer_case(
            "zero_padding2d_channels_first",
            (2, 3, 4),
            lambda: L.ZeroPadding2D((1, 2), data_format=cf),
            2,
            134,
        ),
        # Upsampling (nearest).
        layer_case("up_sampling1d_default", (3, 2), lambda: L.UpSampling1D(), 2, 135),
        layer_case("up_sampling1d_size3", (3, 2), lambda: L.UpSampling1D(3), 2, 136),
        layer_case("up_sampling2d_default", (2, 3, 2), lambda: L.UpSampling2D(), 2, 137),
        layer_case(
            "up_sampling2d_channels_first",
            (2, 2, 3),
            lambda: L.UpSampling2D((3, 1), data_format=cf),
            2,
            138,
        ),
        # Cropping.
        layer_case("cropping1d_default", (6, 2), lambda: L.Cropping1D(), 2, 139),
        layer_case("cropping1d_pair", (6, 2), lambda: L.Cropping1D((0, 4)), 2, 140),
        layer_case("cropping2d_int", (5, 6, 2), lambda: L.Cropping2D(1), 2, 141),
        layer_case(
            "cropping2d_pairs_channels_first",
            (2, 5, 6),
            lambda: L.Cropping2D(((2, 0), (1, 3)), data_format=cf),
            2,
            142,
        ),
    ]
    g = rng(150)
    cases += [
        # Gradients flow through every kind into the Dense weights before it.
        model_case(
            "sequence_chain",
            (10, 3),
            lambda: [
                L.Dense(4, activation="tanh"),
                L.ZeroPadding1D((1, 2)),
                L.MaxPooling1D(3, strides=2, padding="same"),
                L.UpSampling1D(2),
                L.Cropping1D((1, 0)),
                L.AveragePooling1D(2),
                L.GlobalAveragePooling1D(),
                L.Dense(2),
            ],
            4,
            151,
            train=True,
        ),
        model_case(
            "image_chain",
            (6, 6, 2),
            lambda: [
                L.Dense(3, activation="tanh"),
                L.ZeroPadding2D(1),
                L.MaxPooling2D(2),
                L.UpSampling2D((2, 1)),
                L.Cropping2D(((1, 0), (0, 1))),
                L.AveragePooling2D(2, padding="same"),
                L.GlobalMaxPooling2D(),
                L.Dense(2),
            ],
            3,
            152,
            train=True,
        ),
        model_case(
            "channels_first_chain",
            (3, 5, 6),
            lambda: [
                L.Dense(4),
                L.ZeroPadding2D(((0, 1), (2, 0)), data_format=cf),
                L.AveragePooling2D((2, 3), strides=(2, 1), data_format=cf),
                L.UpSampling2D(2, data_format=cf),
                L.Cropping2D((1, 2), data_format=cf),
                L.MaxPooling2D((3, 2), padding="same", data_format=cf),
                L.GlobalAveragePooling2D(data_format=cf, keepdims=True),
                L.Dense(2, activation="sigmoid"),
            ],
            3,
            153,
            train=True,
        ),
        model_case(
            "channels_first_sequence_chain",
            (4, 7),
            lambda: [
                L.Dense(6),
                L.MaxPooling1D(2, data_format=cf),
                L.ZeroPadding1D(1, data_format=cf),
                L.AveragePooling1D(3, strides=1, padding="same", data_format=cf),
                L.GlobalMaxPooling1D(data_format=cf, keepdims=True),
                L.Dense(3),
            ],
            3,
            154,
            train=True,
        ),
        # The common text pattern: Masking, a Dense per step, masked mean over the steps.
        model_case(
            "masked_mean_classifier",
            (6, 3),
            lambda: [
                L.Masking(),
                L.Dense(4, activation="tanh"),
                L.GlobalAveragePooling1D(),
                L.Dense(2),
            ],
            4,
            155,
            x=masked_steps_input(g, (6, 3), 4),
            train=True,
        ),
        model_case(
            "masked_mean_keepdims",
            (5, 2),
            lambda: [
                L.Masking(),
                L.Dense(3),
                L.GlobalAveragePooling1D(keepdims=True),
                L.Dense(2, activation="tanh"),
            ],
            3,
            156,
            x=masked_steps_input(g, (5, 2), 3),
            train=True,
        ),
    ]
    return {"cases": cases}
