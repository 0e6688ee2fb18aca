//! # Antirectifier: a custom layer as a `Lambda`
//!
//! Keras's classic custom-layer example replaces ReLU, which throws away the negative half of
//! its input, with an *antirectifier*: centre each vector on its mean, scale it to unit
//! length, then keep both halves side by side, `concat(relu(x), relu(-x))`. The output has
//! twice the features, so the `Lambda` declares `output_shape = (32,)` for its 16 inputs.
//!
//! In kiln the layer's function is plain Rust over one sample: `fn(&Sample<16, 1>) ->
//! Sample<32, 1>` here (a rank-1 shape `(n,)` is `Sample<n, 1>`). The macro coerces the
//! function to exactly that type, so writing `output_shape = (16,)` by mistake is a type
//! error on `antirectifier` itself. The function below is generic over the sizes, so the same
//! code serves any width (and any number of positions: a `(t, f)` sequence is
//! `Sample<f, t>`, one column per timestep).
//!
//! Prediction needs only the function. Training also needs its vector-Jacobian product,
//! `backward = antirectifier_backward`: given the sample and the gradient with respect to
//! the output, it returns the gradient with respect to the input. Without it the model still
//! predicts, but does not implement `kiln::Trainable`, and `compile` does not compile.
//!
//! Run with `cargo run --example antirectifier`.

use kiln::{Loss, Model, Sample, Sgd};

/// Centre, l2-normalise, then `(relu(x), relu(-x))` along the last axis of each position:
/// `F` features in, `F2 = 2 * F` out, `T` positions.
fn antirectifier<const F: usize, const T: usize, const F2: usize>(
    x: &Sample<F, T>,
) -> Sample<F2, T> {
    let mut y = Sample::<F2, T>::zeros();
    for (c, column) in x.column_iter().enumerate() {
        let centred = column.add_scalar(-column.mean());
        // Keras's l2_normalize: the epsilon keeps an all-equal vector at 0 instead of NaN.
        let norm = centred.norm_squared().max(1e-12).sqrt();
        for i in 0..F {
            let u = centred[i] / norm;
            y[(i, c)] = u.max(0.0);
            y[(i + F, c)] = (-u).max(0.0);
        }
    }
    y
}

/// The antirectifier's backward pass: through the two relus, the normalisation
/// (`(du - u (u · du)) / norm`) and the centring (subtract the mean).
fn antirectifier_backward<const F: usize, const T: usize, const F2: usize>(
    x: &Sample<F, T>,
    dy: &Sample<F2, T>,
) -> Sample<F, T> {
    let mut dx = Sample::<F, T>::zeros();
    for c in 0..T {
        let column = x.column(c);
        let centred = column.add_scalar(-column.mean());
        let squares = centred.norm_squared();
        let norm = squares.max(1e-12).sqrt();
        let u = centred / norm;
        let mut du = [0.0f32; F];
        for (i, d) in du.iter_mut().enumerate() {
            let pos = if u[i] > 0.0 { dy[(i, c)] } else { 0.0 };
            let neg = if u[i] < 0.0 { dy[(i + F, c)] } else { 0.0 };
            *d = pos - neg;
        }
        let dot: f32 = (0..F).map(|i| u[i] * du[i]).sum();
        let dc: [f32; F] = core::array::from_fn(|i| {
            if squares > 1e-12 {
                (du[i] - u[i] * dot) / norm
            } else {
                du[i] / norm
            }
        });
        let mean = dc.iter().sum::<f32>() / F as f32;
        for i in 0..F {
            dx[(i, c)] = dc[i] - mean;
        }
    }
    dx
}

kiln::model! {
    /// A small classifier with an antirectifier between its two Dense layers.
    pub AntirectifierNet = Sequential([
        Input(shape = (8,)),
        Dense(16),
        Lambda(antirectifier, output_shape = (32,), backward = antirectifier_backward),
        Dense(3, activation = "softmax"),
    ]);
}

fn main() -> Result<(), kiln::Error> {
    println!("{}", AntirectifierNet::summary());

    let model = AntirectifierNet::new(42);
    let x = [0.5, -1.0, 0.25, 2.0, 0.0, -0.5, 1.5, 1.0];
    let p = model.predict_slice(&x)?;
    println!("class probabilities: {p:.4?}");
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);

    // A few SGD steps towards class 2 through the Lambda's backward function.
    let mut trainer = model.compile(
        Sgd::default(),
        Loss::SparseCategoricalCrossentropy { from_logits: false },
    );
    let first = trainer.train_on_batch(&x, &[2.0])?.loss;
    for _ in 0..20 {
        trainer.train_on_batch(&x, &[2.0])?;
    }
    let last = trainer.train_on_batch(&x, &[2.0])?.loss;
    println!("loss {first:.4} -> {last:.4}");
    assert!(last < first);
    println!("after training: {:.4?}", trainer.model().predict_slice(&x)?);
    Ok(())
}
