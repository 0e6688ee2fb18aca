"""Every layer kind on inputs holding +inf, -inf and NaN, from Keras 3 on JAX.

kiln's rule for non-finite numbers: the slice APIs refuse them, the typed `predict` computes
what Keras computes. Each case is a small keras.Sequential model (a fresh session each, so
layer names restart) with seeded weights, stored as the other oracle modules store model
cases (`input_shape`, `output_shape`, `param_count`, `weight_names`, `weights` by Keras
variable path, `batch`, `x`, `y`), and a batch whose samples are, in order:

0. one +inf, 1. one -inf, 2. one NaN (each at a seeded position);
3. one +inf, one -inf and one NaN;
4. +inf, -inf and NaN in turn at every third position (windows, rows and timesteps that
   hold several of them: inf - inf, a maximum over NaN and inf, ...);
5. -inf everywhere (a softmax row, a pooling window, a normalisation row of -inf only);
6. finite values only, which the slice APIs must accept.

`y` is `model(x)`. `model.predict(x)` (one jit-compiled XLA program for the whole model, so
fused differently) is computed too; a case where the two differ in where NaN and the
infinities are, or in a finite value beyond 1e-5, would say that XLA's answer depends on
fusion and is not well defined: `generate` lists such cases under `xla_inconsistent`
(and stores the second answer as `y_predict`). The run that wrote the committed file found
none.

Weights are uniform in (-1, 1) with about one in six entries exactly 0 (so `inf * 0` = NaN
reaches the output wherever Keras multiplies an infinity by a zero weight, and a kernel
that skipped zeros would differ), except where a case asks for none (`zeros=False`: an
infinity then saturates tanh, sigmoid and softmax instead of becoming NaN).
BatchNormalization's moving variance is drawn in (0.5, 1.5); its gamma has zeros too.

The `wide_*` cases are wider layers (more than 16 units, channels or filters): the vector
paths of kiln's kernels, where the small cases run only the scalar tails.

Special inputs:
- Masking cases put whole timesteps equal to `mask_value` (masked) beside timesteps made of
  NaN only, or of `mask_value` and one infinity (not masked: Keras masks a step only when
  every feature equals `mask_value`, and NaN equals nothing); sample 5 keeps one masked step
  among its -inf.
- `masking_*softmax*`: Masking -> [Dense] -> Softmax(axis), the mask handed to Softmax per
  position as in tools/oracle/misc_layers.py. Keras replaces masked inputs by -1e9, takes
  the softmax and then zeroes masked outputs, so a masked position stays 0 in a line whose
  kept values hold NaN or +inf (the line's sum is NaN), and a line whose kept values are all
  -inf is all zeros (the masked -1e9 holds the maximum).
- Embedding cases take whole-number ids: some outside the table (`input_dim`, larger, and
  below `-input_dim`), where Keras on JAX (`jnp.take`, whose default mode fills
  out-of-range rows with NaN) gives a NaN row, and -1
  (the last row). The NaN thus appears only after the Embedding. The slice APIs refuse those
  ids with `InvalidId`, not `NonFiniteInput`.
- `thresholded_relu_*`: Keras 3 has no ThresholdedReLU; kiln's layer is Keras 2's, whose
  `call` is `inputs * cast(inputs > theta, dtype)`, computed here with keras.ops on JAX. At
  -inf and NaN that is NaN (`-inf * 0`, `NaN * 0`), where Keras 3's
  `ReLU(threshold = theta)` gives 0: the two agree only on finite inputs.
"""
import keras
import numpy as np
from keras import ops

from oracle._util import floats, rng

L = keras.layers
F32 = np.float32
INF = np.inf
SAMPLES = 7
FINITE_SAMPLE = 6


def special_batch(g, shape, scale=1.5):
    """The seven samples described in the module docstring, of per-sample `shape`."""
    x = g.normal(0.0, scale, size=(SAMPLES,) + tuple(shape)).astype(F32)
    flat = x.reshape(SAMPLES, -1)
    n = flat.shape[1]
    for s, value in enumerate([INF, -INF, np.nan]):
        flat[s, g.integers(n)] = value
    picks = g.choice(n, size=min(3, n), replace=False)
    for p, value in zip(picks, [INF, -INF, np.nan]):
        flat[3, p] = value
    cycle = [INF, -INF, np.nan]
    for k, p in enumerate(range(int(g.integers(3)), n, 3)):
        flat[4, p] = cycle[k % 3]
    flat[5, :] = -INF
    return flat.reshape(x.shape)


