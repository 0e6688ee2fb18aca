fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Activation("relu", "tanh"),
        Dense(1, None, True, "zeros", "zeros", None, None, None, None, None, 7),
    ]);
}
