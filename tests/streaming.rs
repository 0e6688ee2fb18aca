//! Streaming and variable-length sequences against Keras 3 (tests/golden/streaming.json,
//! from tools/oracle/streaming.py): `Streaming::step` fed one timestep at a time,
//! `predict_sequence` on sequences of several lengths, and `predict_chunk` over consecutive
//! chunks (Keras's `stateful = True`), each equal to Keras's output for the whole sequence;
//! masked timesteps inside, leading and trailing; the state's size, its reset, typed errors,
//! and no heap allocation in `step`.

mod common;
use common::{assert_close, floats, golden, load};
use kiln::{Model, Reset, Streaming, Tensor};
use serde_json::Value;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::marker::PhantomData;

kiln::model! {
    LstmSeqDense = Sequential([Input(shape = (None, 2)), LSTM(4, return_sequences = True), Dense(3)]);
    GruSeqDenseTanh = Sequential([Input(shape = (None, 3)), GRU(4, return_sequences = True), Dense(2, activation = "tanh")]);
    GruResetBeforeSeq = Sequential([Input(shape = (None, 2)), GRU(3, reset_after = False, return_sequences = True)]);
    MaskingGruSeqDense = Sequential([Input(shape = (None, 3)), Masking(), GRU(4, return_sequences = True), Dense(2)]);
    MaskingLstmSeqRelu = Sequential([
        Input(shape = (None, 2)),
        Masking(mask_value = 0.0),
        LSTM(3, return_sequences = True),
        ReLU(),
        Dense(2),
    ]);
    SimpleRnnLstmStackChain = Sequential([
        Input(shape = (None, 2)),
        SimpleRNN(5, return_sequences = True),
        Dropout(0.3),
        LSTM(4, return_sequences = True),
        LeakyReLU(negative_slope = 0.2),
        ELU(),
        Activation("sigmoid"),
        ActivityRegularization(l1 = 0.01),
    ]);
    LstmLastDenseSoftmax = Sequential([Input(shape = (None, 2)), Masking(), LSTM(4), Dense(3, activation = "softmax")]);
    GruStackLast = Sequential([
        Input(shape = (None, 2)),
        GRU(4, return_sequences = True),
        GRU(3, reset_after = False),
        Dense(2),
    ]);
    FixedLstmSeqDense = Sequential([Input(shape = (6, 2)), LSTM(3, return_sequences = True), Dense(2)]);
    /// The stateful cases' models as Keras writes them: with a batch of one, `predict_chunk`
    /// and `predict_stateful` carry the same state.
    StatefulLstmSeq = Sequential([
        Input(batch_shape = (1, None, 2)),
        LSTM(4, stateful = True, return_sequences = True),
        Dense(2),
    ]);
    StatefulGruLast = Sequential([Input(batch_shape = (1, None, 2)), GRU(3, stateful = True), Dense(2)]);
    /// Stateful models on batches: one state per sample of the fixed batch size.
    StatefulBatchLstmSeq = Sequential([
        Input(batch_shape = (2, None, 2)),
        LSTM(4, stateful = True, return_sequences = True),
        Dense(2),
    ]);
    StatefulBatchGruFixed = Sequential([
        Input(shape = (3, 2), batch_size = 3),
        GRU(3, stateful = True),
        Dense(2),
    ]);
    StatefulBatchEmbeddingMasked = Sequential([
        Input(batch_shape = (2, None), dtype = "int32"),
        Embedding(5, 3, mask_zero = True),
        SimpleRNN(4, stateful = True, return_sequences = True),
        Dense(2),
    ]);
    /// Too large to precompute its projections: `predict` keeps one timestep's scratch.
    WideLstm = Sequential([Input(shape = (4, 8)), LSTM(2000)]);
}

const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-5;

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|cases| cases.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no golden case {name}"))
}

