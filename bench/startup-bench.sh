#!/usr/bin/env bash
# Start-up of the installed kiln executable, next to `docker version` (a Go binary that also starts and talks to the
# engine) measured in the same rounds:
#   kiln --version                         the process start alone (runtime start, command line)
#   kiln run -q of examples/iris, cached   a no-op run: start, spec, engine ping, environment check, cache look-ups, ledger
#   docker version                         the baseline: a native program that starts and asks the engine for its version
# Each round runs the three one after the other (interleaved, so load from other work falls on all of them alike);
# ratios are taken within a round, and the median, min and max over the rounds are kept. Targets (issue 20):
# `kiln --version` ≤ 0.15 s and the no-op iris run ≤ 0.6 s.
#
# The executable measured is the one scripts/setup.sh installs (artifacts/kiln/kiln, published by
# scripts/publish-cli.sh, which does nothing when the sources did not change), or KILN_BENCH_KILN.
# The iris project is a copy in $KILN_BENCH_DIR/startup-iris, kept between runs; its first run builds (finds) the
# environment and runs the four stages once, then two warm-up runs, then the measured rounds.
#
# Environment: KILN_BENCH_DIR (default /tmp/kiln-bench-data), KILN_BENCH_STARTUP_ROUNDS (default 11),
# KILN_BENCH_KILN (an executable to measure instead of artifacts/kiln/kiln).
# Writes $KILN_BENCH_DIR/results/startup.env (read by bench/run-all.sh) and prints a summary.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${KILN_BENCH_DIR:-/tmp/kiln-bench-data}
ROUNDS=${KILN_BENCH_STARTUP_ROUNDS:-11}
RESULTS="$ROOT/results"
TMP="$ROOT/tmp"
OUT="$RESULTS/startup.env"
IRIS="$ROOT/startup-iris"
log() { printf '[startup %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
mkdir -p "$RESULTS" "$TMP"

command -v docker >/dev/null || die "the docker CLI is missing (apt-get install docker.io); it is the baseline"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || die "no Docker Engine answers (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}); scripts/setup.sh starts one"
if [[ -n ${KILN_BENCH_KILN:-} ]]; then
  KILN=$KILN_BENCH_KILN
else
  bash "$REPO/scripts/publish-cli.sh" || die "could not publish the CLI (scripts/publish-cli.sh; log: artifacts/kiln-publish.log)"
  KILN=$(readlink -f "$REPO/artifacts/kiln/kiln")
fi
[[ -x $KILN ]] || die "$KILN is not an executable"
log "measuring $KILN ($("$KILN" --version))"

# timed NAME CMD…: runs CMD (output to $TMP/startup-NAME.log), sets T to its wall time in seconds (ns clock).
timed() {
  local name=$1; shift
  local t0 t1
  t0=$(date +%s%N)
  "$@" >"$TMP/startup-$name.log" 2>&1 || { tail -n 20 "$TMP/startup-$name.log" >&2; die "'$*' failed (log: $TMP/startup-$name.log)"; }
  t1=$(date +%s%N)
  T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
}
stats() { # "median min max count"
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.6g %.6g %.6g %d\n", m, v[1], v[NR], NR }'
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }

# The iris project: kept between runs; its sources refreshed from examples/iris (a changed source is a real run once).
mkdir -p "$IRIS"
cp -r "$REPO/examples/iris/kiln.yaml" "$REPO/examples/iris/params.yaml" "$REPO/examples/iris/src" "$IRIS/"
[[ -f "$REPO/examples/iris/kiln.lock" ]] && cp "$REPO/examples/iris/kiln.lock" "$IRIS/"
log "iris: a first run (builds or finds the environment, runs what is not cached; minutes when the environment must be built)"
timed iris-first "$KILN" run -C "$IRIS" -q
log "iris: first run took $T s; two warm-up runs"
timed iris-warm "$KILN" run -C "$IRIS" -q
timed iris-warm "$KILN" run -C "$IRIS" -q
grep -qiE 'cached|up to date|nothing to (do|run)' "$TMP/startup-iris-warm.log" \
  || log "WARNING: the warm-up run does not say its stages were cached (log: $TMP/startup-iris-warm.log)"

v=() n=() d=() rv=() rn=()
log "$ROUNDS rounds of: docker version, kiln --version, kiln run (no-op iris)"
for ((r = 1; r <= ROUNDS; r++)); do
  timed docker docker version; d+=("$T")
  timed version "$KILN" --version; v+=("$T")
  timed noop "$KILN" run -C "$IRIS" -q; n+=("$T")
  rv+=("$(div "${v[-1]}" "${d[-1]}")"); rn+=("$(div "${n[-1]}" "${d[-1]}")")
done
# One profiled run of each (not counted): where the time goes.
KILN_PROFILE=1 "$KILN" --version >/dev/null 2>"$TMP/startup-profile-version.txt" || true
KILN_PROFILE=1 "$KILN" run -C "$IRIS" -q >/dev/null 2>"$TMP/startup-profile-noop.txt" || true
phase() { # phase FILE NAME: the milliseconds of the [profile] phase of that exact name (names are padded with spaces)
  awk -v p="$2" 'index($0, "[profile] " p "  ") == 1 { for (i = NF; i > 0; i--) if ($(i) == "ms") { print $(i - 1); exit } }' "$1"
}

: >"$OUT"
{
  echo "ST_KILN='$KILN'"
  echo "ST_KIND='$(file -b "$KILN" 2>/dev/null | cut -d, -f1-2 | tr "'" '"') $(du -m "$KILN" | cut -f1) MB'"
  echo "ST_ROUNDS='$ROUNDS'"
  echo "ST_DOCKER='$(stats "${d[@]}")'"
  echo "ST_VERSION='$(stats "${v[@]}")'"
  echo "ST_NOOP='$(stats "${n[@]}")'"
  echo "ST_R_VERSION='$(stats "${rv[@]}")'"
  echo "ST_R_NOOP='$(stats "${rn[@]}")'"
  echo "ST_V_START='$(phase "$TMP/startup-profile-version.txt" "runtime start (before Main)")'"
  echo "ST_V_CMDLINE='$(phase "$TMP/startup-profile-version.txt" "command line (--version)")'"
  echo "ST_N_START='$(phase "$TMP/startup-profile-noop.txt" "runtime start (before Main)")'"
  echo "ST_N_CMDLINE='$(phase "$TMP/startup-profile-noop.txt" "command line")'"
  echo "ST_N_PING='$(phase "$TMP/startup-profile-noop.txt" "engine: start and ping")'"
  echo "ST_N_ENVS='$(phase "$TMP/startup-profile-noop.txt" "environments: ensure")'"
  echo "ST_N_LEDGER='$(phase "$TMP/startup-profile-noop.txt" "ledger: open, mark abandoned runs")'"
  echo "ST_N_SPEC='$(phase "$TMP/startup-profile-noop.txt" "spec: load and validate")'"
  echo "ST_N_PIPELINE='$(phase "$TMP/startup-profile-noop.txt" "pipeline: run (keys, cache, containers, ledger)")'"
  echo "ST_N_COMMAND='$(phase "$TMP/startup-profile-noop.txt" "command")'"
  echo "ST_LOAD='$(cut -d' ' -f1-3 /proc/loadavg)'"
} >>"$OUT"
cat "$OUT"
echo "--- KILN_PROFILE=1 kiln --version"; cat "$TMP/startup-profile-version.txt"
echo "--- KILN_PROFILE=1 kiln run (no-op iris)"; cat "$TMP/startup-profile-noop.txt"
