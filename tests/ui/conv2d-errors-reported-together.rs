fn main() {}

kiln::model! {
    Many = Sequential([
        Input(shape = (16, 16, 3)),
        Conv2D(0, 3, padding = "full", activation = "rleu"),
        Conv2D(4, 3, activation = "sigmod"),
    ]);
}
