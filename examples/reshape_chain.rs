//! # Reshape chain
//!
//! `Reshape` gives each sample a new shape without moving a value: kiln keeps every tensor
//! in row-major (NumPy C) order, so a reshape only changes how the same memory is viewed.
//! This example follows twelve numbers through three reshapes,
//! `(12,) -> (3, 4) -> (6, 2) -> (3, 2, 2)`; the last one writes `-1` and lets the compiler
//! infer the 3, as Keras does.
//!
//! Shapes are checked at compile time: change the last target to `(-1, 5)` and the build
//! fails at that argument, because 12 values cannot be split into rows of 5.
//!
//! Run with `cargo run --example reshape_chain`.

use kiln::Model;

kiln::model! {
    /// Twelve numbers, regrouped three times.
    pub Regroup = Sequential([
        Input(shape = (12,)),
        Reshape((3, 4)),
        Reshape((6, 2)),
        Reshape((-1, 2, 2)),
    ]);
}

fn main() -> Result<(), kiln::Error> {
    println!("{}", Regroup::summary());
    println!("output shape: {:?}", Regroup::OUTPUT_SHAPE);

    // No layer has weights, so the seed does not matter.
    let model = Regroup::new(0);
    let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let y = model.predict_slice(&x)?;

    // Row-major order is unchanged: y[a][b][c] is value 4a + 2b + c.
    let (b, c) = (Regroup::OUTPUT_SHAPE[1], Regroup::OUTPUT_SHAPE[2]);
    for (a, block) in y.chunks(b * c).enumerate() {
        let rows: Vec<&[f32]> = block.chunks(c).collect();
        println!("y[{a}] = {rows:?}");
    }
    assert_eq!(y, x, "a reshape never moves a value");
    Ok(())
}
