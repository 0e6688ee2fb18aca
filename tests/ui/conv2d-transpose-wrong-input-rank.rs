fn main() {}

kiln::model! {
    Up = Sequential([
        Input(shape = (16,)),
        Conv2DTranspose(8, 3),
    ]);
}
