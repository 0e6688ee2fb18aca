fn main() {}

kiln::model! {
    Channels = Sequential([
        Input(shape = (4, 5, 3)),
        PReLU(shared_axes = [1, 2, 1]),
    ]);
}
