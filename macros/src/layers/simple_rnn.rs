//! `SimpleRNN(units, activation = "tanh", use_bias = True, kernel_initializer =
//! "glorot_uniform", recurrent_initializer = "orthogonal", bias_initializer = "zeros",
//! kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
//! kernel_constraint, recurrent_constraint, bias_constraint, dropout = 0.0,
//! recurrent_dropout = 0.0, return_sequences = False, return_state = False, go_backwards =
//! False, stateful = False, unroll = False, seed = None)`:
//! `h = activation(x_t · kernel + h · recurrent_kernel + bias)` over the timesteps.
//!
//! Weights (Keras 3 paths): `simple_rnn/simple_rnn_cell/kernel` `(features, units)`,
//! `.../recurrent_kernel` `(units, units)`, `.../bias` `(units,)`. Shape and mask rules:
//! see `recurrent.rs`.

use super::recurrent::{self, Cell};
use super::LayerKind;
use crate::args::Signature;

pub const KIND: LayerKind = LayerKind {
    class: "SimpleRNN",
    signature: Signature {
        params: &[
            "units",
            "activation",
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
            "return_sequences",
            "return_state",
            "go_backwards",
            "stateful",
            "unroll",
            "seed",
        ],
        required: 1,
    },
    build: |b, input| recurrent::build(b, input, Cell::SimpleRnn),
};
