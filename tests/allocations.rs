//! Heap allocations counted by a wrapping global allocator: `predict` must make none (the
//! issue's contract for inference), whatever the layers; training steps are measured so a
//! change that adds allocations to the hot loop shows up.

use kiln::{Adam, Loss, Model, Tensor};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Allocations made by this thread: tests run in parallel, so a global count would mix
    /// them up. A const-initialised `Cell` needs no allocation of its own.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the slot may already be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

kiln::model! {
    /// Every layer kind that runs in `predict`, on ranks 1 to 3.
    Everything = Sequential([
        Input(shape = (4, 6)),
        Masking(),
        Dense(8, activation = "relu"),
        Dropout(0.5),
        ActivityRegularization(l1 = 0.01),
        PReLU(shared_axes = (1,)),
        LeakyReLU(),
        ELU(),
        ReLU(max_value = 6.0),
        ThresholdedReLU(theta = 0.1),
        Softmax(axis = 1),
    ]);
    Shapes = Sequential([
        Input(shape = (4, 6)),
        Permute((2, 1)),
        Reshape((3, 8)),
        Flatten(),
        RepeatVector(2),
        Lambda(|x: &kiln::Sample<24, 2>| x * 0.5),
        Dense(3, activation = "softmax"),
    ]);
}

/// Allocations of one Adam step of a fresh `M` on `x`, `y`, after three warm-up steps have
/// sized the tensor pool and the optimizer state.
fn warm_step_allocations<M: kiln::Trainable>(loss: Loss, x: &[f32], y: &[f32]) -> usize {
    warm_step_allocations_with::<M, _>(Adam::default(), loss, x, y)
}

/// [`warm_step_allocations`] with another optimizer.
fn warm_step_allocations_with<M: kiln::Trainable, O: kiln::Optimizer>(
    optimizer: O,
    loss: Loss,
    x: &[f32],
    y: &[f32],
) -> usize {
    let mut trainer = M::new(0).compile(optimizer, loss);
    for _ in 0..3 {
        trainer.train_on_batch(x, y).expect("warm-up step");
    }
    allocations_during(|| {
        trainer.train_on_batch(x, y).expect("step");
    })
}

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn predict_never_allocates() {
    let everything = Everything::new(1);
    let x = <Everything as Model>::Input::from_values(&[0.25; 24]);
    let count = allocations_during(|| {
        std::hint::black_box(everything.predict(std::hint::black_box(&x)));
    });
    assert_eq!(count, 0, "Everything::predict allocated {count} times");

    let shapes = Shapes::new(1);
    let x = <Shapes as Model>::Input::from_values(&[0.25; 24]);
    let count = allocations_during(|| {
        std::hint::black_box(shapes.predict(std::hint::black_box(&x)));
    });
    assert_eq!(count, 0, "Shapes::predict allocated {count} times");
}

kiln::model! {
    Mlp = Sequential([
        Input(shape = (64,)),
        Dense(128, activation = "relu"),
        Dense(64, activation = "relu"),
        Dense(10, activation = "softmax"),
    ]);
}

/// A training step allocates nothing once the first step has sized the tensor pool and the
/// optimizer state: every tensor comes from the pool, and kiln's GEMM kernels read their
/// operands in place (no packing buffers).
#[test]
fn a_training_step_allocates_nothing() {
    let x = vec![0.5f32; 32 * 64];
    let y: Vec<f32> = (0..32).map(|i| (i % 10) as f32).collect();
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false };
    let count = warm_step_allocations::<Mlp>(loss, &x, &y);
    assert_eq!(count, 0, "a training step allocated {count} times");
    // Gradient clipping works on the trainer's buffers in place.
    for clip in [
        kiln::GradientClip::GlobalNorm(0.5),
        kiln::GradientClip::Norm(0.5),
    ] {
        let optimizer = Adam {
            clip,
            ..Adam::default()
        };
        let count = warm_step_allocations_with::<Mlp, _>(optimizer, loss, &x, &y);
        assert_eq!(count, 0, "a step with {clip:?} allocated {count} times");
    }
}

