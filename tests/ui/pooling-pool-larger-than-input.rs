fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (2, 5, 4)),
        MaxPooling2D((3, 3)),
    ]);
}
