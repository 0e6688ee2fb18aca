#!/usr/bin/env python3
"""Tests of tools/keras_export.py's refusals and of its all-or-nothing writes.

    pip install keras jax safetensors
    python3 tools/test_keras_export.py        # plain unittest; about a minute

Not part of `cargo test` (which never runs Python): the exports that succeed are tested end
to end by tests/keras_import.rs on the fixtures of tools/make_import_fixtures.py. Each test
here builds a small Keras model, saves it, runs the exporter as a separate process, and
checks the exit status, that every expected problem is listed, that standard error holds no
Python traceback, and that nothing was written (no OUT_DIR, no temporary folder, existing
files unchanged).
"""
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest
import warnings
from unittest import mock

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

TOOLS = pathlib.Path(__file__).resolve().parent
EXPORT = TOOLS / "keras_export.py"
sys.path.insert(0, str(TOOLS))

import keras  # noqa: E402

import keras_export  # noqa: E402

L = keras.layers

# Keras's warnings while building the refused models (a mask dropped by Flatten, float64
# truncated by JAX) are expected here.
warnings.simplefilter("ignore")


class ExportTest(unittest.TestCase):
    def setUp(self):
        keras.backend.clear_session()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="keras_export_test-"))
        self.addCleanup(lambda: __import__("shutil").rmtree(self.tmp, ignore_errors=True))

    def save(self, model, name="model.keras"):
        path = self.tmp / name
        model.save(path)
        return path

    def run_export(self, model_path, out_dir=None, name="Net"):
        out_dir = out_dir or self.tmp / "out"
        result = subprocess.run(
            [sys.executable, str(EXPORT), str(model_path), str(out_dir), "--name", name],
            capture_output=True,
            text=True,
        )
        return result, out_dir

    def assert_refused(self, model, *expected, count=None):
        """Exports `model` and checks the refusal: exit 1, each `expected` fragment in the
        message, no traceback, nothing written. Returns standard error."""
        result, out_dir = self.run_export(self.save(model))
        err = result.stderr
        self.assertEqual(result.returncode, 1, f"stdout: {result.stdout}\nstderr: {err}")
        self.assertNotIn("Traceback", err)
        self.assertIn("error: cannot export", err)
        for fragment in expected:
            self.assertIn(fragment, err)
        if count is not None:
            self.assertIn(f"({count} problem{'s' if count != 1 else ''}):", err)
            self.assertEqual(sum(1 for line in err.splitlines() if line.startswith("  - ")), count)
        self.assertIn("nothing was written", err)
        self.assertFalse(out_dir.exists(), f"{out_dir} was created")
        self.assert_no_temporary_folders()
        return err

    def export_text(self, model):
        """Exports `model`, which must succeed; model.rs's text."""
        path = self.save(model, f"{model.name}.keras")
        result, out_dir = self.run_export(path, self.tmp / f"{model.name}-out")
        self.assertEqual(result.returncode, 0, result.stderr)
        return (out_dir / "model.rs").read_text()

    def assert_no_temporary_folders(self):
        leftovers = [p.name for p in self.tmp.iterdir() if ".export-" in p.name]
        self.assertEqual(leftovers, [], "temporary folders left behind")

    # --- refusals ---------------------------------------------------------------------

    def test_unknown_layer_class(self):
        model = keras.Sequential([keras.Input((4, 8, 8, 1)), L.Conv3D(2, 3), L.Flatten(), L.Dense(2)])
        self.assert_refused(model, "layer `conv3d` (Conv3D): kiln has no `Conv3D` layer", count=1)

    def test_lambda_layer(self):
        model = keras.Sequential(
            [keras.Input((6,)), L.Dense(4), L.Lambda(lambda x: x * 2.0, name="double"), L.Dense(2)]
        )
        self.assert_refused(model, "layer `double` (Lambda): a Lambda layer holds Python code", count=1)

    def test_lambda_that_changes_the_shape(self):
        # Keras cannot rebuild the layers after it without running the code; the Lambda is
        # still named, with Keras's failure to load the rest.
        model = keras.Sequential(
            [keras.Input((6,)), L.Dense(4), L.Lambda(lambda x: x[:, :2], name="cut"), L.Dense(2)]
        )
        self.assert_refused(model, "layer `cut` (Lambda)", "Keras could not load")

    def test_branch(self):
        inputs = keras.Input((6,))
        a = L.Dense(3, name="left")(inputs)
        b = L.Dense(3, name="right")(inputs)
        model = keras.Model(inputs, L.Add(name="sum")([a, b]))
        self.assert_refused(model, "layer `sum` (Add) takes 2 tensors: a branch or a merge")

    def test_shared_layer(self):
        inputs = keras.Input((6,))
        shared = L.Dense(6, name="twice")
        model = keras.Model(inputs, shared(shared(inputs)))
        self.assert_refused(model, "layer `twice` (Dense) is called more than once (a shared layer)", count=1)

    def test_several_inputs_and_outputs(self):
        a, b = keras.Input((6,)), keras.Input((6,))
        model = keras.Model([a, b], [L.Dense(2)(a), L.Dense(2)(b)])
        self.assert_refused(model, "has 2 inputs and 2 outputs")

    def test_masking_then_flatten(self):
        model = keras.Sequential([keras.Input((6, 4)), L.Masking(), L.Flatten(), L.Dense(2)])
        self.assert_refused(
            model,
            "layer `flatten` (Flatten) cannot take the mask produced by layer `masking` (Masking)",
            count=1,
        )

    def test_embedding_without_mask_zero_makes_no_mask(self):
        # Found by tools/oracle/random_models.py: an Embedding without `mask_zero` was taken
        # for a mask producer, refusing the layers kiln accepts after it.
        model = keras.Sequential(
            [keras.Input((5,)), L.Embedding(8, 3), L.Conv1D(2, 2), L.Flatten(), L.Dense(2)]
        )
        _, calls, _, _, _ = keras_export.convert(model)
        self.assertEqual([c.split("(")[0] for c in calls], ["Embedding", "Conv1D", "Flatten", "Dense"])
        keras.backend.clear_session()
        masked = keras.Sequential(
            [keras.Input((5,)), L.Embedding(8, 3, mask_zero=True), L.Conv1D(2, 2), L.Flatten()]
        )
        self.assert_refused(
            masked,
            "layer `conv1d` (Conv1D) cannot take the mask produced by layer `embedding`",
        )

    def test_masking_then_softmax_layer(self):
        # Keras broadcasts the (batch, timesteps) mask from the last axis; kiln masks per
        # position: refused rather than exported with different numbers.
        model = keras.Sequential([keras.Input((6, 4)), L.Masking(), L.Dense(6), L.Softmax()])
        self.assert_refused(model, "layer `softmax` (Softmax): Keras 3 broadcasts", count=1)

    def test_spatial_layers_kiln_refuses(self):
        # Channels first, Keras applies Masking's (batch, features) mask along the steps
        # (here the sizes line up); kiln only resizes with `nearest`.
        model = keras.Sequential(
            [
                keras.Input((2, 2, 3)),
                L.UpSampling2D(interpolation="bilinear"),
                L.Reshape((4, 12)),
                L.Dense(4),
                L.Masking(),
                L.GlobalAveragePooling1D(data_format="channels_first"),
            ]
        )
        self.assert_refused(
            model,
            "layer `up_sampling2d` (UpSampling2D): argument `interpolation`: expected one of "
            "'nearest', found 'bilinear'",
            "layer `global_average_pooling1d` (GlobalAveragePooling1D) cannot take the mask",
            count=2,
        )

    def test_normalization_settings_kiln_refuses(self):
        model = keras.Sequential(
            [
                keras.Input((5, 4)),
                L.BatchNormalization(renorm=True, renorm_momentum=0.9, name="renormed"),
                L.LayerNormalization(rms_scaling=True, name="rms"),
            ]
        )
        self.assert_refused(
            model,
            "layer `renormed` (BatchNormalization): argument `renorm`: True is not supported",
            "layer `renormed` (BatchNormalization): argument `renorm_momentum`: 0.9 is not supported",
            "layer `rms` (LayerNormalization): argument `rms_scaling`: True is not supported",
            count=3,
        )

    def test_inputs_kiln_refuses(self):
        # `None` is kiln's only as the timesteps of `(None, features)` or of ids `(None,)`
        # before an `Embedding`; the input's dtype must be a float or integer type.
        model = keras.Sequential([keras.Input((None, None, 3)), L.Dense(2)])
        self.assert_refused(
            model,
            "input `input_layer` has unknown dimensions (None, None, 3); kiln takes `None` "
            "only as the timesteps",
            count=1,
        )
        keras.backend.clear_session()
        model = keras.Sequential([keras.Input((None,)), L.Masking(name="mask"), L.Reshape((-1, 1))])
        self.assert_refused(
            model,
            "input `input_layer` has shape (None,): a rank-1 sequence of any length is integer "
            "ids, which kiln takes only for a first `Embedding`, not for `Masking`",
        )
        keras.backend.clear_session()
        model = keras.Sequential([keras.Input((4,), dtype="bool"), L.Dense(2)])
        self.assert_refused(
            model, "input `input_layer` has dtype bool; kiln takes float and integer inputs", count=1
        )

    def test_return_state_is_refused(self):
        inputs = keras.Input((5, 3))
        outputs, _, _ = L.LSTM(4, return_state=True, name="lstm")(inputs)
        model = keras.Model(inputs, outputs)
        self.assert_refused(model, "layer `lstm` (LSTM) has 3 outputs; kiln layers have one")

    def test_unsupported_activation(self):
        model = keras.Sequential([keras.Input((6,)), L.Dense(4, activation="celu")])
        self.assert_refused(model, "argument `activation`: `celu` is not one of kiln's activations", count=1)

    def test_dropout_at_inference(self):
        inputs = keras.Input((6,))
        model = keras.Model(inputs, L.Dropout(0.5, name="drop")(L.Dense(3)(inputs), training=True))
        self.assert_refused(model, "layer `drop` (Dropout) is called with training=True", count=1)

    def test_several_problems_are_listed_together(self):
        model = keras.Sequential(
            [
                keras.Input((6,)),
                L.Dense(
                    4,
                    activation="hard_tanh",
                    kernel_regularizer=keras.regularizers.OrthogonalRegularizer(),
                    name="d1",
                ),
                L.GaussianNoise(0.1, name="noise"),
                L.Dense(4, dtype="float64", name="wide"),
                L.ELU(activity_regularizer="l2", name="elu"),
                L.Dense(2, name="d2"),
            ]
        )
        self.assert_refused(
            model,
            "layer `d1` (Dense): argument `activation`: `hard_tanh` is not one of kiln's activations",
            "layer `d1` (Dense): argument `kernel_regularizer`: `OrthogonalRegularizer` is not one of kiln's regularizers",
            "layer `noise` (GaussianNoise): kiln has no `GaussianNoise` layer",
            "layer `wide` (Dense) computes in float64",
            "layer `elu` (ELU): argument `activity_regularizer = L2(l2=0.01)`",
            count=5,
        )

    def test_refusal_leaves_existing_files_alone(self):
        out_dir = self.tmp / "existing"
        out_dir.mkdir()
        (out_dir / "model.rs").write_text("old model\n")
        (out_dir / "weights.safetensors").write_bytes(b"old weights")
        model = keras.Sequential([keras.Input((6,)), L.Dense(4, activation="celu")])
        result, _ = self.run_export(self.save(model), out_dir)
        self.assertEqual(result.returncode, 1)
        self.assertEqual((out_dir / "model.rs").read_text(), "old model\n")
        self.assertEqual((out_dir / "weights.safetensors").read_bytes(), b"old weights")
        self.assertEqual(sorted(p.name for p in out_dir.iterdir()), ["model.rs", "weights.safetensors"])
        self.assert_no_temporary_folders()

    def test_usage_errors(self):
        result, out_dir = self.run_export(self.tmp / "missing.keras")
        self.assertEqual(result.returncode, 2)
        self.assertIn("no such file", result.stderr)
        model = keras.Sequential([keras.Input((6,)), L.Dense(4)])
        result, out_dir = self.run_export(self.save(model), name="not-an-ident")
        self.assertEqual(result.returncode, 2)
        self.assertIn("is not a Rust identifier", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertFalse(out_dir.exists())

    # --- writes -------------------------------------------------------------------------

    def test_success_replaces_both_files(self):
        out_dir = self.tmp / "existing"
        out_dir.mkdir()
        (out_dir / "model.rs").write_text("old model\n")
        (out_dir / "weights.safetensors").write_bytes(b"old weights")
        model = keras.Sequential([keras.Input((6,)), L.Dense(4, name="conv1-BN"), L.PReLU()])
        result, _ = self.run_export(self.save(model), out_dir, name="Tiny")
        self.assertEqual(result.returncode, 0, result.stderr)
        text = (out_dir / "model.rs").read_text()
        self.assertIn("pub Tiny = Sequential([", text)
        self.assertIn('Dense(4, name = "conv1-BN")', text)
        self.assertNotIn("//!", text)
        from safetensors.numpy import load_file

        weights = load_file(out_dir / "weights.safetensors")
        self.assertEqual(sorted(weights), ["conv1-BN/bias", "conv1-BN/kernel", "p_re_lu/alpha"])
        self.assertEqual(weights["conv1-BN/kernel"].shape, (6, 4))
        self.assert_no_temporary_folders()

    def test_sequence_inputs(self):
        # Keras's sequence inputs as kiln's DSL writes them: `None` timesteps, a fixed batch
        # size (which `stateful = True` needs), integer ids.
        model = keras.Sequential(
            [
                keras.Input(batch_shape=(2, None, 3), name="audio"),
                L.LSTM(8, stateful=True, return_sequences=True),
                L.Dense(1),
            ]
        )
        text = self.export_text(model)
        self.assertIn('Input(shape = (None, 3), batch_size = 2, name = "audio"),', text)
        self.assertIn('LSTM(8, return_sequences = True, stateful = True, name = "lstm"),', text)
        keras.backend.clear_session()
        model = keras.Sequential(
            [
                keras.Input(shape=(None,), batch_size=4, dtype="int32", name="ids"),
                L.Embedding(10, 3, mask_zero=True),
                L.GRU(2, stateful=True),
            ]
        )
        text = self.export_text(model)
        self.assertIn('Input(shape = (None,), batch_size = 4, dtype = "int32", name = "ids"),', text)
        self.assertIn('GRU(2, stateful = True, name = "gru"),', text)
        keras.backend.clear_session()
        model = keras.Sequential(
            [keras.Input(shape=(6,), dtype="uint8", name="ids"), L.Embedding(300, 2), L.Flatten()]
        )
        text = self.export_text(model)
        self.assertIn('Input(shape = (6,), dtype = "uint8", name = "ids"),', text)

    def test_wrapped_layers_keep_the_wrappers_name(self):
        # A loaded model's paths lack the wrapper's name (`forward_gru/gru_cell/kernel`,
        # keras 3.15), which kiln's names hold, as a model built in Python does.
        model = keras.Sequential(
            [
                keras.Input((7, 3)),
                L.TimeDistributed(L.Dense(4)),
                L.Bidirectional(L.GRU(2), backward_layer=L.GRU(2, go_backwards=True, name="bw")),
            ]
        )
        built = [v.path.split("/", 1)[1] for v in model.weights]
        path = self.save(model)
        loaded = keras.saving.load_model(path)
        self.assertIn("forward_gru/gru_cell/kernel", [v.path for v in loaded.weights])
        result, out_dir = self.run_export(path)
        self.assertEqual(result.returncode, 0, result.stderr)
        from safetensors.numpy import load_file

        names = list(load_file(out_dir / "weights.safetensors"))
        self.assertEqual(sorted(names), sorted(built))
        self.assertIn("bidirectional/bw/gru_cell/recurrent_kernel", names)
        self.assertIn("time_distributed/dense/kernel", names)
        self.assertEqual([n for n in keras_export.convert(loaded)[2]], built)
        text = (out_dir / "model.rs").read_text()
        self.assertIn(
            'Bidirectional(GRU(2, name = "gru"), backward_layer = GRU(2, go_backwards = True, '
            'name = "bw"), name = "bidirectional")',
            text,
        )
        # Keras's own backward copy is left to kiln, which names it as Keras does from the
        # wrapped layer's name: `backward_lstm`, not `backward_forward_lstm`.
        keras.backend.clear_session()
        model = keras.Sequential(
            [keras.Input((5, 2)), L.Bidirectional(L.LSTM(3), merge_mode="sum")]
        )
        text = self.export_text(model)
        self.assertIn(
            'Bidirectional(LSTM(3, name = "lstm"), merge_mode = "sum", name = "bidirectional")',
            text,
        )

    def test_a_failed_move_puts_the_old_files_back(self):
        # In-process: the second file's move fails; the first, already moved, is restored.
        out_dir = self.tmp / "existing"
        out_dir.mkdir()
        (out_dir / "model.rs").write_text("old model\n")
        (out_dir / "weights.safetensors").write_bytes(b"old weights")
        real_replace = os.replace

        def failing_replace(src, dst):
            if pathlib.Path(dst) == out_dir / "weights.safetensors" and ".export-" in str(src):
                if pathlib.Path(src).parent.name != "previous":
                    raise OSError("disk full")
            return real_replace(src, dst)

        with mock.patch.object(keras_export.os, "replace", failing_replace):
            with self.assertRaises(OSError):
                keras_export.write_outputs(
                    out_dir, {"model.rs": b"new model\n", "weights.safetensors": b"new weights"}
                )
        self.assertEqual((out_dir / "model.rs").read_text(), "old model\n")
        self.assertEqual((out_dir / "weights.safetensors").read_bytes(), b"old weights")
        self.assert_no_temporary_folders()

    def test_weight_names_drop_model_prefixes(self):
        # Keras adds the model's and nested models' names to variable paths or not,
        # depending on how the model was built or loaded.
        self.assertEqual(keras_export.weight_suffix("dense/kernel", ["seq"], "dense"), "dense/kernel")
        self.assertEqual(keras_export.weight_suffix("seq/dense/kernel", ["seq"], "dense"), "dense/kernel")
        self.assertEqual(
            keras_export.weight_suffix("inner/dense/kernel", ["outer", "inner"], "dense"), "dense/kernel"
        )
        self.assertEqual(keras_export.weight_suffix("dense/dense/kernel", ["dense"], "dense"), "dense/kernel")
        self.assertEqual(
            keras_export.weight_suffix("lstm/lstm_cell/kernel", ["seq"], "lstm"), "lstm/lstm_cell/kernel"
        )
        self.assertIsNone(keras_export.weight_suffix("other/kernel", ["seq"], "dense"))


if __name__ == "__main__":
    unittest.main()
