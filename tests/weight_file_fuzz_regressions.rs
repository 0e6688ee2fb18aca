//! Inputs kept from fuzzing `load_weights_from_bytes` (fuzz/, target `weight_file`): every
//! file in `tests/data/fuzz/weight_file/` loads without a panic, leaves the model exactly as
//! it was when the load fails, and leaves only finite weights when it succeeds.
//!
//! A file named `KIND-....safetensors` or `KIND.safetensors`, where KIND is `ok` or an
//! `Error` variant (`WeightFile`, `MissingWeight`...), must also give that outcome. Add a
//! crash or hang the fuzzer finds here under any other name (`crash-...`).

use kiln::{Error, Model};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

// The fuzz target's model (fuzz/src/lib.rs): four weights of three shapes.
kiln::model! {
    Net = Sequential([
        Input(shape = (4,)),
        Dense(5, activation = "tanh"),
        PReLU(),
        Dense(2, use_bias = False),
    ]);
}

const OUTCOMES: [&str; 7] = [
    "ok",
    "WeightFile",
    "MissingWeight",
    "UnexpectedWeight",
    "WeightShape",
    "WeightDtype",
    "NonFiniteWeight",
];

fn inputs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/weight_file");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
}

/// `ok` or the error's variant name.
fn outcome(result: &Result<(), Error>) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}")
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// What is wrong with loading `bytes` into a model made from `seed`, if anything.
fn problem(bytes: &[u8], seed: u64, expected: Option<&str>) -> Option<String> {
    let mut model = Net::new(seed);
    let before = model.weights_to_bytes();
    let result = match catch_unwind(AssertUnwindSafe(|| model.load_weights_from_bytes(bytes))) {
        Ok(result) => result,
        Err(_) => return Some("load_weights_from_bytes panicked".to_string()),
    };
    match &result {
        Err(e) if model.weights_to_bytes() != before => {
            return Some(format!("the model changed after a failed load: {e}"));
        }
        Err(_) => {}
        Ok(()) => {
            for name in Net::WEIGHT_NAMES {
                let values = model.get_weight(name).expect("a declared weight");
                if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                    return Some(format!("loaded, but {name} holds {v}"));
                }
            }
        }
    }
    let got = outcome(&result);
    match expected {
        Some(kind) if kind != got => Some(format!("expected {kind}, got {result:?}")),
        _ => None,
    }
}

#[test]
fn fuzzed_weight_files_never_panic_and_leave_the_model_unchanged_on_error() {
    let paths = inputs();
    assert!(
        paths.len() >= 5,
        "expected the kept fuzz inputs, found {paths:?}"
    );
    let mut failures = Vec::new();
    let mut outcomes_seen = Vec::new();
    for path in &paths {
        let bytes = std::fs::read(path).expect("a readable input");
        let name = path.file_name().expect("a file name").to_string_lossy();
        let prefix = name.split(['-', '.']).next().unwrap_or_default();
        let expected = OUTCOMES.iter().copied().find(|kind| *kind == prefix);
        outcomes_seen.extend(expected);
        // Two starting models, so that "unchanged" is not satisfied by chance.
        for seed in [0, 1] {
            if let Some(problem) = problem(&bytes, seed, expected) {
                failures.push(format!("{name} (seed {seed}): {problem}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for kind in OUTCOMES {
        assert!(
            outcomes_seen.contains(&kind),
            "no kept input named for outcome {kind}"
        );
    }
}
