//! Every layer kind on inputs holding +inf, -inf and NaN against Keras 3 on JAX
//! (tests/golden/non_finite.json, from tools/oracle/non_finite.py): kiln's rule is that the
//! typed `predict` computes what Keras computes for them and the slice APIs refuse them.
//! Each case's batch holds a sample with one +inf, one with one -inf, one with one NaN, one
//! with all three, one with the three in turn at every third position, one of -inf only,
//! and a finite one (`common::check_non_finite_case` says what is compared).
//!
//! Weights hold exact zeros (about one in six) unless the case name says otherwise, so an
//! infinity times a zero weight (NaN in Keras) reaches the output; the `no_zero_weights`
//! cases let infinities saturate tanh, sigmoid and softmax instead. The `wide_*` cases have
//! more than 16 units, channels or filters, so the kernels' vector paths run, not only their
//! scalar tails (a depthwise kernel that skipped zero weights fails only there).
//!
//! `masking_softmax_time` and `masking_dense_softmax_time` found the one disagreement: a
//! masked Softmax position was NaN, not 0, in a line whose kept values held NaN or +inf, and
//! a line whose kept values were all -inf was NaN, not zeros. `softmax_along` now computes
//! as Keras does (masked inputs count as -1e9, masked outputs are zeroed afterwards).
//!
//! `ThresholdedReLU` follows Keras 2's layer, `x * cast(x > theta)`: NaN at -inf and NaN,
//! where Keras 3's `ReLU(threshold = theta)` gives 0; the two agree only on finite inputs.
//!
//! `model(x)` and `model.predict(x)` (fused into one XLA program) agree on every case: the
//! oracle checks it and lists disagreements under `xla_inconsistent`, which is empty.

mod common;
use common::{case, check_non_finite_case, golden};
use kiln::Model;

