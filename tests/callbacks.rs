//! Keras's callbacks against kiln's on recorded histories: `tools/oracle/callbacks.py` ran
//! real `model.fit` calls whose first callback overwrote the logged values with fixed
//! sequences, and recorded what Keras's own `EarlyStopping`, `ReduceLROnPlateau`,
//! `LearningRateScheduler`, `ModelCheckpoint`, `CSVLogger`, `TerminateOnNaN` and `History`
//! decided. Here kiln's `fit_with` runs with the same overwriting callback first and must
//! decide the same: epochs run, stop epoch, restored epoch, learning rates, files, CSV text.

mod common;

use common::golden;
use kiln::callbacks::{
    CSVLogger, EarlyStopping, LearningRateScheduler, LogValues, Mode, ModelCheckpoint,
    ReduceLROnPlateau, TerminateOnNaN, Training,
};
use kiln::{Callback, Error, FitOptions, Loss, Metric, Model, Sgd};
use serde_json::Value;

kiln::model! {
    Net = Sequential([Input(shape = (2,)), Dense(1)]);
}

/// Overwrites logged values as the oracle's `Overwrite` does.
struct Overwrite {
    epoch: Vec<(String, Vec<f32>)>,
    batch: Vec<(String, Vec<f32>)>,
    batches: usize,
}

fn sequences(v: &Value) -> Vec<(String, Vec<f32>)> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, s)| (k.clone(), common::floats(s)))
                .collect()
        })
        .unwrap_or_default()
}

impl Callback for Overwrite {
    fn on_train_batch_end(
        &mut self,
        _batch: usize,
        logs: &mut LogValues,
        _t: &mut Training<'_>,
    ) -> Result<(), Error> {
        for (k, seq) in &self.batch {
            logs.set(k.clone(), seq[self.batches]);
        }
        self.batches += 1;
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        epoch: usize,
        logs: &mut LogValues,
        _t: &mut Training<'_>,
    ) -> Result<(), Error> {
        for (k, seq) in &self.epoch {
            if !k.starts_with("val_") || logs.get("val_loss").is_some() {
                logs.set(k.clone(), seq[epoch]);
            }
        }
        Ok(())
    }
}

/// Records, last in the list, what the oracle's `Probe` records.
#[derive(Default)]
struct Probe {
    lr_begin: Vec<f32>,
    lr_end: Vec<f32>,
    weights: Vec<Vec<Vec<f32>>>,
    batches: usize,
}

impl Callback for Probe {
    fn on_epoch_begin(
        &mut self,
        _epoch: usize,
        _logs: &mut LogValues,
        t: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.lr_begin.push(t.learning_rate());
        Ok(())
    }
    fn on_train_batch_end(
        &mut self,
        _batch: usize,
        _logs: &mut LogValues,
        _t: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.batches += 1;
        Ok(())
    }
    fn on_epoch_end(
        &mut self,
        _epoch: usize,
        _logs: &mut LogValues,
        t: &mut Training<'_>,
    ) -> Result<(), Error> {
        self.lr_end.push(t.learning_rate());
        self.weights.push(t.get_weights());
        Ok(())
    }
}

/// What a run decided, to compare with the case.
struct Outcome {
    probe: Probe,
    final_weights: Vec<Vec<f32>>,
    history: kiln::History,
}

fn data() -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..16).map(|i| ((i * 7) % 5) as f32 * 0.3 - 0.5).collect();
    let y: Vec<f32> = (0..8).map(|i| ((i * 3) % 4) as f32 * 0.25).collect();
    (x, y)
}