def masked_batch(g, shape, mask_value):
    """Samples of (timesteps, features) with masked steps beside non-finite ones."""
    x = special_batch(g, shape)
    t = shape[0]
    x[0, 1, :] = mask_value  # masked, the +inf sits elsewhere (or here, overwritten)
    x[1, 0, :] = mask_value
    x[1, t - 1, :] = mask_value
    x[2, 2, :] = np.nan  # a step of NaN only: not masked
    x[2, 3, :] = mask_value
    x[3, 0, :] = mask_value
    x[3, 0, -1] = INF  # mask_value but one feature: not masked
    x[5, 1, :] = mask_value  # masked among -inf: a line of -inf beside masked positions
    x[6, 2, :] = mask_value
    return x


def id_batch(g, timesteps, input_dim):
    """Whole-number ids: samples 0 to 4 hold ids outside `0..input_dim` or -1, sample 6
    only valid ones (sample 5 too: every entry valid but -1, which is the last row)."""
    x = g.integers(0, input_dim, size=(SAMPLES, timesteps)).astype(F32)
    x[0, 1] = input_dim
    x[1, 0] = 3 * input_dim + 2
    x[2, timesteps - 1] = -input_dim - 1
    x[3, 0], x[3, 2] = -1, input_dim + 1
    x[4, :] = -1
    x[4, 1] = input_dim
    x[5, 2] = -1
    return x


def path(v):
    """A variable's Keras path relative to the model: `sequential/lstm/lstm_cell/kernel` ->
    `lstm/lstm_cell/kernel` (kiln's weight name)."""
    return v.path.split("/", 1)[1]


def set_weights(model, g, zeros):
    weights = {}
    for layer in model.layers:
        for w in layer.weights:
            shape = tuple(w.shape)
            if w.name == "moving_variance":
                value = g.uniform(0.5, 1.5, size=shape)
            elif w.name == "alpha":
                value = g.uniform(-0.5, 1.5, size=shape)
            else:
                value = g.uniform(-1.0, 1.0, size=shape)
            if zeros and w.name != "moving_variance":
                value = np.where(g.uniform(size=shape) < 1.0 / 6.0, 0.0, value)
            value = value.astype(F32)
            w.assign(value)
            weights[path(w)] = {"shape": list(shape), "values": floats(value)}
    return weights


def pattern(a):
    """Where `a` is NaN, +inf, -inf or finite: 0, 1, 2, 3."""
    return np.select([np.isnan(a), a == INF, a == -INF], [0, 1, 2], 3)


def agree(a, b):
    if not np.array_equal(pattern(a), pattern(b)):
        return False
    finite = np.isfinite(a)
    return bool(np.all(np.abs(a[finite] - b[finite]) <= 1e-5 * (1.0 + np.abs(a[finite]))))


def model_case(name, input_shape, layers, seed, x=None, zeros=True, input_dim=None):
    """`layers` is a function returning the layers, so they are built (and named) after the
    session is cleared."""
    g = rng(seed)
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=input_shape)] + layers())
    weights = set_weights(model, g, zeros)
    if x is None:
        x = special_batch(g, input_shape)
    y = np.asarray(model(x))
    y_predict = np.asarray(model.predict(x, verbose=0))
    case = {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "weight_names": [path(w) for w in model.weights],
        "weights": weights,
        "batch": int(x.shape[0]),
        "finite_sample": FINITE_SAMPLE,
        "x": floats(x),
        "y": floats(y),
    }
    if input_dim is not None:
        case["input_dim"] = input_dim
    if not agree(y, y_predict):
        case["y_predict"] = floats(y_predict)
    return case


def thresholded_relu_case(name, input_shape, theta, seed):
    """Keras 2's ThresholdedReLU layer, `inputs * cast(inputs > theta, dtype)`."""
    g = rng(seed)
    x = special_batch(g, input_shape)
    xt = ops.convert_to_tensor(x)
    y = np.asarray(xt * ops.cast(ops.greater(xt, F32(theta)), "float32"))
    return {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(input_shape),
        "param_count": 0,
        "weight_names": [],
        "weights": {},
        "batch": SAMPLES,
        "finite_sample": FINITE_SAMPLE,
        "x": floats(x),
        "y": floats(y),
    }


