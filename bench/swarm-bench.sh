#!/usr/bin/env bash
# Scale-out benchmarks (issue 13), each against a baseline measured in the same run, on a test swarm of this machine
# (scripts/swarm-up.sh 3: a drained manager + 2 workers, each a dockerd in its own network namespace, and the swarm's
# registry; torn down at the end, also on failure):
#
#   overhead  N trivial stages (`true`, no outputs), `kiln run --on swarm -j 1 --force`, ÷ the local Engine API floor
#             (bench/Kiln.Bench.Docker loop: create → start → wait → remove on this machine's engine), and ÷ the same
#             N one-shot swarm jobs made by the docker CLI (service create --mode replicated-job, polled, removed)
#   parallel  24 × `sleep 2` with `resources: { cpus: 1 }` (so 2 slots on each 2-CPU worker, 4 in all), -j 24, ÷ the
#             ideal 24 / 4 × 2 s = 12 s
#   restore   a fresh clone's `kiln run --cache` restoring one SIZE-byte output from the registry ÷ a raw blob GET of the
#             same bytes from the same registry (curl to a file on the same disk); target ≥ 0.8 (raw ÷ kiln)
#
#   sudo bench/swarm-bench.sh [overhead|parallel|restore|all]
#
# Figures go to $KILN_BENCH_DIR/results/swarm.env (shell assignments) and a summary to stdout, with the load average.
# Each swarm figure is taken once (a swarm run of 24 stages is long on a shared 2-core machine); read them with the load.
# `restore` needs no swarm and starts only a registry of its own.
# Environment: KILN_BENCH_DIR (default /tmp/kiln-bench-data), KILN_BENCH_SWARM_ID (default 7; the tests use 9),
# KILN_BENCH_CLI (a kiln executable or kiln.dll; default: the CLI users run, artifacts/kiln/kiln, the self-contained
# ReadyToRun build scripts/publish-cli.sh makes, published first when its sources changed; before 2026-12-03 10:30 UTC
# the default was the Debug kiln.dll of the swarm integration tests), KILN_BENCH_OVERHEAD_N (default 10), KILN_BENCH_RESTORE_BYTES
# (default 1073741824), KILN_BENCH_RESTORE_ROUNDS (default 3: the median round is the figure), KILN_BENCH_RESTORE_NO_LOCK=1
# (the clone without the first project's kiln.lock).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${KILN_BENCH_DIR:-/tmp/kiln-bench-data}
RESULTS="$ROOT/results"
WORK="$ROOT/swarm"
ID=${KILN_BENCH_SWARM_ID:-7}
KILN_DLL=${KILN_BENCH_CLI:-$REPO/artifacts/kiln/kiln}
FLOOR_DIR="$ROOT/build-swarm-floor"
N=${KILN_BENCH_OVERHEAD_N:-10}
BYTES=${KILN_BENCH_RESTORE_BYTES:-1073741824}
what=${1:-all}
OUT="$RESULTS/swarm.env"

