//! `LSTM(units, activation = "tanh", recurrent_activation = "sigmoid", use_bias = True,
//! kernel_initializer = "glorot_uniform", recurrent_initializer = "orthogonal",
//! bias_initializer = "zeros", unit_forget_bias = True, kernel_regularizer,
//! recurrent_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
//! recurrent_constraint, bias_constraint, dropout = 0.0, recurrent_dropout = 0.0, seed =
//! None, return_sequences = False, return_state = False, go_backwards = False, stateful =
//! False, unroll = False, use_cudnn = "auto")`: a long short-term memory layer, gates
//! `i, f, c, o` in that order.
//!
//! Weights (Keras 3 paths): `lstm/lstm_cell/kernel` `(features, 4 * units)`,
//! `.../recurrent_kernel` `(units, 4 * units)`, `.../bias` `(4 * units,)`; with
//! `unit_forget_bias` the forget gate's bias starts at 1. Shape and mask rules: see
//! `recurrent.rs`.

use super::recurrent::{self, Cell};
use super::LayerKind;
use crate::args::Signature;

pub const KIND: LayerKind = LayerKind {
    class: "LSTM",
    signature: Signature {
        params: &[
            "units",
            "activation",
            "recurrent_activation",
            "use_bias",
            "kernel_initializer",
            "recurrent_initializer",
            "bias_initializer",
            "unit_forget_bias",
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
            "use_cudnn",
        ],
        required: 1,
    },
    build: |b, input| recurrent::build(b, input, Cell::Lstm),
};
