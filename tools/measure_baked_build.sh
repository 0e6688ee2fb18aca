#!/usr/bin/env bash
# Build time and binary size of a crate whose W3 model (784-256-128-10, 235,146 weights,
# 940 KB) has its weights baked in with `#[weights = "..."]`, beside the same crate loading
# the same file at run time. Writes two scratch crates under $WORK (default /tmp/kiln-baked),
# builds their dependencies once, then times the crate's own rebuild with farm-bench (median
# of 5, debug and release) and prints each binary's size. Needs python3 with numpy and
# safetensors (to write the weight file) and farm-bench.
#
#     bash tools/measure_baked_build.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${WORK:-/tmp/kiln-baked}
rm -rf "$work" && mkdir -p "$work"
python3 - "$work/w3.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(3)
shapes = {"dense/kernel": (784, 256), "dense/bias": (256,), "dense_1/kernel": (256, 128),
          "dense_1/bias": (128,), "dense_2/kernel": (128, 10), "dense_2/bias": (10,)}
save_file({k: rng.normal(0, 0.05, s).astype(np.float32) for k, s in shapes.items()}, sys.argv[1])
PY
model='Input(shape = (784,)), Dense(256, activation = "relu"), Dense(128, activation = "relu"), Dense(10, activation = "softmax")'
for kind in baked loaded; do
  mkdir -p "$work/$kind/src"
  cat > "$work/$kind/Cargo.toml" <<TOML
[package]
name = "w3-$kind"
version = "0.0.0"
edition = "2021"
[dependencies]
kiln = { path = "$root" }
[workspace]
TOML
done
cat > "$work/baked/src/main.rs" <<RS
use kiln::Model;
kiln::model! { #[weights = "../w3.safetensors"] W3 = Sequential([$model]); }
fn main() {
    let y = W3::pretrained().predict_slice(&[0.5; 784]).expect("predict");
    println!("{y:?}");
}
RS
cat > "$work/loaded/src/main.rs" <<RS
use kiln::Model;
kiln::model! { W3 = Sequential([$model]); }
fn main() {
    let mut m = W3::new(0);
    m.load_weights("../w3.safetensors").expect("load");
    let y = m.predict_slice(&[0.5; 784]).expect("predict");
    println!("{y:?}");
}
RS
export CARGO_TARGET_DIR="$work/target"
for kind in baked loaded; do
  (cd "$work/$kind" && cargo build -q && cargo build -q --release)
  (cd "$work/$kind" && diff <(cargo run -q --release) <(cd "$work/baked" && cargo run -q --release) >/dev/null) \
    || echo "warning: $kind and baked predictions differ"
done
grep -m1 'model name' /proc/cpuinfo
for kind in baked loaded; do
  for profile in dev release; do
    echo "== $kind, $profile: rebuild of the crate alone (touch main.rs)"
    (cd "$work/$kind" && farm-bench -n 5 --timeout 600 -- sh -c "touch src/main.rs && cargo build -q --profile $profile") | tail -n 4
  done
  ls -l "$work/target/debug/w3-$kind" "$work/target/release/w3-$kind" | awk '{print $5, $9}'
done
