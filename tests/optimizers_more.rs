//! Learning-rate schedules, Nadam, Adamax, Adadelta, Ftrl, Lion and Lamb, and what Keras's
//! base optimizer adds to every optimizer (clipping, a schedule as `learning_rate`, the EMA
//! of the weights), against Keras 3 on JAX (golden data: tools/oracle/optimizers_more.py):
//!
//! - every schedule kind at steps 0 to past its boundaries;
//! - 5 `train_on_batch` steps per optimizer and option from the start of
//!   tests/keras_training.rs: the loss, every weight and the step from the start weights
//!   after each call, and `learning_rate()` between steps (a schedule's value at the
//!   iteration count, which shows the step number Keras evaluates it at);
//! - `fit` for 3 one-batch epochs, on one thread and on two (Nadam splits its update across
//!   the threads; Lamb's trust ratio and the EMA keep it whole on one), EMA optimizers
//!   ending with their averages written over the weights.

mod common;
use common::{assert_close, floats, golden};
use kiln::optimizers::{Optimizer, Schedule};
use kiln::schedules::{
    CosineDecay, CosineDecayRestarts, ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay,
    PolynomialDecay,
};
use kiln::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Ema, FitOptions, Ftrl, GradientClip, Lamb, Lion, Loss,
    Model, Nadam, RmsProp, Sgd,
};
use serde_json::Value;

kiln::model! {
    SoftmaxNet = Sequential([
        Input(shape = (6,)),
        Dense(4, activation = "tanh"),
        Dense(3, activation = "softmax"),
    ]);
}

/// Weights after 5 steps: float32 sums in another order than XLA's, compounded over the
/// steps (as tests/keras_training.rs).
const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-7;
/// The step from the start weights, relative to its own (small) size.
const STEP_RTOL: f32 = 3e-4;
const STEP_ATOL: f32 = 2e-7;

fn file() -> &'static Value {
    static FILE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    FILE.get_or_init(|| golden("optimizers_more"))
}

fn find(list: &str, name: &str) -> &'static Value {
    file()[list]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| {
            panic!("golden case {list}/{name} missing (regenerate with tools/keras_oracle.py optimizers_more)")
        })
}

// ---- schedules ----

