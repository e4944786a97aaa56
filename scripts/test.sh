#!/usr/bin/env bash
# README command 2: set up what the tests need (Docker Engine, restore), then run every test project,
# the integration tests against the real engine included. A missing engine fails the run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
# need TOOL PACKAGE WHAT: installs a Debian package when its tool is missing (as root, with apt-get), else warns.
need() {
  local tool=$1 package=$2 what=$3
  if command -v "$tool" >/dev/null 2>&1 || [[ -x $tool ]]; then return 0; fi
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] installing $package (Debian package) for $what" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package" >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package" >&2; }
  else
    echo "[test] warning: $tool is missing and cannot be installed here (not root on Debian); $what will fail" >&2
  fi
}
# skopeo: the environment integration tests check that Kiln's image archives read as OCI/docker archives with it.
need skopeo skopeo "the environment integration tests (archive check)"
# promtool (Debian package prometheus): the serving tests check /metrics with 'promtool check metrics'.
need promtool prometheus "the serving tests (metrics check)"
# chromium: kiln ui's browser tests drive it with Playwright (ExecutablePath /usr/bin/chromium; Playwright never
# downloads a browser). CI=true makes a missing chromium a test failure, not a skip.
need /usr/bin/chromium chromium "the kiln ui browser tests"
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
