fn main() {}

kiln::model! {
    Net = Sequential([]);
}
