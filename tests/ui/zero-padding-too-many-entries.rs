fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (8, 8, 3)),
        ZeroPadding2D((1, 1, 1)),
    ]);
}
