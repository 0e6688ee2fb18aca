fn main() {}

kiln::model! {
    NoCopies = Sequential([
        Input(shape = (8,)),
        RepeatVector(0),
    ]);
}
