#!/bin/sh
# Before/after sitting: runs `loadgen SCENARIOS` ROUNDS times against server binaries and
# appends each JSON line loadgen prints to OUT, tagged with what ran and the round. The
# arguments' order rotates each round, so that a drift of the machine's speed falls on every
# binary alike. Each argument is one of:
#   LABEL=BIN              one run of BIN per round, tagged "side": LABEL
#                          (compare two labels: contrib/bench/compare.py OUT BEFORE AFTER)
#   BEFORE_BIN:AFTER_BIN   a commit's parent and the commit, run back to back, which first
#                          alternating by round, tagged "pair" and "side" before/after
#                          (contrib/bench/compare.py --pairs OUT)
#
#   contrib/bench/sitting.sh OUT ROUNDS "SCENARIOS" ARGUMENT...
#
# The load generator is target/release/examples/loadgen (override with LOADGEN=...); build
# it and each server binary with `cargo build --release --example loadgen --bin taler-lite`
# at the commits to compare, copying target/release/taler-lite aside each time.
set -eu
[ $# -ge 4 ] || { echo "usage: $0 OUT ROUNDS \"SCENARIOS\" LABEL=BIN|BEFORE_BIN:AFTER_BIN..." >&2; exit 2; }
out=$1 rounds=$2 scenarios=$3
shift 3
loadgen=${LOADGEN:-target/release/examples/loadgen}
n=$#

# run BIN TAG: one loadgen run, each line tagged with the JSON fields TAG.
run() {
  # shellcheck disable=SC2086 # SCENARIOS is a list of words
  "$loadgen" $scenarios --server-bin "$1" 2>/dev/null | while IFS= read -r line; do
    printf '{%s,"round":%d,"line":%s}\n' "$2" "$r" "$line" >> "$out"
  done
}

: > "$out"
r=1
while [ "$r" -le "$rounds" ]; do
  i=0
  while [ "$i" -lt "$n" ]; do
    k=$(( (i + r) % n + 1 ))
    eval "arg=\${$k}"
    case $arg in
      *=*) run "${arg#*=}" "\"side\":\"${arg%%=*}\"" ;;
      *:*)
        before=${arg%%:*} after=${arg#*:}
        if [ $((r % 2)) = 1 ]; then
          run "$before" "\"pair\":\"$arg\",\"side\":\"before\""
          run "$after" "\"pair\":\"$arg\",\"side\":\"after\""
        else
          run "$after" "\"pair\":\"$arg\",\"side\":\"after\""
          run "$before" "\"pair\":\"$arg\",\"side\":\"before\""
        fi ;;
      *) echo "$0: $arg is neither LABEL=BIN nor BEFORE_BIN:AFTER_BIN" >&2; exit 2 ;;
    esac
    i=$((i + 1))
  done
  r=$((r + 1))
done
