// Exported from Keras 3.15.1 by tools/keras_export.py: model `sequence` of model.keras.
// Weights: weights.safetensors beside this file (`Model::load_weights`).
kiln::model! {
    pub SequenceClassifier = Sequential([
        Input(shape = (7,), dtype = "int32", name = "input_layer"),
        Embedding(12, 8, mask_zero = True, name = "embedding"),
        Bidirectional(LSTM(6, return_sequences = True, name = "lstm"), name = "bidirectional"),
        GRU(5, name = "gru"),
        Dense(3, activation = "softmax", name = "dense"),
    ]);
}
