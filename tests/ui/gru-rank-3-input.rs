fn main() {}

kiln::model! {
    Image = Sequential([
        Input(shape = (4, 5, 3)),
        GRU(4),
    ]);
}
