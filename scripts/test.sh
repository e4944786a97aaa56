#!/usr/bin/env bash
# README command 2: set up what the tests need (Docker Engine, restore), then run every test project,
# the integration tests against the real engine included. A missing engine fails the run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
# skopeo: the environment integration tests check that Kiln's image archives read as OCI/docker archives with it.
if ! command -v skopeo >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] installing skopeo (Debian package) for the environment integration tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends skopeo >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends skopeo >&2; }
  else
    echo "[test] warning: skopeo is missing and cannot be installed here (not root on Debian); the archive check will fail" >&2
  fi
fi
# promtool (Debian package prometheus): the serving tests check /metrics with 'promtool check metrics'.
if ! command -v promtool >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] installing prometheus (Debian package, for promtool) for the serving tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2; }
  else
    echo "[test] warning: promtool is missing and cannot be installed here (not root on Debian); the metrics check will fail" >&2
  fi
fi
# chromium (Debian package): kiln ui's browser tests drive it with Playwright (ExecutablePath /usr/bin/chromium; Playwright
# never downloads a browser). CI=true makes a missing chromium a test failure, not a skip.
if [[ ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] installing chromium (Debian package) for the kiln ui browser tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2; }
  else
    echo "[test] warning: chromium is missing and cannot be installed here (not root on Debian); the browser tests will fail in CI" >&2
  fi
fi
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
