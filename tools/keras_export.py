#!/usr/bin/env python3
"""Exports a Keras 3 model to kiln: a `kiln::model!` declaration and its weights.

    pip install keras jax safetensors
    python3 tools/keras_export.py MODEL.keras OUT_DIR --name Net

writes
- OUT_DIR/model.rs: `kiln::model! { pub Net = Sequential([Input(shape = (...)), ...]); }`,
  every layer with its Keras name and the arguments that differ from Keras's defaults, and
  only `//` comments, so a Rust file can `include!` it inside a module;
- OUT_DIR/weights.safetensors: one F32 tensor per weight, row-major (NumPy C order), with
  Keras's shapes, named as kiln names weights (`Model::WEIGHT_NAMES`): `<layer name>/<suffix>`,
  which is Keras 3's variable path without the names of the model and of any nested model
  (`dense/kernel`, `p_re_lu/alpha`), a wrapper's name always included
  (`bidirectional/forward_lstm/lstm_cell/kernel`, `time_distributed/dense/kernel`).

The input is written as Keras has it: `Input(shape = (None, 3))` for sequences of any
length (`(None,)` for the ids of a first `Embedding`), `batch_size = 2` when the batch size
is fixed (`keras.Input(batch_shape=(2, None, 3))`, which `stateful=True` needs), and
`dtype = "int32"` (any float or integer type but float32; kiln computes in float32 and takes
ids as whole f32 values). Whether such a model can run one timestep at a time, as `None`
timesteps and `stateful = True` require, is kiln's compile check, which names the layer
that cannot: the export does not repeat it.

The model is read through Keras itself (`keras.saving.load_model`, safe mode: code stored in
the file is never run), so `.h5` files work where Keras 3 loads them. Sequential models and
Functional models that are a single chain are exported; nested Sequential/Functional models
are flattened into the chain. Anything kiln cannot express (a layer class or an argument
value the DSL lacks, a Lambda, a branch, a shared layer, several inputs or outputs, a mask
kiln refuses, a layer computing in a dtype other than float32, `None` in an input
dimension other than the timesteps, `return_state`, ...) stops the export: every problem
is listed, the exit status is 1, and OUT_DIR is left as it was. Files are written into a
temporary folder beside OUT_DIR and moved in only when everything succeeded.

Adding a layer kind means adding one entry to CONVERTERS: the Keras class name -> a `Kind`
holding a function that reads the layer's `get_config()` through a `LayerConfig` and
returns the DSL call text or a list of problems, and how the layer treats a Keras mask.
"""
import argparse
import contextlib
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections import namedtuple

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

USAGE_ERROR = 2
NOT_EXPRESSIBLE = 1


class Unexpressible(Exception):
    """An argument value kiln's DSL cannot express; the message says which and why."""


class Omitted(Exception):
    """An argument that is left out of model.rs on purpose; the message is a note for it."""


# ---------------------------------------------------------------------------------------
# Values: Keras config values -> DSL text. Each raises Unexpressible for what kiln lacks.
# ---------------------------------------------------------------------------------------


def rust_string(s):
    """A Rust string literal (Keras names may hold any character but `/`)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def is_number(v):
    import numpy as np

    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def number(v):
    """A float argument, written as the shortest text that gives the same f32 (kiln's type):
    Keras stores some coefficients as f32 widened to f64 (0.009999999776482582 -> 0.01)."""
    import numpy as np

    if not is_number(v):
        raise Unexpressible(f"expected a number, found {v!r}")
    with np.errstate(over="ignore"):
        x = np.float32(v)
    if not np.isfinite(x):
        raise Unexpressible(f"{v!r} is not a finite f32")
    text = str(x)
    if not re.fullmatch(r"-?\d+(\.\d+)?(e[+-]?\d+)?", text):
        raise Unexpressible(f"cannot write {v!r} as a number")
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def non_negative(v):
    text = number(v)
    if text.startswith("-"):
        raise Unexpressible(f"kiln requires a non-negative value, found {text}")
    return text


def integer(v):
    import numpy as np

    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise Unexpressible(f"expected an integer, found {v!r}")
    return str(int(v))


def boolean(v):
    if not isinstance(v, bool):
        raise Unexpressible(f"expected True or False, found {v!r}")
    return "True" if v else "False"


def int_tuple(v, allow_none=False):
    """`(6, 4)`, `(10,)`; None entries as `None` when allowed (Dropout's noise_shape)."""
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v,)
    if not isinstance(v, (list, tuple)):
        raise Unexpressible(f"expected a tuple of integers, found {v!r}")
    items = ["None" if (x is None and allow_none) else integer(x) for x in v]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def int_list(v):
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)):
        raise Unexpressible(f"expected a list of integers, found {v!r}")
    return "[" + ", ".join(integer(x) for x in v) + "]"


def call(fn, *positional, **keywords):
    """`fn(a, k = v)`, keywords in the given order (Python keeps it)."""
    args = list(positional) + [f"{k} = {v}" for k, v in keywords.items()]
    return f"{fn}({', '.join(args)})"


def class_and_config(v, kind):
    """A serialized Keras object (`{"class_name": ..., "config": ...}`) or a bare name."""
    if isinstance(v, str):
        return v, {}
    if isinstance(v, dict) and isinstance(v.get("class_name"), str):
        if v["class_name"] in ("function", "__lambda__") or v.get("module") == "builtins":
            raise Unexpressible(f"the {kind} is Python code ({describe_code(v)})")
        config = v.get("config") or {}
        if not isinstance(config, dict):
            raise Unexpressible(f"cannot read the {kind} {v!r}")
        return v["class_name"], config
    raise Unexpressible(f"cannot read the {kind} {v!r}")


def describe_code(v):
    if v.get("class_name") == "__lambda__":
        return "a lambda"
    return f"`{v.get('config')}`"


# Keras 3's activation names that kiln's DSL has (Keras serializes `swish` as `silu` and
# `hard_swish` as `hard_silu`; both spellings are in kiln). Keras's others (celu, glu,
# hard_tanh, log_sigmoid, sparsemax, ...) are refused.
ACTIVATIONS = {
    "linear", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "softplus", "softsign",
    "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "exponential", "silu",
    "swish", "hard_silu", "hard_swish", "mish",
}


def activation(v):
    if v is None:
        return '"linear"'
    if isinstance(v, dict):
        name, _ = class_and_config(v, "activation")
        # A registered Keras activation serialized as an object (rare): use its name.
        v = name
    if not isinstance(v, str):
        raise Unexpressible(f"cannot read the activation {v!r}")
    if v not in ACTIVATIONS:
        raise Unexpressible(
            f"`{v}` is not one of kiln's activations ({', '.join(sorted(ACTIVATIONS))})"
        )
    return rust_string(v)


REGULARIZERS = {"L1": "l1", "L2": "l2", "L1L2": "l1_l2", "l1": "l1", "l2": "l2", "l1_l2": "l1_l2"}