/// `Streaming::step` over `x` from `state`, every output concatenated.
fn stream<M: Streaming>(model: &M, state: &mut M::State, x: &[f32], features: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for step in x.chunks_exact(features) {
        let y = model.step(state, &M::StepInput::from_values(step));
        out.extend_from_slice(y.values());
    }
    out
}

/// Whether `T` implements `Streaming`, decided at compile time (an inherent method on
/// `Probe<T: Streaming>` wins over the blanket trait method).
struct Probe<T>(PhantomData<T>);
trait NotStreaming {
    fn streams(&self) -> bool {
        false
    }
}
impl<T> NotStreaming for Probe<T> {}
impl<T: Streaming> Probe<T> {
    fn streams(&self) -> bool {
        true
    }
}

macro_rules! sequences {
    ($file:literal, $model:ty, $case:expr, |$m:ident, $x:ident, $features:ident| $run:expr) => {{
        let file = golden($file);
        let case = find(&file["cases"], $case);
        let $features = case["features"].as_u64().expect("features") as usize;
        let $m: $model = load(case);
        let sequences = case["sequences"].as_array().expect("sequences");
        assert!(!sequences.is_empty());
        for (n, s) in sequences.iter().enumerate() {
            let $x = floats(&s["x"]);
            let expected = floats(&s["y"]);
            let what = format!("{} sequence {n} ({} timesteps)", $case, s["timesteps"]);
            assert_close(&what, &$run, &expected, RTOL, ATOL);
        }
    }};
    ($model:ty, $case:expr, |$m:ident, $x:ident, $features:ident| $run:expr) => {
        sequences!("streaming", $model, $case, |$m, $x, $features| $run)
    };
}

/// `predict_sequence`, then `Streaming::step` one timestep at a time from a reset state,
/// against the golden file's sequences (tests/golden/streaming.json unless named).
macro_rules! streaming_case {
    ($file:literal, $test:ident, $model:ty, $case:literal) => {
        #[test]
        fn $test() {
            // The whole sequence at once, any length.
            sequences!($file, $model, $case, |m, x, _f| m
                .predict_sequence(&x)
                .expect("predict_sequence"));
            // One timestep at a time: one state across the sequence, reset between them.
            let mut state: Option<<$model as Streaming>::State> = None;
            sequences!($file, $model, $case, |m, x, f| {
                let state = state.get_or_insert_with(|| m.new_state());
                state.reset();
                stream(&m, state, &x, f)
            });
            assert!(Probe::<$model>(PhantomData).streams());
        }
    };
    ($test:ident, $model:ty, $case:literal) => {
        streaming_case!("streaming", $test, $model, $case);
    };
}

streaming_case!(
    lstm_then_dense_steps_like_keras,
    LstmSeqDense,
    "lstm_seq_dense"
);
streaming_case!(
    gru_then_dense_tanh_steps_like_keras,
    GruSeqDenseTanh,
    "gru_seq_dense_tanh"
);
streaming_case!(
    gru_reset_before_steps_like_keras,
    GruResetBeforeSeq,
    "gru_reset_before_seq"
);
streaming_case!(
    masked_timesteps_keep_the_gru_state,
    MaskingGruSeqDense,
    "masking_gru_seq_dense"
);
streaming_case!(
    masked_timesteps_keep_the_lstm_state,
    MaskingLstmSeqRelu,
    "masking_lstm_seq_relu"
);
streaming_case!(
    stacked_rnns_and_elementwise_layers_step_like_keras,
    SimpleRnnLstmStackChain,
    "simple_rnn_lstm_stack_chain"
);

/// A last recurrent layer without `return_sequences`: `predict_sequence` gives Keras's one
/// output (through the layers after it), and the model is not `Streaming`.
#[test]
fn a_last_output_model_predicts_whole_sequences_only() {
    sequences!(
        LstmLastDenseSoftmax,
        "lstm_last_dense_softmax",
        |m, x, _f| m.predict_sequence(&x).expect("predict_sequence")
    );
    sequences!(GruStackLast, "gru_stack_last", |m, x, _f| m
        .predict_sequence(&x)
        .expect("predict_sequence"));
    assert!(!Probe::<LstmLastDenseSoftmax>(PhantomData).streams());
    assert!(!Probe::<GruStackLast>(PhantomData).streams());
}

