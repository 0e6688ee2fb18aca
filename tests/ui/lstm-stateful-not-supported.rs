fn main() {}

kiln::model! {
    Streaming = Sequential([
        Input(shape = (10, 3)),
        LSTM(8, stateful = True),
    ]);
}
