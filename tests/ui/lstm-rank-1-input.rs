fn main() {}

kiln::model! {
    Flat = Sequential([
        Input(shape = (8,)),
        LSTM(4),
    ]);
}
