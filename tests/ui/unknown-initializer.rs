fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(10, kernel_initializer = "glorot_unifrom"),
        Dense(1, bias_initializer = RandomNormal(stdev = 0.1)),
    ]);
}
