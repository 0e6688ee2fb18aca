//! The losses and metrics of issue 12 against Keras 3 (JAX): each loss's value and
//! `jax.grad` on seeded data with edge cases, a `train_on_batch` step with each loss, and
//! each metric's result after three `update_state` calls, with the name Keras logs it by.
//! Golden data: tools/oracle/losses_metrics.py -> tests/golden/losses_metrics.json.

mod common;

use common::{assert_close, floats, golden};
use kiln::{AucCurve, AucSummation, F1Average, Loss, Metric, MetricState, Model, Sgd};
use serde_json::Value;

fn loss_of(case: &Value) -> Loss {
    let c = &case["config"];
    let logits = c["from_logits"].as_bool().unwrap_or(false);
    let smoothing = c["label_smoothing"].as_f64().map(|s| s as f32);
    match case["loss"].as_str().expect("loss") {
        "Huber" => Loss::Huber {
            delta: c["delta"].as_f64().expect("delta") as f32,
        },
        "LogCosh" => Loss::LogCosh,
        "KLDivergence" => Loss::KLDivergence,
        "Poisson" => Loss::Poisson,
        "CosineSimilarity" => Loss::CosineSimilarity,
        "Hinge" => Loss::Hinge,
        "SquaredHinge" => Loss::SquaredHinge,
        "CategoricalHinge" => Loss::CategoricalHinge,
        "MeanSquaredLogarithmicError" => Loss::MeanSquaredLogarithmicError,
        "MeanAbsolutePercentageError" => Loss::MeanAbsolutePercentageError,
        "BinaryCrossentropy" => Loss::BinaryCrossentropy {
            from_logits: logits,
        }
        .with_label_smoothing(smoothing.expect("smoothing"))
        .expect("smoothable"),
        "CategoricalCrossentropy" => Loss::CategoricalCrossentropy {
            from_logits: logits,
        }
        .with_label_smoothing(smoothing.expect("smoothing"))
        .expect("smoothable"),
        other => panic!("unknown loss {other}"),
    }
}

#[test]
fn losses_and_gradients_match_keras() {
    let data = golden("losses_metrics");
    let cases = data["losses"].as_array().expect("losses");
    assert!(cases.len() >= 19);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let loss = loss_of(case);
        let classes = case["classes"].as_u64().expect("classes") as usize;
        let (p, t) = (floats(&case["y_pred"]), floats(&case["y_true"]));
        let value = loss.value(&p, &t, classes);
        let expected = floats(&case["value"]);
        assert_close(&format!("{name}: value"), &[value], &expected, 1e-5, 1e-6);
        let mut grad = vec![0.0; p.len()];
        loss.gradient(&p, &t, classes, &mut grad);
        assert_close(
            &format!("{name}: gradient"),
            &grad,
            &floats(&case["grad"]),
            1e-4,
            1e-6,
        );
    }
}

#[test]
fn every_new_loss_resolves_by_keras_name() {
    for (name, loss) in [
        ("huber", Loss::Huber { delta: 1.0 }),
        ("log_cosh", Loss::LogCosh),
        ("kld", Loss::KLDivergence),
        ("poisson", Loss::Poisson),
        ("cosine_similarity", Loss::CosineSimilarity),
        ("hinge", Loss::Hinge),
        ("squared_hinge", Loss::SquaredHinge),
        ("categorical_hinge", Loss::CategoricalHinge),
        ("msle", Loss::MeanSquaredLogarithmicError),
        ("mape", Loss::MeanAbsolutePercentageError),
    ] {
        assert_eq!(Loss::from_name(name), Some(loss), "{name}");
        assert!(Loss::NAMES.contains(&name), "{name} in NAMES");
    }
}

kiln::model! {
    SigmoidHead = Sequential([
        Input(shape = (4,)),
        Dense(3, activation = "sigmoid"),
    ]);
}