/// A fixed-length model streams too, and its `Model::predict_slice` agrees with the steps.
#[test]
fn a_fixed_length_model_streams_and_predicts_alike() {
    sequences!(FixedLstmSeqDense, "fixed_lstm_seq_dense", |m, x, f| {
        let mut state = m.new_state();
        let streamed = stream(&m, &mut state, &x, f);
        let whole = m.predict_slice(&x).expect("predict_slice");
        assert_close("predict_slice vs step", &whole, &streamed, 1e-5, 1e-6);
        streamed
    });
}

/// Keras's `stateful = True` over consecutive chunks (the state carried from one call to the
/// next) is `predict_chunk` with one state.
#[test]
fn chunks_carry_the_state_like_keras_stateful() {
    fn run<M: Model>(name: &str, chunk: impl Fn(&M, &[f32]) -> Vec<f32>, reset: impl Fn()) {
        let file = golden("streaming");
        let case = find(&file["stateful"], name);
        let model: M = load(case);
        reset();
        let chunks = case["chunks"].as_array().expect("chunks");
        for (n, c) in chunks.iter().enumerate() {
            let got = chunk(&model, &floats(&c["x"]));
            assert_close(
                &format!("{name} chunk {n}"),
                &got,
                &floats(&c["y"]),
                RTOL,
                ATOL,
            );
        }
    }
    let state = std::cell::RefCell::new(StatefulLstmSeq::new(0).new_state());
    run::<StatefulLstmSeq>(
        "stateful_lstm_seq",
        |m, x| m.predict_chunk(&mut state.borrow_mut(), x).expect("chunk"),
        || state.borrow_mut().reset(),
    );
    let state = std::cell::RefCell::new(StatefulGruLast::new(0).new_state());
    run::<StatefulGruLast>(
        "stateful_gru_last",
        |m, x| m.predict_chunk(&mut state.borrow_mut(), x).expect("chunk"),
        || state.borrow_mut().reset(),
    );
}

