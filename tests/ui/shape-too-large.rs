fn main() {}

kiln::model! {
    HugeInput = Sequential([
        Input(shape = (100000, 100000)),
        Dense(1),
    ]);
    HugeOutput = Sequential([
        Input(shape = (4,)),
        Dense(100000000),
    ]);
    HugeWeight = Sequential([
        Input(shape = (100000,)),
        Dense(100000),
    ]);
}