kiln::model! {
    /// Most layer kinds in one model, for the training-step count below.
    Mixed = Sequential([
        Input(shape = (4, 6)),
        Dense(8, activation = "tanh"),
        PReLU(),
        Permute((2, 1)),
        Flatten(),
        RepeatVector(2),
        Softmax(axis = 1),
        Dropout(0.2),
        ActivityRegularization(l2 = 0.01),
        Dense(3, activation = "softmax"),
    ]);
}

/// Every other trainable layer takes its training tensors from the pool too.
#[test]
fn a_training_step_of_most_layer_kinds_allocates_nothing() {
    let x = vec![0.5f32; 16 * 24];
    let y: Vec<f32> = (0..16 * 6).map(|i| f32::from(i % 3 == 0)).collect();
    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let count = warm_step_allocations::<Mixed>(loss, &x, &y);
    assert_eq!(count, 0, "a training step allocated {count} times");
}

kiln::model! {
    /// `Lambda` and `Masking` in training, with no GEMM: nothing may allocate.
    MaskedLambda = Sequential([
        Input(shape = (5, 3)),
        Lambda(
            |x| x.map(|v| v.sin()),
            backward = |x, dy| x.map(|v| v.cos()).component_mul(dy)
        ),
        Masking(mask_value = 0.0),
        PReLU(),
        Softmax(axis = 1),
    ]);
    /// `Masking` first: its backward pass computes no input gradient.
    MaskedFirst = Sequential([
        Input(shape = (5, 3)),
        Masking(mask_value = 0.0),
        PReLU(),
        Softmax(axis = 1),
    ]);
}

/// `Lambda`'s batch maps and `Masking`'s mask come from the pool like every other training
/// tensor: without a GEMM, a warmed-up step allocates nothing.
#[test]
fn a_training_step_with_masking_and_lambda_allocates_nothing() {
    // Every third position of each sample is all zeros, so Masking masks it.
    let x: Vec<f32> = (0..8 * 15)
        .map(|i| {
            if (i / 3) % 3 == 0 {
                0.0
            } else {
                0.1 * (i % 7) as f32
            }
        })
        .collect();
    let y: Vec<f32> = (0..8 * 15).map(|i| f32::from(i % 5 == 0)).collect();
    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let count = warm_step_allocations::<MaskedLambda>(loss, &x, &y);
    assert_eq!(
        count, 0,
        "a step with Masking and Lambda allocated {count} times"
    );
    let count = warm_step_allocations::<MaskedFirst>(loss, &x, &y);
    assert_eq!(
        count, 0,
        "a step with Masking first allocated {count} times"
    );
}

/// `fit`'s own loop adds nothing per step: an epoch of 20 steps allocates exactly as often
/// as an epoch of 2 (the per-epoch bookkeeping: metric means, history entries).
#[test]
fn fit_allocates_per_epoch_not_per_step() {
    let mut trainer = Mlp::new(0)
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy { from_logits: false },
        )
        .with_metrics(&[kiln::Metric::Accuracy]);
    let x: Vec<f32> = (0..640 * 64).map(|i| (i % 7) as f32 * 0.1).collect();
    let y: Vec<f32> = (0..640).map(|i| (i % 10) as f32).collect();
    let options = kiln::FitOptions {
        verbose: false,
        ..kiln::FitOptions::default()
    };
    trainer.fit(&x, &y, &options).expect("warm-up epoch");
    let two_steps = allocations_during(|| {
        trainer
            .fit(&x[..64 * 64], &y[..64], &options)
            .expect("epoch of 2 steps");
    });
    let twenty_steps = allocations_during(|| {
        trainer.fit(&x, &y, &options).expect("epoch of 20 steps");
    });
    assert_eq!(
        twenty_steps, two_steps,
        "an epoch of 20 steps allocated {twenty_steps} times, one of 2 steps {two_steps}"
    );
}

