#!/usr/bin/env bash
# Measures Kiln's tree hashing against the machine's limits, all in one run:
#   OpenSSL SHA-256 on one core × nproc     (the limit: Kiln hashes with OpenSSL through .NET)
#   coreutils sha256sum over the files      (xargs, one process at a time, and -P nproc)
#   Kiln, no stat cache, page cache warm    (hashing-bound)
#   Kiln, no stat cache, page cache dropped (disk-bound; only as root, where /proc/sys/vm/drop_caches is writable)
#   Kiln, stat cache warm                   (the no-op case: nothing changed, nothing should be read)
#   peak memory of each Kiln run            (/usr/bin/time -v, and VmHWM as the process saw it)
# Besides wall time it reports CPU seconds (user + system) and GB per CPU-second: `openssl speed`
# divides by CPU time too, so that column compares fairly even on a machine shared with other work.
#
# Environment:
#   KILN_BENCH_DIR    where datasets are kept between runs   (default /tmp/kiln-bench-data)
#   KILN_BENCH_FILES  number of files                        (default 100000)
#   KILN_BENCH_BYTES  total bytes                            (default 2147483648 = 2 GiB)
#   KILN_BENCH_REPEAT runs per Kiln figure (median is shown) (default 3)
set -euo pipefail

FILES=${KILN_BENCH_FILES:-100000}
BYTES=${KILN_BENCH_BYTES:-2147483648}
ROOT=${KILN_BENCH_DIR:-/tmp/kiln-bench-data}
REPEAT=${KILN_BENCH_REPEAT:-3}
NPROC=$(nproc)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SET="$ROOT/f${FILES}-b${BYTES}"
DATA="$SET/data"
CACHE="$SET/stat-cache.bin"

log() { printf '[bench] %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "missing: $1 ($2)"; exit 1; }; }
need dotnet "install the .NET 10 SDK"
need openssl "apt-get install openssl"
need sha256sum "coreutils"
[[ -x /usr/bin/time ]] || { log "missing: /usr/bin/time (apt-get install time)"; exit 1; }
mkdir -p "$SET"

# Build (retrying: other builds of the solution may hold obj/ locks for a moment).
for attempt in 1 2 3 4 5; do
  if dotnet build -c Release "$REPO/bench/Kiln.Bench/Kiln.Bench.csproj" -nologo -v q >"$SET/build.log" 2>&1; then break; fi
  [[ $attempt == 5 ]] && { cat "$SET/build.log" >&2; exit 1; }
  log "build failed (attempt $attempt), retrying"; sleep 3
done
BENCH=(dotnet "$REPO/bench/Kiln.Bench/bin/Release/net10.0/Kiln.Bench.dll")

"${BENCH[@]}" gen "$SET" "$FILES" "$BYTES"
ACTUAL_FILES=$(find "$DATA" -type f | wc -l)
ACTUAL_BYTES=$(find "$DATA" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')

fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == "-" || b == "-") print "n/a"; else printf "%.3f", a / b }'; }
gbps() { awk -v b="$ACTUAL_BYTES" -v s="$1" 'BEGIN { if (s == "-" || s == 0) print "-"; else printf "%.3f", b / s / 1e9 }'; }
drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; }
field() { grep -o "$1=[^ ]*" <<<"$2" | cut -d= -f2; }

# Runs a shell pipeline under /usr/bin/time; prints "wall_s cpu_s".
timed_sh() {
  /usr/bin/time -f '%e %U %S' -o "$SET/time.txt" sh -c "$1" >/dev/null
  awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$SET/time.txt"
}

# Runs Kiln.Bench hash; prints "wall_s cpu_s maxrss_kb hash_s hash_cpu_s bytes_read vmhwm_kb digest".
kiln_hash() {
  local out
  out=$(/usr/bin/time -v -o "$SET/time.txt" "${BENCH[@]}" hash "$DATA" "$@")
  awk -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + p[i] }
    /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident set size/ { m = $2 }
    END { printf "%.2f %.2f %s ", w, u + s, m }' "$SET/time.txt"
  echo "$(field hash_s "$out") $(field hash_cpu_s "$out") $(field bytes_read "$out") $(field vmhwm_kb "$out") $(field digest "$out")"
}

# Median of REPEAT runs of kiln_hash, by wall time.
kiln_median() {
  local runs=() i
  for ((i = 0; i < REPEAT; i++)); do runs+=("$(kiln_hash "$@")"); done
  printf '%s\n' "${runs[@]}" | sort -g -k1,1 | awk -v n="${#runs[@]}" 'NR == int((n + 1) / 2)'
}

log "dataset: $ACTUAL_FILES files, $ACTUAL_BYTES bytes in $DATA; $NPROC cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

