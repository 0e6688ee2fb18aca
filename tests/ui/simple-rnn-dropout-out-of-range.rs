fn main() {}

kiln::model! {
    Leaky = Sequential([
        Input(shape = (10, 3)),
        SimpleRNN(8, dropout = 1.5, recurrent_dropout = -0.1),
    ]);
}
