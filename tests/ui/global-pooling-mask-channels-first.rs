fn main() {}

// Channels first, Masking masks per feature, but Keras applies the mask along the steps.
kiln::model! {
    Net = Sequential([
        Input(shape = (3, 10)),
        Masking(),
        GlobalAveragePooling1D(data_format = "channels_first"),
    ]);
}
