fn main() {}

kiln::model! {
    Smoother = Sequential([
        Input(shape = (None, 3)),
        Conv1D(4, 3, padding = "same"),
        LSTM(2, return_sequences = True),
    ]);
}
