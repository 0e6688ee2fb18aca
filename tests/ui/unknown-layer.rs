fn main() {}

kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dnese(10),
        Activaton("relu"),
    ]);
}
