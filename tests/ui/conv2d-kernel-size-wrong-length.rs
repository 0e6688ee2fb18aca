fn main() {}

kiln::model! {
    ThreeD = Sequential([
        Input(shape = (16, 16, 3)),
        Conv2D(4, (3, 3, 3)),
    ]);
}
