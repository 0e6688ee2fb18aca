// Exported from Keras 3.15.1 by tools/keras_export.py: model `normalization` of model.keras.
// Weights: weights.safetensors beside this file (`Model::load_weights`).
kiln::model! {
    pub Normalization = Sequential([
        Input(shape = (6, 4), name = "input_layer"),
        Dense(8, name = "conv1"),
        BatchNormalization(momentum = 0.8, name = "conv1-BN"),
        Activation("relu", name = "activation"),
        LayerNormalization(axis = [1, 2], name = "ln-all"),
        Dense(5, name = "dense"),
        BatchNormalization(axis = 1, center = False, name = "batch_normalization"),
        LayerNormalization(epsilon = 1e-05, name = "layer_normalization"),
        Flatten(name = "flatten"),
        Dense(3, activation = "softmax", name = "dense_1"),
    ]);
}