kiln::model! {
    FirstActivation = Sequential([Input(shape = (4, 6)), Activation("tanh"), Dense(3)]);
    FirstRelu = Sequential([Input(shape = (4, 6)), ReLU(), Dense(3)]);
    FirstSoftmax = Sequential([Input(shape = (4, 6)), Softmax(), Dense(3)]);
    FirstFlatten = Sequential([Input(shape = (4, 6)), Flatten(), Dense(3)]);
    FirstReshape = Sequential([Input(shape = (4, 6)), Reshape((6, 4)), Dense(3)]);
    FirstLeakyRelu = Sequential([Input(shape = (4, 6)), LeakyReLU(), Dense(3)]);
    FirstElu = Sequential([Input(shape = (4, 6)), ELU(), Dense(3)]);
    FirstThresholded = Sequential([Input(shape = (4, 6)), ThresholdedReLU(), Dense(3)]);
    FirstPrelu = Sequential([Input(shape = (4, 6)), PReLU(), Dense(3)]);
    FirstDropout = Sequential([Input(shape = (4, 6)), Dropout(0.5), Dense(3)]);
    FirstPermute = Sequential([Input(shape = (4, 6)), Permute((2, 1)), Dense(3)]);
    FirstRepeat = Sequential([Input(shape = (6,)), RepeatVector(2), Dense(3)]);
    FirstRegularization = Sequential([
        Input(shape = (4, 6)),
        ActivityRegularization(l2 = 0.01),
        Dense(3),
    ]);
}

/// Allocations of one mean-squared-error step of `M` on 8 samples, after warm-up.
fn step_allocations<M: kiln::Trainable>() -> usize {
    let x: Vec<f32> = (0..8 * M::INPUT_LEN)
        .map(|i| (i % 5) as f32 * 0.2)
        .collect();
    let y = vec![0.5f32; 8 * M::OUTPUT_LEN];
    warm_step_allocations::<M>(Loss::MeanSquaredError, &x, &y)
}

/// A layer right after `Input` needs no input gradient: its backward pass must still hand
/// the incoming gradient back to the pool, or the next step allocates a new one.
#[test]
fn first_layers_return_their_gradient_buffers() {
    let counts = [
        ("Activation", step_allocations::<FirstActivation>()),
        ("ReLU", step_allocations::<FirstRelu>()),
        ("Softmax", step_allocations::<FirstSoftmax>()),
        ("Flatten", step_allocations::<FirstFlatten>()),
        ("Reshape", step_allocations::<FirstReshape>()),
        (
            "ActivityRegularization",
            step_allocations::<FirstRegularization>(),
        ),
        ("LeakyReLU", step_allocations::<FirstLeakyRelu>()),
        ("ELU", step_allocations::<FirstElu>()),
        ("ThresholdedReLU", step_allocations::<FirstThresholded>()),
        ("PReLU", step_allocations::<FirstPrelu>()),
        ("Dropout", step_allocations::<FirstDropout>()),
        ("Permute", step_allocations::<FirstPermute>()),
        ("RepeatVector", step_allocations::<FirstRepeat>()),
    ];
    for (layer, count) in counts {
        assert_eq!(
            count, 0,
            "a step with {layer} first allocated {count} times"
        );
    }
}

kiln::model! {
    /// Every pooling, padding, upsampling and cropping kind, 2D.
    SpatialImage = Sequential([
        Input(shape = (6, 6, 2)),
        Dense(3, activation = "tanh"),
        ZeroPadding2D(1),
        MaxPooling2D(2),
        UpSampling2D((2, 1)),
        Cropping2D(((1, 0), (0, 1))),
        AveragePooling2D(2, padding = "same"),
        GlobalMaxPooling2D(keepdims = True),
        Flatten(),
        Dense(3, activation = "softmax"),
    ]);
    /// The 1D kinds, channels first, and the masked mean.
    SpatialSequence = Sequential([
        Input(shape = (8, 3)),
        Masking(),
        Dense(4, activation = "tanh"),
        GlobalAveragePooling1D(keepdims = True),
        Reshape((4, 1)),
        ZeroPadding1D(1, data_format = "channels_first"),
        MaxPooling1D(2, data_format = "channels_first"),
        UpSampling1D(3),
        Cropping1D((1, 0)),
        AveragePooling1D(2, padding = "same"),
        Reshape((3, 2, 1)),
        GlobalAveragePooling2D(keepdims = True),
        Reshape((1, 1)),
        GlobalMaxPooling1D(),
        Dense(3, activation = "softmax"),
    ]);
    FirstMaxPooling = Sequential([Input(shape = (4, 6)), MaxPooling1D(), Dense(3)]);
    FirstAveragePooling = Sequential([Input(shape = (4, 6)), AveragePooling1D(2), Dense(3)]);
    FirstGlobalPooling = Sequential([Input(shape = (4, 6)), GlobalAveragePooling1D(), Dense(3)]);
    FirstZeroPadding = Sequential([Input(shape = (4, 6)), ZeroPadding1D(), Dense(3)]);
    FirstUpSampling = Sequential([Input(shape = (4, 6)), UpSampling1D(), Dense(3)]);
    FirstCropping = Sequential([Input(shape = (4, 6)), Cropping1D(), Dense(3)]);
}