def regularizer(v):
    if v is None:
        return "None"
    name, config = class_and_config(v, "regularizer")
    snake = REGULARIZERS.get(name)
    if snake is None:
        raise Unexpressible(f"`{name}` is not one of kiln's regularizers (L1, L2, L1L2)")
    if snake == "l1_l2":
        return call(
            "l1_l2",
            l1=non_negative(config.get("l1", 0.0)),
            l2=non_negative(config.get("l2", 0.0)),
        )
    return call(snake, non_negative(config.get(snake, 0.01)))


def constraint_axis(config, name):
    axis = config.get("axis", 0)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise Unexpressible(f"`{name}` over several axes {list(axis)} is not in kiln")
        axis = axis[0]
    return integer(axis)


def constraint(v):
    if v is None:
        return "None"
    name, config = class_and_config(v, "constraint")

    def optional(**args):
        """Keyword arguments without those equal to the DSL's defaults."""
        defaults = {"axis": "0", "min_value": "0.0", "max_value": "1.0", "rate": "1.0"}
        return {k: x for k, x in args.items() if defaults.get(k) != x}

    if name in ("NonNeg", "non_neg"):
        return "non_neg()"
    if name in ("MaxNorm", "max_norm"):
        return call(
            "max_norm",
            non_negative(config.get("max_value", 2.0)),
            **optional(axis=constraint_axis(config, name)),
        )
    if name in ("UnitNorm", "unit_norm"):
        return call("unit_norm", **optional(axis=constraint_axis(config, name)))
    if name in ("MinMaxNorm", "min_max_norm"):
        return call(
            "min_max_norm",
            **optional(
                min_value=non_negative(config.get("min_value", 0.0)),
                max_value=non_negative(config.get("max_value", 1.0)),
                rate=non_negative(config.get("rate", 1.0)),
                axis=constraint_axis(config, name),
            ),
        )
    raise Unexpressible(
        f"`{name}` is not one of kiln's constraints (MaxNorm, MinMaxNorm, NonNeg, UnitNorm)"
    )


# Initializers only decide the weights of `Net::new(seed)`, which an import overwrites with
# `load_weights`; they matter when the model is retrained in kiln from scratch. So they are
# written when the DSL has them (the usual case; Keras's per-initializer `seed` is dropped,
# since kiln seeds every weight from `Model::new(seed)`), and an initializer the DSL lacks is
# left out with a note in model.rs instead of stopping the export.
INITIALIZERS = {
    "Zeros": "zeros", "Ones": "ones", "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal", "HeUniform": "he_uniform", "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform", "LecunNormal": "lecun_normal",
}


