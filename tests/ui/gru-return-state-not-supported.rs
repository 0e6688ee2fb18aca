fn main() {}

kiln::model! {
    Encoder = Sequential([
        Input(shape = (10, 3)),
        GRU(8, return_state = True),
    ]);
}
