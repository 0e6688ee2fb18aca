fn main() {}

kiln::model! {
    Regularized = Sequential([
        Input(shape = (16,)),
        Dense(8, activation = "relu"),
        Dropout(1.0),
        Dense(1),
    ]);
}
