fn main() {}

kiln::model! {
    Tokens = Sequential([
        Input(shape = (10, 16)),
        LayerNormalization(rms_scaling = True),
    ]);
}
