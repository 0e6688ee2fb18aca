"""Random layer chains: Keras decides their shapes and outputs; kiln must agree.

Writes tests/golden/chains.json and the Rust test tests/chains.rs (generated, committed):
each chain is declared with `kiln::model!`, so the test only compiles if kiln's shape
checker accepts every chain Keras accepts, and it passes only if kiln's inferred shapes and
outputs equal Keras's.
"""
import pathlib

import keras
import numpy as np

from oracle._util import floats, rng

CHAINS = 40
ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def factorizations(n, parts, g):
    """A random tuple of `parts` positive ints whose product is n."""
    dims = []
    for _ in range(parts - 1):
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        d = int(g.choice(divisors))
        dims.append(d)
        n //= d
    dims.append(n)
    return dims


def random_layer(shape, g):
    """(dsl text, keras layer) for a layer that accepts `shape` (per sample)."""
    rank = len(shape)
    size = int(np.prod(shape))
    options = ["dense", "activation", "relu", "leaky", "elu", "softmax", "prelu", "thresholded"]
    options += ["dropout", "activity"]
    if rank > 1:
        options += ["flatten", "permute", "reshape"]
    if rank == 1:
        options += ["repeat", "reshape"]
    kind = options[int(g.integers(len(options)))]
    L = keras.layers
    if kind == "dense":
        units = int(g.integers(1, 7))
        act = str(g.choice(["linear", "relu", "tanh", "sigmoid", "softmax", "elu", "gelu", "softplus"]))
        return f'Dense({units}, activation = "{act}")', L.Dense(units, activation=act)
    if kind == "activation":
        act = str(g.choice(["relu", "tanh", "sigmoid", "softmax", "selu", "swish", "softsign", "log_softmax"]))
        return f'Activation("{act}")', L.Activation(act)
    if kind == "relu":
        return "ReLU(max_value = 1.5, negative_slope = 0.1)", L.ReLU(max_value=1.5, negative_slope=0.1)
    if kind == "leaky":
        return "LeakyReLU(negative_slope = 0.2)", L.LeakyReLU(negative_slope=0.2)
    if kind == "elu":
        return "ELU(alpha = 0.7)", L.ELU(alpha=0.7)
    if kind == "thresholded":
        # Keras 3 dropped ThresholdedReLU; ReLU(threshold) is the same function for theta >= 0.
        return "ThresholdedReLU(theta = 0.2)", L.ReLU(threshold=0.2)
    if kind == "softmax":
        axis = int(g.integers(1, rank + 1)) * int(g.choice([1, -1]))
        axis = axis if axis > 0 else -int(g.integers(1, rank + 1))
        return f"Softmax(axis = {axis})", L.Softmax(axis=axis)
    if kind == "prelu":
        axes = [a for a in range(1, rank + 1) if g.random() < 0.5]
        dsl_axes = "None" if not axes else "(" + ", ".join(map(str, axes)) + ("," if len(axes) == 1 else "") + ")"
        return f"PReLU(shared_axes = {dsl_axes})", L.PReLU(shared_axes=axes or None)
    if kind == "dropout":
        # The identity in inference; the DSL must still accept Keras's arguments.
        rate = float(g.choice([0.0, 0.2, 0.5]))
        if rank > 1 and g.random() < 0.5:
            noise = (None, 1) + tuple(shape[1:])
            text = ", ".join("None" if d is None else str(d) for d in noise)
            return f"Dropout({rate}, noise_shape = ({text}))", L.Dropout(rate, noise_shape=noise)
        return f"Dropout({rate})", L.Dropout(rate)
    if kind == "activity":
        return "ActivityRegularization(l1 = 0.01, l2 = 0.001)", L.ActivityRegularization(l1=0.01, l2=0.001)
    if kind == "flatten":
        return "Flatten()", L.Flatten()
    if kind == "permute":
        dims = [int(d) + 1 for d in g.permutation(rank)]
        return f"Permute(({', '.join(map(str, dims))},))", L.Permute(tuple(dims))
    if kind == "repeat":
        n = int(g.integers(1, 4))
        return f"RepeatVector({n})", L.RepeatVector(n)
    # reshape
    parts = int(g.integers(1, 4))
    dims = factorizations(size, parts, g)
    if parts > 1 and g.random() < 0.5:
        dims[int(g.integers(parts))] = -1
    text = "(" + ", ".join(map(str, dims)) + ("," if parts == 1 else "") + ")"
    return f"Reshape({text})", L.Reshape(tuple(dims))


def chain(index, g):
    rank = int(g.integers(1, 4))
    shape = [int(d) for d in g.integers(1, 5, size=rank)]
    keras.backend.clear_session()
    dsl, layers = [], []
    current = tuple(shape)
    for _ in range(int(g.integers(2, 6))):
        text, layer = random_layer(current, g)
        out = layer.compute_output_shape((None,) + current)
        if len(out) - 1 > 4 or len(out) < 2 or np.prod(out[1:]) > 400:
            continue
        dsl.append(text)
        layers.append(layer)
        current = tuple(out[1:])
    if not layers:
        dsl.append("Dense(2)")
        layers.append(keras.layers.Dense(2))
    model = keras.Sequential([keras.Input(shape=tuple(shape))] + layers)
    weights = {}
    for layer in model.layers:
        for w in layer.weights:
            value = g.uniform(-1.0, 1.0, size=tuple(w.shape)).astype(np.float32)
            w.assign(value)
            weights[f"{layer.path}/{w.name}" if False else f"{layer.name}/{w.name}"] = {
                "shape": list(w.shape),
                "values": floats(value),
            }
    batch = 3
    x = g.normal(0.0, 1.5, size=(batch,) + tuple(shape)).astype(np.float32)
    y = np.asarray(model(x))
    return {
        "name": f"chain{index}",
        "dsl": dsl,
        "input_shape": shape,
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "weights": weights,
        "batch": batch,
        "x": floats(x),
        "y": floats(y),
    }


def rust_source(cases):
    lines = [
        "//! Random layer chains generated by tools/oracle/chains.py (do not edit by hand).",
        "//! Keras accepted every chain below and computed its shapes and outputs; this file",
        "//! compiles only if kiln's checker accepts them too, and passes only if kiln agrees.",
        "",
        "mod common;",
        "use common::{case, check_model_case, golden};",
        "",
        "kiln::model! {",
    ]
    for c in cases:
        name = "Chain" + c["name"][5:]
        shape = "(" + ", ".join(map(str, c["input_shape"])) + ("," if len(c["input_shape"]) == 1 else "") + ")"
        lines.append(f"    {name} = Sequential([")
        lines.append(f"        Input(shape = {shape}),")
        for layer in c["dsl"]:
            lines.append(f"        {layer},")
        lines.append("    ]);")
    lines.append("}")
    lines.append("")
    lines.append("#[test]")
    lines.append("fn random_chains_match_keras_shapes_and_outputs() {")
    lines.append('    let file = golden("chains");')
    for c in cases:
        name = "Chain" + c["name"][5:]
        lines.append(f'    check_model_case::<{name}>(&case(&file, "{c["name"]}"), 1e-4, 1e-5);')
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate():
    g = rng(2024)
    cases = [chain(i, g) for i in range(CHAINS)]
    (ROOT / "tests" / "chains.rs").write_text(rust_source(cases))
    return {"cases": cases}
