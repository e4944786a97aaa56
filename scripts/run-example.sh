#!/usr/bin/env bash
# README command 1: set everything up, then run the iris example pipeline and print its accuracy.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
start=$(date +%s)
bash "$here/scripts/setup.sh"
"$here/artifacts/kiln/kiln" run -C "$here/examples/iris" "$@"   # the executable setup.sh published (and linked as kiln)
acc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"])' "$here/examples/iris/metrics/eval.json" 2>/dev/null \
      || sed -n 's/.*"accuracy": *\([0-9.]*\).*/\1/p' "$here/examples/iris/metrics/eval.json")
echo "iris accuracy: $acc  (set-up + run took $(( $(date +%s) - start ))s; 'kiln runs -C examples/iris' lists the recorded runs)"