/// Spatial layers write new tensors: on the stack in `predict`, from the pool in training.
#[test]
fn spatial_layers_allocate_nothing_in_predict_or_per_step() {
    let image = SpatialImage::new(1);
    let x = <SpatialImage as Model>::Input::from_values(&[0.25; 72]);
    let count = allocations_during(|| {
        std::hint::black_box(image.predict(std::hint::black_box(&x)));
    });
    assert_eq!(count, 0, "SpatialImage::predict allocated {count} times");
    let sequence = SpatialSequence::new(1);
    let x = <SpatialSequence as Model>::Input::from_values(&[0.25; 24]);
    let count = allocations_during(|| {
        std::hint::black_box(sequence.predict(std::hint::black_box(&x)));
    });
    assert_eq!(count, 0, "SpatialSequence::predict allocated {count} times");

    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let x: Vec<f32> = (0..8 * 72).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let y: Vec<f32> = (0..8 * 3).map(|i| f32::from(i % 3 == 0)).collect();
    let count = warm_step_allocations::<SpatialImage>(loss, &x, &y);
    assert_eq!(count, 0, "a SpatialImage step allocated {count} times");
    // Every third step of each sample is all zeros, so Masking masks it.
    let x: Vec<f32> = (0..8 * 24)
        .map(|i| {
            if (i / 3) % 3 == 0 {
                0.0
            } else {
                0.1 * (i % 5) as f32
            }
        })
        .collect();
    let count = warm_step_allocations::<SpatialSequence>(loss, &x, &y);
    assert_eq!(count, 0, "a SpatialSequence step allocated {count} times");

    let counts = [
        ("MaxPooling1D", step_allocations::<FirstMaxPooling>()),
        (
            "AveragePooling1D",
            step_allocations::<FirstAveragePooling>(),
        ),
        (
            "GlobalAveragePooling1D",
            step_allocations::<FirstGlobalPooling>(),
        ),
        ("ZeroPadding1D", step_allocations::<FirstZeroPadding>()),
        ("UpSampling1D", step_allocations::<FirstUpSampling>()),
        ("Cropping1D", step_allocations::<FirstCropping>()),
    ];
    for (layer, count) in counts {
        assert_eq!(
            count, 0,
            "a step with {layer} first allocated {count} times"
        );
    }
}

kiln::model! {
    /// BatchNormalization on two axes, after a mask and first, and LayerNormalization over a
    /// leading axis: predict and the training step (batch statistics in the pool) allocate
    /// nothing.
    Normalized = Sequential([
        Input(shape = (5, 3)),
        BatchNormalization(axis = 1),
        Masking(),
        Dense(4, activation = "tanh"),
        BatchNormalization(momentum = 0.9),
        LayerNormalization(axis = [1, 2]),
        LayerNormalization(),
        Dense(2, activation = "softmax"),
    ]);
}

#[test]
fn normalization_layers_allocate_nothing() {
    let model = Normalized::new(3);
    let sample = <Normalized as Model>::Input::from_values(&[0.25; 15]);
    let count = allocations_during(|| {
        std::hint::black_box(model.predict(std::hint::black_box(&sample)));
    });
    assert_eq!(count, 0, "Normalized::predict allocated {count} times");

    let x: Vec<f32> = (0..8 * 15)
        .map(|i| ((i * 7) % 11) as f32 * 0.1 - 0.5)
        .collect();
    let y: Vec<f32> = (0..8 * 5 * 2).map(|i| f32::from(i % 2 == 0)).collect();
    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let count = warm_step_allocations::<Normalized>(loss, &x, &y);
    assert_eq!(
        count, 0,
        "a Normalized training step allocated {count} times"
    );
}

