fn main() {}

kiln::model! {
    Grouped = Sequential([
        Input(shape = (8, 8, 3)),
        Conv2D(4, 3, groups = 2),
    ]);
}