def masked_softmax_case(name, input_shape, axis, units, seed):
    """Masking -> [Dense(units)] -> Softmax(axis), the mask given to Softmax per position
    (`mask[..., None]`): what kiln's Softmax does with a Keras mask (tests/misc_layers.rs;
    a Sequential model would hand Softmax the mask shaped (batch, t), which Keras refuses).
    Keras sets masked inputs to -1e9, takes the softmax, then sets masked outputs to 0."""
    g = rng(seed)
    keras.backend.clear_session()
    masking, softmax = L.Masking(), L.Softmax(axis=axis)
    dense = [L.Dense(units)] if units else []
    model = keras.Sequential([keras.Input(shape=input_shape), masking] + dense + [softmax])
    weights = set_weights(model, g, zeros=False)
    x = masked_batch(g, input_shape, 0.0)
    h = masking(x)
    mask = masking.compute_mask(x)
    for layer in dense:
        h = layer(h)
    y = np.asarray(softmax(h, mask=mask[..., None]))
    return {
        "name": name,
        "input_shape": list(input_shape),
        "output_shape": list(model.output_shape[1:]),
        "param_count": int(model.count_params()),
        "weight_names": [path(w) for w in model.weights],
        "weights": weights,
        "batch": SAMPLES,
        "finite_sample": FINITE_SAMPLE,
        "x": floats(x),
        "y": floats(y),
    }


