fn main() {}

kiln::model! {
    Grouped = Sequential([
        Input(shape = (8, 8, 4)),
        Conv2D(6, 3, groups = 4),
    ]);
}
