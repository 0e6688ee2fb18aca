fn main() {}

kiln::model! {
    Grey = Sequential([
        Input(shape = (28, 28)),
        Conv2D(16, 3),
    ]);
}
