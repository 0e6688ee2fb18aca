"""Random Sequential models, valid by construction, and what Keras computes with them.

    python3 tools/keras_oracle.py random_models

writes tests/golden/random_models.json and the Rust file tests/random_models/models.rs (one
`kiln::model!` per model), which tests/random_models.rs `include!`s: kiln's predict,
predict_slice, predict_batch and predict_into must give Keras's outputs, and kiln's
`train_on_batch` Keras's loss and weights after one step.

Each model starts from a random input (rank 1, 2 or 3; or integer ids for an `Embedding`
first; or a `Masking` first, with whole positions equal to the mask value) and adds random
layers. A layer is only picked when it is valid for the running shape and for kiln's mask
rules (after `Masking` or `Embedding(mask_zero = True)`, only layers that pass the mask on,
use it, or consume it), and its arguments are drawn within their valid ranges (a pool that
fits, `groups` dividing the channels, not `strides > 1` with `dilation_rate > 1`, ...).
Every choice is weighted towards the layers and argument values used least so far, so the
fixed seed covers every layer kind and argument value in `COVERAGE` (checked at the end).
Keras builds each layer as it is added, so an invalid choice would raise here, never reach
the golden file.

The DSL text of each model comes from tools/keras_export.py's converters (the same
`convert` that exports a user's model), with two substitutions for what Keras 3 cannot
write itself: `ThresholdedReLU(theta = t)` for a `ReLU(threshold = t)` the generator meant
as Keras 2's ThresholdedReLU (Keras 3's `ReLU` computes the same `x if x > t else 0`), and
the `swish` / `hard_swish` spellings of `silu` / `hard_silu` (Keras serializes the latter).

Weights are drawn uniformly with a range shrinking with the fan-in (BatchNormalization's
moving variance and gamma positive). Per model the file holds the DSL, the weights under
kiln's names, `x` (a few samples) and `y = model(x)`; models without training-time
randomness (no Dropout with a rate, no recurrent dropout) also hold `train`: one
`train_on_batch` with SGD or Adam on mean squared or absolute error against normal targets
`t`, the loss Keras returned (regularization included) and every weight after the step
(BatchNormalization's moving statistics too). Adam's `epsilon` is 1e-3 so that gradients
which are 0 up to rounding (a bias before a normalization) do not become full-size steps of
random sign. A model whose output carries a Keras mask also holds it (`mask`, 0/1 per
position): Keras's loss averages over the unmasked positions only, as kiln's trainer does;
models.rs lists those models' training checks apart (`TRAIN_OUTPUT_MASK`), the ones that
found the difference before kiln's trainer read the mask.
"""
import math
import pathlib
import sys
import warnings
from collections import Counter

import keras
import numpy as np

from keras.src.backend.common.masking import get_keras_mask

from oracle._util import floats, rng

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import keras_export  # noqa: E402  (tools/keras_export.py: its converters print the DSL)

L = keras.layers
R = keras.regularizers
C = keras.constraints

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS_RS = ROOT / "tests" / "random_models" / "models.rs"

SEED = 20240613
COUNT = 72
BATCH = 3
# The largest tensor (values per sample) a layer may output, and the largest axis: keeps
# the test crate's stack tensors and run time small.
MAX_VALUES = 192
MAX_AXIS = 24

ACTIVATIONS = [
    "linear", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "softplus", "softsign",
    "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "exponential", "silu",
    "swish", "hard_silu", "hard_swish", "mish",
]
# Keras serializes these aliases under the second name.
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}

# Layer kinds and argument values every generated set must use at least once.
COVERAGE = [
    "Dense", "Activation", "Dropout", "Flatten", "Reshape", "Permute", "RepeatVector",
    "LeakyReLU", "PReLU", "ELU", "ReLU", "ThresholdedReLU", "Softmax", "Masking",
    "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose",
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "ZeroPadding1D", "ZeroPadding2D", "UpSampling1D",
    "UpSampling2D", "Cropping1D", "Cropping2D", "BatchNormalization", "LayerNormalization",
    "Embedding", "SimpleRNN", "LSTM", "GRU", "ActivityRegularization",
    "input=1", "input=2", "input=3", "input=ids", "input=masked",
    "conv.padding=valid", "conv.padding=same", "conv1d.padding=causal",
    "conv.strides=2", "conv.dilation=2", "conv.groups=2", "conv.data_format=channels_first",
    "pool.padding=same", "pool.data_format=channels_first", "global.keepdims=True",
    "global.data_format=channels_first", "rnn.return_sequences=True",
    "rnn.go_backwards=True", "gru.reset_after=False", "rnn.dropout", "embedding.mask_zero=True",
    "relu.max_value", "relu.negative_slope", "relu.threshold", "softmax.axis=1",
    "transpose.output_padding=True", "regularizer", "activity_regularizer", "constraint",
    "loss=mean_squared_error", "loss=mean_absolute_error", "optimizer=sgd", "optimizer=adam",
] + [f"activation={a}" for a in ACTIVATIONS]