fn check_schedule(name: &str, schedule: impl Into<Schedule>, rtol: f32) {
    let schedule = schedule.into();
    let case = find("schedules", name);
    let steps: Vec<u64> = case["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s.as_u64().expect("step"))
        .collect();
    let kiln: Vec<f32> = steps.iter().map(|&s| schedule.at(s)).collect();
    assert_close(
        &format!("schedule {name} at steps {steps:?}"),
        &kiln,
        &floats(&case["values"]),
        rtol,
        1e-9,
    );
}

/// Rates are a handful of float32 operations (powers, cosines): a few ulps.
const SCHEDULE_RTOL: f32 = 2e-6;

#[test]
fn exponential_and_inverse_time_decay_match_keras() {
    check_schedule(
        "exponential",
        ExponentialDecay::new(0.1, 4, 0.5),
        SCHEDULE_RTOL,
    );
    let staircase = ExponentialDecay {
        staircase: true,
        ..ExponentialDecay::new(0.1, 4, 0.5)
    };
    check_schedule("exponential_staircase", staircase, SCHEDULE_RTOL);
    check_schedule(
        "inverse_time",
        InverseTimeDecay::new(0.1, 4, 0.5),
        SCHEDULE_RTOL,
    );
    let staircase = InverseTimeDecay {
        staircase: true,
        ..InverseTimeDecay::new(0.1, 4, 0.5)
    };
    check_schedule("inverse_time_staircase", staircase, SCHEDULE_RTOL);
}

#[test]
fn piecewise_constant_decay_matches_keras() {
    let s = PiecewiseConstantDecay::new(vec![3, 7], vec![0.1, 0.05, 0.01]).expect("lengths");
    check_schedule("piecewise", s, 0.0);
    let s = PiecewiseConstantDecay::new(vec![0], vec![1.0, 0.5]).expect("lengths");
    check_schedule("piecewise_one_boundary", s, 0.0);
}

#[test]
fn polynomial_decay_matches_keras() {
    check_schedule(
        "polynomial_default",
        PolynomialDecay::new(0.1, 6),
        SCHEDULE_RTOL,
    );
    let power_2 = PolynomialDecay {
        end_learning_rate: 0.01,
        power: 2.0,
        ..PolynomialDecay::new(0.1, 6)
    };
    check_schedule("polynomial_power_2", power_2, SCHEDULE_RTOL);
    let cycle = PolynomialDecay {
        end_learning_rate: 0.01,
        power: 0.5,
        cycle: true,
        ..PolynomialDecay::new(0.1, 4)
    };
    check_schedule("polynomial_cycle", cycle, SCHEDULE_RTOL);
}

#[test]
fn cosine_decay_matches_keras() {
    check_schedule("cosine_default", CosineDecay::new(0.1, 8), SCHEDULE_RTOL);
    let alpha = CosineDecay {
        alpha: 0.1,
        ..CosineDecay::new(0.1, 8)
    };
    check_schedule("cosine_alpha", alpha, SCHEDULE_RTOL);
    let warmup = CosineDecay {
        alpha: 0.2,
        warmup_target: Some(0.1),
        warmup_steps: 4,
        ..CosineDecay::new(0.0, 8)
    };
    check_schedule("cosine_warmup", warmup, SCHEDULE_RTOL);
    let warmup = CosineDecay {
        warmup_target: Some(0.05),
        warmup_steps: 3,
        ..CosineDecay::new(0.01, 5)
    };
    check_schedule("cosine_warmup_from_nonzero", warmup, SCHEDULE_RTOL);
}

#[test]
fn cosine_decay_restarts_matches_keras() {
    check_schedule(
        "cosine_restarts_default",
        CosineDecayRestarts::new(0.1, 3),
        SCHEDULE_RTOL,
    );
    let t_mul_1 = CosineDecayRestarts {
        t_mul: 1.0,
        m_mul: 0.5,
        alpha: 0.1,
        ..CosineDecayRestarts::new(0.1, 4)
    };
    check_schedule("cosine_restarts_t_mul_1", t_mul_1, SCHEDULE_RTOL);
    let m_mul = CosineDecayRestarts {
        t_mul: 1.5,
        m_mul: 0.8,
        alpha: 0.05,
        ..CosineDecayRestarts::new(0.1, 2)
    };
    check_schedule("cosine_restarts_m_mul", m_mul, SCHEDULE_RTOL);
}

// ---- train_on_batch trajectories ----

/// `SoftmaxNet` with the case's start weights (names checked against Keras's).
fn load(case: &Value) -> SoftmaxNet {
    let keras_names: Vec<&str> = case["weight_names"]
        .as_array()
        .expect("weight_names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(SoftmaxNet::WEIGHT_NAMES, keras_names.as_slice());
    let mut model = SoftmaxNet::new(0);
    for weight in SoftmaxNet::WEIGHT_NAMES {
        model
            .set_weight(weight, &floats(&case["weights"][*weight]["values"]))
            .expect("set_weight");
    }
    model
}

fn weights(model: &SoftmaxNet) -> Vec<Vec<f32>> {
    SoftmaxNet::WEIGHT_NAMES
        .iter()
        .map(|w| model.get_weight(w).expect("get_weight"))
        .collect()
}

/// Every weight, and its change from `start`, against Keras's `expected` (name -> values).
fn check_weights(what: &str, model: &SoftmaxNet, start: &[Vec<f32>], expected: &Value, rtol: f32) {
    for ((name, actual), start) in SoftmaxNet::WEIGHT_NAMES
        .iter()
        .zip(weights(model))
        .zip(start)
    {
        let keras = floats(&expected[*name]);
        assert_close(&format!("{what}: {name}"), &actual, &keras, rtol, ATOL);
        let delta = |w: &[f32]| -> Vec<f32> { w.iter().zip(start).map(|(a, b)| a - b).collect() };
        assert_close(
            &format!("{what}: {name} - start"),
            &delta(&actual),
            &delta(&keras),
            STEP_RTOL,
            STEP_ATOL,
        );
    }
}

/// 5 `train_on_batch` calls with `optimizer`, each compared with Keras's loss, weights and
/// learning rate after the call.
fn check_steps<O: Optimizer>(name: &str, optimizer: O) {
    let case = find("steps", name);
    let model = load(case);
    let start = weights(&model);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let mut trainer = model.compile(
        optimizer,
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    let losses = floats(&case["losses"]);
    let rates = floats(&case["learning_rates"]);
    let after = case["after"].as_array().expect("after");
    for (step, ((keras_loss, keras_after), keras_rate)) in
        losses.iter().zip(after).zip(&rates).enumerate()
    {
        let what = format!("{name}: step {}", step + 1);
        let logs = trainer.train_on_batch(&x, &y).expect("train_on_batch");
        assert_close(
            &format!("{what}: loss"),
            &[logs.loss],
            &[*keras_loss],
            RTOL,
            ATOL,
        );
        check_weights(&what, trainer.model(), &start, keras_after, RTOL);
        assert_close(
            &format!("{what}: learning_rate() for the next step"),
            &[trainer.optimizer().learning_rate()],
            &[*keras_rate],
            SCHEDULE_RTOL,
            1e-9,
        );
    }
    assert_eq!(trainer.optimizer().iterations(), losses.len() as u64);
}

#[test]
fn nadam_matches_keras() {
    check_steps("nadam_default", Nadam::default());
    check_steps(
        "nadam_lr_0.05",
        Nadam {
            learning_rate: 0.05,
            beta_2: 0.99,
            weight_decay: Some(0.1),
            ..Nadam::default()
        },
    );
}

#[test]
fn adamax_matches_keras() {
    check_steps("adamax_default", Adamax::default());
    check_steps(
        "adamax_lr_0.05",
        Adamax {
            learning_rate: 0.05,
            beta_1: 0.8,
            beta_2: 0.9,
            ..Adamax::default()
        },
    );
}

#[test]
fn adadelta_matches_keras() {
    check_steps("adadelta_default", Adadelta::default());
    check_steps(
        "adadelta_lr_1",
        Adadelta {
            learning_rate: 1.0,
            rho: 0.9,
            epsilon: 1e-6,
            ..Adadelta::default()
        },
    );
}

#[test]
fn ftrl_matches_keras() {
    check_steps("ftrl_default", Ftrl::default());
    check_steps(
        "ftrl_every_option",
        Ftrl {
            learning_rate: 0.2,
            learning_rate_power: -0.7,
            initial_accumulator_value: 0.05,
            l1_regularization_strength: 0.01,
            l2_regularization_strength: 0.02,
            l2_shrinkage_regularization_strength: 0.03,
            beta: 0.5,
            ..Ftrl::default()
        },
    );
    // A strong L1 term holds most weights at exactly 0.
    check_steps(
        "ftrl_l1_zeroes",
        Ftrl {
            learning_rate: 0.1,
            l1_regularization_strength: 0.5,
            ..Ftrl::default()
        },
    );
}

#[test]
fn lion_matches_keras() {
    check_steps("lion_default", Lion::default());
    check_steps(
        "lion_lr_0.01",
        Lion {
            learning_rate: 0.01,
            beta_1: 0.8,
            beta_2: 0.95,
            weight_decay: Some(0.5),
            ..Lion::default()
        },
    );
}

#[test]
fn lamb_matches_keras() {
    check_steps("lamb_default", Lamb::default());
    check_steps(
        "lamb_lr_0.05",
        Lamb {
            learning_rate: 0.05,
            weight_decay: Some(0.1),
            ..Lamb::default()
        },
    );
}

#[test]
fn clipping_matches_keras_on_old_and_new_optimizers() {
    check_steps(
        "sgd_clipnorm",
        Sgd {
            learning_rate: 0.5,
            clip: GradientClip::Norm(0.1),
            ..Sgd::default()
        },
    );
    check_steps(
        "adam_clipvalue",
        Adam {
            learning_rate: 0.01,
            clip: GradientClip::Value(0.02),
            ..Adam::default()
        },
    );
    check_steps(
        "rmsprop_global_clipnorm",
        RmsProp {
            learning_rate: 0.01,
            clip: GradientClip::GlobalNorm(0.1),
            ..RmsProp::default()
        },
    );
    check_steps(
        "nadam_clipnorm",
        Nadam {
            learning_rate: 0.01,
            clip: GradientClip::Norm(0.05),
            ..Nadam::default()
        },
    );
    check_steps(
        "lamb_global_clipnorm",
        Lamb {
            learning_rate: 0.01,
            clip: GradientClip::GlobalNorm(0.2),
            ..Lamb::default()
        },
    );
    check_steps(
        "lion_clipvalue",
        Lion {
            learning_rate: 0.01,
            clip: GradientClip::Value(0.01),
            ..Lion::default()
        },
    );
}

#[test]
fn schedules_drive_every_optimizer_as_in_keras() {
    check_steps(
        "sgd_exponential",
        Sgd {
            schedule: Some(ExponentialDecay::new(0.5, 2, 0.5).into()),
            ..Sgd::default()
        },
    );
    let piecewise =
        PiecewiseConstantDecay::new(vec![1, 3], vec![0.01, 0.005, 0.001]).expect("lengths");
    check_steps(
        "adam_piecewise",
        Adam {
            schedule: Some(piecewise.into()),
            ..Adam::default()
        },
    );
    check_steps(
        "adamw_inverse_time",
        AdamW {
            weight_decay: 0.2,
            adam: Adam {
                schedule: Some(InverseTimeDecay::new(0.01, 1, 0.5).into()),
                ..Adam::default()
            },
        },
    );
    check_steps(
        "rmsprop_polynomial",
        RmsProp {
            schedule: Some(
                PolynomialDecay {
                    power: 2.0,
                    ..PolynomialDecay::new(0.01, 3)
                }
                .into(),
            ),
            ..RmsProp::default()
        },
    );
    check_steps(
        "adagrad_cosine_restarts",
        Adagrad {
            schedule: Some(CosineDecayRestarts::new(0.5, 2).into()),
            ..Adagrad::default()
        },
    );
    check_steps(
        "lion_cosine_warmup",
        Lion {
            schedule: Some(
                CosineDecay {
                    warmup_target: Some(0.02),
                    warmup_steps: 2,
                    ..CosineDecay::new(0.0, 3)
                }
                .into(),
            ),
            ..Lion::default()
        },
    );
    check_steps(
        "ftrl_exponential",
        Ftrl {
            schedule: Some(ExponentialDecay::new(0.3, 1, 0.7).into()),
            beta: 0.2,
            ..Ftrl::default()
        },
    );
}

fn ema(momentum: f32, overwrite_frequency: Option<u64>) -> Option<Ema> {
    Some(Ema {
        momentum,
        overwrite_frequency,
        ..Ema::default()
    })
}

#[test]
fn ema_matches_keras() {
    // Without an overwrite frequency `train_on_batch` trains the weights as usual.
    check_steps(
        "adam_ema",
        Adam {
            learning_rate: 0.01,
            ema: ema(0.99, None),
            ..Adam::default()
        },
    );
    check_steps(
        "sgd_momentum_ema_every_2",
        Sgd {
            learning_rate: 0.3,
            momentum: 0.9,
            ema: ema(0.5, Some(2)),
            ..Sgd::default()
        },
    );
    check_steps(
        "lamb_ema_every_3",
        Lamb {
            learning_rate: 0.05,
            ema: ema(0.7, Some(3)),
            ..Lamb::default()
        },
    );
    check_steps(
        "adadelta_ema_every_1",
        Adadelta {
            learning_rate: 1.0,
            ema: ema(0.9, Some(1)),
            ..Adadelta::default()
        },
    );
}

// ---- fit ----

fn check_fit<O: Optimizer>(name: &str, optimizer: O, threads: usize) {
    let case = find("fit", name);
    let model = load(case);
    let start = weights(&model);
    let (x, y) = (floats(&case["x"]), floats(&case["y"]));
    let mut trainer = model.compile(
        optimizer,
        Loss::CategoricalCrossentropy { from_logits: false },
    );
    let options = FitOptions {
        epochs: case["epochs"].as_u64().expect("epochs") as usize,
        batch_size: 5,
        shuffle: false,
        verbose: false,
        threads,
        ..FitOptions::default()
    };
    let history = trainer.fit(&x, &y, &options).expect("fit");
    let what = format!("fit {name} on {threads} thread(s)");
    assert_close(
        &format!("{what}: loss per epoch"),
        history.get("loss").expect("loss"),
        &floats(&case["losses"]),
        RTOL,
        ATOL,
    );
    check_weights(&what, trainer.model(), &start, &case["after"], RTOL);
}

#[test]
fn fit_with_new_optimizers_matches_keras_on_one_and_two_threads() {
    for threads in [1, 2] {
        // Element-wise: each thread updates its piece of every weight.
        check_fit(
            "nadam",
            Nadam {
                learning_rate: 0.05,
                ..Nadam::default()
            },
            threads,
        );
        // Whole-weight trust ratios: thread 0 updates every weight whole.
        check_fit(
            "lamb",
            Lamb {
                learning_rate: 0.05,
                ..Lamb::default()
            },
            threads,
        );
    }
}

#[test]
fn fit_ends_with_the_moving_averages_as_in_keras() {
    for threads in [1, 2] {
        check_fit(
            "adam_ema",
            Adam {
                learning_rate: 0.05,
                ema: ema(0.8, None),
                ..Adam::default()
            },
            threads,
        );
        check_fit(
            "lion_ema_every_2",
            Lion {
                learning_rate: 0.01,
                ema: ema(0.5, Some(2)),
                ..Lion::default()
            },
            threads,
        );
    }
}

#[test]
fn a_scheduled_learning_rate_is_not_settable_as_in_keras() {
    let mut sgd = Sgd {
        schedule: Some(ExponentialDecay::new(0.5, 2, 0.5).into()),
        ..Sgd::default()
    };
    assert_eq!(sgd.learning_rate(), 0.5);
    assert!(matches!(
        sgd.set_learning_rate(0.1),
        Err(kiln::Error::InvalidOption {
            name: "learning_rate",
            ..
        })
    ));
    assert_eq!(sgd.learning_rate(), 0.5, "unchanged after the error");
    let mut plain = Sgd::default();
    plain
        .set_learning_rate(0.1)
        .expect("a constant rate is settable");
    assert_eq!(plain.learning_rate(), 0.1);
}

#[test]
fn new_optimizers_resolve_by_name_with_keras_defaults() {
    for name in ["nadam", "adamax", "adadelta", "ftrl", "lion", "lamb"] {
        let opt = kiln::optimizers::from_name(name).expect(name);
        assert_eq!(opt.name(), name);
        assert_eq!(opt.learning_rate(), 0.001, "{name}: Keras's default rate");
    }
}
