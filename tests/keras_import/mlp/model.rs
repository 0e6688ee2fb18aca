// Exported from Keras 3.15.1 by tools/keras_export.py: model `mlp` of model.keras.
// Weights: weights.safetensors beside this file (`Model::load_weights`).
kiln::model! {
    pub Mlp = Sequential([
        Input(shape = (10,), name = "input_layer"),
        Dense(16, activation = "relu", name = "dense"),
        Dense(8, activation = "tanh", name = "dense_1"),
        Dense(3, activation = "softmax", name = "dense_2"),
    ]);
}
