#!/bin/sh
# Before/after sitting: runs `loadgen SCENARIOS` against several server binaries in turn,
# ROUNDS times, rotating the order each round so that a drift of the machine's speed falls
# on every binary alike, and appends each JSON line loadgen prints to OUT, tagged with the
# binary's label and the round. Compare two labels with contrib/bench/compare.py.
#
#   contrib/bench/sitting.sh OUT ROUNDS "SCENARIOS" LABEL=SERVER_BINARY...
#
# The load generator is target/release/examples/loadgen (override with LOADGEN=...); build
# it and each server binary with `cargo build --release --example loadgen --bin taler-lite`
# at the commits to compare, copying target/release/taler-lite aside each time.
set -eu
[ $# -ge 5 ] || { echo "usage: $0 OUT ROUNDS \"SCENARIOS\" LABEL=BIN LABEL=BIN..." >&2; exit 2; }
out=$1 rounds=$2 scenarios=$3
shift 3
loadgen=${LOADGEN:-target/release/examples/loadgen}
n=$#
: > "$out"
r=1
while [ "$r" -le "$rounds" ]; do
  i=0
  while [ "$i" -lt "$n" ]; do
    k=$(( (i + r) % n + 1 ))
    eval "spec=\${$k}"
    label=${spec%%=*} bin=${spec#*=}
    # shellcheck disable=SC2086 # SCENARIOS is a list of words
    "$loadgen" $scenarios --server-bin "$bin" 2>/dev/null | while IFS= read -r line; do
      printf '{"side":"%s","round":%d,"line":%s}\n' "$label" "$r" "$line" >> "$out"
    done
    i=$((i + 1))
  done
  r=$((r + 1))
done
