#!/usr/bin/env bash
# Throughput and added latency of kiln-serve (Open Inference Protocol v2 server + Python predictor workers), issue 14's
# targets: >= 5,000 req/s and <= 0.5 ms added at p50.
#   floor       a Python driver speaking the worker's pipe protocol to one worker.py directly (no HTTP, no .NET):
#               what one predictor process can do at best; its p50 is the baseline the server's p50 is compared with
#   workers=1   kiln-serve with one predictor worker
#   workers=N   kiln-serve with the default pool (one per core, at most 8)
# Each server is measured with wrk on 127.0.0.1: -t1 -c1 (latency on an idle connection) and -t2 -c8 (throughput).
# The predictor is trivial (echoes a 4-element FP64 tensor), so the figures are the serving path's own cost.
#
# Environment: KILN_BENCH_DIR (default /tmp/kiln-bench-data), KILN_BENCH_SERVE_SECONDS (default 10 per wrk run).
# Writes $KILN_BENCH_DIR/results/serve.env and prints a summary with the load average before and after.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${KILN_BENCH_DIR:-/tmp/kiln-bench-data}
SECONDS_EACH=${KILN_BENCH_SERVE_SECONDS:-10}
RESULTS="$ROOT/results"
WORK="$ROOT/serve"
OUT="$RESULTS/serve.env"
log() { printf '[serve %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
command -v python3 >/dev/null || die "python3 is missing"
mkdir -p "$RESULTS" "$WORK"
SERVER_PID=
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; true; }
trap cleanup EXIT

log "building kiln-serve (Release)"
dotnet build "$REPO/src/Kiln.Serving" -c Release -v q -o "$WORK/server" >"$WORK/build.log" 2>&1 || die "build failed: $WORK/build.log"

cat >"$WORK/predict.py" <<'PY'
INPUTS = [{"name": "x", "datatype": "FP64", "shape": [-1, 4]}]
OUTPUTS = [{"name": "y", "datatype": "FP64", "shape": [-1, 4]}]
def predict(inputs):
    return {"y": inputs["x"]["data"]}
PY
BODY='{"inputs":[{"name":"x","datatype":"FP64","shape":[1,4],"data":[1.0,2.0,3.0,4.0]}]}'
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $LOAD_BEFORE"

log "floor: 20,000 requests straight over one worker's pipe"
FLOOR=$(python3 - "$REPO/src/Kiln.Serving/worker.py" "$WORK/predict.py" "$BODY" <<'PY'
import json, struct, subprocess, sys, time
worker, predictor, body = sys.argv[1:4]
p = subprocess.Popen([sys.executable, "-u", worker, predictor], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def read():
    n = struct.unpack(">I", p.stdout.read(4))[0]
    return json.loads(p.stdout.read(n))
assert read()["ok"]
# The server sends the parsed, flattened inputs; the floor sends the same frame.
frame = json.dumps({"inputs": json.loads(body)["inputs"]}, separators=(",", ":")).encode()
msg = struct.pack(">I", len(frame)) + frame
times = []
start = time.perf_counter()
for _ in range(20000):
    t = time.perf_counter()
    p.stdin.write(msg); p.stdin.flush()
    assert read()["ok"]
    times.append(time.perf_counter() - t)
total = time.perf_counter() - start
p.stdin.close(); p.wait()
times.sort()
print(f"{20000 / total:.0f} {times[len(times) // 2] * 1000:.3f} {times[int(len(times) * 0.99)] * 1000:.3f}")
PY
)
read -r FLOOR_RPS FLOOR_P50 FLOOR_P99 <<<"$FLOOR"
log "floor: $FLOOR_RPS req/s, p50 $FLOOR_P50 ms, p99 $FLOOR_P99 ms"

# wrk's --latency output: "Requests/sec: N" and " 50%  1.23ms" (us, ms or s).
ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 } else { sub(/s$/, "", v); print v * 1000 } }'; }
measure() { # $1 label, $2 workers ("" = default)
  local label=$1 workers=$2 port=$((18000 + RANDOM % 2000)) config="$WORK/serve-$1.json"
  python3 - "$config" "$WORK/predict.py" "$workers" <<'PY'
import json, sys
c = {"model": "echo", "version": "1", "digest": "sha256:" + "0" * 64, "predictor": sys.argv[2]}
if sys.argv[3]: c["workers"] = int(sys.argv[3])
json.dump(c, open(sys.argv[1], "w"))
PY
  "$WORK/server/kiln-serve" --config "$config" --urls "http://127.0.0.1:$port" >"$WORK/server-$label.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null || die "kiln-serve ($label) did not become ready: $WORK/server-$label.log"
  local url="http://127.0.0.1:$port/v2/models/echo/infer"
  wrk -t2 -c8 -d3s -s "$WORK/post.lua" "$url" >/dev/null # warm-up (JIT, connection pools)
  local one eight
  one=$(wrk -t1 -c1 -d"${SECONDS_EACH}s" --latency -s "$WORK/post.lua" "$url")
  eight=$(wrk -t2 -c8 -d"${SECONDS_EACH}s" --latency -s "$WORK/post.lua" "$url")
  grep -q "Non-2xx" <<<"$one$eight" && die "kiln-serve ($label) answered errors: $one $eight"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  local c1_rps c1_p50 c8_rps c8_p50 c8_p99
  c1_rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$one")
  c1_p50=$(ms "$(awk '$1 == "50%" { print $2 }' <<<"$one")")
  c8_rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$eight")
  c8_p50=$(ms "$(awk '$1 == "50%" { print $2 }' <<<"$eight")")
  c8_p99=$(ms "$(awk '$1 == "99%" { print $2 }' <<<"$eight")")
  local added
  added=$(awk -v a="$c1_p50" -v b="$FLOOR_P50" 'BEGIN { printf "%.3f", a - b }')
  log "$label: c1 $c1_rps req/s p50 $c1_p50 ms (added $added ms over the floor); c8 $c8_rps req/s p50 $c8_p50 ms p99 $c8_p99 ms"
  printf 'SERVE_%s_C1_RPS=%s\nSERVE_%s_C1_P50_MS=%s\nSERVE_%s_ADDED_P50_MS=%s\nSERVE_%s_C8_RPS=%s\nSERVE_%s_C8_P50_MS=%s\nSERVE_%s_C8_P99_MS=%s\n' \
    "$label" "$c1_rps" "$label" "$c1_p50" "$label" "$added" "$label" "$c8_rps" "$label" "$c8_p50" "$label" "$c8_p99" >>"$OUT.tmp"
}
: >"$OUT.tmp"
measure W1 1
DEFAULT=$(nproc); (( DEFAULT > 8 )) && DEFAULT=8
measure WDEFAULT ""
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'SERVE_FLOOR_RPS=%s\nSERVE_FLOOR_P50_MS=%s\nSERVE_FLOOR_P99_MS=%s\nSERVE_DEFAULT_WORKERS=%s\nSERVE_LOAD_BEFORE="%s"\nSERVE_LOAD_AFTER="%s"\n' \
  "$FLOOR_RPS" "$FLOOR_P50" "$FLOOR_P99" "$DEFAULT" "$LOAD_BEFORE" "$LOAD_AFTER" >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "load average after: $LOAD_AFTER; cores: $(nproc); default pool: $DEFAULT workers"
log "targets: >= 5,000 req/s, <= 0.5 ms added at p50; results in $OUT"
cat "$OUT"
