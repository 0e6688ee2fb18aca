fn main() {}

kiln::model! {
    Padded = Sequential([
        Input(shape = (10, 3)),
        Masking(),
        Lambda(|x| x * 2.0),
    ]);
}