/// Keras's `model(x)` calls of stateful models on batches (`stateful = True` on an input of
/// fixed batch size, `reset_state()` between some calls), through `predict_stateful` with
/// the model's `new_states()`: each sample of the batch continues its own state, masked
/// steps included; a batch of one matches `predict_chunk`; a refused call changes no state.
#[test]
fn stateful_batches_carry_a_state_per_sample_like_keras() {
    fn run<M: Model, S: Reset>(
        name: &str,
        mut states: S,
        call: impl Fn(&M, &mut S, &[f32]) -> Vec<f32>,
    ) {
        let file = golden("streaming");
        let case = find(&file["stateful_batches"], name);
        let model: M = load(case);
        for (n, c) in case["calls"].as_array().expect("calls").iter().enumerate() {
            if c["reset_before"] == true {
                states.reset();
            }
            let got = call(&model, &mut states, &floats(&c["x"]));
            assert_close(
                &format!("{name} call {n}"),
                &got,
                &floats(&c["y"]),
                RTOL,
                ATOL,
            );
        }
    }
    let m = StatefulBatchLstmSeq::new(0);
    run::<StatefulBatchLstmSeq, _>("stateful_batch_lstm_seq", m.new_states(), |m, s, x| {
        m.predict_stateful(s, x).expect("call")
    });
    let m = StatefulBatchGruFixed::new(0);
    run::<StatefulBatchGruFixed, _>("stateful_batch_gru_fixed", m.new_states(), |m, s, x| {
        m.predict_stateful(s, x).expect("call")
    });
    let m = StatefulBatchEmbeddingMasked::new(0);
    run::<StatefulBatchEmbeddingMasked, _>(
        "stateful_batch_embedding_masked",
        m.new_states(),
        |m, s, x| m.predict_stateful(s, x).expect("call"),
    );

    // The fixed timesteps and batch size are checked; a refused call leaves the states.
    let m = StatefulBatchGruFixed::new(0);
    let mut states = m.new_states();
    m.predict_stateful(&mut states, &[0.5; 18])
        .expect("3 x 3 x 2 values");
    let before = states;
    for bad in [&[0.5; 12][..], &[0.5; 24], &[]] {
        assert!(matches!(
            m.predict_stateful(&mut states, bad),
            Err(kiln::Error::StatefulBatchLength {
                batch_size: 3,
                timesteps: Some(3),
                ..
            })
        ));
    }
    let mut nan = [0.5; 18];
    nan[17] = f32::NAN;
    assert!(matches!(
        m.predict_stateful(&mut states, &nan),
        Err(kiln::Error::NonFiniteInput { index: 17, .. })
    ));
    assert_eq!(states, before);
    let m = StatefulBatchEmbeddingMasked::new(0);
    let mut states = m.new_states();
    assert!(matches!(
        m.predict_stateful(&mut states, &[1.0, 2.0, 5.0, 1.0]),
        Err(kiln::Error::InvalidId {
            index: 2,
            input_dim: 5,
            ..
        })
    ));
    assert!(matches!(
        m.predict_stateful(&mut states, &[1.0, 2.0, 3.0]),
        Err(kiln::Error::StatefulBatchLength {
            timesteps: None,
            found: 3,
            ..
        })
    ));
    let message = m
        .predict_stateful(&mut states, &[1.0; 3])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("batch size 2 takes 2 sequences"),
        "{message}"
    );

    // A batch of one: `predict_stateful` and `predict_chunk` carry the same state.
    let m = StatefulLstmSeq::new(3);
    let (mut states, mut state) = (m.new_states(), m.new_state());
    for x in [&[0.3, -1.0, 0.5, 2.0][..], &[1.5, 0.25]] {
        assert_eq!(
            m.predict_stateful(&mut states, x).expect("batch of one"),
            m.predict_chunk(&mut state, x).expect("chunk")
        );
    }
    assert_eq!(states[0], state);
}

/// The state is every recurrent layer's carried values and nothing else: LSTM `h` and `c`,
/// GRU and SimpleRNN `h`; its size is a compile-time constant.
#[test]
fn the_state_size_is_known_at_compile_time() {
    // The carried values: an LSTM's `h` and `c`, a stack's states side by side, a GRU's `h`.
    type LstmState = <LstmSeqDense as Streaming>::State;
    assert_eq!(LstmState::LEN, 2 * 4);
    type StackState = <SimpleRnnLstmStackChain as Streaming>::State;
    assert_eq!(StackState::LEN, 5 + 2 * 4);
    assert_eq!(<MaskingGruSeqDense as Streaming>::State::LEN, 4);
    // Its size, scratch included, is a constant: whole cache lines, no heap.
    const LSTM: usize = std::mem::size_of::<LstmState>();
    const { assert!(LSTM >= 4 * LstmState::LEN && LSTM.is_multiple_of(64)) };
    assert_eq!(LstmSeqDense::new(0).new_state().values().len(), 8);
    // `Input(shape = (None, f))`: the `Model` impl sees sequences of one timestep.
    assert_eq!(LstmSeqDense::INPUT_SHAPE, &[1, 2]);
    assert_eq!(LstmSeqDense::OUTPUT_SHAPE, &[1, 3]);
    assert_eq!(LstmLastDenseSoftmax::OUTPUT_SHAPE, &[3]);
}

