#!/usr/bin/env bash
# Steadiness of the Dense benchmarks across processes: runs the `dense` bench binary RUNS
# times (default 10), each a fresh process with its own heap layout, and tabulates for W1-W3
# kiln's and the hand-written baseline's criterion estimates (median, ns) and their ratio,
# with the load average and the address of W3's first kernel modulo a page and a cache line.
# STAT=median (default) takes criterion's median estimate; STAT=min the fastest of its
# samples (time per iteration), which preemption by other processes cannot inflate — the
# figure to compare on a loaded machine.
#
#   tools/bench_steady.sh [RUNS] [extra criterion args...]
#   RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=/tmp/native tools/bench_steady.sh
#
# Builds the bench binary with the caller's RUSTFLAGS/CARGO_TARGET_DIR, keeps criterion's
# files in a temporary CRITERION_HOME (nothing is written under target/criterion), and by
# default times each function for 0.3 s after 0.2 s of warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
statistic="${STAT:-median}"
shift || true
extra=("$@")
if [ ${#extra[@]} -eq 0 ]; then
    extra=(--warm-up-time 0.2 --measurement-time 0.3)
fi
bin=$(cargo bench --bench dense --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "dense" and m.get("executable"):
        print(m["executable"])')
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
echo "binary: $bin"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), RUSTFLAGS='${RUSTFLAGS:-}', KILN_ISA='${KILN_ISA:-}', statistic: $statistic (ns)"
printf "%-4s %-6s %-13s" run load "W3 k 4096|64"
for w in W1 W2 W3; do printf ' | %9s %9s %6s' "$w kiln" "baseline" ratio; done
echo
for run in $(seq 1 "$runs"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    log="$home/run$run.log"
    CRITERION_HOME="$home/c$run" "$bin" --bench '^W[123] ' --noplot "${extra[@]}" >"$log" 2>&1
    addr=$(sed -n 's/.*kiln kernels 0x[0-9a-f]* (mod 4096 = \([0-9]*\), mod 64 = \([0-9]*\)).*/\1|\2/p' "$log")
    printf '%-4s %-6s %-13s' "$run" "$load" "$addr"
    python3 - "$home/c$run" "$statistic" <<'EOF'
import json, pathlib, sys
root, statistic = pathlib.Path(sys.argv[1]), sys.argv[2]
def time(group, function):
    new = root / group / function / "new"
    if statistic == "median":
        return json.loads((new / "estimates.json").read_text())["median"]["point_estimate"]
    sample = json.loads((new / "sample.json").read_text())
    return min(t / n for t, n in zip(sample["times"], sample["iters"]))
for group in ["W1 4-8-8-1", "W2 64-128-64-10", "W3 784-256-128-10"]:
    k, b = time(group, "kiln"), time(group, "nalgebra")
    print(f" | {k:9.1f} {b:9.1f} {k / b:6.3f}", end="")
print()
EOF
done