log() { printf '[swarm-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.3f", a / b }'; }
emit() { while (($#)); do printf "%s='%s'\n" "$1" "$2" >>"$OUT"; shift 2; done; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

[[ $(id -u) -eq 0 ]] || die "needs root (the test swarm: network namespaces, dockerd)"
if [[ -z ${KILN_BENCH_CLI:-} ]]; then
  bash "$REPO/scripts/publish-cli.sh" --quiet >&2 || die "publishing the CLI failed (scripts/publish-cli.sh)"
fi
[[ -f $KILN_DLL ]] || die "$KILN_DLL is missing: scripts/publish-cli.sh publishes it (or set KILN_BENCH_CLI)"
mkdir -p "$RESULTS" "$WORK"
: >"$OUT"
if [[ $KILN_DLL == *.dll ]]; then KILN=(dotnet "$KILN_DLL"); else KILN=("$KILN_DLL"); fi
export KILN_SWARM_ID=$ID

cleanup_images() { for t in $(docker images --format "{{.Repository}}:{{.Tag}}" | grep -E "^(${REGISTRY:-none}/|kiln-env/swarm-bench-)" || true); do docker rmi "$t" >/dev/null; done; }
if [[ $what == restore ]]; then
  # The restore needs no swarm: the local engine makes the output, and the registry is all the clone talks to. A
  # registry of its own (Debian's docker-registry, as swarm-up.sh starts it) on a free port of 127.0.0.1, removed on exit.
  command -v docker-registry >/dev/null || die "docker-registry is missing (apt-get install docker-registry)"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  REGISTRY=127.0.0.1:$port
  rm -rf "$WORK/registry"; mkdir -p "$WORK/registry/data"
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n' \
    "$WORK/registry/data" "$REGISTRY" >"$WORK/registry/config.yml"
  setsid docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 </dev/null &
  registry_pid=$!
  trap 'kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null || true; rm -rf "$WORK/registry"; cleanup_images' EXIT
  for ((i = 0; i < 50; i++)); do curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null && break; sleep 0.1; done
  curl -fsS -o /dev/null "http://$REGISTRY/v2/" || die "docker-registry did not answer on $REGISTRY: $(tail -5 "$WORK/registry/log")"
  emit SW_LOAD_START "$(load)" SW_CPUS "$(nproc)" SW_COMMIT "$(git -C "$REPO" rev-parse --short HEAD)"
  log "registry up on $REGISTRY (no swarm: the restore needs none); load $(load)"
else
  down() { bash "$REPO/scripts/swarm-down.sh" >"$WORK/swarm-down.log" 2>&1 || log "swarm-down.sh left something (log: $WORK/swarm-down.log)"; }
  [[ -d /run/kiln-swarm-$ID ]] && down
  bash "$REPO/scripts/swarm-up.sh" 3 >"$WORK/swarm-up.log" 2>&1 || { tail -20 "$WORK/swarm-up.log" >&2; die "swarm-up.sh 3 failed"; }
  # On exit: the swarm, and the image tags this script made on the main engine (for the swarm's registry, and the
  # environments of its projects, kiln-env/swarm-bench-*); the base image itself stays.
  trap 'down; cleanup_images' EXIT
  # shellcheck disable=SC1090
  source "/run/kiln-swarm-$ID/env"
  REGISTRY=$KILN_SWARM_REGISTRY
  export KILN_SWARM_MANAGER KILN_SWARM_NODE_REGISTRY
  emit SW_LOAD_START "$(load)" SW_CPUS "$(nproc)" SW_COMMIT "$(git -C "$REPO" rev-parse --short HEAD)"
  log "swarm $ID up (manager $KILN_SWARM_MANAGER, registry $REGISTRY); load $(load)"
fi

project() { # dir name stages-yaml
  rm -rf "$1"; mkdir -p "$1"
  printf 'name: %s\nenvironments:\n  base: { distro: "debian:bookworm" }\nstages:\n%s' "$2" "$3" >"$1/kiln.yaml"
}
run_kiln() { # log-name dir args…: the wall time of one kiln command, in seconds
  local name=$1 dir=$2; shift 2
  local t0 t1
  t0=$(now)
  "${KILN[@]}" -C "$dir" "$@" >"$WORK/$name.log" 2>&1 || { tail -25 "$WORK/$name.log" >&2; die "kiln $* failed (log: $WORK/$name.log)"; }
  t1=$(now)
  secs "$t0" "$t1"
}

overhead() {
  local dir="$WORK/overhead" stages="" i image t_kiln t_api t_cli t0 t1
  for ((i = 1; i <= N; i++)); do stages+=$(printf '  s%02d: { env: base, run: "true" }\n' "$i"); stages+=$'\n'; done
  project "$dir" swarm-bench-overhead "$stages"
  log "overhead: warm-up (environment pushed, pulled by both workers)"
  run_kiln ov-warm "$dir" run --on swarm --cache "$REGISTRY/bench/overhead" --force -j 2 >/dev/null # not -q: it names the image reference
  image=$(grep -o 'sha256:[0-9a-f]\{64\}' <(sqlite3 "$dir/.kiln/ledger.db" "select image_id from stages limit 1" 2>/dev/null) | head -1 || true)
  [[ -n $image ]] || image=$(docker image inspect kiln/debian:bookworm --format '{{.Id}}')
  log "overhead: $N stages on the swarm, -j 1"
  t_kiln=$(run_kiln ov-kiln "$dir" run --on swarm --cache "$REGISTRY/bench/overhead" --force -j 1 -q)
  log "overhead: the local Engine API floor, $N containers of $image"
  [[ -f $FLOOR_DIR/Kiln.Bench.Docker.dll ]] || dotnet build "$REPO/bench/Kiln.Bench.Docker" -c Release -o "$FLOOR_DIR" --nologo -v q >"$WORK/floor-build.log" 2>&1 ||
    { tail -20 "$WORK/floor-build.log" >&2; die "could not build bench/Kiln.Bench.Docker"; }
  t0=$(now); DOCKER_HOST= dotnet "$FLOOR_DIR/Kiln.Bench.Docker.dll" loop "$image" "$N" >"$WORK/ov-api.log" 2>&1 || die "floor loop failed ($WORK/ov-api.log)"; t1=$(now)
  t_api=$(secs "$t0" "$t1")
  log "overhead: $N swarm jobs by the docker CLI (the swarm's own floor)"
  local ref; ref=$(grep -o "environment base for the swarm: [^ ]*" "$WORK/ov-warm.log" | awk '{print $NF}' | head -1 || true)
  [[ -n $ref ]] || ref=$(grep -o "$KILN_SWARM_NODE_REGISTRY/[^ ]*@sha256:[0-9a-f]*" "$WORK/ov-warm.log" | head -1 || true)
  if [[ -n $ref ]]; then
    t0=$(now)
    for ((i = 1; i <= N; i++)); do
      local sid state
      sid=$(docker -H "$KILN_SWARM_MANAGER" service create -q --detach --mode replicated-job --restart-condition none \
        --endpoint-mode dnsrr --no-resolve-image --name "swarm-bench-cli-$i" "$ref" true)
      until state=$(docker -H "$KILN_SWARM_MANAGER" service ps -q --format '{{.CurrentState}}' "$sid" | head -1) && [[ $state == Complete* || $state == Failed* ]]; do sleep 0.25; done
      docker -H "$KILN_SWARM_MANAGER" service rm "$sid" >/dev/null
    done
    t1=$(now)
    t_cli=$(secs "$t0" "$t1")
  else
    log "overhead: no image reference in the warm-up log; the CLI floor is skipped"
    t_cli=n/a
  fi
  emit SW_OV_N "$N" SW_OV_KILN "$t_kiln" SW_OV_API "$t_api" SW_OV_CLI "$t_cli" SW_OV_LOAD "$(load)"
  printf 'overhead: %s stages on the swarm %s s (%s s each); local Engine API floor %s s (%s s each): %s×; docker CLI swarm jobs %s s: Kiln ÷ that %s×  (load %s)\n' \
    "$N" "$t_kiln" "$(div "$t_kiln" "$N")" "$t_api" "$(div "$t_api" "$N")" "$(div "$t_kiln" "$t_api")" "$t_cli" "$(div "$t_kiln" "$t_cli")" "$(load)"
}

parallel() {
  local dir="$WORK/parallel" stages="" i t ideal=12
  for ((i = 1; i <= 24; i++)); do stages+=$(printf '  p%02d: { env: base, run: "sleep 2", resources: { cpus: 1 } }\n' "$i"); stages+=$'\n'; done
  project "$dir" swarm-bench-parallel "$stages"
  log "parallel: warm-up (1 stage)"
  run_kiln par-warm "$dir" run --on swarm --cache "$REGISTRY/bench/parallel" --force -q p01 >/dev/null
  log "parallel: 24 × sleep 2, 2 workers × 2 slots, -j 24"
  t=$(run_kiln par-kiln "$dir" run --on swarm --cache "$REGISTRY/bench/parallel" --force -j 24 -q)
  local nodes
  nodes=$(sqlite3 "$dir/.kiln/ledger.db" "select count(distinct node) from stage_attempts where run_id = (select id from runs order by started_at desc limit 1)" 2>/dev/null || echo "?")
  emit SW_PAR_WALL "$t" SW_PAR_IDEAL "$ideal" SW_PAR_NODES "$nodes" SW_PAR_LOAD "$(load)"
  printf 'parallel: 24 × sleep 2 on %s workers in %s s; ideal %s s: %s×  (load %s)\n' "$nodes" "$t" "$ideal" "$(div "$t" "$ideal")" "$(load)"
}

restore() {
  local first="$WORK/restore-first" clone="$WORK/restore-clone" repo="bench/restore-$$" t_kiln t_raw t0 t1 digest ratio
  local spec; spec=$(printf '  big: { env: base, run: "head -c %s /dev/urandom > data/big.bin", outs: [data/big.bin] }\n' "$BYTES")
  project "$first" swarm-bench-restore "$spec"
  project "$clone" swarm-bench-restore "$spec"
  log "restore: making and publishing a $BYTES-byte output (local engine, --cache $REGISTRY/$repo)"
  run_kiln rs-first "$first" run --cache "$REGISTRY/$repo" -q >/dev/null
  # A fresh clone of the repository: the kiln.lock that the first run wrote, and that Kiln says to commit, comes with it
  # (without it the clone resolves its environment through the engine first; KILN_BENCH_RESTORE_NO_LOCK=1 measures that).
  [[ ${KILN_BENCH_RESTORE_NO_LOCK:-0} == 1 ]] || cp "$first/kiln.lock" "$clone/kiln.lock"
  digest="sha256:$(sha256sum "$first/data/big.bin" | cut -d' ' -f1)"
  # Rounds of (raw GET, fresh clone's kiln run), each after the page cache was dropped: the ratio of each round compares
  # two runs a few seconds apart, under the same load; the median round is the figure.
  local rounds=${KILN_BENCH_RESTORE_ROUNDS:-3} r ratios=()
  for ((r = 1; r <= rounds; r++)); do
    sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
    log "restore $r/$rounds: raw blob GET of $digest"
    t0=$(now); curl -fsS -o "$WORK/raw.bin" "http://$REGISTRY/v2/$repo/blobs/$digest"; t1=$(now)
    t_raw=$(secs "$t0" "$t1")
    [[ "sha256:$(sha256sum "$WORK/raw.bin" | cut -d' ' -f1)" == "$digest" ]] || die "the raw GET returned other bytes"
    rm -rf "$WORK/raw.bin" "$clone/.kiln" "$clone/data"; sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
    log "restore $r/$rounds: a fresh clone's kiln run --cache"
    t_kiln=$(run_kiln rs-clone "$clone" run --cache "$REGISTRY/$repo")
    grep -q "0 ran, 1 cached" "$WORK/rs-clone.log" || die "the clone did not restore from the remote cache (log: $WORK/rs-clone.log)"
    cmp -s "$first/data/big.bin" "$clone/data/big.bin" || die "the restored bytes differ"
    emit "SW_RS_KILN_$r" "$t_kiln" "SW_RS_RAW_$r" "$t_raw" "SW_RS_LOAD_$r" "$(load)"
    ratios+=("$(div "$t_raw" "$t_kiln") $t_kiln $t_raw")
    printf 'restore %s/%s: %s bytes; kiln run --cache (fresh clone, whole command) %s s = %s MB/s; raw blob GET %s s = %s MB/s; raw ÷ kiln %s (target ≥ 0.8)  (load %s)\n' \
      "$r" "$rounds" "$BYTES" "$t_kiln" "$(div "$((BYTES / 1000000))" "$t_kiln")" "$t_raw" "$(div "$((BYTES / 1000000))" "$t_raw")" "$(div "$t_raw" "$t_kiln")" "$(load)"
  done
  local median; median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p")
  read -r ratio t_kiln t_raw <<<"$median"
  emit SW_RS_BYTES "$BYTES" SW_RS_KILN "$t_kiln" SW_RS_RAW "$t_raw" SW_RS_RATIO "$ratio" SW_RS_LOAD "$(load)"
  printf 'restore: median of %s rounds: kiln %s s, raw %s s, raw ÷ kiln %s (target ≥ 0.8)  (load %s)\n' "$rounds" "$t_kiln" "$t_raw" "$ratio" "$(load)"
  rm -rf "$first" "$clone"
}

case $what in
  overhead) overhead ;;
  parallel) parallel ;;
  restore) restore ;;
  all) overhead; parallel; restore ;;
  *) die "usage: $0 [overhead|parallel|restore|all]" ;;
esac
emit SW_LOAD_END "$(load)"
log "done; figures in $OUT"
