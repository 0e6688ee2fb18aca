fn main() {}

kiln::model! {
    Counter = Sequential([
        Input(shape = (None,)),
        Dense(2),
    ]);
}
