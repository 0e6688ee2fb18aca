fn main() {}

// Every independent mistake is reported in one compile, also after a layer whose output
// shape is unknown (`Dnese`).
kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(8, activation = "rleu"),
        Dnese(8),
        Dense(0, kernel_initializer = "he_normel"),
        Dense(8, activaton = "relu"),
        Dense(8, name = "hidden"),
        Dense(8, name = "hidden"),
        Dense(1, input_dim = 8),
    ]);
}
