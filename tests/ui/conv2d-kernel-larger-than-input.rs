fn main() {}

kiln::model! {
    Small = Sequential([
        Input(shape = (4, 6, 3)),
        Conv2D(8, 5),
    ]);
}
