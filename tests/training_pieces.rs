//! The building blocks of training against Keras 3 (golden data from
//! `tools/oracle/training_pieces.py`): every loss's value and `jax.grad`, the fused
//! output-layer gradients, accuracy metrics and their running means, three steps of every
//! optimizer, regularizers, constraints. Then property tests: each loss gradient against
//! central finite differences.
//!
//! Tolerance: rtol 1e-5 throughout. `atol` is 1e-30 only so that a gradient JAX flushed to
//! zero (XLA on CPU flushes denormals) may come out as a denormal here; no value the tests
//! compare is anywhere near that size otherwise.
mod common;

use common::{assert_close, floats, golden};
use kiln::optimizers::{self, GradientClip, Optimizer};
use kiln::{Constraint, Loss, MeanMetric, Metric, Regularizer};
use proptest::prelude::*;
use serde_json::Value;

const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-30;

fn data() -> Value {
    golden("training_pieces")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("golden data has no list `{key}`"))
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap_or("?")
}

fn classes(case: &Value) -> usize {
    case["classes"].as_u64().expect("classes") as usize
}

fn num(v: &Value) -> f32 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, found {v}")) as f32
}

fn loss_of(case: &Value) -> Loss {
    let from_logits = case["from_logits"].as_bool().unwrap_or(false);
    match case["loss"].as_str() {
        Some("MeanSquaredError") => Loss::MeanSquaredError,
        Some("MeanAbsoluteError") => Loss::MeanAbsoluteError,
        Some("BinaryCrossentropy") => Loss::BinaryCrossentropy { from_logits },
        Some("CategoricalCrossentropy") => Loss::CategoricalCrossentropy { from_logits },
        Some("SparseCategoricalCrossentropy") => {
            Loss::SparseCategoricalCrossentropy { from_logits }
        }
        other => panic!("unknown loss {other:?}"),
    }
}

#[test]
fn losses_match_keras_values_and_gradients() {
    let data = data();
    for case in list(&data, "losses") {
        let loss = loss_of(case);
        let (p, y, c) = (
            floats(&case["y_pred"]),
            floats(&case["y_true"]),
            classes(case),
        );
        let what = name(case);
        assert_close(
            &format!("{what}: value"),
            &[loss.value(&p, &y, c)],
            &[num(&case["value"])],
            RTOL,
            ATOL,
        );
        let mut grad = vec![f32::NAN; p.len()];
        loss.gradient(&p, &y, c, &mut grad);
        assert_close(
            &format!("{what}: gradient"),
            &grad,
            &floats(&case["grad"]),
            RTOL,
            ATOL,
        );
    }
}

