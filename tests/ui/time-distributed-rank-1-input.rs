fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (8,)),
        TimeDistributed(Dense(4)),
    ]);
}