/// `predict`'s and `predict_into`'s stack bounds count a recurrent layer's scratch array
/// (one timestep's projection, state and step scratch: (4 + 2 + 10) * 2000 values here).
#[test]
fn stack_bounds_count_the_recurrent_scratch() {
    let scratch = (4 + 2 + 10) * 2000 * 4;
    assert!(WideLstm::PREDICT_STACK_BYTES >= scratch + 64 * 1024);
    assert!(WideLstm::PREDICT_INTO_STACK_BYTES >= scratch + 64 * 1024);
}

#[test]
fn sequences_of_partial_timesteps_and_bad_values_are_typed_errors() {
    let model = LstmSeqDense::new(1);
    match model.predict_sequence(&[0.5; 5]) {
        Err(kiln::Error::SequenceLength {
            per_step: 2,
            found: 5,
            ..
        }) => {}
        other => panic!("expected SequenceLength, got {other:?}"),
    }
    let message = model.predict_sequence(&[0.5; 5]).unwrap_err().to_string();
    assert_eq!(
        message,
        "a sequence of timesteps of shape (2,) needs a positive multiple of 2 values, found 5"
    );
    assert!(matches!(
        model.predict_sequence(&[]),
        Err(kiln::Error::SequenceLength { found: 0, .. })
    ));
    assert!(matches!(
        model.predict_sequence(&[0.5, f32::NAN]),
        Err(kiln::Error::NonFiniteInput { index: 1, .. })
    ));
    let mut state = model.new_state();
    assert!(model.predict_chunk(&mut state, &[1.0; 3]).is_err());
    assert_eq!(
        state.values(),
        &[0.0; 8],
        "a refused chunk leaves the state"
    );
}

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn a_step_allocates_nothing() {
    let model = MaskingGruSeqDense::new(3);
    let chain = SimpleRnnLstmStackChain::new(4);
    let mut state = model.new_state();
    let mut chain_state = chain.new_state();
    let x = kiln::nalgebra::SVector::<f32, 3>::new(0.5, -1.0, 0.25);
    let x2 = kiln::nalgebra::SVector::<f32, 2>::new(0.5, -1.0);
    // Warm up anything lazily initialised (the instruction-set choice).
    model.step(&mut state, &x);
    let before = ALLOCATIONS.with(|c| c.get());
    for _ in 0..100 {
        std::hint::black_box(model.step(&mut state, &x));
        std::hint::black_box(chain.step(&mut chain_state, &x2));
    }
    assert_eq!(ALLOCATIONS.with(|c| c.get()) - before, 0);
}

// The layers beyond the recurrent ones (tests/golden/streaming_more.json, from
// tools/oracle/streaming_more.py): causal and one-timestep `Conv1D`, `LayerNormalization`,
// `Softmax` and `PReLU` per timestep, `Embedding` first, `TimeDistributed`.

