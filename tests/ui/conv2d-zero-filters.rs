fn main() {}

kiln::model! {
    Empty = Sequential([
        Input(shape = (8, 8, 3)),
        Conv2D(0, 3),
    ]);
}