log "openssl speed (3 s)"
OSSL_K=$(openssl speed -evp sha256 -bytes 1048576 -seconds 3 2>/dev/null | awk '$1 == "sha256" { sub(/k$/, "", $2); print $2 }')
OSSL_1=$(awk -v k="$OSSL_K" 'BEGIN { printf "%.3f", k * 1000 / 1e9 }')
OSSL_N=$(awk -v a="$OSSL_1" -v n="$NPROC" 'BEGIN { printf "%.3f", a * n }')

log "warming the page cache"
find "$DATA" -type f -print0 | xargs -0 -P "$NPROC" -n 1000 cat >/dev/null

log "sha256sum, one process at a time"
read -r SUM1 SUM1_CPU < <(timed_sh "find '$DATA' -type f -print0 | xargs -0 sha256sum")
log "sha256sum, -P $NPROC"
read -r SUMP SUMP_CPU < <(timed_sh "find '$DATA' -type f -print0 | xargs -0 -P $NPROC -n 500 sha256sum")

# The floor: a small C program that only reads and hashes the listed files (bench/hash-floor/hash-floor.c), built
# when a C compiler and OpenSSL's headers are there (Debian: gcc, libssl-dev; installed when root and missing).
FLOOR_BIN="$SET/hash-floor"
if ! [[ -f /usr/include/openssl/evp.h ]] && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  log "installing libssl-dev for the C floor"; apt-get install -y -qq libssl-dev >/dev/null 2>&1 || true
fi
FLOOR="skipped"
if command -v cc >/dev/null && cc -O2 -o "$FLOOR_BIN" "$REPO/bench/hash-floor/hash-floor.c" -lcrypto -lpthread 2>"$SET/floor-build.log"; then
  find "$DATA" -type f >"$SET/files.txt"
  floor_median() { # floor_median MODE → "wall_s cpu_s" (median by wall of REPEAT runs)
    local i; for ((i = 0; i < REPEAT; i++)); do timed_sh "'$FLOOR_BIN' $NPROC $1 '$SET/files.txt'"; done | sort -g -k1,1 |
      awk -v n="$REPEAT" 'NR == int((n + 1) / 2)'
  }
  log "C floor: read only, then read + SHA-256, $NPROC threads (median of $REPEAT)"
  read -r FREAD FREAD_CPU < <(floor_median 0)
  read -r FHASH FHASH_CPU < <(floor_median 1)
  FLOOR="done"
else
  log "no C floor (needs cc and OpenSSL headers): $(tail -n 1 "$SET/floor-build.log" 2>/dev/null)"
fi

log "Kiln, no stat cache, page cache warm (median of $REPEAT)"
read -r COLD COLD_CPU COLD_RSS COLD_HASH COLD_HASH_CPU COLD_READ COLD_HWM COLD_DIGEST < <(kiln_median)

DROP="skipped"
if [[ $(id -u) == 0 ]] && drop_caches; then
  log "Kiln, no stat cache, page cache dropped"
  read -r DISK DISK_CPU DISK_RSS DISK_HASH DISK_HASH_CPU DISK_READ DISK_HWM DISK_DIGEST < <(kiln_hash)
  drop_caches
  log "sha256sum -P $NPROC, page cache dropped"
  read -r SUMP_DISK SUMP_DISK_CPU < <(timed_sh "find '$DATA' -type f -print0 | xargs -0 -P $NPROC -n 500 sha256sum")
  DROP="done"
else
  log "not dropping the page cache (needs root and a writable /proc/sys/vm/drop_caches)"
fi

log "Kiln with the stat cache: one run to fill it, then the median of $REPEAT"
rm -f "$CACHE"
read -r FILL FILL_CPU FILL_RSS FILL_HASH FILL_HASH_CPU FILL_READ FILL_HWM FILL_DIGEST < <(kiln_hash --cache "$CACHE")
read -r WARM WARM_CPU WARM_RSS WARM_HASH WARM_HASH_CPU WARM_READ WARM_HWM WARM_DIGEST < <(kiln_median --cache "$CACHE")

[[ "$COLD_DIGEST" == "$WARM_DIGEST" && "$COLD_DIGEST" == "$FILL_DIGEST" ]] || { log "DIGESTS DIFFER: $COLD_DIGEST $FILL_DIGEST $WARM_DIGEST"; exit 1; }