kiln::model! {
    Dense = Sequential([Input(shape = (6,)), Dense(4)]);
    DenseNoZeroWeightsTanh = Sequential([Input(shape = (6,)), Dense(4, activation = "tanh")]);
    DenseRank2Relu = Sequential([Input(shape = (3, 5)), Dense(4, activation = "relu")]);
    DenseSoftmax = Sequential([Input(shape = (6,)), Dense(5, activation = "softmax")]);
    DenseSigmoidDense = Sequential([
        Input(shape = (5,)),
        Dense(6, activation = "sigmoid"),
        Dense(3),
    ]);
    ActivationElu = Sequential([Input(shape = (4, 5)), Activation("elu")]);
    ReluDefault = Sequential([Input(shape = (4, 5)), ReLU()]);
    ReluMaxValue6 = Sequential([Input(shape = (4, 5)), ReLU(max_value = 6.0)]);
    ReluMaxValue2 = Sequential([Input(shape = (4, 5)), ReLU(max_value = 2.0)]);
    ReluThreshold = Sequential([Input(shape = (4, 5)), ReLU(threshold = 0.5)]);
    ReluNegativeSlope = Sequential([Input(shape = (4, 5)), ReLU(negative_slope = 0.1)]);
    ReluAllThree = Sequential([
        Input(shape = (4, 5)),
        ReLU(max_value = 6.0, negative_slope = 0.1, threshold = 0.5),
    ]);
    LeakyRelu = Sequential([Input(shape = (4, 5)), LeakyReLU()]);
    Prelu = Sequential([Input(shape = (4, 5)), PReLU()]);
    PreluShared = Sequential([Input(shape = (4, 5)), PReLU(shared_axes = [1])]);
    Elu = Sequential([Input(shape = (4, 5)), ELU(alpha = 0.5)]);
    SoftmaxLast = Sequential([Input(shape = (4, 5)), Softmax()]);
    SoftmaxAxis1 = Sequential([Input(shape = (3, 4, 2)), Softmax(axis = 1)]);
    SoftmaxRank1 = Sequential([Input(shape = (6,)), Softmax()]);
    ThresholdedRelu = Sequential([Input(shape = (4, 5)), ThresholdedReLU()]);
    ThresholdedReluTheta = Sequential([Input(shape = (4, 5)), ThresholdedReLU(theta = 0.5)]);

    DropoutDense = Sequential([Input(shape = (6,)), Dropout(0.5), Dense(3)]);
    ActivityRegularizationDense = Sequential([
        Input(shape = (6,)),
        ActivityRegularization(l1 = 0.01, l2 = 0.01),
        Dense(3),
    ]);
    FlattenOnly = Sequential([Input(shape = (3, 4, 2)), Flatten()]);
    ReshapeOnly = Sequential([Input(shape = (4, 6)), Reshape((3, 8))]);
    PermuteOnly = Sequential([Input(shape = (3, 4, 2)), Permute((3, 1, 2))]);
    RepeatVectorOnly = Sequential([Input(shape = (5,)), RepeatVector(3)]);
    ZeroPadding1d = Sequential([Input(shape = (4, 3)), ZeroPadding1D((2, 1))]);
    ZeroPadding2d = Sequential([Input(shape = (3, 4, 2)), ZeroPadding2D(((1, 0), (2, 1)))]);
    ZeroPadding2dChannelsFirst = Sequential([
        Input(shape = (2, 3, 4)),
        ZeroPadding2D(1, data_format = "channels_first"),
    ]);
    UpSampling1d = Sequential([Input(shape = (4, 3)), UpSampling1D(2)]);
    UpSampling2d = Sequential([Input(shape = (3, 2, 2)), UpSampling2D((2, 3))]);
    Cropping1d = Sequential([Input(shape = (6, 3)), Cropping1D((1, 2))]);
    Cropping2d = Sequential([Input(shape = (5, 6, 2)), Cropping2D(((1, 2), (0, 1)))]);
    UpSampling2dChannelsFirst = Sequential([
        Input(shape = (2, 3, 2)),
        UpSampling2D((3, 2), data_format = "channels_first"),
    ]);
    Cropping2dChannelsFirst = Sequential([
        Input(shape = (2, 5, 6)),
        Cropping2D(((2, 1), (1, 0)), data_format = "channels_first"),
    ]);

    MaskingDense = Sequential([Input(shape = (5, 3)), Masking(), Dense(2)]);
    MaskingValueDense = Sequential([Input(shape = (5, 3)), Masking(mask_value = 0.5), Dense(2)]);
    MaskingGlobalAverage = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        GlobalAveragePooling1D(),
    ]);
    MaskingSoftmaxLast = Sequential([Input(shape = (5, 3)), Masking(), Softmax()]);
    MaskingSoftmaxTime = Sequential([Input(shape = (5, 3)), Masking(), Softmax(axis = 1)]);
    MaskingDenseSoftmaxTime = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        Dense(4),
        Softmax(axis = 1),
    ]);

    Conv1dValid = Sequential([Input(shape = (8, 3)), Conv1D(4, 3)]);
    Conv1dSameStrides = Sequential([
        Input(shape = (8, 3)),
        Conv1D(3, 4, strides = 2, padding = "same"),
    ]);
    Conv1dCausalDilation = Sequential([
        Input(shape = (8, 2)),
        Conv1D(3, 3, padding = "causal", dilation_rate = 2),
    ]);
    Conv1dChannelsFirstGroups = Sequential([
        Input(shape = (4, 7)),
        Conv1D(4, 3, groups = 2, data_format = "channels_first"),
    ]);
    Conv1dNoZeroWeightsTanh = Sequential([
        Input(shape = (8, 3)),
        Conv1D(4, 3, activation = "tanh"),
    ]);
    Conv2dValid = Sequential([Input(shape = (5, 6, 3)), Conv2D(4, 3)]);
    Conv2dSame = Sequential([Input(shape = (5, 5, 3)), Conv2D(4, 3, padding = "same")]);
    Conv2dSameStrides = Sequential([
        Input(shape = (6, 5, 2)),
        Conv2D(3, (3, 2), strides = 2, padding = "same"),
    ]);
    Conv2dChannelsFirstSame = Sequential([
        Input(shape = (3, 5, 5)),
        Conv2D(4, 3, padding = "same", data_format = "channels_first"),
    ]);
    Conv2dChannelsFirstValid = Sequential([
        Input(shape = (2, 5, 6)),
        Conv2D(3, 2, strides = (2, 1), data_format = "channels_first"),
    ]);
    Conv2dGroups = Sequential([Input(shape = (5, 5, 4)), Conv2D(6, 2, groups = 2)]);
    Conv2dGroupsSameDilation = Sequential([
        Input(shape = (6, 6, 4)),
        Conv2D(4, 3, groups = 2, padding = "same", dilation_rate = 2),
    ]);
    Conv2dFullWidth = Sequential([Input(shape = (7, 4, 2)), Conv2D(3, (3, 4))]);
    Conv2dNoZeroWeightsRelu = Sequential([
        Input(shape = (5, 5, 2)),
        Conv2D(3, 3, activation = "relu"),
    ]);
    DepthwiseConv2d = Sequential([
        Input(shape = (5, 5, 3)),
        DepthwiseConv2D(3, padding = "same", depth_multiplier = 2),
    ]);
    DepthwiseConv2dChannelsFirst = Sequential([
        Input(shape = (3, 5, 6)),
        DepthwiseConv2D(2, strides = 2, data_format = "channels_first"),
    ]);
    SeparableConv2d = Sequential([
        Input(shape = (6, 6, 3)),
        SeparableConv2D(4, 3, padding = "same"),
    ]);
    SeparableConv2dStrides = Sequential([
        Input(shape = (7, 6, 2)),
        SeparableConv2D(3, (2, 3), strides = 2, depth_multiplier = 2),
    ]);
    Conv2dTranspose = Sequential([Input(shape = (4, 4, 3)), Conv2DTranspose(2, 3, strides = 2)]);
    Conv2dTransposeSame = Sequential([
        Input(shape = (4, 3, 2)),
        Conv2DTranspose(3, 3, strides = 2, padding = "same"),
    ]);
    Conv2dTransposeChannelsFirst = Sequential([
        Input(shape = (2, 3, 4)),
        Conv2DTranspose(2, 2, data_format = "channels_first"),
    ]);

    MaxPool1d = Sequential([Input(shape = (7, 3)), MaxPooling1D()]);
    MaxPool1dSame = Sequential([
        Input(shape = (7, 3)),
        MaxPooling1D(3, strides = 2, padding = "same"),
    ]);
    MaxPool1dChannelsFirst = Sequential([
        Input(shape = (3, 7)),
        MaxPooling1D(2, padding = "same", data_format = "channels_first"),
    ]);
    MaxPool2d = Sequential([Input(shape = (5, 6, 2)), MaxPooling2D()]);
    MaxPool2dSame = Sequential([
        Input(shape = (5, 5, 2)),
        MaxPooling2D(3, strides = 2, padding = "same"),
    ]);
    MaxPool2dChannelsFirst = Sequential([
        Input(shape = (2, 5, 6)),
        MaxPooling2D((2, 3), strides = 1, data_format = "channels_first"),
    ]);
    MaxPool2dChannelsFirstSame = Sequential([
        Input(shape = (2, 5, 5)),
        MaxPooling2D(2, padding = "same", data_format = "channels_first"),
    ]);
    AvgPool1d = Sequential([Input(shape = (7, 3)), AveragePooling1D(2)]);
    AvgPool1dSame = Sequential([
        Input(shape = (7, 3)),
        AveragePooling1D(3, strides = 2, padding = "same"),
    ]);
    AvgPool1dChannelsFirst = Sequential([
        Input(shape = (3, 7)),
        AveragePooling1D(3, padding = "same", data_format = "channels_first"),
    ]);
    AvgPool2d = Sequential([Input(shape = (5, 6, 2)), AveragePooling2D(2)]);
    AvgPool2dSame = Sequential([
        Input(shape = (5, 5, 2)),
        AveragePooling2D(3, strides = 2, padding = "same"),
    ]);
    AvgPool2dChannelsFirst = Sequential([
        Input(shape = (2, 5, 6)),
        AveragePooling2D((2, 3), strides = 1, data_format = "channels_first"),
    ]);
    AvgPool2dChannelsFirstSame = Sequential([
        Input(shape = (2, 5, 5)),
        AveragePooling2D(2, padding = "same", data_format = "channels_first"),
    ]);
    GlobalMaxPool1d = Sequential([Input(shape = (6, 3)), GlobalMaxPooling1D()]);
    GlobalMaxPool1dChannelsFirst = Sequential([
        Input(shape = (3, 6)),
        GlobalMaxPooling1D(data_format = "channels_first", keepdims = True),
    ]);
    GlobalAvgPool1d = Sequential([Input(shape = (6, 3)), GlobalAveragePooling1D()]);
    GlobalMaxPool2d = Sequential([Input(shape = (4, 5, 3)), GlobalMaxPooling2D()]);
    GlobalMaxPool2dChannelsFirst = Sequential([
        Input(shape = (3, 4, 5)),
        GlobalMaxPooling2D(data_format = "channels_first"),
    ]);
    GlobalAvgPool2d = Sequential([Input(shape = (4, 5, 3)), GlobalAveragePooling2D()]);
    GlobalAvgPool2dChannelsFirst = Sequential([
        Input(shape = (3, 4, 5)),
        GlobalAveragePooling2D(data_format = "channels_first", keepdims = True),
    ]);

    BatchNorm = Sequential([Input(shape = (4, 3)), BatchNormalization()]);
    BatchNormAxis1 = Sequential([Input(shape = (3, 4, 2)), BatchNormalization(axis = 1)]);
    LayerNorm = Sequential([Input(shape = (4, 5)), LayerNormalization()]);
    LayerNormAxes = Sequential([Input(shape = (3, 4, 2)), LayerNormalization(axis = [1, 2])]);

    EmbeddingDense = Sequential([Input(shape = (5,)), Embedding(10, 3), Dense(2)]);

    SimpleRnn = Sequential([Input(shape = (5, 3)), SimpleRNN(4)]);
    SimpleRnnSequences = Sequential([Input(shape = (5, 3)), SimpleRNN(4, return_sequences = True)]);
    SimpleRnnNoZeroWeights = Sequential([
        Input(shape = (5, 3)),
        SimpleRNN(3, return_sequences = True),
    ]);
    Lstm = Sequential([Input(shape = (5, 3)), LSTM(4)]);
    LstmSequences = Sequential([Input(shape = (5, 3)), LSTM(3, return_sequences = True)]);
    LstmNoZeroWeights = Sequential([Input(shape = (5, 3)), LSTM(3, return_sequences = True)]);
    Gru = Sequential([Input(shape = (5, 3)), GRU(4)]);
    GruSequences = Sequential([Input(shape = (5, 3)), GRU(3, return_sequences = True)]);
    GruResetBeforeSequences = Sequential([
        Input(shape = (5, 3)),
        GRU(3, reset_after = False, return_sequences = True),
    ]);
    GruNoZeroWeights = Sequential([Input(shape = (5, 3)), GRU(3, return_sequences = True)]);
    MaskingSimpleRnnSequences = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        SimpleRNN(3, return_sequences = True),
    ]);
    MaskingLstm = Sequential([Input(shape = (5, 3)), Masking(mask_value = 0.5), LSTM(3)]);
    MaskingLstmSequencesBackwards = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        LSTM(3, return_sequences = True, go_backwards = True),
    ]);
    MaskingGruSequences = Sequential([
        Input(shape = (5, 3)),
        Masking(),
        GRU(3, return_sequences = True),
    ]);
    WideDenseSigmoid = Sequential([Input(shape = (37,)), Dense(40, activation = "sigmoid")]);
    WideDenseRank2Tanh = Sequential([Input(shape = (3, 37)), Dense(35, activation = "tanh")]);
    WideDenseSoftmax = Sequential([Input(shape = (20,)), Dense(33, activation = "softmax")]);
    WideSoftmax = Sequential([Input(shape = (3, 33)), Softmax()]);
    WideConv2d = Sequential([Input(shape = (5, 5, 16)), Conv2D(18, 3, padding = "same")]);
    WideConv2dChannelsFirstDeep = Sequential([
        Input(shape = (40, 3, 4)),
        Conv2D(17, 3, padding = "same", data_format = "channels_first"),
    ]);
    WideConv1dNoZeroWeights = Sequential([
        Input(shape = (10, 24)),
        Conv1D(33, 3, activation = "tanh"),
    ]);
    WideDepthwiseConv2d = Sequential([
        Input(shape = (5, 5, 17)),
        DepthwiseConv2D(3, padding = "same"),
    ]);
    WideDepthwiseConv2dMultiplier3 = Sequential([
        Input(shape = (4, 4, 6)),
        DepthwiseConv2D(2, depth_multiplier = 3),
    ]);
    WideSeparableConv2dChannelsFirst = Sequential([
        Input(shape = (8, 5, 5)),
        SeparableConv2D(18, 3, padding = "same", data_format = "channels_first"),
    ]);
    WideConv2dTranspose = Sequential([
        Input(shape = (3, 3, 17)),
        Conv2DTranspose(19, 2, strides = 2),
    ]);
    WideMaxPool2d = Sequential([Input(shape = (4, 4, 24)), MaxPooling2D()]);
    WideMaxPool2dSame = Sequential([
        Input(shape = (5, 5, 20)),
        MaxPooling2D(3, strides = 2, padding = "same"),
    ]);
    WideAvgPool2dSame = Sequential([
        Input(shape = (5, 5, 20)),
        AveragePooling2D(3, strides = 2, padding = "same"),
    ]);
    WideGlobalMaxPool2d = Sequential([Input(shape = (3, 3, 20)), GlobalMaxPooling2D()]);
    WideGlobalAvgPool1d = Sequential([Input(shape = (4, 40)), GlobalAveragePooling1D()]);
    WideBatchNorm = Sequential([Input(shape = (2, 40)), BatchNormalization()]);
    WideLayerNorm = Sequential([Input(shape = (3, 40)), LayerNormalization()]);
    WidePrelu = Sequential([Input(shape = (2, 40)), PReLU()]);
    WideLstm = Sequential([Input(shape = (4, 10)), LSTM(20, return_sequences = True)]);
    WideGru = Sequential([Input(shape = (4, 10)), GRU(20, return_sequences = True)]);
    WideSimpleRnn = Sequential([Input(shape = (4, 10)), SimpleRNN(20, return_sequences = True)]);
}

