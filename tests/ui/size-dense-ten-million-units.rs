fn main() {}

// `Dense(10_000_000)` on a 1000-feature input: a kernel of 10^10 values.
kiln::model! {
    Wide = Sequential([
        Input(shape = (1000,)),
        Dense(10_000_000),
    ]);
}
