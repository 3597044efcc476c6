#!/bin/sh
# Before/after of single commits: for each pair BEFORE_BIN:AFTER_BIN (a commit's parent and
# the commit), runs `loadgen SCENARIOS` against both back to back, the first of the two
# alternating by round and the pairs' order rotated, ROUNDS times; appends each JSON line to
# OUT tagged with its pair, side and round. `contrib/bench/compare.py --pairs OUT` reads it.
#
#   contrib/bench/pairs.sh OUT ROUNDS "SCENARIOS" BEFORE_BIN:AFTER_BIN...
set -eu
[ $# -ge 4 ] || { echo "usage: $0 OUT ROUNDS \"SCENARIOS\" BEFORE_BIN:AFTER_BIN..." >&2; exit 2; }
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
    eval "pair=\${$k}"
    before=${pair%%:*} after=${pair#*:}
    if [ $((r % 2)) = 1 ]; then order="before after"; else order="after before"; fi
    for side in $order; do
      if [ "$side" = before ]; then bin=$before; else bin=$after; fi
      # shellcheck disable=SC2086 # SCENARIOS is a list of words
      "$loadgen" $scenarios --server-bin "$bin" 2>/dev/null | while IFS= read -r line; do
        printf '{"pair":"%s","side":"%s","round":%d,"line":%s}\n' "$pair" "$side" "$r" "$line" >> "$out"
      done
    done
    i=$((i + 1))
  done
  r=$((r + 1))
done
