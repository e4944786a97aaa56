#!/usr/bin/env bash
# Pipeline benchmarks for Kiln: what running stages costs, next to peers measured in the same run.
#
#   bench/pipeline-bench.sh setup      install missing tools, publish the CLI, build the Docker floor loop
#   bench/pipeline-bench.sh overhead   50 trivial stages, sequential: kiln run vs the Engine API loop, `docker run`, Snakemake
#   bench/pipeline-bench.sh noop       1000-stage DAG over a 100,000-file / 2 GiB dataset: warm `kiln status` vs `snakemake -n`,
#                                      cached `kiln run`, `kiln status --rehash` (peak memory of each)
#   bench/pipeline-bench.sh parallel   8 independent `sleep 2` stages with --jobs 2 vs the ideal 8 s and vs the same containers
#                                      run 2 at a time through the Engine API
#   bench/pipeline-bench.sh envbuild   cold build of the iris environment, no-op rebuild, image size
#   bench/pipeline-bench.sh all        all of the above
#
# Each section writes its figures as shell assignments to $KILN_BENCH_DIR/results/<section>.env (read by
# bench/run-all.sh, which writes BENCHMARKS.md) and a short summary to stdout. Every figure is taken several
# times; runs of the compared tools are interleaved (A B C, A B C, …) so that load from other work on the
# machine falls on all of them alike, and the median, min and max are kept.
#
# Environment:
#   KILN_BENCH_DIR     where everything is kept between runs             (default /tmp/kiln-bench-data)
#   KILN_BENCH_ROUNDS  rounds per figure (medians of these)              (default 3; overhead: up to 2 more, see there)
#   KILN_BENCH_FILES / KILN_BENCH_BYTES  the dataset (shared with bench/hash-bench.sh) (default 100000 / 2147483648)
#   KILN_BENCH_STAGES  stages in the no-op DAG                            (default 1000)
#   KILN_BENCH_CLI     a published kiln.dll to use instead of publishing one (default: publish src/Kiln.Cli)
#   KILN_BENCH_SLOW    a side figure (validate, cached run, --rehash) whose first run takes longer than this many
#                      seconds is taken once (default 30); the compared figures always get every round
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${KILN_BENCH_DIR:-/tmp/kiln-bench-data}
ROUNDS=${KILN_BENCH_ROUNDS:-3}
FILES=${KILN_BENCH_FILES:-100000}
BYTES=${KILN_BENCH_BYTES:-2147483648}
STAGES=${KILN_BENCH_STAGES:-1000}
RESULTS="$ROOT/results"
TMP="$ROOT/tmp"
CLI_DIR="$ROOT/cli"
BUILD_DIR="$ROOT/build"
FLOOR_DLL="$BUILD_DIR/bin/Kiln.Bench.Docker/release/Kiln.Bench.Docker.dll"
GEN_DLL="$BUILD_DIR/bin/Kiln.Bench/release/Kiln.Bench.dll"
KILN_DLL=${KILN_BENCH_CLI:-$CLI_DIR/kiln.dll}
# The projects' layout version: bump it when the generators below change, so old projects are made again.
LAYOUT=v2

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
mkdir -p "$RESULTS" "$TMP"

KILN=(dotnet "$KILN_DLL")

# ---- measuring ---------------------------------------------------------------------------------------------

# measure NAME CMD…: runs CMD (stdout+stderr to $TMP/NAME.log) under /usr/bin/time; sets M_WALL (s, ns clock),
# M_RSS (peak resident set, kB), M_CPU (user+sys s). A failing command stops the benchmark with its log tail.
measure() {
  local name=$1; shift
  local t0 t1
  t0=$(date +%s%N)
  if ! /usr/bin/time -f '%M %U %S' -o "$TMP/$name.time" "$@" >"$TMP/$name.log" 2>&1; then
    log "'$*' failed; last lines of $TMP/$name.log:"
    tail -n 25 "$TMP/$name.log" >&2
    return 1
  fi
  t1=$(date +%s%N)
  M_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  read -r M_RSS M_USER M_SYS < <(tail -n 1 "$TMP/$name.time")
  M_CPU=$(awk -v u="$M_USER" -v s="$M_SYS" 'BEGIN { printf "%.2f", u + s }')
}