kiln::model! {
    /// Conv1D and Conv2D in both data formats, with groups, strides, dilation and padding.
    Convolutions = Sequential([
        Input(shape = (9, 8, 2)),
        Conv2D(4, 3, padding = "same", activation = "relu"),
        Conv2D(6, (2, 3), strides = 2, groups = 3, data_format = "channels_first"),
        Reshape((8, 3)),
        Conv1D(6, 3, padding = "causal", dilation_rate = 2, activation = "tanh"),
        Conv1D(2, 2, data_format = "channels_first", use_bias = False),
        Flatten(),
        Dense(3, activation = "softmax"),
    ]);
    FirstConv1D = Sequential([Input(shape = (4, 6)), Conv1D(3, 2), Dense(3)]);
    FirstConv2DChannelsFirst = Sequential([
        Input(shape = (2, 4, 6)),
        Conv2D(3, 2, data_format = "channels_first"),
        Dense(3),
    ]);
}

/// Convolutions read their inputs in place (no im2col buffer): nothing allocates in
/// `predict`, and a training step takes every tensor (channels-first transposes included)
/// from the pool.
#[test]
fn convolutions_allocate_nothing_in_predict_or_per_step() {
    let model = Convolutions::new(1);
    let x = <Convolutions as Model>::Input::from_values(&[0.25; 144]);
    let count = allocations_during(|| {
        std::hint::black_box(model.predict(std::hint::black_box(&x)));
    });
    assert_eq!(count, 0, "Convolutions::predict allocated {count} times");

    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let x: Vec<f32> = (0..8 * 144).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let y: Vec<f32> = (0..8 * 3).map(|i| f32::from(i % 3 == 0)).collect();
    let count = warm_step_allocations::<Convolutions>(loss, &x, &y);
    assert_eq!(count, 0, "a Convolutions step allocated {count} times");
    for (layer, count) in [
        ("Conv1D", step_allocations::<FirstConv1D>()),
        (
            "Conv2D channels first",
            step_allocations::<FirstConv2DChannelsFirst>(),
        ),
    ] {
        assert_eq!(
            count, 0,
            "a step with {layer} first allocated {count} times"
        );
    }
}

kiln::model! {
    /// Embedding with a mask, then every recurrent kind (sequences, backwards, both GRU
    /// forms), and Masking before an LSTM.
    Recurrent = Sequential([
        Input(shape = (8,)),
        Embedding(10, 4, mask_zero = True),
        LSTM(5, return_sequences = True),
        GRU(4, return_sequences = True, reset_after = False, go_backwards = True),
        GRU(4, return_sequences = True),
        SimpleRNN(3),
        Dense(2, activation = "softmax"),
    ]);
    MaskedLstm = Sequential([Input(shape = (6, 3)), Masking(), LSTM(4), Dense(2)]);
}

