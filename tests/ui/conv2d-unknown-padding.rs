fn main() {}

kiln::model! {
    Typo = Sequential([
        Input(shape = (16, 16, 3)),
        Conv2D(4, 3, padding = "smae"),
    ]);
}