#[test]
fn fused_gradients_match_keras_chain_rule() {
    let data = data();
    for case in list(&data, "fused") {
        let (p, y, c) = (
            floats(&case["probs"]),
            floats(&case["y_true"]),
            classes(case),
        );
        let loss = match name(case) {
            "softmax_categorical_crossentropy" => {
                Loss::CategoricalCrossentropy { from_logits: false }
            }
            "sigmoid_binary_crossentropy" => Loss::BinaryCrossentropy { from_logits: false },
            other => panic!("unknown fused case {other}"),
        };
        let mut grad = vec![f32::NAN; p.len()];
        assert!(loss.fused_gradient(&p, &y, c, &mut grad));
        // The fused path starts from Keras's rounded probabilities, Keras from the logits:
        // (p - y) / n loses a few ulps of p where p is near y, hence an absolute floor of
        // 1e-7 (the gradients here are ~0.1).
        assert_close(name(case), &grad, &floats(&case["grad"]), RTOL, 1e-7);
    }
    // Sparse labels give the same gradient as their one-hot rows.
    let probs = [0.2, 0.5, 0.3, 0.1, 0.1, 0.8];
    let (mut a, mut b) = ([0.0; 6], [0.0; 6]);
    Loss::SparseCategoricalCrossentropy { from_logits: false }.fused_gradient(
        &probs,
        &[1.0, 2.0],
        3,
        &mut a,
    );
    Loss::CategoricalCrossentropy { from_logits: false }.fused_gradient(
        &probs,
        &[0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        3,
        &mut b,
    );
    assert_eq!(a, b);
    assert!(!Loss::MeanSquaredError.fused_gradient(&probs, &probs, 3, &mut a));
}

#[test]
fn metrics_match_keras_batch_values_and_running_means() {
    let data = data();
    for case in list(&data, "metrics") {
        let what = name(case);
        let metric = match what {
            "accuracy" => Metric::Accuracy,
            "binary_accuracy" => Metric::BinaryAccuracy { threshold: 0.5 },
            other => Metric::from_name(other).unwrap_or_else(|| panic!("no metric {other}")),
        };
        let c = classes(case);
        let (p, y) = (floats(&case["y_pred"]), floats(&case["y_true"]));
        assert_close(
            &format!("{what}: batch value"),
            &[metric.value(&p, &y, c)],
            &[num(&case["value"])],
            RTOL,
            0.0,
        );
        let mut running = MeanMetric::new(metric);
        running.update(&p, &y, c);
        running.update(&floats(&case["y_pred2"]), &floats(&case["y_true2"]), c);
        assert_close(
            &format!("{what}: running mean"),
            &[running.result()],
            &[num(&case["running"])],
            RTOL,
            0.0,
        );
        running.reset();
        assert_eq!(running.result(), 0.0);
    }
}

fn config_f32(config: &Value, key: &str) -> Option<f32> {
    config.get(key).and_then(Value::as_f64).map(|x| x as f32)
}

fn clip_of(config: &Value) -> GradientClip {
    if let Some(c) = config_f32(config, "clipnorm") {
        GradientClip::Norm(c)
    } else if let Some(c) = config_f32(config, "global_clipnorm") {
        GradientClip::GlobalNorm(c)
    } else if let Some(v) = config_f32(config, "clipvalue") {
        GradientClip::Value(v)
    } else {
        GradientClip::None
    }
}

/// The kiln optimizer for a golden case's Keras class and config (missing keys keep kiln's
/// defaults, so the cases with `{}` also check that the defaults are Keras's).
fn optimizer_of(case: &Value) -> Box<dyn Optimizer> {
    let cfg = &case["config"];
    let f = |key: &str, default: f32| config_f32(cfg, key).unwrap_or(default);
    let b = |key: &str| cfg.get(key).and_then(Value::as_bool).unwrap_or(false);
    let clip = clip_of(cfg);
    let wd = config_f32(cfg, "weight_decay");
    match case["optimizer"].as_str() {
        Some("SGD") => {
            let d = optimizers::Sgd::default();
            Box::new(optimizers::Sgd {
                learning_rate: f("learning_rate", d.learning_rate),
                momentum: f("momentum", d.momentum),
                nesterov: b("nesterov"),
                weight_decay: wd,
                clip,
                ..d
            })
        }
        Some("Adam") | Some("AdamW") => {
            let d = optimizers::Adam::default();
            let adam = optimizers::Adam {
                learning_rate: f("learning_rate", d.learning_rate),
                beta_1: f("beta_1", d.beta_1),
                beta_2: f("beta_2", d.beta_2),
                epsilon: f("epsilon", d.epsilon),
                amsgrad: b("amsgrad"),
                weight_decay: None,
                clip,
                ..d
            };
            if case["optimizer"] == "AdamW" {
                let d = optimizers::AdamW::default();
                Box::new(optimizers::AdamW {
                    weight_decay: wd.unwrap_or(d.weight_decay),
                    adam,
                })
            } else {
                Box::new(optimizers::Adam {
                    weight_decay: wd,
                    ..adam
                })
            }
        }
        Some("RMSprop") => {
            let d = optimizers::RmsProp::default();
            Box::new(optimizers::RmsProp {
                learning_rate: f("learning_rate", d.learning_rate),
                rho: f("rho", d.rho),
                momentum: f("momentum", d.momentum),
                epsilon: f("epsilon", d.epsilon),
                centered: b("centered"),
                weight_decay: wd,
                clip,
                ..d
            })
        }
        Some("Adagrad") => {
            let d = optimizers::Adagrad::default();
            Box::new(optimizers::Adagrad {
                learning_rate: f("learning_rate", d.learning_rate),
                initial_accumulator_value: f(
                    "initial_accumulator_value",
                    d.initial_accumulator_value,
                ),
                epsilon: f("epsilon", d.epsilon),
                weight_decay: wd,
                clip,
                ..d
            })
        }
        other => panic!("unknown optimizer {other:?}"),
    }
}

#[test]
fn optimizers_match_keras_over_three_steps() {
    let data = data();
    for case in list(&data, "optimizers") {
        let what = name(case);
        let mut opt = optimizer_of(case);
        let mut weights: Vec<Vec<f32>> = list(case, "w0").iter().map(floats).collect();
        for (step, (grads, after)) in list(case, "grads")
            .iter()
            .zip(list(case, "after"))
            .enumerate()
        {
            let mut grads: Vec<Vec<f32>> = grads.as_array().unwrap().iter().map(floats).collect();
            // The training loop's order: clip all gradients, start the step, update each
            // weight in its own slot.
            let mut views: Vec<&mut [f32]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
            opt.gradient_clip().apply(&mut views);
            opt.step_begin();
            for (slot, (w, g)) in weights.iter_mut().zip(&grads).enumerate() {
                opt.update(slot, w, g);
            }
            assert_eq!(opt.iterations(), step as u64 + 1);
            for (slot, (w, expected)) in weights.iter().zip(after.as_array().unwrap()).enumerate() {
                assert_close(
                    &format!("{what}: weight {slot} after step {}", step + 1),
                    w,
                    &floats(expected),
                    RTOL,
                    ATOL,
                );
            }
        }
        // A reset optimizer retraces the same path.
        opt.reset();
        assert_eq!(opt.iterations(), 0);
    }
}

#[test]
fn optimizer_reset_retraces_the_same_steps() {
    let run = |opt: &mut dyn Optimizer| {
        let mut w = vec![1.0f32, -2.0, 0.5];
        for _ in 0..3 {
            opt.step_begin();
            opt.update(0, &mut w, &[0.3, -0.1, 0.0]);
        }
        w
    };
    for name in optimizers::NAMES {
        let mut opt = optimizers::from_name(name).unwrap();
        let first = run(opt.as_mut());
        opt.reset();
        assert_eq!(run(opt.as_mut()), first, "{name}");
    }
}

#[test]
fn regularizers_match_keras() {
    let data = data();
    for case in list(&data, "regularizers") {
        let what = name(case);
        let cfg = &case["config"];
        let l1 = config_f32(cfg, "l1").unwrap_or(0.0);
        let l2 = config_f32(cfg, "l2").unwrap_or(0.0);
        let reg = match case["kind"].as_str() {
            Some("L1") => Regularizer::L1(l1),
            Some("L2") => Regularizer::L2(l2),
            Some("L1L2") => Regularizer::L1L2 { l1, l2 },
            other => panic!("unknown regularizer {other:?}"),
        };
        if what.ends_with("_default") {
            let keras_name = match case["kind"].as_str() {
                Some("L1") => "l1",
                Some("L2") => "l2",
                _ => "l1_l2",
            };
            assert_eq!(
                Regularizer::from_name(keras_name),
                Some(reg),
                "{what}: default"
            );
        }
        let w = floats(&case["w"]);
        assert_close(
            &format!("{what}: value"),
            &[reg.loss(&w)],
            &[num(&case["value"])],
            RTOL,
            0.0,
        );
        // add_gradient adds: start from 1 and take it off again.
        let mut grad = vec![1.0; w.len()];
        reg.add_gradient(&w, &mut grad);
        grad.iter_mut().for_each(|g| *g -= 1.0);
        let expected = floats(&case["grad"]);
        // Subtracting 1 costs up to an ulp of 1 (6e-8) of absolute precision.
        assert_close(&format!("{what}: gradient"), &grad, &expected, RTOL, 1.2e-7);
        let mut fresh = vec![0.0; w.len()];
        reg.add_gradient(&w, &mut fresh);
        assert_close(&format!("{what}: gradient"), &fresh, &expected, RTOL, 0.0);
    }
}

#[test]
fn constraints_match_keras() {
    let data = data();
    for case in list(&data, "constraints") {
        let what = name(case);
        let cfg = &case["config"];
        let f = |k: &str| config_f32(cfg, k).unwrap_or_else(|| panic!("{what}: no {k}"));
        let axis = cfg.get("axis").and_then(Value::as_u64).unwrap_or(0) as usize;
        let constraint = match case["kind"].as_str() {
            Some("MaxNorm") => Constraint::MaxNorm {
                max_value: f("max_value"),
                axis,
            },
            Some("MinMaxNorm") => Constraint::MinMaxNorm {
                min_value: f("min_value"),
                max_value: f("max_value"),
                rate: f("rate"),
                axis,
            },
            Some("NonNeg") => Constraint::NonNeg,
            Some("UnitNorm") => Constraint::UnitNorm { axis },
            other => panic!("unknown constraint {other:?}"),
        };
        if what.ends_with("_default") {
            let keras_name = match constraint {
                Constraint::MaxNorm { .. } => "max_norm",
                Constraint::MinMaxNorm { .. } => "min_max_norm",
                _ => "unit_norm",
            };
            assert_eq!(
                Constraint::from_name(keras_name),
                Some(constraint),
                "{what}"
            );
        }
        let shape = common::dims(&case["shape"]);
        let mut w = floats(&case["w"]);
        constraint.apply(&mut w, &shape);
        assert_close(what, &w, &floats(&case["out"]), RTOL, 0.0);
    }
}

/// Central finite differences of `loss.value` with respect to each prediction, in f64
/// arithmetic on f32 evaluations: `(L(p + h) - L(p - h)) / 2h`.
fn finite_difference(loss: Loss, p: &[f32], y: &[f32], classes: usize, h: f32) -> Vec<f32> {
    let mut probe = p.to_vec();
    (0..p.len())
        .map(|i| {
            probe[i] = p[i] + h;
            let up = loss.value(&probe, y, classes) as f64;
            probe[i] = p[i] - h;
            let down = loss.value(&probe, y, classes) as f64;
            probe[i] = p[i];
            ((up - down) / (2.0 * h as f64)) as f32
        })
        .collect()
}

fn check_against_finite_differences(loss: Loss, p: &[f32], y: &[f32], classes: usize) {
    let mut grad = vec![0.0; p.len()];
    loss.gradient(p, y, classes, &mut grad);
    // h = 1e-3 on f32 losses of size ~1: rounding error ~1e-7 / 1e-3 = 1e-4 absolute, the
    // truncation error h^2 f''' stays below that for inputs kept away from the clip bounds.
    let fd = finite_difference(loss, p, y, classes, 1e-3);
    for (i, (&a, &e)) in grad.iter().zip(&fd).enumerate() {
        assert!(
            (a - e).abs() <= 2e-3 + 1e-2 * e.abs(),
            "{loss:?}: d/dp[{i}] analytic {a}, finite difference {e} (p = {p:?}, y = {y:?})"
        );
    }
}

/// Rows of `classes` probabilities in [0.05, 0.95] (clear of the 1e-7 clip, where the loss
/// has a kink), batch of 1 to 4.
fn probs(classes: usize) -> impl Strategy<Value = Vec<f32>> {
    (1usize..=4).prop_flat_map(move |b| prop::collection::vec(0.05f32..0.95, b * classes))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mse_gradient_matches_finite_differences(
        (p, y) in (1usize..=4).prop_flat_map(|b| (
            prop::collection::vec(-3.0f32..3.0, b * 3),
            prop::collection::vec(-3.0f32..3.0, b * 3),
        ))
    ) {
        check_against_finite_differences(Loss::MeanSquaredError, &p, &y, 3);
    }

    #[test]
    fn mae_gradient_matches_finite_differences(
        (p, y) in (1usize..=4).prop_flat_map(|b| (
            prop::collection::vec(-3.0f32..3.0, b * 3),
            prop::collection::vec(-3.0f32..3.0, b * 3),
        ))
    ) {
        // |p - y| has a kink at 0: keep the probe interval clear of it.
        prop_assume!(p.iter().zip(&y).all(|(a, b)| (a - b).abs() > 1e-2));
        check_against_finite_differences(Loss::MeanAbsoluteError, &p, &y, 3);
    }

    #[test]
    fn bce_gradient_matches_finite_differences(
        p in probs(2),
        labels in prop::collection::vec(0.0f32..=1.0, 8),
    ) {
        let y = &labels[..p.len()];
        check_against_finite_differences(Loss::BinaryCrossentropy { from_logits: false }, &p, y, 2);
    }

    #[test]
    fn bce_logits_gradient_matches_finite_differences(
        z in (1usize..=4).prop_flat_map(|b| prop::collection::vec(-8.0f32..8.0, b * 2)),
        labels in prop::collection::vec(0.0f32..=1.0, 8),
    ) {
        let y = &labels[..z.len()];
        check_against_finite_differences(Loss::BinaryCrossentropy { from_logits: true }, &z, y, 2);
    }

    #[test]
    fn cce_gradient_matches_finite_differences(
        p in probs(4),
        labels in prop::collection::vec(0usize..4, 4),
        from_logits in any::<bool>(),
    ) {
        let rows = p.len() / 4;
        let mut y = vec![0.0; p.len()];
        for (r, &k) in labels[..rows].iter().enumerate() {
            y[r * 4 + k] = 1.0;
        }
        let z: Vec<f32> = if from_logits { p.iter().map(|v| 8.0 * v - 4.0).collect() } else { p };
        check_against_finite_differences(Loss::CategoricalCrossentropy { from_logits }, &z, &y, 4);
    }

    #[test]
    fn sparse_cce_gradient_matches_finite_differences(
        p in probs(3),
        labels in prop::collection::vec(0usize..3, 4),
        from_logits in any::<bool>(),
    ) {
        let y: Vec<f32> = labels[..p.len() / 3].iter().map(|&k| k as f32).collect();
        let z: Vec<f32> = if from_logits { p.iter().map(|v| 8.0 * v - 4.0).collect() } else { p };
        check_against_finite_differences(
            Loss::SparseCategoricalCrossentropy { from_logits }, &z, &y, 3);
    }
}