kiln::model! {
    CausalConvDilatedLstmDense = Sequential([
        Input(shape = (None, 3)),
        Conv1D(4, 3, padding = "causal", dilation_rate = 2, activation = "relu"),
        LSTM(5, return_sequences = True),
        Dense(2),
    ]);
    CausalConvGroupsPointwise = Sequential([
        Input(shape = (None, 3)),
        Conv1D(6, 2, padding = "causal", groups = 3, activation = "tanh"),
        Conv1D(4, 1, padding = "same", use_bias = False),
        Conv1D(3, 1, activation = "sigmoid"),
    ]);
    FixedCausalConvGru = Sequential([
        Input(shape = (8, 2)),
        Conv1D(3, 4, padding = "causal"),
        Conv1D(2, 2, padding = "causal", dilation_rate = 3, use_bias = False),
        GRU(3, return_sequences = True),
    ]);
    LstmLayerNormPreluSoftmax = Sequential([
        Input(shape = (None, 2)),
        LSTM(4, return_sequences = True),
        LayerNormalization(epsilon = 1e-2),
        PReLU(shared_axes = [1]),
        Dense(3),
        Softmax(),
    ]);
    FixedDenseLayerNormPreluSoftmax = Sequential([
        Input(shape = (5, 3)),
        Dense(4),
        LayerNormalization(center = False),
        PReLU(shared_axes = [1]),
        PReLU(shared_axes = [1, 2]),
        Softmax(axis = -1),
    ]);
    LstmLastLayerNormPrelu = Sequential([
        Input(shape = (None, 2)),
        LSTM(4),
        LayerNormalization(),
        PReLU(),
        Dense(2),
    ]);
    EmbeddingMaskLstmSeq = Sequential([
        Input(shape = (None,)),
        Embedding(10, 4, mask_zero = True),
        LSTM(3, return_sequences = True),
        Dense(2),
    ]);
    EmbeddingGruLast = Sequential([
        Input(shape = (None,)),
        Embedding(7, 3),
        GRU(4),
        Dense(2, activation = "softmax"),
    ]);
    TimeDistributedDenseGruNorm = Sequential([
        Input(shape = (None, 2)),
        TimeDistributed(Dense(3, activation = "relu")),
        GRU(4, return_sequences = True),
        TimeDistributed(LayerNormalization()),
        TimeDistributed(Dense(2)),
    ]);
    MaskingLstmSoftmax = Sequential([
        Input(shape = (None, 2)),
        Masking(),
        LSTM(3, return_sequences = True),
        Softmax(),
    ]);
}

streaming_case!(
    "streaming_more",
    a_dilated_causal_conv1d_into_an_lstm_steps_like_keras,
    CausalConvDilatedLstmDense,
    "causal_conv_dilated_lstm_dense"
);
streaming_case!(
    "streaming_more",
    grouped_causal_and_one_timestep_conv1ds_step_like_keras,
    CausalConvGroupsPointwise,
    "causal_conv_groups_pointwise"
);
streaming_case!(
    "streaming_more",
    layer_norm_prelu_and_softmax_per_timestep_step_like_keras,
    LstmLayerNormPreluSoftmax,
    "lstm_layer_norm_prelu_softmax"
);
streaming_case!(
    "streaming_more",
    embedding_ids_and_their_zero_mask_step_like_keras,
    EmbeddingMaskLstmSeq,
    "embedding_mask_lstm_seq"
);
streaming_case!(
    "streaming_more",
    time_distributed_per_timestep_layers_step_like_keras,
    TimeDistributedDenseGruNorm,
    "time_distributed_dense_gru_norm"
);
streaming_case!(
    "streaming_more",
    a_masked_timestep_is_all_zeros_after_softmax,
    MaskingLstmSoftmax,
    "masking_lstm_softmax"
);

/// Fixed-length models whose layers are built for all their timesteps (a causal
/// convolution's padding, `LayerNormalization` and `PReLU` over `(5, 4)`): each step acts
/// on one timestep, equal to Keras and to the model's own whole-sequence `predict_slice`.
#[test]
fn fixed_length_convolutions_and_normalisations_stream_one_timestep() {
    fn check<M: Model + Streaming>(name: &str) {
        let file = golden("streaming_more");
        let case = find(&file["cases"], name);
        let features = case["features"].as_u64().expect("features") as usize;
        let model: M = load(case);
        for s in case["sequences"].as_array().expect("sequences") {
            let (x, expected) = (floats(&s["x"]), floats(&s["y"]));
            let mut state = model.new_state();
            let streamed = stream(&model, &mut state, &x, features);
            assert_close(&format!("{name} step"), &streamed, &expected, RTOL, ATOL);
            let whole = model.predict_slice(&x).expect("predict_slice");
            assert_close(
                &format!("{name} predict_slice"),
                &whole,
                &expected,
                RTOL,
                ATOL,
            );
        }
    }
    check::<FixedCausalConvGru>("fixed_causal_conv_gru");
    check::<FixedDenseLayerNormPreluSoftmax>("fixed_dense_layer_norm_prelu_softmax");
}

