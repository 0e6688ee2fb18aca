fn main() {}

kiln::model! {
    Reader = Sequential([
        Input(shape = (None, 3)),
        GRU(4, go_backwards = True),
    ]);
}
