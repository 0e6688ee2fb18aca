//! [`Streaming`]: a model run one timestep at a time, its recurrent state in a
//! [`StreamState`] the caller owns; and the helper behind the generated `predict_sequence` /
//! `predict_chunk` methods.
//!
//! `kiln::model!` implements [`Streaming`] for every model whose input is a sequence
//! `(timesteps, features)` (or `(None, features)`) and whose layers all work on one
//! timestep at a time: recurrent layers with `return_sequences = True` and without
//! `go_backwards`, causal `Conv1D` with stride 1 (which carries its last input timesteps),
//! `Embedding` first, and the layers that act on the last axis only (Dense, activations,
//! Masking, Dropout, LayerNormalization on the last axis, ...). Feeding a sequence step by
//! step, from a fresh (or reset) state, gives the rows of Keras's output for the whole
//! sequence. A step whose features all equal a `Masking` layer's `mask_value` is a masked
//! timestep, as in the whole sequence: the recurrent layers after it keep their state and
//! repeat their previous output.
//!
//! A model with Keras's `stateful = True` on a recurrent layer (and so a fixed batch size
//! `B`) also gets `new_states()`, `[StreamState<N>; B]`, and `predict_stateful`
//! (`run_stateful`): Keras's calls of the stateful model, sample `b` of each call
//! continuing from state `b`. [`Reset`] on the array is Keras's `reset_states()`.
//!
//! Nothing here allocates: the state is a fixed-size value that also holds the step's
//! temporaries (its scratch), so a step neither allocates nor clears stack memory.

#[cfg(feature = "alloc")]
use crate::error::{check_ids, first_non_finite, Error, ShapeDisplay};
use crate::tensor::Tensor;
#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// A state that can start over: [`Reset::reset`] puts it back to the start of a sequence
/// (zeros, Keras's initial state).
pub trait Reset {
    /// Back to the state of a new sequence.
    fn reset(&mut self);
}

/// The recurrent state of a streaming model: `N` values, every layer's carried state side
/// by side (an LSTM's `h` and `c`, a GRU's or SimpleRNN's `h`, a causal `Conv1D`'s last
/// `(kernel_size - 1) * dilation_rate` input timesteps), zeros at the start of a
/// sequence. Its size is known at compile time (`core::mem::size_of::<StreamState<N,
/// W>>()`); it lives wherever the caller puts it (stack, `static`, heap).
///
/// It also holds the step's `W` values of scratch (the gates of its recurrent layers, the
/// values passed between layers), so that a step does not clear fresh stack memory for them
/// each call: that clearing cost an LSTM(1 -> 32) step about a tenth of its time
/// (BENCHMARKS.md, "Streaming RNN step"). The scratch is not part of the state: a step
/// writes it before reading it, and [`StreamState::values`], `==`, `Debug` and
/// [`Reset::reset`] ignore it.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct StreamState<const N: usize, const W: usize = 0> {
    scratch: [f32; W],
    values: [f32; N],
}

impl<const N: usize, const W: usize> StreamState<N, W> {
    /// Values in the state.
    pub const LEN: usize = N;

    /// The state at the start of a sequence: zeros.
    pub const fn new() -> Self {
        StreamState {
            scratch: [0.0; W],
            values: [0.0; N],
        }
    }

    /// The state's values, layer by layer in model order.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The state's values, writable (to restore a state saved from [`StreamState::values`]).
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// The values and the step's scratch, for the generated step.
    #[doc(hidden)]
    #[inline(always)]
    pub fn values_and_scratch_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        (&mut self.values, &mut self.scratch)
    }
}

impl<const N: usize, const W: usize> Default for StreamState<N, W> {
    fn default() -> Self {
        Self::new()
    }
}

/// Equal carried values (the scratch is not compared).
impl<const N: usize, const W: usize> PartialEq for StreamState<N, W> {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl<const N: usize, const W: usize> core::fmt::Debug for StreamState<N, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamState")
            .field("values", &self.values)
            .finish()
    }
}

impl<const N: usize, const W: usize> Reset for StreamState<N, W> {
    fn reset(&mut self) {
        self.values = [0.0; N];
    }
}

/// The states of a stateful model's batch (`new_states()`, one per sample): Keras's
/// `model.reset_states()` is `states.reset()`.
impl<T: Reset, const B: usize> Reset for [T; B] {
    fn reset(&mut self) {
        self.iter_mut().for_each(Reset::reset);
    }
}

