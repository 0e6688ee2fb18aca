fn main() {}

// Keras 3's `UpSampling1D` takes an integer `size`, not a tuple.
kiln::model! {
    Net = Sequential([
        Input(shape = (4, 3)),
        UpSampling1D(size = (2,)),
    ]);
}
