use kiln::Model;

kiln::model! {
    /// Fails to check; the stand-in type keeps the code below free of follow-on errors.
    pub Bad = Sequential([
        Input(shape = (4,)),
        Dense(0),
    ]);
    /// Fails to parse; it still gets a stand-in type.
    pub Unparsed = Sequential([
        Input(shape = (4,)),
        Dense,
    ]);
}

fn main() {
    let m = Bad::new(0);
    let y = m.predict_slice(&[1.0]).unwrap();
    let u = Unparsed::new(0).predict_slice(&[1.0]).unwrap();
    println!("{y:?} {u:?} {}", Bad::PARAM_COUNT);
}
