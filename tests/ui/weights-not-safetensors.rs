// `#[weights]` names a file that is not safetensors.
kiln::model! {
    #[weights = "../../../../tests/ui/weights-not-safetensors.rs"]
    pub Net = Sequential([
        Input(shape = (4,)),
        Dense(5),
    ]);
}

fn main() {}
