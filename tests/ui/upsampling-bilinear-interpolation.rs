fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4, 4, 3)),
        UpSampling2D(interpolation = "bilinear"),
    ]);
}
