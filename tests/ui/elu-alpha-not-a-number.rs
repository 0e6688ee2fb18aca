fn main() {}

kiln::model! {
    Smooth = Sequential([
        Input(shape = (8,)),
        ELU(alpha = "one"),
    ]);
}