#[test]
fn train_on_batch_with_each_loss_matches_keras_sgd() {
    let data = golden("losses_metrics");
    let steps = data["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 12);
    let loss_for = |name: &str| match name {
        "bce_smooth" => Loss::BinaryCrossentropy { from_logits: false }
            .with_label_smoothing(0.1)
            .unwrap(),
        "cce_smooth" => Loss::CategoricalCrossentropy { from_logits: false }
            .with_label_smoothing(0.1)
            .unwrap(),
        other => Loss::from_name(other).unwrap_or_else(|| panic!("{other}")),
    };
    for case in steps {
        let name = case["name"].as_str().expect("name");
        let mut model = SigmoidHead::new(0);
        for (weight, spec) in case["weights"].as_object().expect("weights") {
            model
                .set_weight(weight, &floats(&spec["values"]))
                .expect("set_weight");
        }
        let mut trainer = model.compile(
            Sgd {
                learning_rate: case["lr"].as_f64().expect("lr") as f32,
                ..Sgd::default()
            },
            loss_for(name),
        );
        let logs = trainer
            .train_on_batch(&floats(&case["x"]), &floats(&case["t"]))
            .expect("train_on_batch");
        let expected = case["loss"].as_f64().expect("loss") as f32;
        assert_close(
            &format!("{name}: loss"),
            &[logs.loss],
            &[expected],
            1e-5,
            1e-6,
        );
        for weight in SigmoidHead::WEIGHT_NAMES {
            assert_close(
                &format!("{name}: {weight} after the step"),
                &trainer.model().get_weight(weight).expect("get_weight"),
                &floats(&case["after"][*weight]),
                1e-4,
                1e-6,
            );
        }
    }
}

fn metric_of(case: &Value) -> Metric {
    let c = &case["config"];
    let thresholds: &'static [f32] = match c["thresholds"].as_array() {
        Some(_) => Box::leak(floats(&c["thresholds"]).into_boxed_slice()),
        None => &[],
    };
    let top_k = c["top_k"].as_u64().map(|k| k as usize);
    let class_id = c["class_id"].as_u64().map(|k| k as usize);
    let k = c["k"].as_u64().unwrap_or(5) as usize;
    match case["metric"].as_str().expect("metric") {
        "Precision" => Metric::Precision {
            thresholds,
            top_k,
            class_id,
        },
        "Recall" => Metric::Recall {
            thresholds,
            top_k,
            class_id,
        },
        "AUC" => Metric::AUC {
            num_thresholds: c["num_thresholds"].as_u64().unwrap_or(200) as usize,
            curve: match c["curve"].as_str() {
                Some("PR") => AucCurve::PR,
                _ => AucCurve::ROC,
            },
            summation_method: match c["summation_method"].as_str() {
                Some("minoring") => AucSummation::Minoring,
                Some("majoring") => AucSummation::Majoring,
                _ => AucSummation::Interpolation,
            },
        },
        "TopKCategoricalAccuracy" => Metric::TopKCategoricalAccuracy { k },
        "SparseTopKCategoricalAccuracy" => Metric::SparseTopKCategoricalAccuracy { k },
        "MeanSquaredError" => Metric::MEAN_SQUARED_ERROR,
        "MeanAbsoluteError" => Metric::MEAN_ABSOLUTE_ERROR,
        "RootMeanSquaredError" => Metric::RootMeanSquaredError,
        "F1Score" => Metric::F1Score {
            average: match c["average"].as_str() {
                Some("micro") => F1Average::Micro,
                Some("macro") => F1Average::Macro,
                Some("weighted") => F1Average::Weighted,
                _ => F1Average::None,
            },
            threshold: c["threshold"].as_f64().map(|t| t as f32),
        },
        other => panic!("unknown metric {other}"),
    }
}

#[test]
fn metrics_accumulate_over_batches_like_keras() {
    let data = golden("losses_metrics");
    let cases = data["metrics"].as_array().expect("metrics");
    assert!(cases.len() >= 25);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let metric = metric_of(case);
        let classes = case["classes"].as_u64().expect("classes") as usize;
        // Keras numbers a second instance in one session (`precision_1`): compare the stem.
        let log_name = case["log_name"].as_str().expect("log_name");
        let stem = log_name
            .rsplit_once('_')
            .filter(|(_, n)| n.parse::<u32>().is_ok())
            .map_or(log_name, |(stem, _)| stem);
        assert_eq!(metric.name(), stem, "{name}: log name");
        let mut state = MetricState::new(metric, classes);
        for batch in case["batches"].as_array().expect("batches") {
            state.update_state(&floats(&batch["y_pred"]), &floats(&batch["y_true"]));
        }
        let expected = floats(&case["result"]);
        assert_eq!(
            metric.result_len(classes),
            expected.len(),
            "{name}: result length"
        );
        assert_close(
            &format!("{name}: result"),
            &state.results(),
            &expected,
            1e-5,
            1e-6,
        );
        // By name, where Keras's name gives this configuration.
        if case["config"].as_object().is_none_or(|c| c.is_empty()) {
            assert_eq!(
                Metric::from_name(metric.name()),
                Some(metric),
                "{name}: from_name"
            );
        }
    }
}

kiln::model! {
    Binary = Sequential([
        Input(shape = (2,)),
        Dense(1, activation = "sigmoid"),
    ]);
}

/// `fit` and `evaluate` accumulate the stateful metrics over batches (not a mean of batch
/// values), and on several threads the shares' states add up to the one-thread ones.
#[test]
fn fit_and_evaluate_accumulate_metric_states() {
    let x: Vec<f32> = (0..40).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
    let y: Vec<f32> = (0..20).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let compiled = [
        Metric::PRECISION,
        Metric::AUC_ROC,
        Metric::F1Score {
            average: F1Average::None,
            threshold: Some(0.5),
        },
    ];
    let trainer = Binary::new(3)
        .compile(
            Sgd::default(),
            Loss::BinaryCrossentropy { from_logits: false },
        )
        .with_metrics(&compiled);
    let logs = trainer.evaluate(&x, &y).expect("evaluate");
    let pred = trainer.model().predict_batch(&x).expect("predict");
    for metric in compiled {
        let mut whole = MetricState::new(metric, 1);
        whole.update_state(&pred, &y);
        let logged: Vec<f32> = logs.values(metric.name()).collect();
        assert_close(metric.name(), &logged, &whole.results(), 1e-6, 1e-7);
    }
    for threads in [1, 2] {
        let mut trainer = Binary::new(3)
            .compile(
                Sgd {
                    learning_rate: 0.0,
                    ..Sgd::default()
                },
                Loss::BinaryCrossentropy { from_logits: false },
            )
            .with_metrics(&compiled);
        let options = kiln::FitOptions {
            batch_size: 6,
            shuffle: false,
            verbose: false,
            threads,
            ..Default::default()
        };
        let history = trainer.fit(&x, &y, &options).expect("fit");
        for metric in compiled {
            let mut whole = MetricState::new(metric, 1);
            whole.update_state(&pred, &y);
            assert_close(
                &format!("{} over an epoch, {threads} threads", metric.name()),
                history.get(metric.name()).expect("logged"),
                &whole.results(),
                1e-6,
                1e-7,
            );
        }
    }
}
