fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (5, 3)),
        Bidirectional(LSTM(4), backward_layer = LSTM(8, go_backwards = True)),
    ]);
}
