//! A model too big for a thread's stack: `Dense(4096)` on a 4096-wide input has a 64 MiB
//! kernel. kiln keeps weights on the heap and allocates them there directly, so the model
//! must build and predict on a thread with a 2 MiB stack (Rust's default for spawned
//! threads) even in a debug build, where nothing is optimised away.

use kiln::{Model, Tensor};

kiln::model! {
    /// One 4096 x 4096 layer: 16,781,312 parameters.
    Big = Sequential([
        Input(shape = (4096,)),
        Dense(4096, kernel_initializer = "ones", bias_initializer = Constant(value = 0.5)),
    ]);
    /// The same layer with Keras's default initializers (glorot_uniform, zeros).
    BigDefault = Sequential([Input(shape = (4096,)), Dense(4096)]);
}

#[test]
fn a_4096_wide_dense_layer_runs_on_a_2_mib_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            assert_eq!(Big::PARAM_COUNT, 4096 * 4096 + 4096);
            let model = Big::new(0);
            // With a kernel of ones, each unit sums the input: 4096 * 0.25 + 0.5 = 1024.5
            // (exact in f32).
            let x = vec![0.25f32; 4096];
            let slice = model.predict_slice(&x).expect("a valid sample");
            assert_eq!(slice.len(), 4096);
            assert!(slice.iter().all(|v| *v == 1024.5), "{:?}", &slice[..4]);

            // The typed input and output are 16 KiB each, on the stack.
            let typed = model.predict(&<Big as Model>::Input::from_values(&x));
            assert_eq!(typed.values(), slice.as_slice());

            let batch = model
                .predict_batch(&[x.clone(), x].concat())
                .expect("two samples");
            assert_eq!(batch.len(), 2 * 4096);
            assert!(batch.iter().all(|v| *v == 1024.5));

            let model = BigDefault::new(1);
            let x: Vec<f32> = (0..4096).map(|i| (i % 7) as f32 - 3.0).collect();
            let slice = model.predict_slice(&x).expect("a valid sample");
            let typed = model.predict(&<BigDefault as Model>::Input::from_values(&x));
            assert_eq!(typed.values(), slice.as_slice());
            assert!(slice.iter().all(|v| v.is_finite()) && slice.iter().any(|v| *v != 0.0));
        })
        .expect("spawn");
    worker.join().expect("the model fits a 2 MiB stack");
}
