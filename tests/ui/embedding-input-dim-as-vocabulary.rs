fn main() {}

kiln::model! {
    NoShape = Sequential([
        Embedding(input_dim = 1000, output_dim = 16),
        LSTM(8),
    ]);
}