/// A model run one timestep at a time (the real-time audio and control-loop case), with its
/// state carried between calls in memory the caller owns. See the module docs for which
/// models implement it.
///
/// (The `kiln` crate's `model!` docs, "Sequences and streaming", show it in use, and
/// `tests/streaming.rs` checks it against Keras.)
pub trait Streaming {
    /// The carried state ([`StreamState`]).
    type State: Reset;
    /// One timestep's input: `SVector<f32, features>`.
    type StepInput: Tensor;
    /// One timestep's output: `SVector<f32, units>` of the last layer.
    type StepOutput: Tensor;

    /// The state at the start of a sequence (zeros).
    fn new_state(&self) -> Self::State;

    /// Runs one timestep: reads and updates `state`, returns this timestep's output. No
    /// heap allocation.
    fn step(&self, state: &mut Self::State, x: &Self::StepInput) -> Self::StepOutput;
}

/// The generated `predict_sequence` and `predict_chunk`: checks `xs` (at least one whole
/// timestep of `per_step` values, all finite, and ids below `input_ids` for a model whose
/// first layer is `Embedding`), then runs `step` on each timestep in order,
/// `step(x, y, tail)` writing the timestep's output into `y` (`out_per_step` values) when
/// `tail`. Returns every timestep's output, or, when `last_only` (a model whose last
/// recurrent layer has `return_sequences = False`), only the last one: `tail` is then true
/// for the last timestep only, so the layers after that recurrent layer run once.
#[doc(hidden)]
#[cfg(feature = "alloc")]
pub fn run_sequence(
    xs: &[f32],
    per_step: usize,
    out_per_step: usize,
    last_only: bool,
    input_ids: Option<usize>,
    mut step: impl FnMut(&[f32], &mut [f32], bool),
) -> Result<Vec<f32>, Error> {
    if per_step == 0 || xs.is_empty() || !xs.len().is_multiple_of(per_step) {
        return Err(Error::SequenceLength {
            per_step,
            found: xs.len(),
            shape: ShapeDisplay(alloc::vec![per_step]),
        });
    }
    check_values(xs, input_ids)?;
    let mut ys = alloc::vec![0.0; output_len(xs.len() / per_step, out_per_step, last_only)];
    run_rows(xs, per_step, out_per_step, last_only, &mut ys, &mut step);
    Ok(ys)
}

/// Every value finite, and an id below `input_ids` where the first layer is `Embedding`.
#[cfg(feature = "alloc")]
fn check_values(xs: &[f32], input_ids: Option<usize>) -> Result<(), Error> {
    if let Some((index, value)) = first_non_finite(xs) {
        return Err(Error::NonFiniteInput { index, value });
    }
    check_ids(input_ids, xs)
}

/// Values of one sequence's output: every timestep's, or the last one's.
#[cfg(feature = "alloc")]
fn output_len(steps: usize, out_per_step: usize, last_only: bool) -> usize {
    if last_only {
        out_per_step
    } else {
        steps * out_per_step
    }
}

/// Steps through one checked sequence `xs`, writing its output into `ys`.
#[cfg(feature = "alloc")]
fn run_rows(
    xs: &[f32],
    per_step: usize,
    out_per_step: usize,
    last_only: bool,
    ys: &mut [f32],
    step: &mut impl FnMut(&[f32], &mut [f32], bool),
) {
    let steps = xs.len() / per_step;
    for (t, x) in xs.chunks_exact(per_step).enumerate() {
        if last_only {
            step(x, ys, t + 1 == steps);
        } else {
            step(x, &mut ys[t * out_per_step..(t + 1) * out_per_step], true);
        }
    }
}

