#!/usr/bin/env bash
# A/B of the no-op `kiln status` (figure 2) between two builds of the CLI on the same project, in the same rounds:
# was a change (a refactor, a new feature on the start path) a slow-down? Each round runs both builds one after the
# other, alternating which goes first (A B, B A, …) so a rising or falling load falls on both alike; the ratio B ÷ A is
# taken within each round and the median, min and max over the rounds are printed.
#
#   bench/ab-status.sh OLD_COMMIT [ROUNDS]     publishes OLD_COMMIT's CLI (in a scratch worktree) as A, and the
#                                               bench's CLI ($KILN_BENCH_DIR/cli, made by pipeline-bench.sh setup) as B
#   KILN_AB_A=a/kiln.dll KILN_AB_B=b/kiln.dll bench/ab-status.sh - [ROUNDS]   two published CLIs of your own
#
# The project is the bench's 1000-stage DAG ($KILN_BENCH_DIR/dag1000, made by `bench/pipeline-bench.sh noop`). A gets a
# copy of it made with hard links (the dataset and the store are shared, read-only for `status`) and private copies of
# what `status` writes (.kiln/spec-cache, statcache, ledger.db), so neither build reads the other's caches: older
# builds keep other formats. One warm-up run each fills those caches before the rounds.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${KILN_BENCH_DIR:-/tmp/kiln-bench-data}
OLD=${1:?usage: bench/ab-status.sh OLD_COMMIT|- [ROUNDS]}
ROUNDS=${2:-8}
PROJECT="$ROOT/dag1000"
COPY="$ROOT/dag1000-ab"
log() { printf '[ab %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ -f $PROJECT/kiln.yaml ]] || die "no 1000-stage project at $PROJECT: run 'bench/pipeline-bench.sh setup' and 'bench/pipeline-bench.sh noop' first"

if [[ $OLD == - ]]; then
  A=${KILN_AB_A:?KILN_AB_A: the kiln.dll of build A}; B=${KILN_AB_B:?KILN_AB_B: the kiln.dll of build B}
else
  commit=$(git -C "$REPO" rev-parse --short "$OLD^{commit}") || die "'$OLD' is not a commit of $REPO"
  A="$ROOT/ab-cli-$commit/kiln.dll"
  B=${KILN_AB_B:-$ROOT/cli/kiln.dll}
  if [[ ! -f $A ]]; then
    wt="$ROOT/ab-src-$commit"
    log "publishing the CLI of $commit as A (a scratch worktree; a few minutes)"
    [[ -d $wt ]] || git -C "$REPO" worktree add -q --detach "$wt" "$commit"
    dotnet publish "$wt/src/Kiln.Cli/Kiln.Cli.csproj" -c Release -o "$(dirname "$A")" --artifacts-path "$wt.art" -v q >"$ROOT/ab-publish.log" 2>&1 \
      || die "publishing $commit failed (log: $ROOT/ab-publish.log)"
    git -C "$REPO" worktree remove --force "$wt"; rm -rf "$wt.art"
  fi
fi
[[ -f $A && -f $B ]] || die "missing CLI: A=$A B=$B"

rm -rf "$COPY"
cp -al "$PROJECT" "$COPY"
for f in spec-cache statcache ledger.db; do # private copies of what status writes (an atomic rename would not touch
  [[ -e $COPY/.kiln/$f ]] || continue          # the other's file, but SQLite writes its file in place)
  cp -a "$COPY/.kiln/$f" "$COPY/.kiln/$f.ab" && rm -rf "$COPY/.kiln/$f" && mv "$COPY/.kiln/$f.ab" "$COPY/.kiln/$f"
done
rm -f "$COPY/.kiln/lock"
trap 'rm -rf "$COPY"' EXIT

ms() { # DIR DLL: wall of one `kiln status` in ms
  local t0; t0=$(date +%s%N)
  (cd "$1" && dotnet "$2" status >/dev/null 2>&1) || die "kiln status failed in $1 with $2"
  echo $((($(date +%s%N) - t0) / 1000000))
}
log "warm-up: one status each"
ms "$COPY" "$A" >/dev/null; ms "$PROJECT" "$B" >/dev/null
log "$ROUNDS rounds; A = $A, B = $B; load $(cut -d' ' -f1-3 /proc/loadavg)"
ratios=()
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then a=$(ms "$COPY" "$A"); b=$(ms "$PROJECT" "$B"); else b=$(ms "$PROJECT" "$B"); a=$(ms "$COPY" "$A"); fi
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
  ratios+=("$ratio")
  log "round $r: A ${a} ms, B ${b} ms, B ÷ A $ratio"
done
printf '%s\n' "${ratios[@]}" | sort -g | awk -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '{ v[NR] = $1 } END {
  m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "kiln status, B ÷ A: median %.3f (%.3f–%.3f over %d rounds); load at the end %s\n", m, v[1], v[NR], NR, load }'
