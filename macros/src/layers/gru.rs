//! `GRU(units, activation = "tanh", recurrent_activation = "sigmoid", use_bias = True,
//! kernel_initializer = "glorot_uniform", recurrent_initializer = "orthogonal",
//! bias_initializer = "zeros", kernel_regularizer, recurrent_regularizer, bias_regularizer,
//! activity_regularizer, kernel_constraint, recurrent_constraint, bias_constraint, dropout =
//! 0.0, recurrent_dropout = 0.0, seed = None, return_sequences = False, return_state =
//! False, go_backwards = False, stateful = False, unroll = False, reset_after = True,
//! use_cudnn = "auto")`: a gated recurrent unit, gates `z, r, h` in that order.
//!
//! Weights (Keras 3 paths): `gru/gru_cell/kernel` `(features, 3 * units)`,
//! `.../recurrent_kernel` `(units, 3 * units)`, `.../bias` `(2, 3 * units)` with
//! `reset_after` (input bias, then recurrent bias) or `(3 * units,)` without. Shape and mask
//! rules: see `recurrent.rs`.

use super::recurrent::{self, Cell};
use super::LayerKind;
use crate::args::Signature;

pub const KIND: LayerKind = LayerKind {
    class: "GRU",
    signature: Signature {
        params: &[
            "units",
            "activation",
            "recurrent_activation",
            "use_bias",
            "kernel_initializer",
            "recurrent_initializer",
            "bias_initializer",
            "kernel_regularizer",
            "recurrent_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "kernel_constraint",
            "recurrent_constraint",
            "bias_constraint",
            "dropout",
            "recurrent_dropout",
            "seed",
            "return_sequences",
            "return_state",
            "go_backwards",
            "stateful",
            "unroll",
            "reset_after",
            "use_cudnn",
        ],
        required: 1,
    },
    build: |b, input| {
        let reset_after = b.boolean("reset_after", true)?;
        recurrent::build(b, input, Cell::Gru(reset_after))
    },
};
