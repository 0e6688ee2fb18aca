fn main() {}

kiln::model! {
    Padded = Sequential([
        Input(shape = (10, 3)),
        Masking(mask_value = -1.0, name = "padding"),
        Reshape((30,)),
    ]);
}
