fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (5, 3)),
        TimeDistributed(Conv1D(4, 3)),
    ]);
}
