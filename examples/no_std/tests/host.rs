//! Calls the firmware's C function the way a C host would, and checks it against a forward
//! pass written by hand from the same weight file (read here with the `safetensors` crate,
//! independently of kiln).

use safetensors::SafeTensors;

extern "C" {
    fn kiln_sensor_predict(input: *const f32, output: *mut f32) -> i32;
    fn kiln_sensor_memory(weight_bytes: &mut usize, stack_bytes: &mut usize);
}

// Link the crate so its symbols are there.
use kiln_no_std_example as _;

fn tensor(file: &SafeTensors, name: &str) -> Vec<f32> {
    let view = file.tensor(name).expect("tensor in the file");
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// `x · kernel + bias` with a row-major Keras kernel `(inputs, units)`.
fn dense(x: &[f32], kernel: &[f32], bias: &[f32]) -> Vec<f32> {
    let units = bias.len();
    (0..units)
        .map(|u| {
            let dot: f64 = x
                .iter()
                .enumerate()
                .map(|(i, xi)| f64::from(*xi) * f64::from(kernel[i * units + u]))
                .sum();
            (dot + f64::from(bias[u])) as f32
        })
        .collect()
}

fn by_hand(x: &[f32]) -> Vec<f32> {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/weights/sensor.safetensors"
    ))
    .expect("weight file");
    let file = SafeTensors::deserialize(&bytes).expect("valid file");
    let h: Vec<f32> = dense(
        x,
        &tensor(&file, "dense/kernel"),
        &tensor(&file, "dense/bias"),
    )
    .into_iter()
    .map(|v| v.max(0.0))
    .zip(tensor(&file, "p_re_lu/alpha"))
    .map(|(v, a)| if v >= 0.0 { v } else { a * v })
    .collect();
    let z = dense(
        &h,
        &tensor(&file, "dense_1/kernel"),
        &tensor(&file, "dense_1/bias"),
    );
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = z.iter().map(|v| f64::from(v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| (v / sum) as f32).collect()
}

#[test]
fn c_predict_matches_a_hand_written_forward_pass() {
    let inputs = [
        [0.5f32, -1.0, 2.0, 0.0, 0.25, -0.75],
        [0.0; 6],
        [3.0, 2.0, 1.0, -1.0, -2.0, -3.0],
    ];
    for x in inputs {
        let mut y = [f32::NAN; 3];
        // SAFETY: 6 readable inputs, 3 writable outputs.
        let status = unsafe { kiln_sensor_predict(x.as_ptr(), y.as_mut_ptr()) };
        assert_eq!(status, 0);
        let expected = by_hand(&x);
        for (a, b) in y.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {expected:?}");
        }
    }
}

#[test]
fn null_pointers_are_refused() {
    let mut y = [0.0f32; 3];
    // SAFETY: null pointers are checked before use.
    assert_eq!(
        unsafe { kiln_sensor_predict(std::ptr::null(), y.as_mut_ptr()) },
        -1
    );
}

#[test]
fn memory_needs_are_compile_time_constants() {
    let (mut weights, mut stack) = (0, 0);
    // SAFETY: plain out-parameters.
    unsafe { kiln_sensor_memory(&mut weights, &mut stack) };
    assert_eq!(weights, (6 * 16 + 16 + 16 + 16 * 3 + 3) * 4);
    assert!(stack > 0);
}
