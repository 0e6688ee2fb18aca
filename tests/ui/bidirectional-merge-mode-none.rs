fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (5, 3)),
        Bidirectional(GRU(4), merge_mode = None),
    ]);
}