/// Recurrent layers keep their scratch on the stack in `predict` and take their caches,
/// projections and scratch from the pool in training.
#[test]
fn recurrent_layers_allocate_nothing_in_predict_or_per_step() {
    let model = Recurrent::new(1);
    let ids = [1.0, 4.0, 9.0, 0.0, 3.0, 0.0, 0.0, 2.0];
    let x = <Recurrent as Model>::Input::from_values(&ids);
    let count = allocations_during(|| {
        std::hint::black_box(model.predict(std::hint::black_box(&x)));
    });
    assert_eq!(count, 0, "Recurrent::predict allocated {count} times");
    let xs: Vec<f32> = (0..4 * 8).map(|i| ((i * 7) % 10) as f32).collect();
    let ys: Vec<f32> = (0..4 * 2).map(|i| f32::from(i % 2 == 0)).collect();
    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let count = warm_step_allocations::<Recurrent>(loss, &xs, &ys);
    assert_eq!(
        count, 0,
        "a Recurrent training step allocated {count} times"
    );

    let masked = MaskedLstm::new(2);
    let sample = <MaskedLstm as Model>::Input::from_values(&[0.5; 18]);
    let count = allocations_during(|| {
        std::hint::black_box(masked.predict(std::hint::black_box(&sample)));
    });
    assert_eq!(count, 0, "MaskedLstm::predict allocated {count} times");
    let xs: Vec<f32> = (0..4 * 18)
        .map(|i| ((i * 5) % 7) as f32 * 0.2 - 0.4)
        .collect();
    let ys: Vec<f32> = (0..4 * 2).map(|i| i as f32 * 0.1).collect();
    let count = warm_step_allocations::<MaskedLstm>(Loss::MeanSquaredError, &xs, &ys);
    assert_eq!(
        count, 0,
        "a MaskedLstm training step allocated {count} times"
    );
}

kiln::model! {
    /// The wrappers, masks and recurrent input dropout: Bidirectional over both merge kinds
    /// (with zeros at masked steps), TimeDistributed, an LSTM with `dropout`.
    Wrappers = Sequential([
        Input(shape = (6, 3)),
        Masking(),
        TimeDistributed(Dense(4, activation = "relu")),
        Bidirectional(GRU(3, return_sequences = True, dropout = 0.3), merge_mode = "mul"),
        Bidirectional(LSTM(2, dropout = 0.2)),
        Dense(2),
    ]);
}

/// Bidirectional's two directions and its merge take their buffers from the pool in
/// training and the stack in `predict`; TimeDistributed adds none; RNN input dropout's
/// copy and mask come from the pool.
#[test]
fn wrappers_allocate_nothing_in_predict_or_per_step() {
    let model = Wrappers::new(3);
    let sample = <Wrappers as Model>::Input::from_values(&[0.5; 18]);
    let count = allocations_during(|| {
        std::hint::black_box(model.predict(std::hint::black_box(&sample)));
    });
    assert_eq!(count, 0, "Wrappers::predict allocated {count} times");
    let xs: Vec<f32> = (0..4 * 18)
        .map(|i| {
            if i % 7 == 0 {
                0.0
            } else {
                ((i * 5) % 7) as f32 * 0.2 - 0.4
            }
        })
        .collect();
    let ys: Vec<f32> = (0..4 * 2).map(|i| i as f32 * 0.1).collect();
    let count = warm_step_allocations::<Wrappers>(Loss::MeanSquaredError, &xs, &ys);
    assert_eq!(count, 0, "a Wrappers training step allocated {count} times");
}

kiln::model! {
    /// `recurrent_dropout` with and without `dropout`, alone and in Bidirectional, after a
    /// mask.
    RecurrentDropout = Sequential([
        Input(shape = (6, 3)),
        Masking(),
        LSTM(4, dropout = 0.2, recurrent_dropout = 0.3, return_sequences = True),
        Bidirectional(GRU(3, recurrent_dropout = 0.4, reset_after = False, return_sequences = True)),
        SimpleRNN(2, dropout = 0.1, recurrent_dropout = 0.2),
        Dense(2),
    ]);
}

/// `recurrent_dropout`'s masks, each sample's masked kernels and their gradients come from
/// the pool.
#[test]
fn recurrent_dropout_allocates_nothing_per_step() {
    let xs: Vec<f32> = (0..4 * 18)
        .map(|i| {
            if i % 7 == 0 {
                0.0
            } else {
                ((i * 5) % 7) as f32 * 0.2 - 0.4
            }
        })
        .collect();
    let ys: Vec<f32> = (0..4 * 2).map(|i| i as f32 * 0.1).collect();
    let count = warm_step_allocations::<RecurrentDropout>(Loss::MeanSquaredError, &xs, &ys);
    assert_eq!(
        count, 0,
        "a RecurrentDropout training step allocated {count} times"
    );
}

