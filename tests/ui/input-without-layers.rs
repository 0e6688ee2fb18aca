fn main() {}

kiln::model! {
    Net = Sequential([Input(shape = (4,))]);
}
