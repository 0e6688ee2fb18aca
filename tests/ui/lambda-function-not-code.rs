fn main() {}

kiln::model! {
    Doubled = Sequential([
        Input(shape = (4,)),
        Lambda("lambda x: x * 2"),
    ]);
}
