fn main() {}

// `Input`'s batch arguments, with Keras's rules: `shape` or `batch_shape`, not both; not
// `batch_size` with `batch_shape`; a batch size is positive or `None`.
kiln::model! {
    Both = Sequential([Input(shape = (3,), batch_shape = (2, 3)), Dense(1)]);
    SizeTwice = Sequential([Input(batch_size = 2, batch_shape = (2, 3)), Dense(1)]);
    ZeroBatch = Sequential([Input(batch_shape = (0, 3)), Dense(1)]);
    NoSample = Sequential([Input(batch_shape = (2,)), Dense(1)]);
    Neither = Sequential([Input(batch_size = 2), Dense(1)]);
    BadDtype = Sequential([Input(shape = (3,), dtype = "complex64"), Dense(1)]);
    Sparse = Sequential([Input(shape = (3,), sparse = True), Dense(1)]);
}

// The states of a stateful model's batch are one value: their size is capped.
kiln::model! {
    HugeBatch = Sequential([
        Input(batch_shape = (100000000, None, 2)),
        LSTM(64, stateful = True),
    ]);
}
