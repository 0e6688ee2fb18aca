use kiln::{Loss, Model, Sgd};

kiln::model! {
    Doubled = Sequential([
        Input(shape = (4,)),
        Dense(4),
        Lambda(|x| x * 2.0),
        Dense(1),
    ]);
}

fn main() {
    // Prediction works without a backward function; training needs one.
    let _ = Doubled::new(0).predict_slice(&[0.0; 4]);
    let _trainer = Doubled::new(0).compile(Sgd::default(), Loss::MeanSquaredError);
}