# stats V1 V2 …: "median min max count" (the median of an even count is the mean of the middle two).
stats() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.6g %.6g %.6g %d\n", m, v[1], v[NR], NR }'
}
# slow SECONDS [LIMIT]: true when one measurement took longer than LIMIT (default $KILN_BENCH_SLOW, 30 s): such a figure
# is taken once (the report says so), so that the whole benchmark stays within its half hour.
slow() { awk -v s="$1" -v l="${2:-${KILN_BENCH_SLOW:-30}}" 'BEGIN { exit !(s > l) }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.3f", a / b }'; }

# emit FILE KEY VALUE…: appends KEY='VALUE' lines to a results file.
emit() {
  local file=$1; shift
  while (($#)); do printf "%s='%s'\n" "$1" "$2" >>"$file"; shift 2; done
}

# ---- setup -------------------------------------------------------------------------------------------------

# dotnet_build OUT_LOG ARGS…: dotnet build/publish with isolated bin/obj (--artifacts-path), so other engineers'
# builds of the same checkout neither block nor change ours; retried, as restores of a shared cache can race.
dotnet_build() {
  local logf=$1; shift
  for attempt in 1 2 3; do
    if dotnet "$@" --artifacts-path "$BUILD_DIR" --nologo -v quiet >"$logf" 2>&1; then return 0; fi
    log "dotnet $1 failed (attempt $attempt of 3); see $logf"
    sleep 5
  done
  return 1
}

newer_sources() { # newer_sources STAMP DIR…: is any .cs/.csproj/.props under DIR newer than STAMP (or STAMP missing)?
  local stamp=$1; shift
  [[ ! -f $stamp ]] && return 0
  [[ -n "$(find "$@" -newer "$stamp" \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' \) -not -path '*/obj/*' -not -path '*/bin/*' -print -quit 2>/dev/null)" ]]
}

# build_if_stale NAME STAMP LOG SOURCES… -- DOTNET_ARGS…: builds when a source is newer than STAMP; the stamp is taken
# before the build starts, so an edit made during the build is seen by the next run.
build_if_stale() {
  local name=$1 stamp=$2 logf=$3; shift 3
  local sources=()
  while [[ $1 != -- ]]; do sources+=("$1"); shift; done
  shift
  newer_sources "$stamp" "${sources[@]}" || return 0
  log "building $name"
  mkdir -p "$(dirname "$stamp")" # the CLI's folder does not exist before its first publish
  touch "$stamp.new"
  if dotnet_build "$logf" "$@"; then mv "$stamp.new" "$stamp"; return 0; fi
  rm -f "$stamp.new"
  tail -n 30 "$logf" >&2
  return 1
}

setup() {
  local missing=()
  command -v snakemake >/dev/null || missing+=(snakemake)
  [[ -x /usr/bin/time ]] || missing+=(time)
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  command -v openssl >/dev/null || missing+=(openssl)
  if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; install them (apt-get install -y ${missing[*]}) or run as root"
    log "installing ${missing[*]} (apt-get)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } >"$TMP/apt.log" 2>&1 \
      || { tail -n 20 "$TMP/apt.log" >&2; die "apt-get install ${missing[*]} failed (log: $TMP/apt.log)"; }
  fi
  command -v dotnet >/dev/null || die "dotnet is not on PATH (install the .NET 10 SDK)"
  command -v docker >/dev/null || die "the docker CLI is missing (apt-get install docker.io); it is one of the baselines"
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "no Docker Engine answers (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}); scripts/setup.sh starts one"

  if [[ -n ${KILN_BENCH_CLI:-} ]]; then
    [[ -f $KILN_DLL ]] || die "KILN_BENCH_CLI=$KILN_DLL does not exist"
    log "using the CLI at $KILN_DLL"
  elif ! build_if_stale "the CLI into $CLI_DIR (a private copy: edits to src/ during the run do not change it)" "$CLI_DIR/.published" "$TMP/publish.log" \
      "$REPO/src" "$REPO/Directory.Packages.props" "$REPO/Directory.Build.props" -- publish "$REPO/src/Kiln.Cli/Kiln.Cli.csproj" -c Release -o "$CLI_DIR"; then
    [[ -f $KILN_DLL ]] || die "could not publish the CLI (log: $TMP/publish.log)"
    log "WARNING: publishing failed (src/ may be mid-edit); using the CLI published before, at $(date -r "$KILN_DLL" '+%F %T')"
    echo "publishing failed; the CLI used was published at $(date -r "$KILN_DLL" '+%F %T')" >"$RESULTS/cli-stale.txt"
  else
    rm -f "$RESULTS/cli-stale.txt"
  fi
  build_if_stale "bench/Kiln.Bench.Docker (the Engine API floor loop)" "$BUILD_DIR/.floor-built" "$TMP/build-floor.log" \
    "$REPO/bench/Kiln.Bench.Docker" -- build "$REPO/bench/Kiln.Bench.Docker/Kiln.Bench.Docker.csproj" -c Release \
    || die "could not build bench/Kiln.Bench.Docker (log: $TMP/build-floor.log)"
  build_if_stale "bench/Kiln.Bench (the dataset generator of hash-bench.sh)" "$BUILD_DIR/.gen-built" "$TMP/build-gen.log" \
    "$REPO/bench/Kiln.Bench" "$REPO/src/Kiln.Content" "$REPO/src/Kiln.Core" -- build "$REPO/bench/Kiln.Bench/Kiln.Bench.csproj" -c Release \
    || die "could not build bench/Kiln.Bench (log: $TMP/build-gen.log)"
  "${KILN[@]}" --version >/dev/null 2>&1 || "${KILN[@]}" --help >/dev/null 2>&1 || die "the CLI at $KILN_DLL does not start"
}

# base_image: builds (finds) the environment `base` (debian:bookworm, no packages) in a scratch project and
# prints its image ID: every trivial stage, and every baseline, runs exactly this image.
base_image() {
  local dir="$ROOT/base-env"
  mkdir -p "$dir"
  printf 'name: bench-base\nenvironments:\n  base: { distro: "debian:bookworm" }\nstages:\n  s: { env: base, run: "true" }\n' >"$dir/kiln.yaml"
  measure env-base "${KILN[@]}" -C "$dir" env build || die "kiln env build of debian:bookworm failed (is kiln/debian:bookworm in the engine? scripts/setup.sh makes it)"
  local id
  id=$(grep -o 'sha256:[0-9a-f]\{64\}' "$TMP/env-base.log" | tail -n 1)
  [[ -n $id ]] || die "could not read the image ID from 'kiln env build' (log: $TMP/env-base.log)"
  echo "$id"
}

# A project of trivial independent stages, plus its kiln.lock (copied from the base project: same image).
trivial_project() { # trivial_project DIR COUNT COMMAND
  local dir=$1 count=$2 cmd=$3 i
  mkdir -p "$dir"
  {
    printf 'name: bench-base\nenvironments:\n  base: { distro: "debian:bookworm" }\nstages:\n'
    for ((i = 1; i <= count; i++)); do printf '  s%02d: { env: base, run: "%s" }\n' "$i" "$cmd"; done
  } >"$dir/kiln.yaml.new"
  cmp -s "$dir/kiln.yaml.new" "$dir/kiln.yaml" 2>/dev/null && rm "$dir/kiln.yaml.new" || mv "$dir/kiln.yaml.new" "$dir/kiln.yaml"
  [[ -f "$ROOT/base-env/kiln.lock" ]] && cp "$ROOT/base-env/kiln.lock" "$dir/kiln.lock"
  return 0
}

# ledger_profile DIR: for the newest run in DIR's ledger, "span_s stages_s gaps_s": the run's span in the ledger,
# the sum of its stages' durations (key, cache lookup, container, store), and the time between stages.
ledger_profile() {
  sqlite3 "$1/.kiln/ledger.db" "
    WITH r AS (SELECT id, started_at, ended_at FROM runs ORDER BY started_at DESC LIMIT 1),
         s AS (SELECT (julianday(ended_at) - julianday(started_at)) * 86400 AS d FROM stages WHERE run_id = (SELECT id FROM r))
    SELECT printf('%.3f %.3f', (julianday(r.ended_at) - julianday(r.started_at)) * 86400, (SELECT sum(d) FROM s)) FROM r;"
}

# ---- 1. per-stage overhead ---------------------------------------------------------------------------------

overhead() {
  local n=50 out="$RESULTS/overhead.env" image dir="$ROOT/overhead" r
  image=$(base_image)
  log "overhead: $n containers of '$image true', sequential, $ROUNDS rounds of: kiln run, API loop, API loop like Kiln, docker run loop, snakemake"
  trivial_project "$dir" $n true
  # Snakemake: 50 rules, each one `docker run --rm`, no inputs; the marker file is what Snakemake needs to track a rule.
  {
    echo "# generated by bench/pipeline-bench.sh: $n independent rules, each one container"
    printf 'rule all:\n    input: [%s]\n\n' "$(for ((i = 1; i <= n; i++)); do printf '"done/s%02d", ' "$i"; done)"
    for ((i = 1; i <= n; i++)); do
      printf 'rule s%02d:\n    output: "done/s%02d"\n    shell: "docker run --rm --network none %s true && touch {output}"\n\n' "$i" "$i" "$image"
    done
  } >"$dir/Snakefile"
  cat >"$dir/docker-loop.sh" <<EOF
#!/bin/sh
set -e
i=0
while [ \$i -lt $n ]; do docker run --rm --network none $image true; i=\$((i + 1)); done
EOF
  chmod +x "$dir/docker-loop.sh"
  # Warm-up (not counted): the image's layers in the page cache, the CLI's assemblies, snakemake's imports.
  measure warm-kiln "${KILN[@]}" -C "$dir" run --force -j 1 -q
  measure warm-snake snakemake s01 -d "$dir" -s "$dir/Snakefile" -j 1 --forceall -q

  local kiln_w=() api_w=() like_w=() cli_w=() snake_w=() kiln_rss=() span=() stages=() create=() start=() wait=() remove=()
  # Kiln and the floor are within a few per cent of each other, so this figure gets up to 2 extra rounds while the
  # section has taken less than $KILN_BENCH_OVERHEAD_BUDGET seconds (default 600).
  local t0=$SECONDS max=$((ROUNDS + 2))
  for ((r = 1; r <= max; r++)); do
    if ((r > ROUNDS && SECONDS - t0 > ${KILN_BENCH_OVERHEAD_BUDGET:-600})); then break; fi
    measure kiln-run "${KILN[@]}" -C "$dir" run --force -j 1 -q
    kiln_w+=("$M_WALL"); kiln_rss+=("$M_RSS")
    read -r s1 s2 < <(ledger_profile "$dir"); span+=("$s1"); stages+=("$s2")
    grep -q "succeeded ($n ran" "$TMP/kiln-run.log" || die "kiln run did not run $n stages (log: $TMP/kiln-run.log)"

    measure api-loop dotnet "$FLOOR_DLL" loop "$image" $n
    api_w+=("$M_WALL")
    local f; f=$(tail -n 1 "$TMP/api-loop.log")
    create+=("$(grep -o 'create_s=[0-9.]*' <<<"$f" | cut -d= -f2)"); start+=("$(grep -o 'start_s=[0-9.]*' <<<"$f" | cut -d= -f2)")
    wait+=("$(grep -o 'wait_s=[0-9.]*' <<<"$f" | cut -d= -f2)"); remove+=("$(grep -o 'remove_s=[0-9.]*' <<<"$f" | cut -d= -f2)")

    measure api-like-kiln dotnet "$FLOOR_DLL" loop "$image" $n --like-kiln
    like_w+=("$M_WALL")

    measure docker-loop "$dir/docker-loop.sh"
    cli_w+=("$M_WALL")

    measure snakemake snakemake -d "$dir" -s "$dir/Snakefile" -j 1 --forceall -q
    snake_w+=("$M_WALL")
    log "  round $r: kiln ${kiln_w[-1]} s, API loop ${api_w[-1]} s, API like Kiln ${like_w[-1]} s, docker run ${cli_w[-1]} s, snakemake ${snake_w[-1]} s"
  done

  : >"$out"
  emit "$out" OH_N "$n" OH_IMAGE "$image" OH_ROUNDS "${#kiln_w[@]}" \
    OH_KILN "$(stats "${kiln_w[@]}")" OH_API "$(stats "${api_w[@]}")" OH_LIKE "$(stats "${like_w[@]}")" \
    OH_CLI "$(stats "${cli_w[@]}")" OH_SNAKE "$(stats "${snake_w[@]}")" OH_KILN_RSS "$(stats "${kiln_rss[@]}")" \
    OH_SPAN "$(stats "${span[@]}")" OH_STAGES "$(stats "${stages[@]}")" \
    OH_CREATE "$(stats "${create[@]}")" OH_START "$(stats "${start[@]}")" OH_WAIT "$(stats "${wait[@]}")" OH_REMOVE "$(stats "${remove[@]}")"
  # Ratios per round (same round, same load), then their median.
  local rk=() rs=() rl=() rc=()
  for ((r = 0; r < ${#kiln_w[@]}; r++)); do
    rk+=("$(div "${kiln_w[r]}" "${api_w[r]}")"); rs+=("$(div "${snake_w[r]}" "${cli_w[r]}")")
    rl+=("$(div "${kiln_w[r]}" "${like_w[r]}")"); rc+=("$(div "${kiln_w[r]}" "${cli_w[r]}")")
  done
  emit "$out" OH_R_KILN_API "$(stats "${rk[@]}")" OH_R_SNAKE_CLI "$(stats "${rs[@]}")" OH_R_KILN_LIKE "$(stats "${rl[@]}")" OH_R_KILN_CLI "$(stats "${rc[@]}")"
  cat "$out"
}

# ---- 2. no-op check of a 1000-stage DAG ---------------------------------------------------------------------

# The DAG: stage i reads the 100 files 100·i … 100·i+99 of the dataset (so the stages together read all of it) and,
# for i > 0, the output of stage (i−1)/2 (a binary fan-out tree, depth 10); it writes one small file. The Snakefile
# has one rule per stage with exactly the same inputs and output. data/ holds hard links to the dataset of hash-bench.sh.
dag_project() {
  local dir=$1 image=$2
  local set="$ROOT/f${FILES}-b${BYTES}"
  local per=$((FILES / STAGES))
  ((per >= 1)) || die "KILN_BENCH_FILES ($FILES) must be at least KILN_BENCH_STAGES ($STAGES)"
  local want="$LAYOUT stages=$STAGES files=$FILES bytes=$BYTES per=$per image=$image"
  if ! [[ -f "$dir/.bench-layout" && $(cat "$dir/.bench-layout") == "$want" ]]; then
    log "making the $STAGES-stage project in $dir ($per input files per stage)"
    dotnet "$GEN_DLL" gen "$set" "$FILES" "$BYTES" >&2 || die "generating the dataset in $set failed"
    rm -rf "$dir"
    mkdir -p "$dir/out"
    # Hard links, not a symbolic link: the project keeps its files (same inodes, mtimes) even when someone deletes or
    # regenerates the shared dataset, so the stat cache and Snakemake's mtimes stay valid between runs.
    cp -al "$set/data" "$dir/data" || die "could not hard-link $set/data into $dir (must be one file system)"
  fi
  # The spec and the Snakefile are written every time (a file whose text is unchanged is left alone).
  python3 - "$dir" "$STAGES" "$per" "$image" <<'PY'
import os, sys
d, n, per, image = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def f(j): return f"data/d{j // 1000:03d}/f{j:06d}.bin"
def parent(i): return (i - 1) // 2 if i > 0 else None
y = ['# generated by bench/pipeline-bench.sh', 'name: bench-base', 'environments:', '  base: { distro: "debian:bookworm" }', 'stages:']
s = ['# generated by bench/pipeline-bench.sh: one rule per kiln stage, with the same inputs, output and command',
     f'IMAGE = "{image}"', '', 'rule all:', f'    input: [{", ".join(repr(f"out/s{i:04d}.txt") for i in range(n))}]', '']
for i in range(n):
    p = parent(i)
    files = [f(j) for j in range(i * per, (i + 1) * per)]
    up = [f"out/s{p:04d}.txt"] if p is not None else []
    # In its container a kiln stage sees only its declared inputs, so `find data` lists exactly its files.
    head = f"head -n 1 out/s{p:04d}.txt; " if p is not None else ""
    y += [f"  s{i:04d}:", "    env: base", f"    run: '{{ {head}find data -type f -exec cat {{}} + | wc -c; }} > out/s{i:04d}.txt'",
          f"    deps: [{', '.join(files + up)}]", f"    outs: [out/s{i:04d}.txt]"]
    # Snakemake mounts the whole folder, so its rule names the files instead.
    shead = "head -n 1 {input.up}; " if p is not None else ""
    s += [f"rule s{i:04d}:", f"    input: data={files!r}" + (f", up={up[0]!r}" if up else ""), f'    output: "out/s{i:04d}.txt"',
          f"    shell: \"docker run --rm --network none -v $PWD:/work -w /work {{IMAGE}} sh -c '{{{{ {shead}cat {{input.data}} | wc -c; }}}} > {{output}}'\"", '']
def write(path, text):
    try:
        if open(path).read() == text: return
    except FileNotFoundError: pass
    open(path + ".new", "w").write(text); os.replace(path + ".new", path)
write(f"{d}/kiln.yaml", "\n".join(y) + "\n")
write(f"{d}/Snakefile", "\n".join(s) + "\n")
PY
  [[ -f "$ROOT/base-env/kiln.lock" ]] && cp "$ROOT/base-env/kiln.lock" "$dir/kiln.lock"
  echo "$want" >"$dir/.bench-layout"
}

noop() {
  local out="$RESULTS/noop.env" image dir="$ROOT/dag$STAGES" r
  image=$(base_image)
  dag_project "$dir" "$image"
  : >"$out"
  emit "$out" NO_STAGES "$STAGES" NO_FILES "$FILES" NO_BYTES "$BYTES" NO_DEPS "$((FILES / STAGES + 1))"

  # The cold run: once (it runs $STAGES containers); its figures are kept with the project.
  if ! [[ -f "$dir/.cold-run.env" ]]; then
    log "noop: first run of the $STAGES-stage DAG (kiln run -j 2 -q: $STAGES containers; several minutes, once per KILN_BENCH_DIR)"
    measure dag-cold "${KILN[@]}" -C "$dir" run -j 2 -q || die "the cold run of $dir failed (log: $TMP/dag-cold.log)"
    printf "NO_COLD_WALL='%s'\nNO_COLD_RSS='%s'\nNO_COLD_CPU='%s'\nNO_COLD_DATE='%s'\nNO_COLD_SUMMARY='%s'\n" \
      "$M_WALL" "$M_RSS" "$M_CPU" "$(date -u '+%F %H:%M UTC')" "$(grep -o '([0-9]* ran, [0-9]* cached[^)]*)' "$TMP/dag-cold.log" | tail -n 1)" >"$dir/.cold-run.env"
    emit "$out" NO_COLD_THIS_RUN yes
  else
    log "noop: the $STAGES-stage DAG ran before ($(grep NO_COLD_DATE "$dir/.cold-run.env" | cut -d"'" -f2)); not running it cold again"
    emit "$out" NO_COLD_THIS_RUN no
  fi
  cat "$dir/.cold-run.env" >>"$out"

  # Warm-up (not counted): the stat cache, the page cache for the metadata, the CLI's assemblies.
  measure status-warmup "${KILN[@]}" -C "$dir" status
  if ! grep -q "everything is up to date" "$TMP/status-warmup.log"; then
    log "noop: kiln status says some stages would run; running them (kiln run -j 2 -q) so that the no-op is a no-op"
    grep -m 5 'would run' "$TMP/status-warmup.log" >&2 || true
    local why
    why=$(grep -m 1 'would run' "$TMP/status-warmup.log" | sed 's/^ *s[0-9]* *would run *//; s/ *$//' | tr "'" '"')
    measure dag-catchup "${KILN[@]}" -C "$dir" run -j 2 -q || die "kiln run in $dir failed (log: $TMP/dag-catchup.log)"
    emit "$out" NO_CATCHUP_WALL "$M_WALL" NO_CATCHUP_WHY "$why" \
      NO_CATCHUP_SUMMARY "$(grep -o '([0-9]* ran, [0-9]* cached[^)]*)' "$TMP/dag-catchup.log" | tail -n 1 | tr -d '()')"
    measure status-warmup "${KILN[@]}" -C "$dir" status
    grep -q "everything is up to date" "$TMP/status-warmup.log" || die "kiln status still finds work after a run (log: $TMP/status-warmup.log)"
  fi
  measure snake-warmup snakemake -d "$dir" -s "$dir/Snakefile" -n -q
  local snake_jobs="0"
  grep -q "Nothing to be done" "$TMP/snake-warmup.log" || snake_jobs=$(grep -Eo '^total +[0-9]+' "$TMP/snake-warmup.log" | awk '{ print $2 }' | tail -n 1)
  [[ $snake_jobs == 0 ]] || log "WARNING: snakemake -n finds ${snake_jobs:-some} job(s) to do: its dry run is not a no-op (log: $TMP/snake-warmup.log)"
  emit "$out" NO_SNAKE_JOBS "${snake_jobs:-?}"

  local st_w=() st_rss=() sn_w=() sn_rss=() ratio=() i
  log "noop: $ROUNDS rounds of: kiln status (warm), snakemake -n"
  for ((i = 1; i <= ROUNDS; i++)); do
    measure status "${KILN[@]}" -C "$dir" status
    grep -q "everything is up to date" "$TMP/status.log" || die "kiln status is not a no-op any more (log: $TMP/status.log)"
    st_w+=("$M_WALL"); st_rss+=("$M_RSS")
    measure snake-n snakemake -d "$dir" -s "$dir/Snakefile" -n -q
    sn_w+=("$M_WALL"); sn_rss+=("$M_RSS")
    ratio+=("$(div "${st_w[-1]}" "${sn_w[-1]}")")
    log "  round $i: kiln status ${st_w[-1]} s (${st_rss[-1]} kB), snakemake -n ${sn_w[-1]} s"
  done
  emit "$out" NO_STATUS "$(stats "${st_w[@]}")" NO_STATUS_RSS "$(stats "${st_rss[@]}")" NO_SNAKE "$(stats "${sn_w[@]}")" \
    NO_SNAKE_RSS "$(stats "${sn_rss[@]}")" NO_R_STATUS_SNAKE "$(stats "${ratio[@]}")"

  # Where a no-op status spends its time: the CLI's start alone (`kiln --help`), loading and checking the spec and
  # building the graph (`kiln validate` does just that), and system calls (only when a status is quick enough to trace).
  local h=() v=() v_rss=()
  for ((i = 1; i <= ROUNDS; i++)); do measure help "${KILN[@]}" --help; h+=("$M_WALL"); done
  for ((i = 1; i <= ROUNDS; i++)); do
    measure validate "${KILN[@]}" -C "$dir" validate; v+=("$M_WALL"); v_rss+=("$M_RSS")
    slow "$M_WALL" && break
  done
  emit "$out" NO_HELP "$(stats "${h[@]}")" NO_VALIDATE "$(stats "${v[@]}")" NO_VALIDATE_RSS "$(stats "${v_rss[@]}")"
  if command -v strace >/dev/null && ! slow "$(stats "${st_w[@]}" | cut -d' ' -f1)" 10; then
    strace -f -c -o "$TMP/status.strace" dotnet "$KILN_DLL" -C "$dir" status >/dev/null 2>&1 || true
    emit "$out" NO_STRACE_TOP "$(awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { printf "%s %s\n", $NF, $4 }' "$TMP/status.strace" | sort -k2 -gr | head -n 6 | paste -sd',' | sed 's/,/, /g')" \
      NO_STRACE_TOTAL "$(awk '$NF == "total" { print $4 }' "$TMP/status.strace")"
  fi

  log "noop: $ROUNDS rounds of: kiln run with everything cached"
  local cr_w=() cr_rss=()
  for ((i = 1; i <= ROUNDS; i++)); do
    measure cached-run "${KILN[@]}" -C "$dir" run -j 2 -q
    grep -q "0 ran, $STAGES cached" "$TMP/cached-run.log" || die "the cached run ran something (log: $TMP/cached-run.log)"
    cr_w+=("$M_WALL"); cr_rss+=("$M_RSS")
    slow "$M_WALL" && break
  done
  emit "$out" NO_CACHED_RUN "$(stats "${cr_w[@]}")" NO_CACHED_RUN_RSS "$(stats "${cr_rss[@]}")"

  log "noop: kiln status --rehash (reads and hashes every input again: ${BYTES} bytes)"
  local rh_w=() rh_rss=() rh_cpu=()
  for ((i = 1; i <= ROUNDS; i++)); do
    measure rehash "${KILN[@]}" -C "$dir" status --rehash
    grep -q "everything is up to date" "$TMP/rehash.log" || die "kiln status --rehash disagrees with the stat cache (log: $TMP/rehash.log)"
    rh_w+=("$M_WALL"); rh_rss+=("$M_RSS"); rh_cpu+=("$M_CPU")
    slow "$M_WALL" && break
  done
  emit "$out" NO_REHASH "$(stats "${rh_w[@]}")" NO_REHASH_RSS "$(stats "${rh_rss[@]}")" NO_REHASH_CPU "$(stats "${rh_cpu[@]}")"
  cat "$out"
}

# ---- 4. parallelism ------------------------------------------------------------------------------------------

parallel() {
  local out="$RESULTS/parallel.env" dir="$ROOT/parallel8" r w=() rss=() api=() ratio=() image
  image=$(base_image)
  trivial_project "$dir" 8 "sleep 2"
  measure par-warm "${KILN[@]}" -C "$dir" run --jobs 2 --force -q
  log "parallel: $ROUNDS rounds of: kiln run --jobs 2 --force over 8 × sleep 2, the same 8 containers 2 at a time through the Engine API"
  for ((r = 1; r <= ROUNDS; r++)); do
    measure par "${KILN[@]}" -C "$dir" run --jobs 2 --force -q
    grep -q "succeeded (8 ran" "$TMP/par.log" || die "kiln run did not run 8 stages (log: $TMP/par.log)"
    w+=("$M_WALL"); rss+=("$M_RSS")
    measure par-api dotnet "$FLOOR_DLL" loop "$image" 8 --parallel 2 --cmd "sleep 2"
    api+=("$M_WALL"); ratio+=("$(div "${w[-1]}" "${api[-1]}")")
    log "  round $r: kiln ${w[-1]} s, API loop ${api[-1]} s"
  done
  local s1 s2
  read -r s1 s2 < <(ledger_profile "$dir")
  : >"$out"
  emit "$out" PAR_WALL "$(stats "${w[@]}")" PAR_RSS "$(stats "${rss[@]}")" PAR_IDEAL 8 PAR_SPAN_LAST "$s1" PAR_STAGES_LAST "$s2" \
    PAR_API "$(stats "${api[@]}")" PAR_R_KILN_API "$(stats "${ratio[@]}")"
  cat "$out"
}

# ---- 5. environment build ------------------------------------------------------------------------------------

envbuild() {
  local out="$RESULTS/envbuild.env" dir="$ROOT/iris" r w=() ids
  : >"$out"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp -r "$REPO/examples/iris/kiln.yaml" "$REPO/examples/iris/params.yaml" "$REPO/examples/iris/src" "$dir/"
  [[ -f "$REPO/examples/iris/kiln.lock" ]] && cp "$REPO/examples/iris/kiln.lock" "$dir/" && emit "$out" EB_LOCK yes || emit "$out" EB_LOCK no
  ids=$(docker images --format '{{.Repository}} {{.ID}}' | awk '$1 ~ /^kiln-env\/iris-/ { print $2 }' | sort -u)
  if [[ -n $ids ]]; then
    log "envbuild: removing the iris environment images ($(echo $ids)); the base image stays"
    if ! docker rmi $ids >"$TMP/rmi.log" 2>&1; then
      log "WARNING: docker rmi failed (in use by a container of someone else's run?): $(tail -n 2 "$TMP/rmi.log" | paste -sd' ')"
      emit "$out" EB_NOTE "docker rmi of the old iris image failed: $(tail -n 1 "$TMP/rmi.log" | tr "'" '"'); the cold build may have found it"
    fi
  fi
  log "envbuild: cold build of examples/iris (apt packages into a new layer over kiln/debian:bookworm; minutes)"
  if ! measure env-cold "${KILN[@]}" -C "$dir" env build; then
    emit "$out" EB_COLD failed EB_ERROR "$(grep -m 1 -E 'error|Exception' "$TMP/env-cold.log" | tr "'" '"' | cut -c1-300)"
    log "envbuild: the cold build failed; recorded, moving on"
    cat "$out"; return 0
  fi
  emit "$out" EB_COLD "$M_WALL" EB_COLD_RSS "$M_RSS" EB_COLD_CPU "$M_CPU"
  local image
  image=$(grep -Eo 'sha256:[0-9a-f]{64}' "$TMP/env-cold.log" | tail -n 1)
  grep -q "built" "$TMP/env-cold.log" || log "WARNING: the cold build did not say 'built' (log: $TMP/env-cold.log)"
  for ((r = 1; r <= ROUNDS; r++)); do
    measure env-noop "${KILN[@]}" -C "$dir" env build || die "the no-op env build failed (log: $TMP/env-noop.log)"
    grep -q "up to date" "$TMP/env-noop.log" || log "WARNING: the second env build did not say 'up to date' (log: $TMP/env-noop.log)"
    w+=("$M_WALL")
  done
  local hw=()
  for ((r = 1; r <= ROUNDS; r++)); do measure help "${KILN[@]}" --help; hw+=("$M_WALL"); done
  emit "$out" EB_IMAGE "$image" EB_NOOP "$(stats "${w[@]}")" EB_HELP "$(stats "${hw[@]}")" \
    EB_SIZE "$(docker image inspect --format '{{.Size}}' "$image")" \
    EB_BASE_SIZE "$(docker image inspect --format '{{.Size}}' kiln/debian:bookworm 2>/dev/null || echo 0)" \
    EB_STEPS "$(grep -E 'root filesystem made|package layer|built sha256' "$TMP/env-cold.log" | sed 's/^env [a-z]* │ //' | tr "'" '"' | paste -sd';' | cut -c1-400)"
  cat "$out"
}

# The whole command line is one function call followed by exit on one line, so that editing this file while it runs
# cannot make bash read on into the edited text.
main() {
  case ${1:-} in
    setup) setup ;;
    # bench/run-all.sh runs setup once and sets KILN_BENCH_SKIP_SETUP=1, so that every section uses the same CLI.
    overhead | noop | parallel | envbuild) [[ ${KILN_BENCH_SKIP_SETUP:-} == 1 ]] || setup; "$1" ;;
    all) setup; overhead; noop; parallel; envbuild ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 64 ;;
  esac
}
main "$@"; exit $?
