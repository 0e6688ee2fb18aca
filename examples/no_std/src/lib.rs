//! A firmware-style crate: `#![no_std]`, no `alloc`, no heap. It declares a model whose
//! weights are baked into the binary at compile time and exports one C function,
//! [`kiln_sensor_predict`], that a C (or any FFI) caller links against.
//!
//! Built by CI as a static library for the host with `panic = "abort"`:
//!
//! ```sh
//! CARGO_PROFILE_RELEASE_PANIC=abort cargo rustc -p kiln-no-std-example --release \
//!     --features panic-handler --crate-type staticlib
//! ```
//!
//! If anything in the dependency tree linked `alloc`, that build would fail for want of a
//! global allocator. `tests/host.rs` calls the function and checks it against a forward pass
//! written by hand from the weight file.
#![no_std]
#![deny(missing_docs)]

use kiln::{Model, Tensor};

kiln::model! {
    /// Classifies 6 sensor readings into 3 states.
    #[weights = "weights/sensor.safetensors"]
    pub Sensor = Sequential([
        Input(shape = (6,)),
        Dense(16, activation = "relu"),
        PReLU(),
        Dense(3, activation = "softmax"),
    ]);
}

/// The model, built at compile time: its weights are slices of the binary's read-only data.
static MODEL: Sensor = Sensor::pretrained();

/// Predicts from `input` (6 values) into `output` (3 probabilities). Returns 0 on success,
/// -1 if either pointer is null.
///
/// # Safety
/// `input` must point to 6 readable `f32`s and `output` to 3 writable ones.
#[no_mangle]
pub unsafe extern "C" fn kiln_sensor_predict(input: *const f32, output: *mut f32) -> i32 {
    if input.is_null() || output.is_null() {
        return -1;
    }
    // SAFETY: the caller guarantees 6 readable values at `input` and 3 writable ones at
    // `output` (checked non-null above).
    let (input, output) = unsafe {
        (
            core::slice::from_raw_parts(input, Sensor::INPUT_LEN),
            core::slice::from_raw_parts_mut(output, Sensor::OUTPUT_LEN),
        )
    };
    let y = MODEL.predict(&<Sensor as Model>::Input::from_values(input));
    output.copy_from_slice(y.values());
    0
}

/// Bytes of weights in read-only data, and the stack `predict` needs: known at compile
/// time, for sizing the firmware's memory.
#[no_mangle]
pub extern "C" fn kiln_sensor_memory(weight_bytes: &mut usize, stack_bytes: &mut usize) {
    *weight_bytes = Sensor::WEIGHT_BYTES;
    *stack_bytes = Sensor::PREDICT_STACK_BYTES;
}

#[cfg(feature = "panic-handler")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
