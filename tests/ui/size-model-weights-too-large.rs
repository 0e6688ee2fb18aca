fn main() {}

// Each kernel is 2^30 values, the most one weight may hold; the third takes the model past
// the 2^31 values kiln allocates per model.
kiln::model! {
    Huge = Sequential([
        Input(shape = (32768,)),
        Dense(32768, use_bias = False),
        Dense(32768, use_bias = False),
        Dense(32768, use_bias = False),
        Dense(10),
    ]);
}
