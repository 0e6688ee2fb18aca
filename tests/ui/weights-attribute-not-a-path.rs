// `#[weights]` takes a path in a string.
kiln::model! {
    #[weights = 42]
    pub Net = Sequential([
        Input(shape = (4,)),
        Dense(5),
    ]);

    #[weights("net.safetensors")]
    pub Other = Sequential([
        Input(shape = (4,)),
        Dense(5),
    ]);
}

fn main() {}