/// After a recurrent layer's last output, the layers run on one vector: `predict_sequence`
/// only (no `Streaming`), ids included.
#[test]
fn last_output_models_with_ids_and_normalisations_predict_whole_sequences() {
    sequences!(
        "streaming_more",
        LstmLastLayerNormPrelu,
        "lstm_last_layer_norm_prelu",
        |m, x, _f| m.predict_sequence(&x).expect("predict_sequence")
    );
    sequences!(
        "streaming_more",
        EmbeddingGruLast,
        "embedding_gru_last",
        |m, x, _f| m.predict_sequence(&x).expect("predict_sequence")
    );
    assert!(!Probe::<LstmLastLayerNormPrelu>(PhantomData).streams());
    assert!(!Probe::<EmbeddingGruLast>(PhantomData).streams());
}

/// A causal convolution carries its last `(kernel_size - 1) * dilation_rate` input rows;
/// a one-timestep kernel carries nothing.
#[test]
fn a_causal_convolution_carries_its_receptive_field() {
    assert_eq!(
        <CausalConvDilatedLstmDense as Streaming>::State::LEN,
        (3 - 1) * 2 * 3 + 2 * 5
    );
    assert_eq!(<CausalConvGroupsPointwise as Streaming>::State::LEN, 3);
    assert_eq!(
        <FixedCausalConvGru as Streaming>::State::LEN,
        3 * 2 + 3 * 3 + 3
    );
    assert_eq!(<EmbeddingMaskLstmSeq as Streaming>::State::LEN, 2 * 3);
    // `Input(shape = (None,))`: one id per timestep.
    assert_eq!(EmbeddingMaskLstmSeq::INPUT_SHAPE, &[1]);
    assert_eq!(EmbeddingMaskLstmSeq::INPUT_IDS, Some(10));
}

/// `predict_sequence` on ids refuses what is not an id, as the other slice APIs do; the
/// typed step follows Keras on JAX (truncation) as `predict` does.
#[test]
fn sequences_of_ids_are_checked() {
    let model = EmbeddingMaskLstmSeq::new(2);
    assert!(model.predict_sequence(&[1.0, 9.0, 0.0]).is_ok());
    match model.predict_sequence(&[1.0, 2.5, 3.0]) {
        Err(kiln::Error::InvalidId {
            index: 1,
            input_dim: 10,
            ..
        }) => {}
        other => panic!("expected InvalidId, got {other:?}"),
    }
    assert!(matches!(
        model.predict_sequence(&[1.0, 10.0]),
        Err(kiln::Error::InvalidId { index: 1, .. })
    ));
    assert!(matches!(
        model.predict_sequence(&[1.0, f32::NAN]),
        Err(kiln::Error::NonFiniteInput { index: 1, .. })
    ));
    let (mut a, mut b) = (model.new_state(), model.new_state());
    let id = |v: f32| kiln::nalgebra::SVector::<f32, 1>::new(v);
    assert_eq!(model.step(&mut a, &id(3.7)), model.step(&mut b, &id(3.0)));
}

#[test]
fn a_convolution_step_allocates_nothing() {
    let conv = CausalConvDilatedLstmDense::new(5);
    let ids = EmbeddingMaskLstmSeq::new(6);
    let (mut conv_state, mut ids_state) = (conv.new_state(), ids.new_state());
    let x = kiln::nalgebra::SVector::<f32, 3>::new(0.5, -1.0, 0.25);
    let id = kiln::nalgebra::SVector::<f32, 1>::new(4.0);
    conv.step(&mut conv_state, &x);
    let before = ALLOCATIONS.with(|c| c.get());
    for _ in 0..100 {
        std::hint::black_box(conv.step(&mut conv_state, &x));
        std::hint::black_box(ids.step(&mut ids_state, &id));
    }
    assert_eq!(ALLOCATIONS.with(|c| c.get()) - before, 0);
}
