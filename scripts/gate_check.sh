#!/usr/bin/env bash
# Checks the CI latency gate itself: N gate runs on unchanged code must pass, and N runs with an injected ~20 %
# slowdown of one student (tests/bench/gate_slow: the gate's 5L with a sixth layer, same name) must fail.
#   scripts/gate_check.sh [N=5] [BASELINE=reports/baseline-cpu]
# To (re)make the committed baseline instead:  scripts/gate_check.sh --baseline [RUNS=5]
set -uo pipefail
cd "$(dirname "$0")/.."
GRID=(--students all --batch-sizes 1 --seq-lens 128)
if [ "${1:-}" = --baseline ]; then
  rm -rf reports/baseline-cpu && mkdir -p reports/baseline-cpu
  for i in $(seq "${2:-5}"); do
    kdbench profile --students-dir tests/bench/gate "${GRID[@]}" -o "reports/baseline-cpu/run-$i.json" >/dev/null || exit 2
  done
  echo "baseline: $(ls reports/baseline-cpu | wc -l) runs in reports/baseline-cpu"; exit 0
fi
n=${1:-5}; base=${2:-reports/baseline-cpu}; out=$(mktemp -d)
for kind in clean injected; do
  zoo=tests/bench/gate; [ $kind = injected ] && zoo=tests/bench/gate_slow
  fails=0
  for i in $(seq "$n"); do
    kdbench profile --students-dir $zoo "${GRID[@]}" -o "$out/$kind-$i.json" >/dev/null || exit 2
    kdbench compare "$base" "$out/$kind-$i.json" > "$out/$kind-$i.txt"; rc=$?
    [ $rc -eq 1 ] && fails=$((fails + 1))
    echo "$kind run $i: exit $rc  $(grep -E '^│ 5L ' "$out/$kind-$i.txt" | awk -F'│' '{gsub(/ +/," "); printf "[5L%s:%s %s %s]", $3, $6, $7, $9}')"
  done
  echo "$kind: $fails of $n runs failed the gate"
done
