fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (8,)),
        Bidirectional(LSTM(4)),
    ]);
}
