fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4, 3)),
        UpSampling1D(0),
    ]);
}
