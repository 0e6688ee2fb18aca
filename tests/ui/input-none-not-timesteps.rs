fn main() {}

kiln::model! {
    Images = Sequential([
        Input(shape = (8, None)),
        Dense(2),
    ]);
}
