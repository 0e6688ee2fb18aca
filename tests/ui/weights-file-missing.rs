// `#[weights]` names a file that does not exist: an error at the path, and the model still
// gets a stand-in type with `pretrained()`, so the code below shows no follow-on errors.
kiln::model! {
    #[weights = "weights/no-such-file.safetensors"]
    pub Net = Sequential([
        Input(shape = (4,)),
        Dense(5),
    ]);
}

fn main() {
    let _ = Net::pretrained();
}
