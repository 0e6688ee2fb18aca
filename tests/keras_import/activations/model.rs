// Exported from Keras 3.15.1 by tools/keras_export.py: model `activations` of model.keras.
// Weights: weights.safetensors beside this file (`Model::load_weights`).
kiln::model! {
    pub Activations = Sequential([
        Input(shape = (12,), name = "input_layer"),
        Dense(16, name = "dense-in"),
        PReLU(alpha_initializer = Constant(value = 0.25), name = "p_re_lu"),
        Dropout(0.2, seed = 7, name = "dropout"),
        Dense(12, kernel_regularizer = l2(0.001), name = "hidden-2"),
        LeakyReLU(negative_slope = 0.1, name = "leaky_re_lu"),
        ActivityRegularization(l1 = 1e-04, l2 = 0.001, name = "act-reg"),
        Dense(8, kernel_constraint = max_norm(2.0), name = "dense"),
        ELU(alpha = 0.7, name = "elu"),
        Dense(2, name = "out"),
    ]);
}
