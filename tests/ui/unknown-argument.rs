fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(10, activaton = "relu"),
        Dense(1, bias = False),
    ]);
}
