use kiln::{Model, Tensor};
kiln::model! {
    Cf = Sequential([
        Convolution2D(64, 3, 3, border_mode = "same", input_shape = (3, 32, 32), dim_ordering = "th"),
    ]);
    CfSmall = Sequential([Input(shape = (4, 6, 5)), Conv2D(3, 3, data_format = "channels_first")]);
}
fn check<M: Model + Send + Sync + 'static>() {
    let model = std::sync::Arc::new(M::new(1));
    let m = model.clone();
    let (a, b) = std::thread::Builder::new()
        .stack_size(M::PREDICT_INTO_STACK_BYTES + 32 * 1024)
        .spawn(move || {
            let x = Box::new(M::Input::from_values(&vec![0.01; M::INPUT_LEN]));
            let (mut y, mut s) = (M::new_output(), M::new_scratch());
            m.predict_into(&x, &mut y, &mut s);
            y.values().to_vec()
        })
        .unwrap()
        .join()
        .map(|y| (y, model.predict_slice(&vec![0.01; M::INPUT_LEN]).unwrap()))
        .unwrap();
    assert_eq!(a.len(), b.len());
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() < 1e-5);
    }
    println!(
        "{} PREDICT_INTO_STACK_BYTES {}",
        M::NAME,
        M::PREDICT_INTO_STACK_BYTES
    );
}
#[test]
fn cf() {
    check::<Cf>();
    check::<CfSmall>();
}
