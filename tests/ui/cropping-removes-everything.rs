fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4, 3)),
        Cropping1D((2, 2)),
    ]);
}
