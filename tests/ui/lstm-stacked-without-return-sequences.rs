fn main() {}

kiln::model! {
    Unrolled = Sequential([
        Input(shape = (10, 3)),
        LSTM(8),
        LSTM(4),
    ]);
}