class Picker:
    """Seeded choices weighted towards the tags used least so far. Tags noted while a layer
    is being drawn count once the layer joins the model (`commit`), not when the draw is
    dropped (`discard`), so `seen` only counts what the models hold."""

    def __init__(self, seed):
        self.g = rng(seed)
        self.seen = Counter()
        self.pending = Counter()

    def commit(self):
        self.seen.update(self.pending)
        self.pending.clear()

    def discard(self):
        self.pending.clear()

    def weight(self, tag):
        return 1.0 / (1.0 + self.seen[tag]) ** 2

    def choose(self, tag, options, note=True):
        """One of `options`, tagged `tag=value`; unseen values first."""
        options = list(options)
        w = np.array([self.weight(f"{tag}={o}") for o in options])
        choice = options[int(self.g.choice(len(options), p=w / w.sum()))]
        if note:
            self.pending[f"{tag}={choice}"] += 1
        return choice

    def choose_class(self, names):
        """One of the class names, the least used first (they are noted when the layer joins
        the model)."""
        w = np.array([self.weight(n) for n in names])
        return names[int(self.g.choice(len(names), p=w / w.sum()))]

    def chance(self, p):
        return bool(self.g.random() < p)

    def int(self, lo, hi):
        """An integer in lo..=hi."""
        return int(self.g.integers(lo, hi + 1))

    def note(self, tag):
        self.pending[tag] += 1


# ---------------------------------------------------------------------------------------
# Argument helpers.
# ---------------------------------------------------------------------------------------


def activation(p):
    return p.choose("activation", ACTIVATIONS)


def regularizer(p, prob=0.25):
    if not p.chance(prob):
        return None
    p.note("regularizer")
    kind = p.choose("regularizer.kind", ["l1", "l2", "l1_l2"])
    coefficient = float(p.choose("regularizer.value", [0.001, 0.01, 0.03]))
    if kind == "l1":
        return R.L1(coefficient)
    if kind == "l2":
        return R.L2(coefficient)
    return R.L1L2(l1=coefficient, l2=coefficient / 2)


def activity_regularizer(p, prob=0.15):
    reg = regularizer(p, prob)
    if reg is not None:
        p.note("activity_regularizer")
    return reg


def constraint(p, prob=0.12, rank=2):
    """A constraint over one axis of a weight of rank `rank` (kiln's constraints take one)."""
    if not p.chance(prob):
        return None
    p.note("constraint")
    axis = p.int(0, rank - 1)
    kind = p.choose("constraint.kind", ["max_norm", "min_max_norm", "non_neg", "unit_norm"])
    if kind == "max_norm":
        return C.MaxNorm(max_value=float(p.choose("max_norm", [0.5, 1.0, 2.0])), axis=axis)
    if kind == "min_max_norm":
        return C.MinMaxNorm(min_value=0.2, max_value=1.0, rate=float(p.choose("rate", [0.5, 1.0])),
                            axis=axis)
    if kind == "non_neg":
        return C.NonNeg()
    return C.UnitNorm(axis=axis)


def initializer(p):
    return p.choose("initializer", ["glorot_uniform", "he_normal", "lecun_uniform", "zeros",
                                    "glorot_normal", "he_uniform"], note=False)


def size(shape):
    return int(np.prod(shape))


def fits(shape):
    return size(shape) <= MAX_VALUES and all(1 <= d <= MAX_AXIS for d in shape)


# ---------------------------------------------------------------------------------------
# Layer builders: each takes the picker and the running state and returns a Keras layer, or
# None when it has no valid variant for this input. `spec` notes what the DSL needs beyond
# Keras's config (ThresholdedReLU, activation aliases) and what rules out training.
# ---------------------------------------------------------------------------------------


class State:
    def __init__(self, shape, mask):
        self.shape = tuple(shape)
        self.mask = mask  # None, or the class of the layer that made the mask
        self.trains = True

    @property
    def rank(self):
        return len(self.shape)


def dense(p, s):
    units = p.int(1, 8)
    if not fits(s.shape[:-1] + (units,)):
        return None
    act = activation(p)
    return L.Dense(
        units,
        activation=act,
        use_bias=p.choose("dense.use_bias", [True, False]),
        kernel_initializer=initializer(p),
        kernel_regularizer=regularizer(p),
        bias_regularizer=regularizer(p, 0.1),
        activity_regularizer=activity_regularizer(p),
        kernel_constraint=constraint(p),
        bias_constraint=constraint(p, 0.05, rank=1),
    ), {"activation": act}


def activation_layer(p, s):
    act = activation(p)
    return L.Activation(act), {"activation": act}