/// `fit_with` as the oracle's `run`: SGD 0.1, MSE, batches of 4 in order, validation on
/// the training data, `callbacks` between the overwriting callback and the probe.
fn run(case: &Value, callbacks: &mut [&mut dyn Callback], options: FitOptions) -> Outcome {
    let (x, y) = data();
    let metrics: Vec<Metric> = case["metrics"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|n| n.as_str())
                .map(|n| match n {
                    // Keras's string "accuracy", resolved by the trainer as Keras does.
                    "accuracy" => Metric::Accuracy,
                    other => Metric::from_name(other).expect("a Keras metric"),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut trainer = Net::new(1)
        .compile(
            Sgd {
                learning_rate: 0.1,
                ..Sgd::default()
            },
            Loss::MeanSquaredError,
        )
        .with_metrics(&metrics);
    let mut overwrite = Overwrite {
        epoch: sequences(&case["epoch_values"]),
        batch: sequences(&case["batch_values"]),
        batches: 0,
    };
    let mut probe = Probe::default();
    let options = FitOptions {
        epochs: case["epochs"].as_u64().unwrap_or(8) as usize,
        batch_size: 4,
        shuffle: false,
        verbose: false,
        validation_data: Some((&x, &y)),
        ..options
    };
    let mut list: Vec<&mut dyn Callback> = vec![&mut overwrite];
    list.extend(callbacks.iter_mut().map(|c| &mut **c as &mut dyn Callback));
    list.push(&mut probe);
    let history = trainer.fit_with(&x, &y, &options, &mut list).expect("fit");
    drop(list);
    let model = trainer.into_model();
    let final_weights = (0..Net::WEIGHT_NAMES.len())
        .map(|i| model.get_weight(Net::WEIGHT_NAMES[i]).expect("weight"))
        .collect();
    Outcome {
        probe,
        final_weights,
        history,
    }
}

/// The checks every case shares: epochs and steps run, the epoch whose weights are the
/// final ones, the learning rate after each epoch, and the overwritten history.
fn check_common(case: &Value, outcome: &Outcome) {
    let name = case["name"].as_str().unwrap_or("?");
    assert_eq!(
        outcome.probe.weights.len() as u64,
        case["epochs_run"].as_u64().unwrap(),
        "{name}: epochs run"
    );
    assert_eq!(
        outcome.probe.batches as u64,
        case["batches_run"].as_u64().unwrap(),
        "{name}: steps run"
    );
    let from = outcome
        .probe
        .weights
        .iter()
        .position(|w| *w == outcome.final_weights);
    assert_eq!(
        from.map(|e| e as u64),
        case["final_weights_from_epoch"].as_u64(),
        "{name}: the final weights are those of epoch"
    );
    assert_eq!(
        outcome.probe.lr_end,
        common::floats(&case["lr_end"]),
        "{name}: learning rate at each epoch end"
    );
    assert_eq!(
        outcome.probe.lr_begin,
        common::floats(&case["lr_begin"]),
        "{name}: learning rate at each epoch start"
    );
    let keras_history = case["history"].as_object().unwrap();
    for (key, _) in sequences(&case["epoch_values"]) {
        assert_eq!(
            outcome.history.get(&key).map(<[f32]>::to_vec),
            Some(common::floats(&keras_history[&key])),
            "{name}: history of {key}"
        );
    }
    // `learning_rate`, which ReduceLROnPlateau and LearningRateScheduler add to the logs.
    assert_eq!(
        outcome.history.get("learning_rate").map(<[f32]>::to_vec),
        keras_history.get("learning_rate").map(common::floats),
        "{name}: history of learning_rate"
    );
}

fn mode(args: &Value) -> Mode {
    args["mode"]
        .as_str()
        .map(|m| Mode::from_name(m).expect("a Keras mode"))
        .unwrap_or_default()
}

#[test]
fn early_stopping_decides_as_keras() {
    let cases = golden("callbacks");
    for case in cases["early_stopping"].as_array().unwrap() {
        let args = &case["args"];
        let mut es = EarlyStopping {
            monitor: case["monitor"].as_str().unwrap().into(),
            min_delta: args["min_delta"].as_f64().unwrap_or(0.0),
            patience: args["patience"].as_u64().unwrap_or(0) as usize,
            mode: mode(args),
            baseline: args["baseline"].as_f64(),
            restore_best_weights: args["restore_best_weights"].as_bool().unwrap_or(false),
            start_from_epoch: args["start_from_epoch"].as_u64().unwrap_or(0) as usize,
            ..EarlyStopping::default()
        };
        let outcome = run(case, &mut [&mut es], FitOptions::default());
        check_common(case, &outcome);
        let name = case["name"].as_str().unwrap();
        assert_eq!(
            es.stopped_epoch as u64,
            case["stopped_epoch"].as_u64().unwrap(),
            "{name}: stopped_epoch"
        );
        assert_eq!(
            es.best_epoch as u64,
            case["best_epoch"].as_u64().unwrap(),
            "{name}: best_epoch"
        );
    }
}

#[test]
fn reduce_lr_on_plateau_decides_as_keras() {
    let cases = golden("callbacks");
    for case in cases["reduce_lr"].as_array().unwrap() {
        let args = &case["args"];
        let defaults = ReduceLROnPlateau::default();
        let mut plateau = ReduceLROnPlateau {
            factor: args["factor"].as_f64().unwrap_or(defaults.factor),
            patience: args["patience"]
                .as_u64()
                .map_or(defaults.patience, |p| p as usize),
            min_delta: args["min_delta"].as_f64().unwrap_or(defaults.min_delta),
            cooldown: args["cooldown"].as_u64().unwrap_or(0) as usize,
            min_lr: args["min_lr"].as_f64().unwrap_or(0.0),
            ..defaults
        };
        let outcome = run(case, &mut [&mut plateau], FitOptions::default());
        check_common(case, &outcome);
    }
}

#[test]
fn learning_rate_scheduler_sets_the_rates_keras_sets() {
    let cases = golden("callbacks");
    let cases = cases["scheduler"].as_array().unwrap();
    let mut halve = LearningRateScheduler::new(|epoch, lr| if epoch < 2 { lr } else { lr * 0.5 });
    check_common(
        &cases[0],
        &run(&cases[0], &mut [&mut halve], FitOptions::default()),
    );
    let mut decay = LearningRateScheduler::new(|epoch, _| 0.1 * (-0.3 * epoch as f64).exp());
    check_common(
        &cases[1],
        &run(&cases[1], &mut [&mut decay], FitOptions::default()),
    );
}

#[test]
fn a_scheduled_learning_rate_cannot_be_set() {
    let (x, y) = data();
    let mut trainer = Net::new(1).compile(
        Sgd {
            schedule: Some(kiln::schedules::ExponentialDecay::new(0.1, 10, 0.5).into()),
            ..Sgd::default()
        },
        Loss::MeanSquaredError,
    );
    let mut scheduler = LearningRateScheduler::new(|_, lr| lr * 0.5);
    let options = FitOptions {
        verbose: false,
        ..FitOptions::default()
    };
    let error = trainer
        .fit_with(&x, &y, &options, &mut [&mut scheduler])
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidOption {
                name: "learning_rate",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn model_checkpoint_saves_the_epochs_keras_saves() {
    let cases = golden("callbacks");
    for case in cases["checkpoint"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let dir =
            std::env::temp_dir().join(format!("kiln-checkpoint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let args = &case["args"];
        let pattern = case["filepath"].as_str().unwrap();
        let mut checkpoint = ModelCheckpoint {
            save_best_only: args["save_best_only"].as_bool().unwrap_or(false),
            mode: mode(args),
            initial_value_threshold: args["initial_value_threshold"].as_f64(),
            ..ModelCheckpoint::new(dir.join(pattern).display().to_string())
        };
        let outcome = run(case, &mut [&mut checkpoint], FitOptions::default());
        check_common(case, &outcome);
        let mut saved: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        saved.sort();
        let keras: Vec<String> = case["saved"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(saved, keras, "{name}: files saved");
        // Each file is a kiln weight file of the weights at its epoch's end.
        if let Some(first) = saved.first() {
            let mut model = Net::new(9);
            model.load_weights(dir.join(first)).expect("a weight file");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn csv_logger_writes_the_file_keras_writes() {
    let cases = golden("callbacks");
    let cases = cases["csv"].as_array().unwrap();
    let dir = std::env::temp_dir().join(format!("kiln-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.csv").display().to_string();
    let mut logger = CSVLogger::new(path.clone());
    check_common(
        &cases[0],
        &run(&cases[0], &mut [&mut logger], FitOptions::default()),
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        cases[0]["text"].as_str().unwrap()
    );
    let mut appending = CSVLogger {
        separator: ';',
        append: true,
        ..CSVLogger::new(path.clone())
    };
    check_common(
        &cases[1],
        &run(&cases[1], &mut [&mut appending], FitOptions::default()),
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        cases[1]["text"].as_str().unwrap()
    );

    // Without validation data, the header gets `val_` twins written `NA`.
    let path = dir.join("novalidation.csv").display().to_string();
    let mut logger = CSVLogger::new(path.clone());
    let mut overwrite = Overwrite {
        epoch: sequences(&cases[2]["epoch_values"]),
        batch: Vec::new(),
        batches: 0,
    };
    let x = [1.0f32; 8];
    let mut trainer = Net::new(1).compile(Sgd::default(), Loss::MeanSquaredError);
    let options = FitOptions {
        epochs: 2,
        verbose: false,
        ..FitOptions::default()
    };
    trainer
        .fit_with(&x, &x[..4], &options, &mut [&mut overwrite, &mut logger])
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        cases[2]["text"].as_str().unwrap()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn terminate_on_nan_stops_where_keras_stops() {
    let cases = golden("callbacks");
    for case in cases["nan"].as_array().unwrap() {
        let mut terminate = TerminateOnNaN::default();
        check_common(
            case,
            &run(case, &mut [&mut terminate], FitOptions::default()),
        );
    }
}

#[test]
fn history_follows_validation_freq_and_initial_epoch() {
    let cases = golden("callbacks");
    let cases = cases["history"].as_array().unwrap();
    let outcome = run(
        &cases[0],
        &mut [],
        FitOptions {
            validation_freq: 2,
            ..FitOptions::default()
        },
    );
    check_common(&cases[0], &outcome);
    assert_eq!(outcome.history.epochs_of("val_loss"), Some(&[1, 3][..]));
    let mut es = EarlyStopping {
        monitor: "loss".into(),
        patience: 1,
        ..EarlyStopping::default()
    };
    let outcome = run(
        &cases[1],
        &mut [&mut es],
        FitOptions {
            initial_epoch: 2,
            ..FitOptions::default()
        },
    );
    check_common(&cases[1], &outcome);
    assert_eq!(outcome.history.epoch, vec![2, 3]);
}

#[test]
fn auto_mode_refuses_a_value_it_cannot_orient() {
    let (x, y) = data();
    let mut trainer = Net::new(1).compile(Sgd::default(), Loss::MeanSquaredError);
    let mut es = EarlyStopping {
        monitor: "val_accuracy".into(),
        ..EarlyStopping::default()
    };
    let options = FitOptions {
        verbose: false,
        ..FitOptions::default()
    };
    let error = trainer
        .fit_with(&x, &y, &options, &mut [&mut es])
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Callback {
                callback: "EarlyStopping",
                ..
            }
        ),
        "{error}"
    );
}

/// Callbacks see the same hooks in the same order whether `fit` runs on one thread or
/// several, and can stop the threaded trainer and restore weights there too.
#[test]
fn callbacks_work_with_the_threaded_trainer() {
    let cases = golden("callbacks");
    let case = &cases["early_stopping"][2]; // patience_2_restore
    assert_eq!(case["name"], "patience_2_restore");
    let mut es = EarlyStopping {
        patience: 2,
        restore_best_weights: true,
        ..EarlyStopping::default()
    };
    let outcome = run(
        case,
        &mut [&mut es],
        FitOptions {
            threads: 2,
            ..FitOptions::default()
        },
    );
    check_common(case, &outcome);
}
