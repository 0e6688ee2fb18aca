fn main() {}

// Sizes whose products do not fit a `u64`: each is an error at its own layer, not an
// overflow in the compiler.
kiln::model! {
    InputProduct = Sequential([
        Input(shape = (4294967296, 4294967296, 4294967296)),
        Dense(1),
    ]);
    ReshapeProduct = Sequential([
        Input(shape = (4,)),
        Reshape((4294967296, 4294967296, -1)),
    ]);
    RepeatProduct = Sequential([
        Input(shape = (4096,)),
        RepeatVector(4294967296),
    ]);
    UpSamplingProduct = Sequential([
        Input(shape = (4, 4)),
        UpSampling1D(size = 18446744073709551615),
    ]);
    PaddingSum = Sequential([
        Input(shape = (4, 4)),
        ZeroPadding1D(padding = (18446744073709551615, 18446744073709551615)),
    ]);
    ConvKernel = Sequential([
        Input(shape = (8, 8, 3)),
        Conv2D(18446744073709551615, (3, 3)),
    ]);
    DenseUnits = Sequential([
        Input(shape = (4,)),
        Dense(18446744073709551616),
    ]);
}
