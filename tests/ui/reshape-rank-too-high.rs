fn main() {}

kiln::model! {
    RankFive = Sequential([
        Input(shape = (32,)),
        Reshape((2, 2, 2, 2, 2)),
    ]);
}
