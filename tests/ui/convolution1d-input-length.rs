fn main() {}

kiln::model! {
    Sequence = Sequential([
        Convolution1D(16, 3, input_dim = 32, input_length = 10),
    ]);
}