def initializer(v):
    try:
        name, config = class_and_config(v, "initializer")
    except Unexpressible as e:
        raise Omitted(str(e))
    unknown = [k for k, x in config.items() if k != "seed" and x is not None]
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if name in INITIALIZERS or snake in INITIALIZERS.values():
        if unknown:
            raise Omitted(f"initializer `{name}` with {config} is not in kiln")
        return rust_string(INITIALIZERS.get(name, snake))
    # Arguments of the DSL's initializer calls, with their defaults (left out when equal).
    known = {
        "Constant": {"value": 0.0},
        "RandomUniform": {"minval": -0.05, "maxval": 0.05},
        "RandomNormal": {"mean": 0.0, "stddev": 0.05},
        "TruncatedNormal": {"mean": 0.0, "stddev": 0.05},
        "Orthogonal": {"gain": 1.0},
        "VarianceScaling": {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"},
    }
    camel = {k.lower(): k for k in known}.get(name.replace("_", "").lower())
    if camel is None or any(k not in known[camel] for k in unknown):
        raise Omitted(f"initializer `{name}` is not in kiln")
    try:
        args = {}
        for key, default in known[camel].items():
            value = config.get(key, default)
            render = rust_string if isinstance(default, str) else number
            if not isinstance(value, str) and isinstance(default, str):
                raise Unexpressible(f"cannot read `{key}` = {value!r}")
            if render(value) != render(default):
                args[key] = render(value)
    except Unexpressible as e:
        raise Omitted(f"initializer `{name}`: {e}")
    return call(camel, **args)


# ---------------------------------------------------------------------------------------
# Layers: the converter table.
# ---------------------------------------------------------------------------------------

_MISSING = object()

# Config keys every layer has, handled by the driver (name, dtype) or noted (trainable).
_BASE_KEYS = {"name", "trainable", "dtype"}


class LayerConfig:
    """A layer's `get_config()`, read argument by argument into DSL text.

    Converters call `positional` / `keyword` for each argument kiln knows and end with
    `finish()`. A keyword equal to Keras's default is left out. A value the DSL cannot
    express becomes a problem; so does any config key no converter read whose value is not
    None or False (an argument kiln does not have, like `activity_regularizer` on a layer
    other than Dense).
    """

    def __init__(self, layer, class_name, input_shape):
        self.layer = layer
        self.class_name = class_name
        self.input_shape = input_shape  # per sample, or None when unknown
        self.config = dict(layer.get_config())
        self.read = set(_BASE_KEYS)
        self.args = []
        self.problems = []
        self.notes = []
        self.name = None  # the name to write, when not the layer's own

    def get(self, key, default=_MISSING):
        self.read.add(key)
        if key in self.config:
            return self.config[key]
        if default is _MISSING:
            raise Unexpressible(f"its config has no `{key}`")
        return default

    def problem(self, message):
        self.problems.append(message)

    def positional(self, key, render):
        try:
            self.args.append(render(self.get(key)))
        except Unexpressible as e:
            self.problem(f"argument `{key}`: {e}")

    def keyword(self, key, render, default):
        """`key = value` unless the value renders as Keras's default does."""
        try:
            value = self.get(key, default)
            text = render(value)
            if text != render(default):
                self.args.append(f"{key} = {text}")
        except Unexpressible as e:
            self.problem(f"argument `{key}`: {e}")
        except Omitted as e:
            self.notes.append(
                f"`{key}` left out ({e}): `new(seed)` uses Keras's default initializer "
                "instead; loaded weights do not depend on it"
            )

    def finish(self):
        """The DSL call text (with `name` last), or the list of problems."""
        for key in sorted(set(self.config) - self.read):
            value = self.config[key]
            if value is not None and value is not False:
                self.problem(
                    f"argument `{key} = {shown(value)}`: kiln's `{self.class_name}` has no such "
                    "argument"
                )
        if self.problems:
            return self.problems
        args = self.args + [f"name = {rust_string(self.name or self.layer.name)}"]
        return f"{self.class_name}({', '.join(args)})"


def shown(value):
    """A config value for a message: `L2(l2=0.01)` for a serialized Keras object."""
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        config = value.get("config")
        if isinstance(config, dict):
            args = ", ".join(f"{k}={v!r}" for k, v in config.items())
            return f"{value['class_name']}({args})"
        return value["class_name"]
    return repr(value)


def dense(c):
    c.positional("units", integer)
    c.keyword("activation", activation, "linear")
    c.keyword("use_bias", boolean, True)
    c.keyword("kernel_initializer", initializer, "glorot_uniform")
    c.keyword("bias_initializer", initializer, "zeros")
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
        c.keyword(key, regularizer, None)
    for key in ("kernel_constraint", "bias_constraint"):
        c.keyword(key, constraint, None)
    return c.finish()


def activation_layer(c):
    c.positional("activation", activation)
    return c.finish()


def dropout(c):
    def rate(v):
        text = number(v)
        if not 0.0 <= float(v) < 1.0:
            raise Unexpressible(f"kiln requires 0 <= rate < 1, found {text}")
        return text

    def noise_shape(v):
        if v is None:
            return "None"
        if isinstance(v, (list, tuple)) and v and v[0] not in (None, 1):
            raise Unexpressible(
                f"a fixed batch size ({v[0]}) in {tuple(v)} is not in kiln; use None or 1"
            )
        return int_tuple(v, allow_none=True)

    def seed(v):
        return "None" if v is None else integer(v)

    c.positional("rate", rate)
    c.keyword("noise_shape", noise_shape, None)
    c.keyword("seed", seed, None)
    return c.finish()


def flatten(c):
    fmt = c.get("data_format", None)
    rank = len(c.input_shape) if c.input_shape is not None else None
    if fmt not in (None, "channels_last") and rank != 1:
        c.problem(f"`data_format = {fmt!r}`: kiln flattens channels-last only")
    return c.finish()


def reshape(c):
    c.positional("target_shape", int_tuple)
    return c.finish()


def permute(c):
    c.positional("dims", int_tuple)
    return c.finish()


def repeat_vector(c):
    c.positional("n", integer)
    return c.finish()


def activity_regularization(c):
    c.keyword("l1", non_negative, 0.0)
    c.keyword("l2", non_negative, 0.0)
    return c.finish()


def masking(c):
    c.keyword("mask_value", number, 0.0)
    return c.finish()


def leaky_relu(c):
    c.keyword("negative_slope", non_negative, 0.3)
    return c.finish()


def prelu(c):
    c.keyword("alpha_initializer", initializer, "zeros")
    c.keyword("alpha_regularizer", regularizer, None)
    c.keyword("alpha_constraint", constraint, None)
    c.keyword("shared_axes", lambda v: "None" if v is None else int_list(v), None)
    return c.finish()


def elu(c):
    c.keyword("alpha", number, 1.0)
    return c.finish()


def relu(c):
    c.keyword("max_value", lambda v: "None" if v is None else non_negative(v), None)
    c.keyword("negative_slope", non_negative, 0.0)
    c.keyword("threshold", non_negative, 0.0)
    return c.finish()


def softmax(c):
    def axis(v):
        if isinstance(v, (list, tuple)):
            if len(v) != 1:
                raise Unexpressible(f"a softmax over several axes {tuple(v)} is not in kiln")
            v = v[0]
        text = integer(v)
        rank = len(c.input_shape) if c.input_shape is not None else None
        if int(v) == 0 or (rank is not None and int(v) == -rank - 1):
            raise Unexpressible("a softmax over the batch axis is not in kiln")
        return text

    c.keyword("axis", axis, -1)
    return c.finish()


def choice(*allowed):
    """A string argument that must be one of `allowed` (as Keras stores it)."""

    def render(v):
        if v not in allowed:
            raise Unexpressible(f"expected one of {', '.join(map(repr, allowed))}, found {v!r}")
        return rust_string(v)

    return render


def pairs(v):
    """`((top, bottom), (left, right))` (ZeroPadding2D's `padding`, Cropping2D's `cropping`)."""
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise Unexpressible(f"expected two pairs of integers, found {v!r}")
    return "(" + ", ".join(int_tuple(p) for p in v) + ")"


def pooling(c):
    # Keras stores `pool_size` and `strides` as tuples; `strides` equal to the pool is the
    # DSL's default (None).
    c.positional("pool_size", int_tuple)
    c.keyword("strides", int_tuple, c.config.get("pool_size"))
    c.keyword("padding", choice("valid", "same"), "valid")
    c.keyword("data_format", choice("channels_last", "channels_first"), "channels_last")
    return c.finish()


def global_pooling(c):
    c.keyword("data_format", choice("channels_last", "channels_first"), "channels_last")
    c.keyword("keepdims", boolean, False)
    return c.finish()


def zero_padding(c):
    # Keras stores `(left, right)` (1D) or `((top, bottom), (left, right))` (2D).
    c.positional("padding", int_tuple if c.class_name.endswith("1D") else pairs)
    c.keyword("data_format", choice("channels_last", "channels_first"), "channels_last")
    return c.finish()


def up_sampling(c):
    if c.class_name.endswith("1D"):
        c.positional("size", integer)
        return c.finish()
    c.positional("size", int_tuple)
    c.keyword("data_format", choice("channels_last", "channels_first"), "channels_last")
    c.keyword("interpolation", choice("nearest"), "nearest")
    return c.finish()


def cropping(c):
    if c.class_name.endswith("1D"):
        c.positional("cropping", int_tuple)
        return c.finish()
    c.positional("cropping", pairs)
    c.keyword("data_format", choice("channels_last", "channels_first"), "channels_last")
    return c.finish()


def default_only(default, why, same=()):
    """An argument kiln accepts at Keras's default only (or a value in `same`, which means
    the same); `why` says what the others need."""

    def render(v):
        if v != default and v not in same:
            raise Unexpressible(f"{shown(v)} is not supported: {why}")
        return repr(default)

    return render


def normalization_axis(c, allow_list):
    """`axis` of BatchNormalization (one integer) or LayerNormalization (Keras saves a list,
    `[-1]`; one entry is written as the integer)."""

    def render(v):
        items = list(v) if isinstance(v, (list, tuple)) else [v]
        if len(items) > 1 and not allow_list:
            raise Unexpressible(f"expected one axis, found {v!r}")
        rank = len(c.input_shape) if c.input_shape is not None else None
        for a in items:
            integer(a)
            if int(a) == 0 or (rank is not None and int(a) == -rank - 1):
                raise Unexpressible("normalising over the batch axis is not in kiln")
        return integer(items[0]) if len(items) == 1 else int_list(items)

    return render


def normalization_weights(c, initializers):
    for key, default in initializers:
        c.keyword(key, initializer, default)
    for key in ("beta_regularizer", "gamma_regularizer"):
        c.keyword(key, regularizer, None)
    for key in ("beta_constraint", "gamma_constraint"):
        c.keyword(key, constraint, None)


def batch_normalization(c):
    c.keyword("axis", normalization_axis(c, allow_list=False), -1)
    c.keyword("momentum", number, 0.99)
    c.keyword("epsilon", number, 1e-3)
    c.keyword("center", boolean, True)
    c.keyword("scale", boolean, True)
    normalization_weights(
        c,
        [
            ("beta_initializer", "zeros"),
            ("gamma_initializer", "ones"),
            ("moving_mean_initializer", "zeros"),
            ("moving_variance_initializer", "ones"),
        ],
    )
    renorm = "kiln has no batch renormalization"
    c.keyword("renorm", default_only(False, renorm), False)
    # Keras stores `{}` (no clipping) when `renorm` is on.
    c.keyword("renorm_clipping", default_only(None, renorm, same=({},)), None)
    c.keyword("renorm_momentum", default_only(0.99, renorm), 0.99)
    c.keyword("synchronized", default_only(False, "kiln trains on one device"), False)
    return c.finish()


def layer_normalization(c):
    c.keyword("axis", normalization_axis(c, allow_list=True), -1)
    c.keyword("epsilon", number, 1e-3)
    c.keyword("center", boolean, True)
    c.keyword("scale", boolean, True)
    normalization_weights(c, [("beta_initializer", "zeros"), ("gamma_initializer", "ones")])
    c.keyword("rms_scaling", default_only(False, "deprecated in Keras 3 and not in kiln"), False)
    return c.finish()


def conv(c):
    """Conv1D / Conv2D. Keras stores `kernel_size`, `strides` and `dilation_rate` as tuples
    and `data_format` resolved (`channels_last` unless the model says otherwise)."""
    ones = (1,) * (1 if c.class_name == "Conv1D" else 2)

    def one_of(*allowed):
        def render(v):
            if v not in allowed:
                raise Unexpressible(f"expected one of {', '.join(map(repr, allowed))}, found {v!r}")
            return rust_string(v)

        return render

    paddings = ("valid", "same", "causal") if c.class_name == "Conv1D" else ("valid", "same")
    c.positional("filters", integer)
    c.positional("kernel_size", int_tuple)
    c.keyword("strides", int_tuple, ones)
    c.keyword("padding", one_of(*paddings), "valid")
    c.keyword("data_format", one_of("channels_last", "channels_first"), "channels_last")
    c.keyword("dilation_rate", int_tuple, ones)
    c.keyword("groups", integer, 1)
    c.keyword("activation", activation, "linear")
    c.keyword("use_bias", boolean, True)
    c.keyword("kernel_initializer", initializer, "glorot_uniform")
    c.keyword("bias_initializer", initializer, "zeros")
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
        c.keyword(key, regularizer, None)
    for key in ("kernel_constraint", "bias_constraint"):
        c.keyword(key, constraint, None)
    return c.finish()


def conv_variant(c):
    """DepthwiseConv2D, SeparableConv2D, Conv2DTranspose: Conv2D's arguments (no `groups`)
    with each one's own: `depth_multiplier`, the `depthwise_*` / `pointwise_*` weight
    arguments, `output_padding` (None or a tuple)."""
    cls = c.class_name
    kernels = {
        "DepthwiseConv2D": ("depthwise",),
        "SeparableConv2D": ("depthwise", "pointwise"),
        "Conv2DTranspose": ("kernel",),
    }[cls]
    if cls != "DepthwiseConv2D":
        c.positional("filters", integer)
    c.positional("kernel_size", int_tuple)
    c.keyword("strides", int_tuple, (1, 1))
    c.keyword("padding", choice("valid", "same"), "valid")
    if cls == "Conv2DTranspose":
        c.keyword("output_padding", lambda v: "None" if v is None else int_tuple(v), None)
    c.keyword("data_format", choice("channels_last", "channels_first"), "channels_last")
    c.keyword("dilation_rate", int_tuple, (1, 1))
    if cls != "Conv2DTranspose":
        c.keyword("depth_multiplier", integer, 1)
    c.keyword("activation", activation, "linear")
    c.keyword("use_bias", boolean, True)
    for k in kernels:
        c.keyword(f"{k}_initializer", initializer, "glorot_uniform")
    c.keyword("bias_initializer", initializer, "zeros")
    for key in kernels + ("bias", "activity"):
        c.keyword(f"{key}_regularizer", regularizer, None)
    for key in kernels + ("bias",):
        c.keyword(f"{key}_constraint", constraint, None)
    return c.finish()

def python_code(c):
    return [
        "a Lambda layer holds Python code, which kiln cannot import; write the function as a "
        "Rust closure in the DSL's `Lambda` by hand"
    ]


# How a layer treats a Keras mask arriving with its input, as kiln's DSL does
# (macros/src/layers/*.rs `mask_rule`): passes it on, refuses it (a compile error in kiln),
# produces one (Masking), or uses it (Softmax: refused here, see MASK_USED), or uses it and
# outputs none (GlobalAveragePooling1D, channels last).
PASS, REFUSE, PRODUCE, USE, CONSUME = "pass", "refuse", "produce", "use", "consume"
# Uses the mask and passes it on only with `return_sequences` (SimpleRNN, LSTM, GRU).
RECURRENT = "recurrent"

def embedding(c):
    c.positional("input_dim", integer)
    c.positional("output_dim", integer)
    c.keyword("embeddings_initializer", initializer, "random_uniform")
    c.keyword("embeddings_regularizer", regularizer, None)
    c.keyword("embeddings_constraint", constraint, None)
    c.keyword("mask_zero", boolean, False)
    return c.finish()


def recurrent(c):
    """SimpleRNN, LSTM and GRU (weights `<name>/<cell>/kernel`, ... match kiln's)."""
    cls = c.class_name
    c.positional("units", integer)
    c.keyword("activation", activation, "tanh")
    if cls != "SimpleRNN":
        c.keyword("recurrent_activation", activation, "sigmoid")
    c.keyword("use_bias", boolean, True)
    c.keyword("kernel_initializer", initializer, "glorot_uniform")
    c.keyword("recurrent_initializer", initializer, "orthogonal")
    c.keyword("bias_initializer", initializer, "zeros")
    if cls == "LSTM":
        c.keyword("unit_forget_bias", boolean, True)
    for key in ("kernel", "recurrent", "bias", "activity"):
        c.keyword(f"{key}_regularizer", regularizer, None)
    for key in ("kernel", "recurrent", "bias"):
        c.keyword(f"{key}_constraint", constraint, None)
    c.keyword("dropout", number, 0.0)
    c.keyword("recurrent_dropout", number, 0.0)
    c.keyword("return_sequences", boolean, False)
    c.keyword("go_backwards", boolean, False)
    # kiln's checks decide whether the model can carry the state (a fixed batch size, every
    # layer with a one-timestep form); Keras itself refuses it without a fixed batch size.
    c.keyword("stateful", boolean, False)
    if cls == "GRU":
        c.keyword("reset_after", boolean, True)
    if c.get("return_state", False):
        c.problem("argument `return_state = True`: not supported (kiln models have one output)")
    c.get("unroll", False)  # the same numbers either way
    c.get("seed", None)  # dropout's seed; training draws from kiln's own
    return c.finish()


def wrapped(c, layer, input_shape, implied=(), name=None):
    """The DSL call of a layer inside a wrapper, from its own converter; `implied` are config
    keys the wrapper sets itself (Bidirectional's `zero_output_for_mask`); `name` replaces
    the layer's own."""
    cls = keras_class(layer)
    kind = CONVERTERS.get(cls)
    if kind is None:
        raise Unexpressible(f"kiln has no `{cls}` layer to wrap")
    inner = LayerConfig(layer, cls, input_shape)
    inner.read.update(implied)
    inner.name = name
    result = kind.convert(inner)
    if isinstance(result, list):
        raise Unexpressible(f"its `{cls}`: " + "; ".join(result))
    c.notes.extend(f"its `{cls}`: {n}" for n in inner.notes)
    return result


def bidirectional(c):
    """The wrapped layer under the name it had before Keras renamed it (`lstm`: Keras and
    kiln name the forward layer `forward_lstm` and their automatic backward copy
    `backward_lstm`; written as `forward_lstm`, the copy would be `backward_forward_lstm`),
    and the backward layer only when it is not that copy."""
    c.read.update(("layer", "backward_layer", "return_sequences"))
    implied = ("zero_output_for_mask",)  # forced to `return_sequences`, as kiln does
    forward, backward = c.layer.forward_layer, c.layer.backward_layer
    base = forward.name[len("forward_"):] if forward.name.startswith("forward_") else forward.name
    try:
        c.args.append(wrapped(c, forward, c.input_shape, implied, name=base))
    except Unexpressible as e:
        c.problem(f"argument `layer`: {e}")
    if c.get("merge_mode", "concat") is None:
        c.problem("argument `merge_mode = None`: kiln models have one output")
    else:
        c.keyword("merge_mode", choice("concat", "sum", "mul", "ave"), "concat")
    if backward.name != f"backward_{base}":
        try:
            c.args.append("backward_layer = " + wrapped(c, backward, c.input_shape, implied))
        except Unexpressible as e:
            c.problem(f"argument `backward_layer`: {e}")
    # The mask rule reads `return_sequences` (RECURRENT), which is the wrapped layer's.
    c.config["return_sequences"] = forward.return_sequences
    return c.finish()


def time_distributed(c):
    c.read.add("layer")
    step = None if c.input_shape is None else tuple(c.input_shape)[1:]
    try:
        c.args.append(wrapped(c, c.layer.layer, step))
    except Unexpressible as e:
        c.problem(f"argument `layer`: {e}")
    return c.finish()


Kind = namedtuple("Kind", ["convert", "mask"])

CONVERTERS = {
    "Dense": Kind(dense, PASS),
    "Activation": Kind(activation_layer, PASS),
    "Dropout": Kind(dropout, PASS),
    "Flatten": Kind(flatten, REFUSE),
    "Reshape": Kind(reshape, REFUSE),
    "Permute": Kind(permute, REFUSE),
    "RepeatVector": Kind(repeat_vector, REFUSE),
    "ActivityRegularization": Kind(activity_regularization, PASS),
    "Masking": Kind(masking, PRODUCE),
    "LeakyReLU": Kind(leaky_relu, PASS),
    "PReLU": Kind(prelu, PASS),
    "ELU": Kind(elu, PASS),
    "ReLU": Kind(relu, PASS),
    "Softmax": Kind(softmax, USE),
    "Conv1D": Kind(conv, REFUSE),
    "Conv2D": Kind(conv, REFUSE),
    "DepthwiseConv2D": Kind(conv_variant, REFUSE),
    "SeparableConv2D": Kind(conv_variant, REFUSE),
    "Conv2DTranspose": Kind(conv_variant, REFUSE),
    "BatchNormalization": Kind(batch_normalization, PASS),
    "LayerNormalization": Kind(layer_normalization, PASS),
    "Lambda": Kind(python_code, REFUSE),
    "MaxPooling1D": Kind(pooling, REFUSE),
    "MaxPooling2D": Kind(pooling, REFUSE),
    "AveragePooling1D": Kind(pooling, REFUSE),
    "AveragePooling2D": Kind(pooling, REFUSE),
    "GlobalMaxPooling1D": Kind(global_pooling, REFUSE),
    "GlobalMaxPooling2D": Kind(global_pooling, REFUSE),
    "GlobalAveragePooling1D": Kind(global_pooling, CONSUME),
    "GlobalAveragePooling2D": Kind(global_pooling, REFUSE),
    "ZeroPadding1D": Kind(zero_padding, REFUSE),
    "ZeroPadding2D": Kind(zero_padding, REFUSE),
    "UpSampling1D": Kind(up_sampling, REFUSE),
    "UpSampling2D": Kind(up_sampling, REFUSE),
    "Cropping1D": Kind(cropping, REFUSE),
    "Cropping2D": Kind(cropping, REFUSE),
    "Embedding": Kind(embedding, PRODUCE),
    "SimpleRNN": Kind(recurrent, RECURRENT),
    "LSTM": Kind(recurrent, RECURRENT),
    "GRU": Kind(recurrent, RECURRENT),
    "Bidirectional": Kind(bidirectional, RECURRENT),
    "TimeDistributed": Kind(time_distributed, PASS),
}

# Why a layer that uses the mask is refused after Masking: Keras 3 hands `Softmax` the
# mask shaped (batch, timesteps) and broadcasts it against (batch, timesteps, features) from
# the last axis, so Keras fails, or (when the sizes happen to line up) masks the wrong axis;
# kiln masks per position. The two would not compute the same numbers.
MASK_USED = (
    "Keras 3 broadcasts the (batch, timesteps) mask of `{mask}` against this layer's input "
    "from the last axis (an error, or the wrong axis when the sizes line up), while kiln "
    "masks per position: the outputs would differ; use a Dense activation instead, or remove "
    "the Masking layer"
)


# ---------------------------------------------------------------------------------------
# The model: loading, the chain of layers, weights.
# ---------------------------------------------------------------------------------------


class Failure(Exception):
    """The export stops; `problems` lists every reason."""

    def __init__(self, problems):
        super().__init__("\n".join(problems))
        self.problems = problems


Step = namedtuple("Step", ["layer", "scopes"])  # a leaf layer, and the models around it


def keras_class(layer):
    return getattr(layer, "_kiln_keras_class", type(layer).__name__)


def describe(layer):
    return f"layer `{layer.name}` ({keras_class(layer)})"


@contextlib.contextmanager
def lambdas_as_placeholders():
    """Loads `Lambda` layers as identity placeholders instead of their Python code.

    Keras's safe mode refuses to load a Lambda holding a Python lambda, which would stop
    the whole analysis at the first Lambda; running the code (safe_mode=False) is not an
    option for a tool that reads files from anywhere. The placeholder keeps the layer's
    name and declared `output_shape` so the rest of the model loads and every problem can be
    listed; the Lambda itself is always refused. If the Lambda changed the shape without
    declaring it, the model does not load and `lambda_names_in_file` names the Lambdas.
    """
    import keras

    class PythonCode(keras.layers.Layer):
        _kiln_keras_class = "Lambda"

        def __init__(self, output_shape=None, **kwargs):
            base = {k: kwargs[k] for k in ("name", "trainable", "dtype") if k in kwargs}
            super().__init__(**base)
            declared = isinstance(output_shape, (list, tuple))
            self._declared = tuple(output_shape) if declared else None

        def call(self, x):
            return x

        def compute_output_shape(self, shape):
            return shape if self._declared is None else (shape[0],) + self._declared

        def get_config(self):
            return {"name": self.name, "trainable": self.trainable}

    lambda_class = keras.layers.Lambda
    original = lambda_class.__dict__.get("from_config")

    def from_config(cls, config, custom_objects=None, safe_mode=None):
        return PythonCode(**{k: v for k, v in config.items() if k in ("name", "output_shape")})

    lambda_class.from_config = classmethod(from_config)
    try:
        yield
    finally:
        if original is not None:
            lambda_class.from_config = original
        else:
            del lambda_class.from_config


def lambda_names_in_file(path):
    """Names of the Lambda layers in a .keras or .h5 file's config, without loading it."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
        else:
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception:
        return []
    names = []

    def walk(v):
        if isinstance(v, dict):
            if v.get("class_name") == "Lambda" and isinstance(v.get("config"), dict):
                names.append(v["config"].get("name", "?"))
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(config)
    return names


def load(path):
    import keras

    try:
        with lambdas_as_placeholders():
            return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        message = " ".join(str(e).split()) or type(e).__name__
        problems = [
            f"layer `{name}` (Lambda): a Lambda layer holds Python code, which kiln cannot import"
            for name in lambda_names_in_file(path)
        ]
        problems.append(f"Keras could not load {path}: {message[:600]}")
        raise Failure(problems)


def is_model(layer):
    import keras

    return isinstance(layer, keras.Model)


def chain(model, scopes, problems):
    """The model's leaf layers in order, nested models flattened; structural problems
    (several inputs or outputs, branches, shared layers, call arguments) go to `problems`."""
    import keras

    scopes = scopes + [model.name]
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
    elif type(model).__name__ == "Functional" or hasattr(model, "_nodes_by_depth"):
        layers = functional_chain(model, problems)
    else:
        problems.append(
            f"model `{model.name}` is a subclassed `{type(model).__name__}`; kiln imports "
            "Sequential models and Functional models that are a single chain"
        )
        return []
    steps = []
    for layer in layers:
        if is_model(layer):
            steps.extend(chain(layer, scopes, problems))
        else:
            steps.append(Step(layer, scopes))
    return steps


def functional_chain(model, problems):
    """Walks a Functional model from its output back to its input: every node must take one
    tensor, the output of the node before it (plus, maybe, the mask Keras derived)."""
    import keras

    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        problems.append(
            f"model `{model.name}` has {len(inputs)} inputs and {len(outputs)} outputs; kiln "
            "models have one of each"
        )
        return fallback_layers(model)
    ordered, masks, masking_inputs = [], [], set()
    tensor = outputs[0]
    start = id(inputs[0])
    while id(tensor) != start:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            problems.append(f"model `{model.name}`: cannot follow its graph")
            return fallback_layers(model)
        op, node_index, _ = history
        node = op._inbound_nodes[node_index]
        if type(op).__name__ == "InputLayer":
            problems.append(
                f"model `{model.name}`: reaches input `{op.name}` that is not its input"
            )
            return fallback_layers(model)
        args = list(node.arguments.args)
        kwargs = dict(node.arguments.kwargs)
        # A layer whose `call` takes `mask` gets the mask Keras derived from its input as a
        # keyword: a tensor computed by plain operations (`not_equal`, `any`) from a Masking
        # layer's input, saved as nodes of the graph. Checked below, once the chain is known.
        mask = kwargs.pop("mask", None)
        count = len(node.arguments.keras_tensors) - isinstance(mask, keras.KerasTensor)
        if count != 1 or not isinstance(args[0] if args else None, keras.KerasTensor):
            problems.append(
                f"{describe(op)} takes {count} tensors: a branch or a merge; kiln models are a "
                "single chain"
            )
            return fallback_layers(model)
        # `training=True` would run Dropout at inference; other arguments kiln has no way to
        # pass. Keras records `training=None` and the like on nested models' calls.
        extra = {
            k: v
            for k, v in kwargs.items()
            if v is not None and not (k == "training" and v is False)
        }
        if extra or len(args) != 1:
            shown = ", ".join(f"{k}={v!r}" for k, v in extra.items()) or "extra arguments"
            problems.append(
                f"{describe(op)} is called with {shown}; kiln calls layers on their input alone"
            )
        if len(node.outputs) != 1:
            problems.append(f"{describe(op)} has {len(node.outputs)} outputs; kiln layers have one")
        if mask is not None:
            masks.append((op, mask))
        if type(op).__name__ == "Masking":
            masking_inputs.add(id(args[0]))
        ordered.append(op)
        tensor = args[0]
    ordered.reverse()
    for op, mask in masks:
        if mask_root(mask) not in masking_inputs:
            problems.append(
                f"{describe(op)} is called with a mask that does not come from a Masking layer "
                "of the chain; kiln takes masks only from Masking layers"
            )
    return ordered


def mask_root(mask):
    """The id of the tensor a derived mask was computed from, through plain operations that
    each take one tensor (`any(not_equal(x, value))` -> x); None if it is not derived so."""
    import keras

    tensor = mask
    while True:
        if not isinstance(tensor, keras.KerasTensor):
            return None
        history = getattr(tensor, "_keras_history", None)
        if history is None or isinstance(history[0], keras.layers.Layer):
            return id(tensor)
        node = history[0]._inbound_nodes[history[1]]
        parents = list(node.arguments.keras_tensors)
        if len(parents) != 1:
            return None
        tensor = parents[0]


def fallback_layers(model):
    """The layers of a model that is not a chain, to check them one by one all the same."""
    return [l for l in model.layers if type(l).__name__ != "InputLayer"]


def weight_suffix(path, scopes, layer_name):
    """`dense/kernel` from Keras's path, which may start with the names of the model and of
    nested models (Keras adds them or not depending on how the model was built or loaded):
    the last position of the layer's name that only scope names precede."""
    parts = path.split("/")
    best = None
    for i, part in enumerate(parts[:-1]):
        if part == layer_name and is_subsequence(parts[:i], scopes):
            best = i
    if best is None:
        return None
    return "/".join(parts[best:])


def is_subsequence(items, of):
    it = iter(of)
    return all(any(x == y for y in it) for x in items)


def wrapped_layers(layer):
    """The layers a wrapper holds (Bidirectional's two, TimeDistributed's one)."""
    cls = keras_class(layer)
    if cls == "Bidirectional":
        return [layer.forward_layer, layer.backward_layer]
    if cls == "TimeDistributed":
        return [layer.layer]
    return []


def kiln_weight_names(step):
    """(variable, kiln's name or None) for each weight of a leaf layer: `dense/kernel`; a
    wrapper's under its own name and its inner layer's,
    `bidirectional/forward_lstm/lstm_cell/kernel`, `time_distributed/dense/kernel`. Keras
    puts the wrapper's name in those paths when it builds the model in a name scope, but not
    when it loads a saved one (keras 3.15: `forward_lstm/lstm_cell/kernel`), so the inner
    layer's part is read from the path and the wrapper's name added."""
    layer = step.layer
    owner = {id(v): inner for inner in wrapped_layers(layer) for v in layer_weights(inner)}
    out = []
    for v in layer_weights(layer):
        inner = owner.get(id(v))
        if inner is None:
            out.append((v, weight_suffix(v.path, step.scopes, layer.name)))
            continue
        suffix = weight_suffix(v.path, step.scopes + [layer.name], inner.name)
        out.append((v, None if suffix is None else f"{layer.name}/{suffix}"))
    return out


def dtype_name(layer):
    policy = getattr(layer, "dtype_policy", None)
    return getattr(policy, "name", None) or str(getattr(layer, "dtype", "float32"))


def layer_weights(layer):
    """A layer's weights; none for a plain operation (`keras.ops.relu` in a Functional)."""
    return list(getattr(layer, "weights", []))


def per_sample(shape):
    return tuple(shape[1:])


# The dtype names kiln's `Input(dtype = ...)` takes (macros/src/layers/input.rs). kiln
# computes in float32 whatever the input's dtype, as Keras's float32 layers do: they cast a
# float input to float32, and `Embedding` takes int32/int64 ids as they are (others cast to
# int32), which kiln's slice APIs take as whole f32 values.
INPUT_DTYPES = {
    "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
    "uint16", "uint32", "uint64",
}


def input_call(input_tensor, first, problems):
    """(the DSL's `Input(...)` text or None, the per-sample shape or None) for the model's
    input: `shape` with `None` timesteps when Keras's are, `batch_size` when Keras's batch
    size is fixed (`batch_shape = (2, None, 3)`; what `stateful = True` needs), `dtype` when
    it is not float32 (`"int32"` ids before an `Embedding`). `first` is the first layer's
    class. Whether a model with `None` timesteps or a stateful layer can run one timestep at
    a time is kiln's compile check, which names the layer that cannot."""
    input_layer = input_tensor._keras_history[0]
    where = f"input `{input_layer.name}`"
    batch = input_tensor.shape[0]
    shape = per_sample(input_tensor.shape)
    ok = True
    unknown = [i for i, d in enumerate(shape) if d is None]
    if not 1 <= len(shape) <= 4:
        problems.append(f"{where} has rank {len(shape)}; kiln takes ranks 1 to 4")
        ok = False
    elif unknown and (unknown != [0] or len(shape) > 2):
        problems.append(
            f"{where} has unknown dimensions {tuple(shape)}; kiln takes `None` only as the "
            "timesteps of a sequence, `(None, features)`, or of the ids `(None,)` of a first "
            "`Embedding`, and fixes every other dimension at compile time"
        )
        ok = False
    elif unknown and len(shape) == 1 and first != "Embedding":
        problems.append(
            f"{where} has shape (None,): a rank-1 sequence of any length is integer ids, "
            f"which kiln takes only for a first `Embedding`, not for `{first}`; use "
            "(None, 1) for one feature per timestep"
        )
        ok = False
    dtype = str(getattr(input_tensor, "dtype", "float32"))
    if dtype not in INPUT_DTYPES:
        problems.append(
            f"{where} has dtype {dtype}; kiln takes float and integer inputs (and computes "
            "in float32)"
        )
        ok = False
    if getattr(input_tensor, "sparse", False) or getattr(input_tensor, "ragged", False):
        problems.append(f"{where} is sparse or ragged; kiln takes dense inputs")
        ok = False
    if not ok:
        return None, (shape if 1 <= len(shape) <= 4 and not unknown else None)
    args = [f"shape = {int_tuple(shape, allow_none=True)}"]
    if batch is not None:
        args.append(f"batch_size = {integer(batch)}")
    if dtype != "float32":
        args.append(f"dtype = {rust_string(dtype)}")
    args.append(f"name = {rust_string(input_layer.name)}")
    return f"Input({', '.join(args)})", shape


def convert(model):
    """(Input call text, [layer call text], {weight name: array}, Keras's weight paths,
    notes); raises Failure with every problem."""
    import numpy as np

    problems, notes = [], []
    if not getattr(model, "built", True) or not getattr(model, "inputs", None):
        raise Failure([f"model `{model.name}` has no input shape (it was saved unbuilt)"])

    steps = chain(model, [], problems)
    if not steps:
        problems.append(f"model `{model.name}` has no layers")

    # The input.
    input_tensor = model.inputs[0]
    first = keras_class(steps[0].layer) if steps else None
    input_text, shape = input_call(input_tensor, first, problems)

    # The layers, in order, with kiln's mask rules.
    calls = []
    mask_from = None
    seen, shared = set(), set()
    for step in steps:
        layer = step.layer
        where = describe(layer)
        cls = keras_class(layer)
        if id(layer) in seen:
            if id(layer) not in shared:
                shared.add(id(layer))
                problems.append(
                    f"{where} is called more than once (a shared layer); kiln layers each own "
                    "their weights"
                )
            shape = None
            continue
        seen.add(id(layer))
        kind = CONVERTERS.get(cls)
        if kind is None:
            problems.append(
                f"{where}: kiln has no `{cls}` layer (kiln has "
                f"{', '.join(sorted(k for k in CONVERTERS if k != 'Lambda'))})"
            )
        else:
            c = LayerConfig(layer, cls, shape)
            try:
                result = kind.convert(c)
            except Unexpressible as e:
                result = [str(e)]
            if isinstance(result, list):
                problems.extend(f"{where}: {p}" for p in result)
            else:
                calls.append(result)
            notes.extend(f"{where}: {n}" for n in c.notes)
            if kind.mask == PRODUCE:
                # Embedding makes a mask only with `mask_zero` (kiln: MaskRule::Refuse
                # without it).
                produces = cls != "Embedding" or c.config.get("mask_zero")
                mask_from = layer if produces else None
            elif mask_from is not None and kind.mask == REFUSE:
                problems.append(
                    f"{where} cannot take the mask produced by {describe(mask_from)} (kiln "
                    f"refuses it; Keras drops it with a warning); put `{cls}` before the "
                    "Masking layer, or remove the Masking layer"
                )
            elif kind.mask == RECURRENT and not c.config.get("return_sequences"):
                mask_from = None
            elif mask_from is not None and kind.mask == USE:
                problems.append(f"{where}: " + MASK_USED.format(mask=mask_from.name))
            elif mask_from is not None and kind.mask == CONSUME:
                if c.config.get("data_format") == "channels_first":
                    problems.append(
                        f"{where} cannot take the mask produced by {describe(mask_from)}: "
                        "channels first, Keras applies that (batch, features) mask along the "
                        "steps axis (kiln refuses it)"
                    )
                mask_from = None
        dtype = dtype_name(layer)
        if dtype != "float32":
            problems.append(f"{where} computes in {dtype}; kiln computes in float32")
        if not getattr(layer, "trainable", True) and layer_weights(layer):
            notes.append(f"{where} is frozen (trainable = False) in Keras; kiln's fit trains it")
        if shape is not None:
            try:
                shape = per_sample(layer.compute_output_shape((None,) + tuple(shape)))
            except Exception:
                shape = None

    # Weights: kiln's names are `<layer name>/<suffix>`, in layer order.
    tensors, names, named = {}, [], {}
    for step in steps:
        for v, suffix in kiln_weight_names(step):
            if suffix is None:
                problems.append(
                    f"{describe(step.layer)}: weight path `{v.path}` does not hold the "
                    "layer's name"
                )
                continue
            named[id(v)] = suffix
            if str(v.dtype) != "float32":
                if dtype_name(step.layer) == "float32":  # else reported with the layer
                    problems.append(
                        f"{describe(step.layer)}: weight `{suffix}` has dtype {v.dtype}; kiln "
                        "stores float32"
                    )
                continue
            if suffix in tensors:
                continue  # a shared layer, reported above
            names.append(suffix)
            value = np.asarray(v.numpy() if hasattr(v, "numpy") else v.value, dtype=np.float32)
            tensors[suffix] = np.ascontiguousarray(value)

    # The same names in the model's own order (Keras's `model.weights`): kiln's weights
    # follow the layers, so the two orders must agree.
    keras_paths = [v.path for v in model.weights]
    if not problems:
        listed = [named.get(id(v), v.path) for v in model.weights]
        if listed != names:
            problems.append(
                f"weight names {names} disagree with Keras's model.weights {keras_paths}"
            )

    if problems:
        raise Failure(problems)
    return input_text, calls, tensors, keras_paths, notes


# ---------------------------------------------------------------------------------------
# Output.
# ---------------------------------------------------------------------------------------

RUST_KEYWORDS = {
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
}


def model_rs(name, source, model, input_text, calls, notes):
    import keras

    comments = [
        f"Exported from Keras {keras.__version__} by tools/keras_export.py: model "
        f"`{model.name}` of {source}.",
        "Weights: weights.safetensors beside this file (`Model::load_weights`).",
    ]
    comments += [f"Note: {n}" for n in notes]
    # One line each, whatever characters the names hold.
    lines = ["// " + " ".join(c.split()) for c in comments]
    lines += ["kiln::model! {", f"    pub {name} = Sequential(["]
    lines += [f"        {text}," for text in [input_text] + calls]
    lines += ["    ]);", "}", ""]
    return "\n".join(lines)


def write_outputs(out_dir, files):
    """Writes {file name: bytes} into out_dir all together: into a temporary folder beside
    it first, then each file moved in; if a move fails, the files already moved are put back
    as they were, so out_dir never holds a mix of old and new files."""
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise Failure([f"{out_dir} exists and is not a folder"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    created_dir = False
    moved = []  # (target, backup or None)
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if not out_dir.exists():
            out_dir.mkdir()
            created_dir = True
        backups = tmp / "previous"
        backups.mkdir()
        for name in files:
            target = out_dir / name
            backup = None
            if target.exists():
                backup = backups / name
                os.replace(target, backup)
            moved.append((target, backup))
            os.replace(tmp / name, target)
    except BaseException:
        for target, backup in reversed(moved):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, target)
                else:
                    target.unlink()
        if created_dir:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export(model_path, out_dir, name):
    """Exports; returns the list of notes. Raises Failure with every problem."""
    import safetensors.numpy

    # Keras's own warnings (a mask dropped by Flatten, float64 truncated by JAX, ...) would
    # only repeat what the problems say.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load(str(model_path))
        input_text, calls, tensors, _, notes = convert(model)
    text = model_rs(name, pathlib.Path(model_path).name, model, input_text, calls, notes)
    weights = safetensors.numpy.save(tensors)
    write_outputs(out_dir, {"model.rs": text.encode(), "weights.safetensors": weights})
    return notes


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Export a Keras 3 model (.keras, or .h5 where Keras 3 loads it) to kiln: "
        "OUT_DIR/model.rs (a kiln::model! declaration) and OUT_DIR/weights.safetensors.",
    )
    parser.add_argument("model", help="the Keras model file (.keras or .h5)")
    parser.add_argument("out_dir", help="folder for model.rs and weights.safetensors")
    parser.add_argument(
        "--name", default="Net", help="the Rust type name of the model (default Net)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show Python tracebacks of internal errors"
    )
    args = parser.parse_args(argv)

    identifier = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.name)
    if not identifier or args.name in RUST_KEYWORDS or args.name == "_":
        print(f"error: --name {args.name!r} is not a Rust identifier", file=sys.stderr)
        return USAGE_ERROR
    if not os.path.isfile(args.model):
        print(f"error: {args.model}: no such file", file=sys.stderr)
        return USAGE_ERROR
    try:
        import keras  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError as e:
        print(f"error: {e}; run `pip install keras jax safetensors`", file=sys.stderr)
        return USAGE_ERROR

    try:
        notes = export(args.model, args.out_dir, args.name)
    except Failure as f:
        count = len(f.problems)
        plural = "s" if count != 1 else ""
        print(
            f"error: cannot export {args.model} to kiln ({count} problem{plural}):",
            file=sys.stderr,
        )
        for p in f.problems:
            print(f"  - {p}", file=sys.stderr)
        print(f"nothing was written to {args.out_dir}", file=sys.stderr)
        return NOT_EXPRESSIBLE
    except Exception as e:
        if args.debug:
            raise
        print(f"error: exporting {args.model} failed: {type(e).__name__}: {e}", file=sys.stderr)
        print(
            f"nothing was written to {args.out_dir} (rerun with --debug for a traceback)",
            file=sys.stderr,
        )
        return USAGE_ERROR
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    written = [os.path.join(args.out_dir, f) for f in ("model.rs", "weights.safetensors")]
    print(f"wrote {written[0]} and {written[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
