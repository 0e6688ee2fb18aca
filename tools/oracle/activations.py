"""Every activation function and its derivative, from Keras 3 on JAX.

Values come from `keras.activations.<name>` called on float32 arrays; derivatives from
`jax.vmap(jax.grad(f))` of the same call on one scalar, so they are exactly what a Keras
training step on JAX back-propagates, kink conventions included (relu'(0) = 0,
leaky_relu'(0) = 1, and 1/2 of the slope where `jnp.clip`/`jnp.maximum` hit a tie).

Two functions are not in Keras 3 and are computed with jax.numpy as their Keras 2 versions
define them: `hard_sigmoid_keras2` = `clip(0.2 x + 0.5, 0, 1)` and `thresholded_relu`
(Keras 2's `ThresholdedReLU`, `x * cast(x > theta)`).

Every elementwise case is evaluated on the same grid: zeros of both signs, values around
each function's kinks (exact, and one float below and above), the places where exp
overflows or results become denormal, +-1e4, seeded random values, and inf, -inf, nan.

Where x is +-inf and Keras's derivative is nan only because its formula multiplies
inf by 0 (silu' = s + x s (1 - s) at x = inf, for one), kiln returns the derivative's
limit instead. Those entries are listed in `derivative_at_inf`, with the limit taken as
Keras's own derivative at +-1e6, where every function here has reached its asymptote in
float32; tests/activations.rs checks kiln against that.

Softmax and log-softmax: rows of several lengths (1 to 33), including huge logits (1e4),
-inf entries and non-finite rows, each with the vector-Jacobian product of a seeded random
cotangent (`jax.vjp`), which `softmax_vjp` / `log_softmax_vjp` must reproduce.
"""
import jax
import jax.numpy as jnp
import keras
import numpy as np

from oracle._util import floats, rng

A = keras.activations
F32 = np.float32


def around(points):
    """Each point, and the float32 just below and above it.

    Beside 0 that would be a denormal, which XLA on CPU reads as 0 (relu'(1e-45) is 0 in
    Keras): a hardware flush mode, not a definition, so the smallest normals stand in.
    """
    tiny = np.finfo(F32).tiny
    out = []
    for p in points:
        p = F32(p)
        for q in [np.nextafter(p, F32(-np.inf)), np.nextafter(p, F32(np.inf))]:
            out.append(np.copysign(tiny, q) if 0 < abs(q) < tiny else q)
        out.insert(len(out) - 2, p)
    return out


def grid(extra_kinks=()):
    base = [0.0, -0.0, 1e-7, -1e-7, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 3.0, -3.0, 6.0, -6.0,
            10.0, -10.0, 15.0, -15.0, 20.0, -20.0, 88.0, -88.0, 88.72, 89.0, -104.0,
            100.0, -100.0, 1e4, -1e4]
    # Kinks of relu6 (0, 6), hard_sigmoid (+-3), hard_sigmoid_keras2 (+-2.5).
    kinks = [0.0, 6.0, 3.0, -3.0, 2.5, -2.5] + list(extra_kinks)
    g = rng(1)
    random = list(g.normal(0.0, 4.0, size=32)) + list(g.uniform(-30.0, 30.0, size=8))
    special = [np.inf, -np.inf, np.nan]
    x = np.asarray(base + around(kinks) + random + special, dtype=F32)
    # One entry per distinct value (both zeros kept), in a stable order.
    seen, out = set(), []
    for v in x:
        key = v.tobytes()
        if key not in seen:
            seen.add(key)
            out.append(v)
    return np.asarray(out, dtype=F32)


def thresholded_relu(x, theta):
    """Keras 2's `ThresholdedReLU.call`: `inputs * cast(inputs > theta, dtype)`."""
    return x * (x > theta).astype(x.dtype)


def hard_sigmoid_keras2(x):
    """Keras 2's `hard_sigmoid`: `clip(0.2 x + 0.5, 0, 1)`."""
    return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


def relu_args(negative_slope=0.0, max_value=None, threshold=0.0):
    return {"negative_slope": negative_slope, "max_value": max_value, "threshold": threshold}