def cases():
    g = rng(900)
    seeds = iter(range(901, 2000))
    c = lambda *a, **k: model_case(*a, next(seeds), **k)
    out = [
        # Dense: rank 1 (matrix-vector) and rank 2 (a matrix product over the timesteps).
        c("dense", (6,), lambda: [L.Dense(4)]),
        c("dense_no_zero_weights_tanh", (6,), lambda: [L.Dense(4, activation="tanh")],
          zeros=False),
        c("dense_rank2_relu", (3, 5), lambda: [L.Dense(4, activation="relu")]),
        c("dense_softmax", (6,), lambda: [L.Dense(5, activation="softmax")], zeros=False),
        c("dense_sigmoid_dense", (5,), lambda: [L.Dense(6, activation="sigmoid"), L.Dense(3)],
          zeros=False),
        # Activation layers.
        c("activation_elu", (4, 5), lambda: [L.Activation("elu")]),
        c("relu_default", (4, 5), lambda: [L.ReLU()]),
        c("relu_max_value_6", (4, 5), lambda: [L.ReLU(max_value=6.0)]),
        c("relu_max_value_2", (4, 5), lambda: [L.ReLU(max_value=2.0)]),
        c("relu_threshold", (4, 5), lambda: [L.ReLU(threshold=0.5)]),
        c("relu_negative_slope", (4, 5), lambda: [L.ReLU(negative_slope=0.1)]),
        c("relu_all_three", (4, 5),
          lambda: [L.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5)]),
        c("leaky_relu", (4, 5), lambda: [L.LeakyReLU()]),
        c("prelu", (4, 5), lambda: [L.PReLU()]),
        c("prelu_shared", (4, 5), lambda: [L.PReLU(shared_axes=[1])]),
        c("elu", (4, 5), lambda: [L.ELU(alpha=0.5)]),
        c("softmax_last", (4, 5), lambda: [L.Softmax()]),
        c("softmax_axis_1", (3, 4, 2), lambda: [L.Softmax(axis=1)]),
        c("softmax_rank1", (6,), lambda: [L.Softmax()]),
        thresholded_relu_case("thresholded_relu", (4, 5), 1.0, next(seeds)),
        thresholded_relu_case("thresholded_relu_theta", (4, 5), 0.5, next(seeds)),
        # Layers that move values.
        c("dropout", (6,), lambda: [L.Dropout(0.5), L.Dense(3)]),
        c("activity_regularization", (6,),
          lambda: [L.ActivityRegularization(l1=0.01, l2=0.01), L.Dense(3)]),
        c("flatten", (3, 4, 2), lambda: [L.Flatten()]),
        c("reshape", (4, 6), lambda: [L.Reshape((3, 8))]),
        c("permute", (3, 4, 2), lambda: [L.Permute((3, 1, 2))]),
        c("repeat_vector", (5,), lambda: [L.RepeatVector(3)]),
        c("zero_padding_1d", (4, 3), lambda: [L.ZeroPadding1D((2, 1))]),
        c("zero_padding_2d", (3, 4, 2), lambda: [L.ZeroPadding2D(((1, 0), (2, 1)))]),
        c("zero_padding_2d_channels_first", (2, 3, 4),
          lambda: [L.ZeroPadding2D(1, data_format="channels_first")]),
        c("upsampling_1d", (4, 3), lambda: [L.UpSampling1D(2)]),
        c("upsampling_2d", (3, 2, 2), lambda: [L.UpSampling2D((2, 3))]),
        c("cropping_1d", (6, 3), lambda: [L.Cropping1D((1, 2))]),
        c("cropping_2d", (5, 6, 2), lambda: [L.Cropping2D(((1, 2), (0, 1)))]),
        c("upsampling_2d_channels_first", (2, 3, 2),
          lambda: [L.UpSampling2D((3, 2), data_format="channels_first")]),
        c("cropping_2d_channels_first", (2, 5, 6),
          lambda: [L.Cropping2D(((2, 1), (1, 0)), data_format="channels_first")]),
        # Masking.
        c("masking_dense", (5, 3), lambda: [L.Masking(), L.Dense(2)],
          x=masked_batch(g, (5, 3), 0.0)),
        c("masking_value_dense", (5, 3), lambda: [L.Masking(mask_value=0.5), L.Dense(2)],
          x=masked_batch(g, (5, 3), 0.5)),
        c("masking_global_average", (5, 3), lambda: [L.Masking(), L.GlobalAveragePooling1D()],
          x=masked_batch(g, (5, 3), 0.0)),
        masked_softmax_case("masking_softmax_last", (5, 3), -1, None, next(seeds)),
        masked_softmax_case("masking_softmax_time", (5, 3), 1, None, next(seeds)),
        masked_softmax_case("masking_dense_softmax_time", (5, 3), 1, 4, next(seeds)),
        # Convolutions.
        c("conv1d_valid", (8, 3), lambda: [L.Conv1D(4, 3)]),
        c("conv1d_same_strides", (8, 3), lambda: [L.Conv1D(3, 4, strides=2, padding="same")]),
        c("conv1d_causal_dilation", (8, 2),
          lambda: [L.Conv1D(3, 3, padding="causal", dilation_rate=2)]),
        c("conv1d_channels_first_groups", (4, 7),
          lambda: [L.Conv1D(4, 3, groups=2, data_format="channels_first")]),
        c("conv1d_no_zero_weights_tanh", (8, 3), lambda: [L.Conv1D(4, 3, activation="tanh")],
          zeros=False),
        c("conv2d_valid", (5, 6, 3), lambda: [L.Conv2D(4, 3)]),
        c("conv2d_same", (5, 5, 3), lambda: [L.Conv2D(4, 3, padding="same")]),
        c("conv2d_same_strides", (6, 5, 2), lambda: [L.Conv2D(3, (3, 2), strides=2, padding="same")]),
        c("conv2d_channels_first_same", (3, 5, 5),
          lambda: [L.Conv2D(4, 3, padding="same", data_format="channels_first")]),
        c("conv2d_channels_first_valid", (2, 5, 6),
          lambda: [L.Conv2D(3, 2, strides=(2, 1), data_format="channels_first")]),
        c("conv2d_groups", (5, 5, 4), lambda: [L.Conv2D(6, 2, groups=2)]),
        c("conv2d_groups_same_dilation", (6, 6, 4),
          lambda: [L.Conv2D(4, 3, groups=2, padding="same", dilation_rate=2)]),
        c("conv2d_full_width", (7, 4, 2), lambda: [L.Conv2D(3, (3, 4))]),
        c("conv2d_no_zero_weights_relu", (5, 5, 2), lambda: [L.Conv2D(3, 3, activation="relu")],
          zeros=False),
        c("depthwise_conv2d", (5, 5, 3),
          lambda: [L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)]),
        c("depthwise_conv2d_channels_first", (3, 5, 6),
          lambda: [L.DepthwiseConv2D(2, strides=2, data_format="channels_first")]),
        c("separable_conv2d", (6, 6, 3), lambda: [L.SeparableConv2D(4, 3, padding="same")]),
        c("separable_conv2d_strides", (7, 6, 2),
          lambda: [L.SeparableConv2D(3, (2, 3), strides=2, depth_multiplier=2)]),
        c("conv2d_transpose", (4, 4, 3), lambda: [L.Conv2DTranspose(2, 3, strides=2)]),
        c("conv2d_transpose_same", (4, 3, 2),
          lambda: [L.Conv2DTranspose(3, 3, strides=2, padding="same")]),
        c("conv2d_transpose_channels_first", (2, 3, 4),
          lambda: [L.Conv2DTranspose(2, 2, data_format="channels_first")]),
        # Pooling.
        c("max_pool_1d", (7, 3), lambda: [L.MaxPooling1D()]),
        c("max_pool_1d_same", (7, 3), lambda: [L.MaxPooling1D(3, strides=2, padding="same")]),
        c("max_pool_1d_channels_first", (3, 7),
          lambda: [L.MaxPooling1D(2, padding="same", data_format="channels_first")]),
        c("max_pool_2d", (5, 6, 2), lambda: [L.MaxPooling2D()]),
        c("max_pool_2d_same", (5, 5, 2), lambda: [L.MaxPooling2D(3, strides=2, padding="same")]),
        c("max_pool_2d_channels_first", (2, 5, 6),
          lambda: [L.MaxPooling2D((2, 3), strides=1, data_format="channels_first")]),
        c("max_pool_2d_channels_first_same", (2, 5, 5),
          lambda: [L.MaxPooling2D(2, padding="same", data_format="channels_first")]),
        c("average_pool_1d", (7, 3), lambda: [L.AveragePooling1D(2)]),
        c("average_pool_1d_same", (7, 3),
          lambda: [L.AveragePooling1D(3, strides=2, padding="same")]),
        c("average_pool_1d_channels_first", (3, 7),
          lambda: [L.AveragePooling1D(3, padding="same", data_format="channels_first")]),
        c("average_pool_2d", (5, 6, 2), lambda: [L.AveragePooling2D(2)]),
        c("average_pool_2d_same", (5, 5, 2),
          lambda: [L.AveragePooling2D(3, strides=2, padding="same")]),
        c("average_pool_2d_channels_first", (2, 5, 6),
          lambda: [L.AveragePooling2D((2, 3), strides=1, data_format="channels_first")]),
        c("average_pool_2d_channels_first_same", (2, 5, 5),
          lambda: [L.AveragePooling2D(2, padding="same", data_format="channels_first")]),
        c("global_max_pool_1d", (6, 3), lambda: [L.GlobalMaxPooling1D()]),
        c("global_max_pool_1d_channels_first", (3, 6),
          lambda: [L.GlobalMaxPooling1D(data_format="channels_first", keepdims=True)]),
        c("global_average_pool_1d", (6, 3), lambda: [L.GlobalAveragePooling1D()]),
        c("global_max_pool_2d", (4, 5, 3), lambda: [L.GlobalMaxPooling2D()]),
        c("global_max_pool_2d_channels_first", (3, 4, 5),
          lambda: [L.GlobalMaxPooling2D(data_format="channels_first")]),
        c("global_average_pool_2d", (4, 5, 3), lambda: [L.GlobalAveragePooling2D()]),
        c("global_average_pool_2d_channels_first", (3, 4, 5),
          lambda: [L.GlobalAveragePooling2D(data_format="channels_first", keepdims=True)]),
        # Normalisation.
        c("batch_normalization", (4, 3), lambda: [L.BatchNormalization()]),
        c("batch_normalization_axis_1", (3, 4, 2), lambda: [L.BatchNormalization(axis=1)]),
        c("layer_normalization", (4, 5), lambda: [L.LayerNormalization()]),
        c("layer_normalization_axes", (3, 4, 2), lambda: [L.LayerNormalization(axis=[1, 2])]),
        # Embedding: NaN rows for ids outside the table.
        c("embedding_dense", (5,), lambda: [L.Embedding(10, 3), L.Dense(2)],
          x=id_batch(g, 5, 10), input_dim=10),
        # Recurrent layers.
        c("simple_rnn", (5, 3), lambda: [L.SimpleRNN(4)]),
        c("simple_rnn_sequences", (5, 3), lambda: [L.SimpleRNN(4, return_sequences=True)]),
        c("simple_rnn_no_zero_weights", (5, 3),
          lambda: [L.SimpleRNN(3, return_sequences=True)], zeros=False),
        c("lstm", (5, 3), lambda: [L.LSTM(4)]),
        c("lstm_sequences", (5, 3), lambda: [L.LSTM(3, return_sequences=True)]),
        c("lstm_no_zero_weights", (5, 3), lambda: [L.LSTM(3, return_sequences=True)],
          zeros=False),
        c("gru", (5, 3), lambda: [L.GRU(4)]),
        c("gru_sequences", (5, 3), lambda: [L.GRU(3, return_sequences=True)]),
        c("gru_reset_before_sequences", (5, 3),
          lambda: [L.GRU(3, reset_after=False, return_sequences=True)]),
        c("gru_no_zero_weights", (5, 3), lambda: [L.GRU(3, return_sequences=True)],
          zeros=False),
        c("masking_simple_rnn_sequences", (5, 3),
          lambda: [L.Masking(), L.SimpleRNN(3, return_sequences=True)],
          x=masked_batch(g, (5, 3), 0.0)),
        c("masking_lstm", (5, 3), lambda: [L.Masking(mask_value=0.5), L.LSTM(3)],
          x=masked_batch(g, (5, 3), 0.5)),
        c("masking_lstm_sequences_backwards", (5, 3),
          lambda: [L.Masking(), L.LSTM(3, return_sequences=True, go_backwards=True)],
          x=masked_batch(g, (5, 3), 0.0), zeros=False),
        c("masking_gru_sequences", (5, 3),
          lambda: [L.Masking(), L.GRU(3, return_sequences=True)],
          x=masked_batch(g, (5, 3), 0.0)),
        # Wider layers: the vector paths of the GEMM, matrix-vector, pooling, tanh/sigmoid
        # and normalisation kernels (full AVX-512 registers plus a masked tail), where the
        # small cases above run only their tails; and the channels-first convolution's
        # tap-by-tap path (deep inputs), which the small channels-first cases skip.
        c("wide_dense_sigmoid", (37,), lambda: [L.Dense(40, activation="sigmoid")]),
        c("wide_dense_rank2_tanh", (3, 37), lambda: [L.Dense(35, activation="tanh")],
          zeros=False),
        c("wide_dense_softmax", (20,), lambda: [L.Dense(33, activation="softmax")],
          zeros=False),
        c("wide_softmax", (3, 33), lambda: [L.Softmax()]),
        c("wide_conv2d", (5, 5, 16), lambda: [L.Conv2D(18, 3, padding="same")]),
        c("wide_conv2d_channels_first_deep", (40, 3, 4),
          lambda: [L.Conv2D(17, 3, padding="same", data_format="channels_first")]),
        c("wide_conv1d_no_zero_weights", (10, 24), lambda: [L.Conv1D(33, 3, activation="tanh")],
          zeros=False),
        c("wide_depthwise_conv2d", (5, 5, 17), lambda: [L.DepthwiseConv2D(3, padding="same")]),
        c("wide_depthwise_conv2d_multiplier_3", (4, 4, 6),
          lambda: [L.DepthwiseConv2D(2, depth_multiplier=3)]),
        c("wide_separable_conv2d_channels_first", (8, 5, 5),
          lambda: [L.SeparableConv2D(18, 3, padding="same", data_format="channels_first")]),
        c("wide_conv2d_transpose", (3, 3, 17), lambda: [L.Conv2DTranspose(19, 2, strides=2)]),
        c("wide_max_pool_2d", (4, 4, 24), lambda: [L.MaxPooling2D()]),
        c("wide_max_pool_2d_same", (5, 5, 20), lambda: [L.MaxPooling2D(3, strides=2, padding="same")]),
        c("wide_average_pool_2d_same", (5, 5, 20),
          lambda: [L.AveragePooling2D(3, strides=2, padding="same")]),
        c("wide_global_max_pool_2d", (3, 3, 20), lambda: [L.GlobalMaxPooling2D()]),
        c("wide_global_average_pool_1d", (4, 40), lambda: [L.GlobalAveragePooling1D()]),
        c("wide_batch_normalization", (2, 40), lambda: [L.BatchNormalization()]),
        c("wide_layer_normalization", (3, 40), lambda: [L.LayerNormalization()]),
        c("wide_prelu", (2, 40), lambda: [L.PReLU()]),
        c("wide_lstm", (4, 10), lambda: [L.LSTM(20, return_sequences=True)], zeros=False),
        c("wide_gru", (4, 10), lambda: [L.GRU(20, return_sequences=True)], zeros=False),
        c("wide_simple_rnn", (4, 10), lambda: [L.SimpleRNN(20, return_sequences=True)],
          zeros=False),
    ]
    return out


def generate():
    all_cases = cases()
    return {
        "cases": all_cases,
        "xla_inconsistent": [c["name"] for c in all_cases if "y_predict" in c],
    }
