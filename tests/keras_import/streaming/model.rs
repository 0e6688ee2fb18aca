// Exported from Keras 3.15.1 by tools/keras_export.py: model `streaming` of model.keras.
// Weights: weights.safetensors beside this file (`Model::load_weights`).
kiln::model! {
    pub StatefulLstm = Sequential([
        Input(shape = (None, 3), batch_size = 2, name = "input_layer"),
        LSTM(8, return_sequences = True, stateful = True, name = "lstm"),
        Dense(1, name = "dense"),
    ]);
}