/// Every optimizer with a schedule, clipping and the weights' moving average: the schedule
/// is arithmetic, and Nadam's product, the EMA averages and Lamb's norms live in state
/// sized on the first step.
#[test]
fn every_optimizer_with_schedule_and_ema_allocates_nothing_per_step() {
    use kiln::schedules::CosineDecay;
    let x = vec![0.5f32; 32 * 64];
    let y: Vec<f32> = (0..32).map(|i| (i % 10) as f32).collect();
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false };
    let schedule = || Some(CosineDecay::new(0.01, 100).into());
    let ema = || {
        Some(kiln::Ema {
            overwrite_frequency: Some(2),
            ..kiln::Ema::default()
        })
    };
    let clip = kiln::GradientClip::Norm(0.5);
    macro_rules! check {
        ($($opt:ident),*) => {$(
            let optimizer = kiln::$opt {
                schedule: schedule(),
                ema: ema(),
                clip,
                ..kiln::$opt::default()
            };
            let count = warm_step_allocations_with::<Mlp, _>(optimizer, loss, &x, &y);
            assert_eq!(count, 0, "a {} step allocated {count} times", stringify!($opt));
        )*};
    }
    check!(Sgd, Adam, RmsProp, Adagrad, Nadam, Adamax, Adadelta, Ftrl, Lion, Lamb);
}

kiln::model! {
    /// DepthwiseConv2D, SeparableConv2D and Conv2DTranspose in both data formats, with
    /// strides, dilation, depth multipliers and output padding.
    MoreConvolutions = Sequential([
        Input(shape = (6, 5, 4)),
        DepthwiseConv2D(3, padding = "same", depth_multiplier = 2, activation = "relu"),
        SeparableConv2D(6, (2, 3), strides = 2, padding = "same", activation = "tanh"),
        Conv2DTranspose(4, 3, strides = 2, output_padding = 1, data_format = "channels_first"),
        SeparableConv2D(
            3,
            2,
            dilation_rate = 2,
            depth_multiplier = 2,
            data_format = "channels_first",
        ),
        DepthwiseConv2D(2, data_format = "channels_first", use_bias = False),
        Conv2DTranspose(2, 2, strides = 2, padding = "same"),
        Flatten(),
        Dense(3, activation = "softmax"),
    ]);
    FirstDepthwise = Sequential([Input(shape = (4, 5, 2)), DepthwiseConv2D(2), Dense(3)]);
    FirstSeparable = Sequential([
        Input(shape = (2, 4, 5)),
        SeparableConv2D(3, 2, data_format = "channels_first"),
        Dense(3),
    ]);
    FirstTranspose = Sequential([
        Input(shape = (3, 4, 2)),
        Conv2DTranspose(3, 2, strides = 2),
        Dense(3),
    ]);
}

/// The depthwise, separable and transposed convolutions allocate nothing in `predict` (the
/// separable layer's depthwise output lives in stack tiles, the transposed layer's
/// channels-first products too), and a training step takes every tensor (the separable
/// layer's kept depthwise output included) from the pool, first layers too.
#[test]
fn more_convolutions_allocate_nothing_in_predict_or_per_step() {
    let model = MoreConvolutions::new(1);
    let x = <MoreConvolutions as Model>::Input::from_values(&[0.25; 120]);
    let count = allocations_during(|| {
        std::hint::black_box(model.predict(std::hint::black_box(&x)));
    });
    assert_eq!(
        count, 0,
        "MoreConvolutions::predict allocated {count} times"
    );

    let loss = Loss::CategoricalCrossentropy { from_logits: false };
    let x: Vec<f32> = (0..8 * 120).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let y: Vec<f32> = (0..8 * 3).map(|i| f32::from(i % 3 == 0)).collect();
    let count = warm_step_allocations::<MoreConvolutions>(loss, &x, &y);
    assert_eq!(count, 0, "a MoreConvolutions step allocated {count} times");
    for (layer, count) in [
        ("DepthwiseConv2D", step_allocations::<FirstDepthwise>()),
        (
            "SeparableConv2D channels first",
            step_allocations::<FirstSeparable>(),
        ),
        ("Conv2DTranspose", step_allocations::<FirstTranspose>()),
    ] {
        assert_eq!(
            count, 0,
            "a step with {layer} first allocated {count} times"
        );
    }
}