row() { printf '%-50s %8s %7s %8s %8s %10s\n' "$@"; }
echo
echo "== Kiln tree hashing benchmark =="
echo "machine: $NPROC cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dataset: $ACTUAL_FILES files, $(awk -v b="$ACTUAL_BYTES" 'BEGIN { printf "%.3f GB", b / 1e9 }') in $DATA"
echo "tree digest: $COLD_DIGEST"
echo
row "measurement" "wall s" "GB/s" "CPU s" "GB/CPU-s" "peak RSS"
row "OpenSSL SHA-256, 1 MiB blocks, one core" - - - "$OSSL_1" -
row "  × $NPROC cores: the machine's limit" - "$OSSL_N" - - -
if [[ $FLOOR == done ]]; then
  row "C floor: open + read + close only, $NPROC threads" "$FREAD" "$(gbps "$FREAD")" "$FREAD_CPU" "$(gbps "$FREAD_CPU")" -
  row "C floor: read + OpenSSL SHA-256, $NPROC threads" "$FHASH" "$(gbps "$FHASH")" "$FHASH_CPU" "$(gbps "$FHASH_CPU")" -
fi
row "sha256sum (xargs, one process at a time)" "$SUM1" "$(gbps "$SUM1")" "$SUM1_CPU" "$(gbps "$SUM1_CPU")" -
row "sha256sum (xargs -P $NPROC)" "$SUMP" "$(gbps "$SUMP")" "$SUMP_CPU" "$(gbps "$SUMP_CPU")" -
row "Kiln, no stat cache, page cache warm (process)" "$COLD" "$(gbps "$COLD")" "$COLD_CPU" "$(gbps "$COLD_CPU")" "${COLD_RSS} kB"
row "  of which walk + read + SHA-256 (in process)" "$COLD_HASH" "$(gbps "$COLD_HASH")" "$COLD_HASH_CPU" "$(gbps "$COLD_HASH_CPU")" "${COLD_HWM} kB"
if [[ $DROP == done ]]; then
  row "Kiln, no stat cache, page cache dropped" "$DISK" "$(gbps "$DISK")" "$DISK_CPU" "$(gbps "$DISK_CPU")" "${DISK_RSS} kB"
  row "sha256sum (xargs -P $NPROC), page cache dropped" "$SUMP_DISK" "$(gbps "$SUMP_DISK")" "$SUMP_DISK_CPU" "$(gbps "$SUMP_DISK_CPU")" -
else
  row "Kiln, page cache dropped: skipped (not root, or not permitted)" - - - - -
fi
row "Kiln, first run with a stat cache (fills it)" "$FILL" "$(gbps "$FILL")" "$FILL_CPU" "$(gbps "$FILL_CPU")" "${FILL_RSS} kB"
row "Kiln, stat cache warm, nothing changed (process)" "$WARM" - "$WARM_CPU" - "${WARM_RSS} kB"
row "  of which walk + stat + lookups (in process)" "$WARM_HASH" - "$WARM_HASH_CPU" - "${WARM_HWM} kB"
echo "  file content read by the no-op run: $WARM_READ bytes"
echo
echo "ratios (> 1: Kiln is faster):"
echo "  Kiln vs sha256sum, one process         wall $(fdiv "$SUM1" "$COLD")×   CPU $(fdiv "$SUM1_CPU" "$COLD_CPU")×"
echo "  Kiln vs sha256sum -P $NPROC                wall $(fdiv "$SUMP" "$COLD")×   CPU $(fdiv "$SUMP_CPU" "$COLD_CPU")×"
echo "  Kiln vs the OpenSSL limit              wall $(fdiv "$(gbps "$COLD")" "$OSSL_N") of it (process), $(fdiv "$(gbps "$COLD_HASH")" "$OSSL_N") (in process);" \
     "per CPU-second $(fdiv "$(gbps "$COLD_CPU")" "$OSSL_1") (process), $(fdiv "$(gbps "$COLD_HASH_CPU")" "$OSSL_1") (in process)"
if [[ $DROP == done ]]; then
  echo "  Kiln vs sha256sum -P $NPROC, cold disk     wall $(fdiv "$SUMP_DISK" "$DISK")×"
fi
if [[ $FLOOR == done ]]; then
  echo "  C floor vs the OpenSSL limit          wall $(fdiv "$(gbps "$FHASH")" "$OSSL_N") of it;   per CPU-second $(fdiv "$(gbps "$FHASH_CPU")" "$OSSL_1")" \
       "(the kernel's share: reading alone costs $(fdiv "$FREAD_CPU" "$FHASH_CPU") of the floor's CPU)"
  echo "  Kiln vs the C floor                    wall $(fdiv "$FHASH" "$COLD_HASH") of its speed (in process), $(fdiv "$FHASH" "$COLD") (process);" \
       "per CPU-second $(fdiv "$FHASH_CPU" "$COLD_HASH_CPU") (in process)"
fi
echo "  stat-cache no-op vs full hash          wall $(fdiv "$COLD" "$WARM")×   CPU $(fdiv "$COLD_CPU" "$WARM_CPU")×"