# (case name, kiln function, its arguments, the Keras function, extra kink points)
def cases():
    out = [
        ("linear", "linear", {}, A.linear, []),
        ("sigmoid", "sigmoid", {}, A.sigmoid, []),
        ("hard_sigmoid", "hard_sigmoid", {}, A.hard_sigmoid, []),
        ("hard_sigmoid_keras2", "hard_sigmoid_keras2", {}, hard_sigmoid_keras2, []),
        ("softplus", "softplus", {}, A.softplus, []),
        ("softsign", "softsign", {}, A.softsign, []),
        ("tanh", "tanh", {}, A.tanh, []),
        ("relu", "relu", {}, A.relu, []),
        ("relu6", "relu6", {}, A.relu6, []),
        ("leaky_relu", "leaky_relu", {}, A.leaky_relu, []),
        ("elu", "elu", {}, A.elu, []),
        ("selu", "selu", {}, A.selu, []),
        ("gelu", "gelu", {}, A.gelu, []),
        ("exponential", "exponential", {}, A.exponential, []),
        ("silu", "silu", {}, A.silu, []),
        ("swish", "swish", {}, A.silu, []),
        ("hard_silu", "hard_silu", {}, A.hard_silu, []),
        ("hard_swish", "hard_swish", {}, A.hard_silu, []),
        ("mish", "mish", {}, A.mish, []),
        ("leaky_relu(negative_slope=0.1)", "leaky_relu", {"negative_slope": 0.1},
         lambda x: A.leaky_relu(x, negative_slope=0.1), []),
        ("elu(alpha=0.5)", "elu", {"alpha": 0.5}, lambda x: A.elu(x, alpha=0.5), []),
        ("gelu(approximate=True)", "gelu", {"approximate": True},
         lambda x: A.gelu(x, approximate=True), []),
        ("thresholded_relu(theta=1.0)", "thresholded_relu", {"theta": 1.0},
         lambda x: thresholded_relu(x, F32(1.0)), [1.0]),
    ]
    # Keras 3's `relu` takes four different code paths depending on its arguments
    # (leaky_relu, relu6, relu + clip, where(x > threshold) + clip); one case for each,
    # and for their combinations with a negative slope.
    relus = [
        relu_args(negative_slope=0.1),
        relu_args(max_value=6.0),
        relu_args(max_value=5.0),
        relu_args(threshold=0.5),
        relu_args(threshold=-1.0),
        relu_args(threshold=0.5, max_value=3.0),
        relu_args(negative_slope=0.1, max_value=6.0),
        relu_args(negative_slope=0.2, max_value=4.0),
        relu_args(negative_slope=0.3, threshold=0.5),
        relu_args(negative_slope=0.1, threshold=-1.0, max_value=5.0),
        relu_args(negative_slope=0.1, threshold=1.5, max_value=1.0),
    ]
    for a in relus:
        shown = ", ".join(f"{k}={v}" for k, v in a.items() if v not in (None, 0.0))
        kinks = [a["threshold"]] + ([a["max_value"]] if a["max_value"] is not None else [])
        out.append((f"relu({shown})", "relu", a,
                    lambda x, a=a: A.relu(x, **a), kinks))
    return out


def values(f, x):
    return np.asarray(f(jnp.asarray(x)), dtype=F32)


def derivatives(f, x):
    return np.asarray(jax.vmap(jax.grad(lambda s: f(s)))(jnp.asarray(x)), dtype=F32)


def elementwise_case(name, function, args, f, kinks):
    x = grid(kinks)
    y = values(f, x)
    dy = derivatives(f, x)
    at_inf = []
    for i, v in enumerate(x):
        if np.isinf(v) and np.isnan(dy[i]):
            limit = derivatives(f, np.asarray([np.sign(v) * 1e6], dtype=F32))[0]
            at_inf.append({"index": i, "keras": "nan", "limit": float(limit)})
    return {
        "name": name,
        "function": function,
        "args": args,
        "x": floats(x),
        "y": floats(y),
        "dy": floats(dy),
        "derivative_at_inf": at_inf,
    }


def softmax_rows():
    g = rng(2)
    rows = []
    for n in [1, 2, 3, 5, 10, 33]:
        rows.append(g.normal(0.0, 3.0, size=(4, n)))
    rows += [
        [[1e4, 1e4 - 1.0, -1e4, 0.0], [-1e4, -1e4, -1e4, -1e4], [88.0, -88.0, 100.0, -100.0]],
        [[0.0, 0.0, 0.0], [1e-7, -1e-7, 0.0], [20.0, -20.0, 0.5]],
        [[-np.inf, 0.0, 1.0], [-np.inf, -np.inf, 2.0], [3.0, -np.inf, -np.inf]],
        # Keras gives nan for a whole row holding inf or nan (inf - inf after the shift).
        [[np.inf, 0.0], [np.nan, 1.0], [np.inf, np.inf]],
        [[3.0], [1e4], [-np.inf], [np.nan]],
    ]
    return [np.asarray(r, dtype=F32) for r in rows]


def softmax_case(x, seed):
    g = rng(seed)
    cotangent = g.normal(0.0, 1.0, size=x.shape).astype(F32)
    xj, cj = jnp.asarray(x), jnp.asarray(cotangent)
    soft = lambda v: A.softmax(v, axis=-1)
    log_soft = lambda v: A.log_softmax(v, axis=-1)
    y, soft_vjp = jax.vjp(soft, xj)
    log_y, log_vjp = jax.vjp(log_soft, xj)
    return {
        "rows": int(x.shape[0]),
        "axis_len": int(x.shape[1]),
        "x": floats(x),
        "softmax": floats(y),
        "log_softmax": floats(log_y),
        "cotangent": floats(cotangent),
        "softmax_vjp": floats(soft_vjp(cj)[0]),
        "log_softmax_vjp": floats(log_vjp(cj)[0]),
    }


def generate():
    elementwise = [elementwise_case(*c) for c in cases()]
    softmax = [softmax_case(x, 10 + i) for i, x in enumerate(softmax_rows())]
    return {"elementwise": elementwise, "softmax": softmax}
