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

/// kiln's own code allocates nothing per step once the first steps have sized the tensor
/// pool and the optimizer state. What remains is matrixmultiply's packing buffer, allocated
/// inside each of the step's 8 GEMM calls (3 forward, 3 kernel gradients, 2 input
/// gradients); the bound fails as soon as anything else allocates.
#[test]
fn a_training_step_allocates_a_bounded_number_of_times() {
    let mut trainer = Mlp::new(0).compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy { from_logits: false },
    );
    let x = vec![0.5f32; 32 * 64];
    let y: Vec<f32> = (0..32).map(|i| (i % 10) as f32).collect();
    trainer
        .train_on_batch(&x, &y)
        .expect("first step sets up optimizer state");
    let count = allocations_during(|| {
        trainer.train_on_batch(&x, &y).expect("step");
    });
    println!("allocations per training step: {count}");
    assert!(count <= 8, "a training step allocated {count} times");
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

/// Every trainable layer but `Masking` and `Lambda` takes its training tensors from the
/// pool too: what remains is matrixmultiply's packing buffer in each of this model's 5 GEMM
/// calls (2 forward, 2 kernel gradients, 1 input gradient).
#[test]
fn training_allocations_of_other_layers_are_reported() {
    let mut trainer = Mixed::new(0).compile(
        Adam::default(),
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    let x = vec![0.5f32; 16 * 24];
    let y: Vec<f32> = (0..16 * 6).map(|i| f32::from(i % 3 == 0)).collect();
    for _ in 0..3 {
        trainer.train_on_batch(&x, &y).expect("warm-up step");
    }
    let count = allocations_during(|| {
        trainer.train_on_batch(&x, &y).expect("step");
    });
    println!("allocations per training step with PReLU, Permute, Flatten, RepeatVector, Softmax(axis=1), Dropout, ActivityRegularization: {count}");
    assert!(count <= 5, "a training step allocated {count} times");
}
