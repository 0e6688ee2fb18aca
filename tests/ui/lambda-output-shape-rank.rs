fn main() {}

kiln::model! {
    Expanded = Sequential([
        Input(shape = (4,)),
        Lambda(|x| x * 2.0, output_shape = (1, 1, 1, 1, 4)),
    ]);
}
