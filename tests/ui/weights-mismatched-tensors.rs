// The file holds `Net`'s tensors of tests/data/baked (4 -> Dense 5 -> PReLU -> Dense 2 without
// bias), but this model has 6 units, a bias on its last layer and no PReLU: every mismatch is
// reported at the attribute. (trybuild compiles this in target/tests/trybuild/kiln, hence the
// path back to the repository's root.)
kiln::model! {
    #[weights = "../../../../tests/data/baked/net.safetensors"]
    pub Net = Sequential([
        Input(shape = (4,)),
        Dense(6, activation = "tanh"),
        Dense(2),
    ]);
}

fn main() {}