/// The generated `predict_stateful` of a model with `stateful = True` layers: `xs` holds
/// `batch_size` sequences of the same length (`timesteps` of them when the model fixes it),
/// sequence `b` continuing from state `b` (`step(b, x, y, tail)`, as for
/// [`run_sequence`]). Everything is checked before any state changes, so a refused call
/// leaves the states as they were.
#[doc(hidden)]
#[cfg(feature = "alloc")]
#[allow(clippy::too_many_arguments)]
pub fn run_stateful(
    xs: &[f32],
    batch_size: usize,
    timesteps: Option<usize>,
    per_step: usize,
    out_per_step: usize,
    last_only: bool,
    input_ids: Option<usize>,
    mut step: impl FnMut(usize, &[f32], &mut [f32], bool),
) -> Result<Vec<f32>, Error> {
    let per_sequence = xs.len() / batch_size.max(1);
    let whole = batch_size > 0
        && per_step > 0
        && per_sequence > 0
        && per_sequence * batch_size == xs.len()
        && per_sequence.is_multiple_of(per_step)
        && timesteps.is_none_or(|t| per_sequence == t * per_step);
    if !whole {
        return Err(Error::StatefulBatchLength {
            batch_size,
            timesteps,
            per_step,
            found: xs.len(),
            shape: ShapeDisplay(alloc::vec![per_step]),
        });
    }
    check_values(xs, input_ids)?;
    let out_len = output_len(per_sequence / per_step, out_per_step, last_only);
    let mut ys = alloc::vec![0.0; batch_size * out_len];
    for (b, (x, y)) in xs
        .chunks_exact(per_sequence)
        .zip(ys.chunks_exact_mut(out_len))
        .enumerate()
    {
        run_rows(
            x,
            per_step,
            out_per_step,
            last_only,
            y,
            &mut |x, y, tail| step(b, x, y, tail),
        );
    }
    Ok(ys)
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    #[test]
    fn a_state_resets_to_zeros() {
        let mut s = StreamState::<3>::new();
        s.values_mut().copy_from_slice(&[1.0, 2.0, 3.0]);
        s.reset();
        assert_eq!(s.values(), &[0.0; 3]);
        assert_eq!(StreamState::<3>::LEN, 3);
    }

    #[test]
    fn sequences_are_checked_then_stepped() {
        let double = |x: &[f32], y: &mut [f32], _tail: bool| y[0] = 2.0 * x[0] + x[1];
        assert_eq!(
            run_sequence(&[1.0, 0.0, 2.0, 1.0], 2, 1, false, None, double),
            Ok(alloc::vec![2.0, 5.0])
        );
        assert_eq!(
            run_sequence(&[1.0, 0.0, 2.0, 1.0], 2, 1, true, None, double),
            Ok(alloc::vec![5.0])
        );
        assert!(matches!(
            run_sequence(&[], 2, 1, true, None, double),
            Err(Error::SequenceLength { found: 0, .. })
        ));
        assert!(matches!(
            run_sequence(&[1.0, 0.0, 2.0], 2, 1, false, None, double),
            Err(Error::SequenceLength {
                per_step: 2,
                found: 3,
                ..
            })
        ));
        assert!(matches!(
            run_sequence(&[1.0, f32::NAN], 2, 1, false, None, double),
            Err(Error::NonFiniteInput { index: 1, .. })
        ));
        let first = |x: &[f32], y: &mut [f32], _tail: bool| y[0] = x[0];
        assert_eq!(
            run_sequence(&[3.0, 0.0], 1, 1, false, Some(4), first),
            Ok(alloc::vec![3.0, 0.0])
        );
        assert!(matches!(
            run_sequence(&[3.0, 4.0, 1.5], 1, 1, false, Some(4), first),
            Err(Error::InvalidId {
                index: 1,
                input_dim: 4,
                ..
            })
        ));
    }

    /// Each sequence of the batch steps through its own state, in order; a call of the
    /// wrong length changes no state.
    #[test]
    fn stateful_batches_step_each_sequence_on_its_state() {
        // Sequence `b`'s running sum of its inputs, kept in `sums[b]`.
        let mut sums = [0.0f32; 2];
        let run = |xs: &[f32], timesteps: Option<usize>, last_only: bool, sums: &mut [f32; 2]| {
            run_stateful(xs, 2, timesteps, 1, 1, last_only, None, |b, x, y, _tail| {
                sums[b] += x[0];
                y[0] = sums[b];
            })
        };
        assert_eq!(
            run(&[1.0, 2.0, 10.0, 20.0], Some(2), false, &mut sums),
            Ok(alloc::vec![1.0, 3.0, 10.0, 30.0])
        );
        assert_eq!(
            run(&[1.0, 5.0], None, true, &mut sums),
            Ok(alloc::vec![4.0, 35.0])
        );
        for (bad, timesteps) in [
            (&[1.0, 2.0, 3.0][..], None),
            (&[1.0, 2.0], Some(2)),
            (&[], None),
        ] {
            assert!(matches!(
                run(bad, timesteps, false, &mut sums),
                Err(Error::StatefulBatchLength { batch_size: 2, .. })
            ));
        }
        assert!(matches!(
            run(&[1.0, f32::INFINITY], None, false, &mut sums),
            Err(Error::NonFiniteInput { index: 1, .. })
        ));
        assert_eq!(sums, [4.0, 35.0]);
        let mut states = [StreamState::<1>::new(); 2];
        states[1].values_mut()[0] = 3.0;
        states.reset();
        assert_eq!(states, [StreamState::<1>::new(); 2]);
    }
}
