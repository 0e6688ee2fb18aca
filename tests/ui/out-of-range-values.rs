fn main() {}

kiln::model! {
    ZeroUnits = Sequential([
        Input(shape = (4,)),
        Dense(0),
    ]);
    NegativeDims = Sequential([
        Input(shape = (4, -2)),
        Dense(1),
    ]);
    NegativeInputDim = Sequential([
        Dense(1, input_dim = -3),
    ]);
    Overflowing = Sequential([
        Input(shape = (4,)),
        Dense(100000000000000000000),
        Dense(1, activation = leaky_relu(negative_slope = 1e39)),
    ]);
}
