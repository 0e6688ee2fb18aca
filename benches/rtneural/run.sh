#!/bin/sh
# Issue 10's bar on this machine: builds benches/rtneural/rnn_step.cpp against RTNeural's
# compile-time API (Eigen backend) twice, `-O3` (SSE2, the analogue of kiln's default
# build) and `-O3 -march=native`, and runs each: largest deviation from kiln's outputs,
# then ns per LSTM/GRU step (median of 3 rounds of 1e6 steps). No network: RTNeural must
# already be checked out; its bundled modules/Eigen is used.
#
#   RTNEURAL_DIR=/tmp/rtneural benches/rtneural/run.sh
#
# RTNEURAL_DIR  an RTNeural source tree (RTNeural/, modules/Eigen/, modules/json/);
#               measured: commit 1fb1f075a5d66e85bfc8f488c3f3626840cb3a1d
# OUT_DIR       where the dump and binaries go (default /tmp/rtneural_rnn_step)
# RUNS          how many times to run each binary (default 1)
# CXX           the compiler (default g++)
#
# KILN_NATIVE_TARGET_DIR  if set, kiln's row is also run from a `-C target-cpu=native`
#               build in that target directory
#
# First the Rust bench writes the weights, input and kiln's outputs and times kiln's
# `Streaming::step` the harness's way (`RNN_STEP_DUMP=$OUT_DIR cargo bench --bench rnn_step
# -- '^dump$'`; the filter matches no criterion benchmark, so only that runs). Then the two
# RTNeural builds run on that dump.
set -eu
: "${RTNEURAL_DIR:?set RTNEURAL_DIR to an RTNeural checkout}"
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT_DIR:-/tmp/rtneural_rnn_step}
runs=${RUNS:-1}
cxx=${CXX:-g++}
mkdir -p "$out"

kiln() {
    echo "== kiln, $1 build, load: $(cut -d ' ' -f 1-3 /proc/loadavg)"
    (cd "$root" && RNN_STEP_DUMP="$out" cargo bench -q --bench rnn_step -- '^dump$' 2>&1 |
        grep 'kiln Streaming::step, ns')
}

# RTNeural's own CMake: Eigen is the default backend, alignment 16 without its AVX option
# and 32 with it; a Release build adds -O3 -DNDEBUG.
flags="-std=c++17 -O3 -DNDEBUG -DRTNEURAL_USE_EIGEN=1 -I$RTNEURAL_DIR -I$RTNEURAL_DIR/modules/Eigen"
$cxx $flags -DRTNEURAL_DEFAULT_ALIGNMENT=16 "$here/rnn_step.cpp" -o "$out/rnn_step_default"
$cxx $flags -DRTNEURAL_DEFAULT_ALIGNMENT=32 -march=native "$here/rnn_step.cpp" -o "$out/rnn_step_native"

echo "$($cxx --version | head -n 1); RTNeural $(git -C "$RTNEURAL_DIR" rev-parse HEAD 2>/dev/null || echo '(not a git work tree)')"
i=0
while [ "$i" -lt "$runs" ]; do
    echo "==== run $((i + 1)) of $runs"
    # Native first, so the dump RTNeural is checked against is the default build's.
    if [ -n "${KILN_NATIVE_TARGET_DIR:-}" ]; then
        RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR="$KILN_NATIVE_TARGET_DIR" kiln native
    fi
    kiln default
    for build in default native; do
        echo "== RTNeural, $build build, load: $(cut -d ' ' -f 1-3 /proc/loadavg)"
        "$out/rnn_step_$build" "$out"
    done
    i=$((i + 1))
done
echo "load after: $(cut -d ' ' -f 1-3 /proc/loadavg)"
