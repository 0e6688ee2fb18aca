fn main() {}

kiln::model! {
    Padded = Sequential([
        Input(shape = (10, 3)),
        Masking(mask_value = "pad"),
        Dense(2),
    ]);
}
