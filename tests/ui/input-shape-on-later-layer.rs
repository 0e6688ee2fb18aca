fn main() {}

kiln::model! {
    AfterInput = Sequential([
        Input(shape = (4,)),
        Dense(10, input_shape = (4,)),
        Dense(1, input_dim = 10),
    ]);
    Later = Sequential([
        Dense(10, input_dim = 4),
        Dense(1, input_shape = (10,)),
    ]);
}
