// Exported from Keras 3.15.1 by tools/keras_export.py: model `masked` of model.keras.
// Weights: weights.safetensors beside this file (`Model::load_weights`).
kiln::model! {
    pub Masked = Sequential([
        Input(shape = (24,), name = "features"),
        Reshape((6, 4), name = "reshape"),
        Masking(mask_value = -1.0, name = "masking"),
        Dense(8, activation = "relu", name = "step-dense"),
        Dropout(0.1, name = "step-dropout"),
        Dense(3, name = "logits"),
        Activation("softmax", name = "probabilities"),
    ]);
}
