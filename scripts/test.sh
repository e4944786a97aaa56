#!/usr/bin/env bash
# README command 2: set up what the tests need (Docker Engine, restore), then run every test project,
# the integration tests against the real engine included. A missing engine fails the run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
# need COMMAND PACKAGE FOR CONSEQUENCE: installs a Debian package the tests use when its command is missing (root on Debian).
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] installing $2 (Debian package) for $3" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$2" >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$2" >&2; }
  else
    echo "[test] warning: $1 is missing and cannot be installed here (not root on Debian); $4" >&2
  fi
}
# skopeo: the environment integration tests check that Kiln's image archives read as OCI/docker archives with it.
need skopeo skopeo "the environment integration tests" "the archive check will fail"
# wrk: the serving switch test promotes and rolls back a served model under wrk load on 127.0.0.1.
need wrk wrk "the serving switch test" "the serving switch test will fail"
# prometheus (promtool and the server): the serving tests check /metrics with 'promtool check metrics' and have a real
# Prometheus server scrape the served model.
need promtool prometheus "the serving tests" "the metrics checks will fail"
# docker-compose (Debian package, 1.29): the orchestration integration tests run 'kiln export compose' files with it.
need docker-compose docker-compose "the orchestration integration tests" "the compose export tests will fail"
# chromium: kiln ui's browser tests drive it with Playwright (ExecutablePath /usr/bin/chromium; Playwright never
# downloads a browser). CI=true makes a missing chromium a test failure, not a skip.
need chromium chromium "the kiln ui browser tests" "the browser tests will fail"
log=$(mktemp)
set +e
dotnet test "$here/Kiln.sln" --nologo "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line over all test projects: 'N passed, N failed, N skipped'.
awk '/(Passed|Failed)! +- +Failed: /{
       for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) }
     } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
rm -f "$log"
exit "$rc"