def dropout(p, s):
    rate = float(p.choose("dropout.rate", [0.1, 0.25, 0.5]))
    noise_shape = None
    if s.rank >= 2 and p.chance(0.4):
        noise_shape = (None,) + tuple(1 if p.chance(0.5) else d for d in s.shape)
    s.trains = False
    return L.Dropout(rate, noise_shape=noise_shape, seed=p.choose("dropout.seed", [None, 7])), {}


def flatten(p, s):
    return L.Flatten(), {}


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def reshape(p, s):
    n = size(s.shape)
    rank = p.choose("reshape.rank", [1, 2, 3])
    if rank == 1:
        target = [n]
    else:
        a = p.choose("reshape.a", divisors(n), note=False)
        if rank == 2:
            target = [a, n // a]
        else:
            b = p.choose("reshape.b", divisors(n // a), note=False)
            target = [a, b, n // a // b]
    if not fits(tuple(target)):
        return None
    if p.chance(0.3):
        target[p.int(0, rank - 1)] = -1
    return L.Reshape(tuple(target)), {}


def permute(p, s):
    if s.rank < 2:
        return None
    dims = list(range(1, s.rank + 1))
    while dims == sorted(dims):
        dims = [int(d) for d in p.g.permutation(dims)]
    return L.Permute(tuple(dims)), {}


def repeat_vector(p, s):
    if s.rank != 1:
        return None
    n = p.int(2, 4)
    if not fits((n,) + s.shape):
        return None
    return L.RepeatVector(n), {}


def leaky_relu(p, s):
    return L.LeakyReLU(negative_slope=float(p.choose("leaky", [0.3, 0.1, 0.01]))), {}


def prelu(p, s):
    shared = None
    if s.rank >= 2 and p.chance(0.6):
        axes = [a for a in range(1, s.rank + 1) if p.chance(0.5)] or [1]
        shared = axes
    return L.PReLU(alpha_regularizer=regularizer(p, 0.2), alpha_constraint=constraint(
        p, 0.1, rank=s.rank), shared_axes=shared), {}


def elu(p, s):
    return L.ELU(alpha=float(p.choose("elu.alpha", [1.0, 0.5, 1.7]))), {}


def relu(p, s):
    kwargs = {}
    if p.chance(0.5):
        kwargs["max_value"] = float(p.choose("relu.max", [0.5, 1.0, 6.0]))
        p.note("relu.max_value")
    if p.chance(0.5):
        kwargs["negative_slope"] = float(p.choose("relu.slope", [0.1, 0.3]))
        p.note("relu.negative_slope")
    if p.chance(0.4):
        kwargs["threshold"] = float(p.choose("relu.thr", [0.2, 0.5]))
        p.note("relu.threshold")
    return L.ReLU(**kwargs), {}


def thresholded_relu(p, s):
    theta = float(p.choose("theta", [1.0, 0.3, 0.0]))
    return L.ReLU(threshold=theta), {"thresholded": theta}


def softmax(p, s):
    if s.mask is not None:
        return None  # kiln refuses it: Keras would mask the wrong axis
    axis = p.choose("softmax.axis", [-1] + list(range(1, s.rank + 1)) + [-s.rank])
    if axis == 1:
        p.note("softmax.axis=1")
    return L.Softmax(axis=axis), {}


def activity_regularization(p, s):
    p.note("activity_regularizer")
    return L.ActivityRegularization(
        l1=float(p.choose("ar.l1", [0.0, 0.01])), l2=float(p.choose("ar.l2", [0.0, 0.02]))
    ), {}


def batch_normalization(p, s):
    axes = list(range(1, s.rank + 1)) + [-1]
    return L.BatchNormalization(
        axis=p.choose("bn.axis", axes, note=False),
        momentum=float(p.choose("bn.momentum", [0.99, 0.9, 0.5])),
        epsilon=float(p.choose("bn.epsilon", [1e-3, 1e-2])),
        center=p.choose("bn.center", [True, False]),
        scale=p.choose("bn.scale", [True, False]),
        beta_regularizer=regularizer(p, 0.2),
        gamma_regularizer=regularizer(p, 0.2),
        gamma_constraint=constraint(p, 0.1, rank=1),
    ), {}


def layer_normalization(p, s):
    axes = list(range(1, s.rank + 1))
    if s.rank > 1 and p.chance(0.4):
        axis = sorted(set(int(a) for a in p.g.choice(axes, size=2, replace=False)))
    else:
        axis = p.choose("ln.axis", axes + [-1], note=False)
    return L.LayerNormalization(
        axis=axis,
        epsilon=float(p.choose("ln.epsilon", [1e-3, 1e-5])),
        center=p.choose("ln.center", [True, False]),
        scale=p.choose("ln.scale", [True, False]),
        beta_regularizer=regularizer(p, 0.2),
        gamma_regularizer=regularizer(p, 0.2),
    ), {}


def data_format(p, tag):
    return p.choose(tag, ["channels_last", "channels_first"])


def conv_out(n, k, s, d, padding):
    e = (k - 1) * d + 1
    if padding == "valid":
        return (n - e) // s + 1 if n >= e else 0
    return -(-n // s)


def spatial(shape, fmt):
    """(spatial dims, channels) of a channels-last or channels-first shape."""
    if fmt == "channels_first":
        return list(shape[1:]), shape[0]
    return list(shape[:-1]), shape[-1]


def conv(p, s):
    """Conv1D on rank 2, Conv2D on rank 3."""
    if s.rank not in (2, 3):
        return None
    dims = s.rank - 1
    fmt = data_format(p, "conv.data_format")
    spatial_in, c = spatial(s.shape, fmt)
    paddings = ["valid", "same"] + (["causal"] if dims == 1 else [])
    padding = p.choose("conv.padding" if dims == 2 else "conv1d.padding", paddings)
    if padding != "causal":
        p.note(f"conv.padding={padding}")
    kernel = tuple(p.int(1, 3) for _ in range(dims))
    mode = p.choose("conv.mode", ["plain", "strides", "dilation"], note=False)
    strides = tuple(p.int(1, 2) for _ in range(dims)) if mode == "strides" else (1,) * dims
    dilation = tuple(p.int(1, 2) for _ in range(dims)) if mode == "dilation" else (1,) * dims
    group_options = [g for g in (1, 2) if c % g == 0]
    groups = p.choose("conv.groups_pick", group_options, note=False)
    filters = p.int(1, 3) * groups
    out = [conv_out(n, k, st, d, "same" if padding == "causal" else padding)
           for n, k, st, d in zip(spatial_in, kernel, strides, dilation)]
    shape = tuple(out + [filters]) if fmt == "channels_last" else tuple([filters] + out)
    if min(out) < 1 or not fits(shape):
        return None
    if max(strides) > 1:
        p.note("conv.strides=2")
    if max(dilation) > 1:
        p.note("conv.dilation=2")
    if groups > 1:
        p.note("conv.groups=2")
    act = activation(p)
    cls = L.Conv1D if dims == 1 else L.Conv2D
    return cls(
        filters,
        kernel if dims == 2 else kernel[0],
        strides=strides,
        padding=padding,
        data_format=fmt,
        dilation_rate=dilation,
        groups=groups,
        activation=act,
        use_bias=p.choose("conv.use_bias", [True, False]),
        kernel_initializer=initializer(p),
        kernel_regularizer=regularizer(p),
        bias_regularizer=regularizer(p, 0.1),
        activity_regularizer=activity_regularizer(p),
        kernel_constraint=constraint(p, 0.1, rank=dims + 2),
    ), {"activation": act}


def depthwise(p, s):
    if s.rank != 3:
        return None
    fmt = data_format(p, "conv.data_format")
    spatial_in, c = spatial(s.shape, fmt)
    padding = p.choose("conv.padding", ["valid", "same"])
    kernel = (p.int(1, 3), p.int(1, 3))
    strides = (p.int(1, 2), p.int(1, 2))
    dilation = (p.int(1, 2), 1) if p.chance(0.4) else (1, 1)
    multiplier = p.int(1, 2)
    out = [conv_out(n, k, st, d, padding)
           for n, k, st, d in zip(spatial_in, kernel, strides, dilation)]
    channels = c * multiplier
    shape = tuple(out + [channels]) if fmt == "channels_last" else tuple([channels] + out)
    if min(out) < 1 or not fits(shape):
        return None
    act = activation(p)
    return L.DepthwiseConv2D(
        kernel,
        strides=strides,
        padding=padding,
        depth_multiplier=multiplier,
        data_format=fmt,
        dilation_rate=dilation,
        activation=act,
        use_bias=p.choose("conv.use_bias", [True, False]),
        depthwise_regularizer=regularizer(p),
        bias_regularizer=regularizer(p, 0.1),
        activity_regularizer=activity_regularizer(p),
        depthwise_constraint=constraint(p, 0.1, rank=4),
    ), {"activation": act}


def separable(p, s):
    if s.rank != 3:
        return None
    fmt = data_format(p, "conv.data_format")
    spatial_in, c = spatial(s.shape, fmt)
    padding = p.choose("conv.padding", ["valid", "same"])
    kernel = (p.int(1, 3), p.int(1, 3))
    if p.chance(0.5):
        strides, dilation = (p.int(1, 2), p.int(1, 2)), (1, 1)
    else:
        strides, dilation = (1, 1), (p.int(1, 2), p.int(1, 2))
    multiplier = p.int(1, 2)
    filters = p.int(1, 4)
    out = [conv_out(n, k, st, d, padding)
           for n, k, st, d in zip(spatial_in, kernel, strides, dilation)]
    shape = tuple(out + [filters]) if fmt == "channels_last" else tuple([filters] + out)
    if min(out) < 1 or not fits(shape) or size(out) * c * multiplier > MAX_VALUES:
        return None
    act = activation(p)
    return L.SeparableConv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        data_format=fmt,
        dilation_rate=dilation,
        depth_multiplier=multiplier,
        activation=act,
        use_bias=p.choose("conv.use_bias", [True, False]),
        depthwise_regularizer=regularizer(p),
        pointwise_regularizer=regularizer(p),
        bias_regularizer=regularizer(p, 0.1),
        activity_regularizer=activity_regularizer(p),
    ), {"activation": act}


def transpose_out(n, k, s, d, padding, output_padding):
    e = (k - 1) * d + 1
    if output_padding is None:
        return (n - 1) * s + max(e, s) if padding == "valid" else n * s
    if padding == "valid":
        return (n - 1) * s + e + output_padding
    return (n - 1) * s + e % 2 + output_padding


def transpose(p, s):
    if s.rank != 3:
        return None
    fmt = data_format(p, "conv.data_format")
    spatial_in, _ = spatial(s.shape, fmt)
    padding = p.choose("conv.padding", ["valid", "same"])
    kernel = (p.int(1, 3), p.int(1, 3))
    if p.chance(0.7):
        strides, dilation = (2, p.int(1, 2)), (1, 1)
    else:
        strides, dilation = (1, 1), (2, 1)
    output_padding = None
    if p.choose("transpose.output_padding", [False, True]):
        output_padding = tuple(p.int(0, st - 1) for st in strides)
    filters = p.int(1, 3)
    out = [transpose_out(n, k, st, d, padding, None if output_padding is None else op)
           for n, k, st, d, op in zip(spatial_in, kernel, strides, dilation,
                                      output_padding or (None, None))]
    shape = tuple(out + [filters]) if fmt == "channels_last" else tuple([filters] + out)
    if min(out) < 1 or not fits(shape):
        return None
    act = activation(p)
    return L.Conv2DTranspose(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        output_padding=output_padding,
        data_format=fmt,
        dilation_rate=dilation,
        activation=act,
        use_bias=p.choose("conv.use_bias", [True, False]),
        kernel_regularizer=regularizer(p),
        bias_regularizer=regularizer(p, 0.1),
        activity_regularizer=activity_regularizer(p),
    ), {"activation": act}


def pooling(p, s):
    if s.rank not in (2, 3):
        return None
    dims = s.rank - 1
    fmt = data_format(p, "pool.data_format")
    spatial_in, c = spatial(s.shape, fmt)
    padding = p.choose("pool.padding", ["valid", "same"])
    pool = tuple(p.int(1, 3) for _ in range(dims))
    strides = None if p.chance(0.5) else tuple(p.int(1, 2) for _ in range(dims))
    st = strides or pool
    out = [(n - k) // t + 1 if padding == "valid" else -(-n // t)
           for n, k, t in zip(spatial_in, pool, st)]
    if min(out) < 1 or any(k > n for n, k in zip(spatial_in, pool) if padding == "valid"):
        return None
    cls = getattr(L, p.choose_class([f"MaxPooling{dims}D", f"AveragePooling{dims}D"]))
    return cls(pool if dims == 2 else pool[0],
               strides=strides if (strides is None or dims == 2) else strides[0],
               padding=padding, data_format=fmt), {}


def global_pooling(p, s):
    if s.rank not in (2, 3):
        return None
    dims = s.rank - 1
    name = p.choose_class([f"GlobalMaxPooling{dims}D", f"GlobalAveragePooling{dims}D"])
    if s.mask is not None and name != "GlobalAveragePooling1D":
        return None
    fmt = "channels_last" if s.mask is not None else data_format(p, "global.data_format")
    cls = getattr(L, name)
    return cls(data_format=fmt, keepdims=p.choose("global.keepdims", [False, True])), {}


def zero_padding(p, s):
    if s.rank not in (2, 3):
        return None
    if s.rank == 2:
        padding = p.choose("zp1", [1, (0, 2), (2, 1)], note=False)
        fmt = data_format(p, "pad.data_format")
        layer = L.ZeroPadding1D(padding, data_format=fmt)
    else:
        padding = p.choose("zp2", [1, (1, 0), ((0, 1), (2, 1))], note=False)
        layer = L.ZeroPadding2D(padding, data_format=data_format(p, "pad.data_format"))
    return layer, {}


def up_sampling(p, s):
    if s.rank == 2:
        return L.UpSampling1D(p.int(2, 3)), {}
    if s.rank == 3:
        return L.UpSampling2D((p.int(1, 2), p.int(1, 2)),
                              data_format=data_format(p, "up.data_format")), {}
    return None


def cropping(p, s):
    if s.rank == 2:
        steps = s.shape[0]
        a, b = p.int(0, 2), p.int(0, 1)
        if a + b == 0 or steps - a - b < 1:
            return None
        return L.Cropping1D((a, b)), {}
    if s.rank == 3:
        fmt = data_format(p, "crop.data_format")
        (h, w), _ = spatial(s.shape, fmt)
        crop = ((p.int(0, 1), p.int(0, 1)), (p.int(0, 2), p.int(0, 1)))
        if h - sum(crop[0]) < 1 or w - sum(crop[1]) < 1 or crop == ((0, 0), (0, 0)):
            return None
        return L.Cropping2D(crop, data_format=fmt), {}
    return None


def recurrent(p, s):
    if s.rank != 2:
        return None
    kind = p.choose_class(["SimpleRNN", "LSTM", "GRU"])
    units = p.int(2, 5)
    sequences = p.choose("rnn.return_sequences", [False, True])
    kwargs = dict(
        activation=p.choose("rnn.activation", ["tanh", "relu", "softsign", "sigmoid", "elu"]),
        use_bias=p.choose("rnn.use_bias", [True, False]),
        kernel_regularizer=regularizer(p, 0.15),
        recurrent_regularizer=regularizer(p, 0.15),
        bias_regularizer=regularizer(p, 0.1),
        activity_regularizer=activity_regularizer(p, 0.1),
        recurrent_constraint=constraint(p, 0.08),
        return_sequences=sequences,
        go_backwards=p.choose("rnn.go_backwards", [False, True]),
    )
    if p.chance(0.12):
        kwargs["dropout"] = 0.2
        kwargs["recurrent_dropout"] = float(p.choose("rnn.rd", [0.0, 0.1]))
        p.note("rnn.dropout")
        s.trains = False
    if kind != "SimpleRNN":
        kwargs["recurrent_activation"] = p.choose("rnn.recurrent_activation",
                                                  ["sigmoid", "hard_sigmoid", "tanh"])
    if kind == "LSTM":
        kwargs["unit_forget_bias"] = p.choose("lstm.unit_forget_bias", [True, False])
    if kind == "GRU":
        kwargs["reset_after"] = p.choose("gru.reset_after", [True, False])
    layer = getattr(L, kind)(units, **kwargs)
    if not sequences:
        s.mask = None
    return layer, {}


# (builder, allowed under a mask, the classes it makes, base weight): a builder is picked
# with its base weight times the weight of its least used class (convolutions, Dense and the
# recurrent layers have the most arguments, so they come up more often).
BUILDERS = [
    (dense, True, ["Dense"], 2),
    (activation_layer, True, ["Activation"], 1),
    (dropout, True, ["Dropout"], 1),
    (flatten, False, ["Flatten"], 1),
    (reshape, False, ["Reshape"], 1),
    (permute, False, ["Permute"], 1),
    (repeat_vector, False, ["RepeatVector"], 1),
    (leaky_relu, True, ["LeakyReLU"], 1),
    (prelu, True, ["PReLU"], 1),
    (elu, True, ["ELU"], 1),
    (relu, True, ["ReLU"], 1),
    (thresholded_relu, True, ["ThresholdedReLU"], 1),
    (softmax, False, ["Softmax"], 1),
    (activity_regularization, True, ["ActivityRegularization"], 1),
    (batch_normalization, True, ["BatchNormalization"], 1),
    (layer_normalization, True, ["LayerNormalization"], 1),
    (conv, False, ["Conv1D", "Conv2D"], 3),
    (depthwise, False, ["DepthwiseConv2D"], 2),
    (separable, False, ["SeparableConv2D"], 2),
    (transpose, False, ["Conv2DTranspose"], 2),
    (pooling, False, ["MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"], 1),
    (global_pooling, True, ["GlobalMaxPooling1D", "GlobalMaxPooling2D",
                            "GlobalAveragePooling1D", "GlobalAveragePooling2D"], 1),
    (zero_padding, False, ["ZeroPadding1D", "ZeroPadding2D"], 1),
    (up_sampling, False, ["UpSampling1D", "UpSampling2D"], 1),
    (cropping, False, ["Cropping1D", "Cropping2D"], 1),
    (recurrent, True, ["SimpleRNN", "LSTM", "GRU"], 2),
]


# ---------------------------------------------------------------------------------------
# Models.
# ---------------------------------------------------------------------------------------


def input_spec(p):
    """(input shape, first layers, how to draw x)"""
    kind = p.choose("input", ["1", "2", "3", "ids", "masked"])
    if kind == "1":
        return (p.int(2, 12),), [], "normal"
    if kind == "2":
        return (p.int(3, 8), p.int(2, 6)), [], "normal"
    if kind == "3":
        return (p.int(3, 7), p.int(3, 7), p.int(1, 4)), [], "normal"
    if kind == "ids":
        vocab = p.int(4, 12)
        mask_zero = p.choose("embedding.mask_zero", [False, True])
        layer = L.Embedding(vocab, p.int(2, 5), mask_zero=mask_zero,
                            embeddings_regularizer=regularizer(p, 0.3),
                            embeddings_constraint=constraint(p, 0.15))
        return (p.int(3, 8),), [(layer, {})], ("ids", vocab)
    value = float(p.choose("masking.value", [0.0, 0.5]))
    shape = (p.int(4, 8), p.int(2, 5)) if p.chance(0.8) else (p.int(3, 5), p.int(3, 5), 2)
    return shape, [(L.Masking(mask_value=value), {})], ("masked", value)


def draw_x(g, shape, how, batch):
    if how == "normal":
        return g.normal(0.0, 1.0, size=(batch,) + shape).astype(np.float32)
    if how[0] == "ids":
        x = g.integers(0, how[1], size=(batch,) + shape).astype(np.float32)
        x[:, 0] = 0.0  # id 0 at least once per sample (masked with mask_zero)
        return x
    # Masking: whole positions (all features) equal to the mask value, never a whole sample
    # (a fully masked sample makes GlobalAveragePooling1D divide by 0, as Keras does).
    x = g.normal(0.0, 1.0, size=(batch,) + shape).astype(np.float32)
    positions = x.reshape(batch, -1, shape[-1])
    for b in range(batch):
        count = positions.shape[1]
        for i in g.choice(count, size=max(1, count // 3), replace=False):
            positions[b, i, :] = how[1]
    return positions.reshape(x.shape)


def fan_in(shape):
    return size(shape[:-1]) if len(shape) >= 2 else 1


def set_weights(model, g):
    """Weights from `g`, returned in model.weights order."""
    values = []
    for v in model.weights:
        shape = tuple(v.shape)
        name = v.path.rsplit("/", 1)[-1]
        if name in ("moving_variance", "gamma") and "normalization" in v.path:
            value = g.uniform(0.5, 1.5, size=shape)
        else:
            scale = min(0.6, 1.6 / math.sqrt(fan_in(shape)))
            value = g.uniform(-scale, scale, size=shape)
        value = value.astype(np.float32)
        v.assign(value)
        values.append(value)
    return values


def dsl_calls(calls, specs):
    """keras_export's call texts with the generator's substitutions (see the module doc)."""
    out = []
    for text, spec in zip(calls, specs):
        if "thresholded" in spec:
            name = text[text.index("name = "):]
            text = f"ThresholdedReLU(theta = {keras_export.number(spec['thresholded'])}, {name}"
        act = spec.get("activation")
        if act in ALIASES:
            text = text.replace(f'activation = "{ALIASES[act]}"', f'activation = "{act}"', 1)
        out.append(text)
    return out


def build(index, p):
    keras.backend.clear_session()
    g = p.g
    shape, first, how = input_spec(p)
    state = State(shape, None)
    model = keras.Sequential([keras.Input(shape=shape)])
    specs, tags = [], []
    for layer, spec in first:
        model.add(layer)
        p.note(type(layer).__name__)
        specs.append(spec)
        tags.append(type(layer).__name__)
        if type(layer).__name__ == "Masking" or getattr(layer, "mask_zero", False):
            state.mask = type(layer).__name__
        state.shape = tuple(model.output_shape[1:])
    p.commit()
    depth = p.int(2, 6)
    attempts = 0
    while len(specs) < depth + len(first) and attempts < 200:
        attempts += 1
        options = [(b, classes, base) for b, masked, classes, base in BUILDERS
                   if state.mask is None or masked]
        w = np.array([base * max(p.weight(c) for c in classes) for _, classes, base in options])
        builder, _, _ = options[int(g.choice(len(options), p=w / w.sum()))]
        before = (state.mask, state.trains)
        built = builder(p, state)
        if built is None:
            p.discard()
            state.mask, state.trains = before
            continue
        layer, spec = built
        model.add(layer)
        out = tuple(model.output_shape[1:])
        if not fits(out):  # padding or upsampling past the size limit: drop it
            model.pop()
            p.discard()
            state.mask, state.trains = before
            continue
        cls = "ThresholdedReLU" if "thresholded" in spec else type(layer).__name__
        p.note(cls)
        p.commit()
        specs.append(spec)
        tags.append(cls)
        state.shape = out
        if cls == "GlobalAveragePooling1D":
            state.mask = None
    return model, specs, tags, how


def train_step(model, names, weights, x, p, g):
    optimizer = p.choose("optimizer", ["sgd", "adam"])
    loss = p.choose("loss", ["mean_squared_error", "mean_absolute_error"])
    p.commit()
    if optimizer == "sgd":
        lr, opt = 0.05, keras.optimizers.SGD(learning_rate=0.05)
    else:
        lr, opt = 0.01, keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-3)
    t = g.normal(0.0, 1.0, size=(x.shape[0],) + tuple(model.output_shape[1:])).astype(np.float32)
    model.compile(optimizer=opt, loss=loss)
    value = float(model.train_on_batch(x, t))
    after = {n: floats(np.asarray(v)) for n, v in zip(names, model.weights)}
    for v, w in zip(model.weights, weights):
        v.assign(w)  # back to the start weights for anything after
    return {"optimizer": optimizer, "learning_rate": lr, "epsilon": 1e-3, "loss": loss,
            "t": floats(t), "loss_value": value, "after": after}


def generate_case(index, p):
    model, specs, tags, how = build(index, p)
    g = p.g
    weights = set_weights(model, g)
    input_text, calls, tensors, _, _ = keras_export.convert(model)
    names = list(tensors)
    assert len(names) == len(model.weights)
    shape = tuple(model.input_shape[1:])
    x = draw_x(g, shape, how, BATCH)
    out = model(x)
    y = np.asarray(out)
    mask = get_keras_mask(out)
    case = {
        "name": f"m{index:02}",
        "layers": tags,
        "dsl": [input_text] + dsl_calls(calls, specs),
        "input_shape": list(shape),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "weight_names": names,
        "weights": {n: {"shape": list(w.shape), "values": floats(w)}
                    for n, w in zip(names, weights)},
        "batch": BATCH,
        "x": floats(x),
        "y": floats(y),
    }
    if mask is not None:
        # Keras weights the training loss by it (keras/src/losses/loss.py, `apply_mask`).
        case["mask"] = [int(v) for v in np.asarray(mask).reshape(-1)]
    trains = "Dropout" not in tags and not any(
        getattr(l, "dropout", 0) or getattr(l, "recurrent_dropout", 0) for l in model.layers)
    if trains and np.all(np.isfinite(y)):
        case["train"] = train_step(model, names, weights, x, p, g)
    return case


def rust_file(cases):
    lines = [
        "// Generated by tools/oracle/random_models.py (`python3 tools/keras_oracle.py "
        "random_models`),",
        "// with tests/golden/random_models.json: do not edit. Included by "
        "tests/random_models.rs.",
        "",
    ]
    for c in cases:
        lines.append("kiln::model! {")
        lines.append(f"    /// Random model `{c['name']}`: {', '.join(c['layers'])}.")
        lines.append(f"    {c['name'].upper()} = Sequential([")
        lines += [f"        {text}," for text in c["dsl"]]
        lines += ["    ]);", "}", ""]
    lines.append("/// Every model's prediction check, by golden case name.")
    lines.append("const PREDICT: &[(&str, Check)] = &[")
    lines += [f"    (\"{c['name']}\", predicts::<{c['name'].upper()}>)," for c in cases]
    lines.append("];")
    lines.append("")
    lines.append("/// The training-step check of every model that trains and whose output carries no")
    lines.append("/// mask, by golden case name.")
    lines.append("const TRAIN: &[(&str, Check)] = &[")
    lines += [f"    (\"{c['name']}\", trains::<{c['name'].upper()}>)," for c in cases
              if "train" in c and "mask" not in c]
    lines.append("];")
    lines.append("")
    lines.append("/// The same for the models whose output carries a Keras mask.")
    lines.append("const TRAIN_OUTPUT_MASK: &[(&str, Check)] = &[")
    lines += [f"    (\"{c['name']}\", trains::<{c['name'].upper()}>)," for c in cases
              if "train" in c and "mask" in c]
    lines.append("];")
    return "\n".join(lines) + "\n"


def generate():
    p = Picker(SEED)
    with warnings.catch_warnings():
        # Keras's notes on what random models do (a softmax over an axis of size 1, ...).
        warnings.simplefilter("ignore")
        cases = [generate_case(i, p) for i in range(COUNT)]
    missing = [tag for tag in COVERAGE if p.seen[tag] == 0]
    assert not missing, f"the seed leaves out {missing}: raise COUNT or change SEED"
    MODELS_RS.parent.mkdir(parents=True, exist_ok=True)
    MODELS_RS.write_text(rust_file(cases))
    layer_kinds = sorted({t for c in cases for t in c["layers"]})
    return {
        "seed": SEED,
        "count": len(cases),
        "trained": sum("train" in c for c in cases),
        "trained_output_mask": sum("train" in c and "mask" in c for c in cases),
        "layer_kinds": layer_kinds,
        "coverage": {tag: p.seen[tag] for tag in COVERAGE},
        "cases": cases,
    }
