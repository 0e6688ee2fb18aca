fn main() {}

kiln::model! {
    Flat = Sequential([
        Input(shape = (100,)),
        Conv1D(8, 5),
    ]);
}