/// Relative tolerance: the layers' own parity tests use 1e-5 (1e-4 for the recurrent ones,
/// whose errors compound over the timesteps).
const RTOL: f32 = 1e-4;
/// Absolute tolerance, for values that cancel to near 0.
const ATOL: f32 = 1e-5;

fn check<M: Model>(name: &str) {
    check_non_finite_case::<M>(&case(&golden("non_finite"), name), RTOL, ATOL);
}

/// One `#[test]` per golden case, named like it.
macro_rules! cases {
    ($($model:ident $name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                check::<$model>(stringify!($name));
            }
        )*

        /// Every golden case has its test above, and Keras agreed with itself on all.
        #[test]
        fn every_golden_case_is_tested() {
            let file = golden("non_finite");
            let mut names: Vec<&str> = file["cases"]
                .as_array()
                .expect("`cases` list")
                .iter()
                .map(|c| c["name"].as_str().expect("name"))
                .collect();
            names.sort_unstable();
            let mut tested = vec![$(stringify!($name)),*];
            tested.sort_unstable();
            assert_eq!(names, tested);
            assert_eq!(file["xla_inconsistent"], serde_json::json!([]));
        }
    };
}

cases! {
    Dense dense,
    DenseNoZeroWeightsTanh dense_no_zero_weights_tanh,
    DenseRank2Relu dense_rank2_relu,
    DenseSoftmax dense_softmax,
    DenseSigmoidDense dense_sigmoid_dense,
    ActivationElu activation_elu,
    ReluDefault relu_default,
    ReluMaxValue6 relu_max_value_6,
    ReluMaxValue2 relu_max_value_2,
    ReluThreshold relu_threshold,
    ReluNegativeSlope relu_negative_slope,
    ReluAllThree relu_all_three,
    LeakyRelu leaky_relu,
    Prelu prelu,
    PreluShared prelu_shared,
    Elu elu,
    SoftmaxLast softmax_last,
    SoftmaxAxis1 softmax_axis_1,
    SoftmaxRank1 softmax_rank1,
    ThresholdedRelu thresholded_relu,
    ThresholdedReluTheta thresholded_relu_theta,
    DropoutDense dropout,
    ActivityRegularizationDense activity_regularization,
    FlattenOnly flatten,
    ReshapeOnly reshape,
    PermuteOnly permute,
    RepeatVectorOnly repeat_vector,
    ZeroPadding1d zero_padding_1d,
    ZeroPadding2d zero_padding_2d,
    ZeroPadding2dChannelsFirst zero_padding_2d_channels_first,
    UpSampling1d upsampling_1d,
    UpSampling2d upsampling_2d,
    Cropping1d cropping_1d,
    Cropping2d cropping_2d,
    UpSampling2dChannelsFirst upsampling_2d_channels_first,
    Cropping2dChannelsFirst cropping_2d_channels_first,
    MaskingDense masking_dense,
    MaskingValueDense masking_value_dense,
    MaskingGlobalAverage masking_global_average,
    MaskingSoftmaxLast masking_softmax_last,
    MaskingSoftmaxTime masking_softmax_time,
    MaskingDenseSoftmaxTime masking_dense_softmax_time,
    Conv1dValid conv1d_valid,
    Conv1dSameStrides conv1d_same_strides,
    Conv1dCausalDilation conv1d_causal_dilation,
    Conv1dChannelsFirstGroups conv1d_channels_first_groups,
    Conv1dNoZeroWeightsTanh conv1d_no_zero_weights_tanh,
    Conv2dValid conv2d_valid,
    Conv2dSame conv2d_same,
    Conv2dSameStrides conv2d_same_strides,
    Conv2dChannelsFirstSame conv2d_channels_first_same,
    Conv2dChannelsFirstValid conv2d_channels_first_valid,
    Conv2dGroups conv2d_groups,
    Conv2dGroupsSameDilation conv2d_groups_same_dilation,
    Conv2dFullWidth conv2d_full_width,
    Conv2dNoZeroWeightsRelu conv2d_no_zero_weights_relu,
    DepthwiseConv2d depthwise_conv2d,
    DepthwiseConv2dChannelsFirst depthwise_conv2d_channels_first,
    SeparableConv2d separable_conv2d,
    SeparableConv2dStrides separable_conv2d_strides,
    Conv2dTranspose conv2d_transpose,
    Conv2dTransposeSame conv2d_transpose_same,
    Conv2dTransposeChannelsFirst conv2d_transpose_channels_first,
    MaxPool1d max_pool_1d,
    MaxPool1dSame max_pool_1d_same,
    MaxPool1dChannelsFirst max_pool_1d_channels_first,
    MaxPool2d max_pool_2d,
    MaxPool2dSame max_pool_2d_same,
    MaxPool2dChannelsFirst max_pool_2d_channels_first,
    MaxPool2dChannelsFirstSame max_pool_2d_channels_first_same,
    AvgPool1d average_pool_1d,
    AvgPool1dSame average_pool_1d_same,
    AvgPool1dChannelsFirst average_pool_1d_channels_first,
    AvgPool2d average_pool_2d,
    AvgPool2dSame average_pool_2d_same,
    AvgPool2dChannelsFirst average_pool_2d_channels_first,
    AvgPool2dChannelsFirstSame average_pool_2d_channels_first_same,
    GlobalMaxPool1d global_max_pool_1d,
    GlobalMaxPool1dChannelsFirst global_max_pool_1d_channels_first,
    GlobalAvgPool1d global_average_pool_1d,
    GlobalMaxPool2d global_max_pool_2d,
    GlobalMaxPool2dChannelsFirst global_max_pool_2d_channels_first,
    GlobalAvgPool2d global_average_pool_2d,
    GlobalAvgPool2dChannelsFirst global_average_pool_2d_channels_first,
    BatchNorm batch_normalization,
    BatchNormAxis1 batch_normalization_axis_1,
    LayerNorm layer_normalization,
    LayerNormAxes layer_normalization_axes,
    EmbeddingDense embedding_dense,
    SimpleRnn simple_rnn,
    SimpleRnnSequences simple_rnn_sequences,
    SimpleRnnNoZeroWeights simple_rnn_no_zero_weights,
    Lstm lstm,
    LstmSequences lstm_sequences,
    LstmNoZeroWeights lstm_no_zero_weights,
    Gru gru,
    GruSequences gru_sequences,
    GruResetBeforeSequences gru_reset_before_sequences,
    GruNoZeroWeights gru_no_zero_weights,
    MaskingSimpleRnnSequences masking_simple_rnn_sequences,
    MaskingLstm masking_lstm,
    MaskingLstmSequencesBackwards masking_lstm_sequences_backwards,
    MaskingGruSequences masking_gru_sequences,
    WideDenseSigmoid wide_dense_sigmoid,
    WideDenseRank2Tanh wide_dense_rank2_tanh,
    WideDenseSoftmax wide_dense_softmax,
    WideSoftmax wide_softmax,
    WideConv2d wide_conv2d,
    WideConv2dChannelsFirstDeep wide_conv2d_channels_first_deep,
    WideConv1dNoZeroWeights wide_conv1d_no_zero_weights,
    WideDepthwiseConv2d wide_depthwise_conv2d,
    WideDepthwiseConv2dMultiplier3 wide_depthwise_conv2d_multiplier_3,
    WideSeparableConv2dChannelsFirst wide_separable_conv2d_channels_first,
    WideConv2dTranspose wide_conv2d_transpose,
    WideMaxPool2d wide_max_pool_2d,
    WideMaxPool2dSame wide_max_pool_2d_same,
    WideAvgPool2dSame wide_average_pool_2d_same,
    WideGlobalMaxPool2d wide_global_max_pool_2d,
    WideGlobalAvgPool1d wide_global_average_pool_1d,
    WideBatchNorm wide_batch_normalization,
    WideLayerNorm wide_layer_normalization,
    WidePrelu wide_prelu,
    WideLstm wide_lstm,
    WideGru wide_gru,
    WideSimpleRnn wide_simple_rnn,
}

/// An `Embedding` model's slice APIs refuse a NaN or infinite id as a non-finite input
/// before asking whether it is an id (Keras casts it to an integer; kiln does not guess).
#[test]
fn embedding_refuses_non_finite_ids() {
    let model = EmbeddingDense::new(0);
    for (i, bad) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
        .into_iter()
        .enumerate()
    {
        let mut x = [1.0, 2.0, 3.0, 4.0, 5.0];
        x[i + 1] = bad;
        match model.predict_slice(&x) {
            Err(kiln::Error::NonFiniteInput { index, value }) => {
                assert_eq!(index, i + 1);
                assert_eq!(value.to_bits(), bad.to_bits());
            }
            other => panic!("id {bad}: expected NonFiniteInput, found {other:?}"),
        }
    }
}
