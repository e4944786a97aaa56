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
# Offline rebuilds index the package closure with dpkg-scanpackages (kiln env build/verify --offline).
need dpkg-scanpackages dpkg-dev "the offline rebuild test" "the closure acceptance test will fail"
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
# postgresql: the team ledger tests (Kiln.Ledger.IntegrationTests) initdb and start a throwaway server from
# /usr/lib/postgresql/<version>/bin on 127.0.0.1 (pg_ctlcluster, from postgresql-common, marks the package installed).
need pg_ctlcluster postgresql "the team ledger tests" "the PostgreSQL ledger tests will fail"
# node and npm: Kiln.Orchestration.Tests checks the k8s/argo exports with kubernetes-models' validators of the official
# Kubernetes schemas (Schemas/kubernetes-models/check.mjs), installed here by npm ci from its package-lock.json.
need node nodejs "the official Kubernetes schema checks" "the schema tests will fail"
need npm npm "the official Kubernetes schema checks" "the schema tests will fail"
if ! (cd "$here/tests/Kiln.Orchestration.Tests/Schemas/kubernetes-models" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2); then
  echo "[test] warning: npm ci of kubernetes-models failed; the official Kubernetes schema tests will fail" >&2
fi
# The test projects run in two lanes at once (this machine has 2 cores, and most integration tests wait on the engine,
# the Debian mirror or a server rather than compute): one build first, then the unit projects and the integration
# projects spread over the lanes, heaviest first, so the whole suite stays well under CI's limit. Each line of output
# is prefixed with its lane ([a] or [b]); each project's time is printed; the closing line counts every project. Arguments (e.g. --filter X) go to every project.
log=$(mktemp -d)
set +e
dotnet build "$here/Kiln.sln" --nologo -v q -clp:ErrorsOnly 2>&1 | tee "$log/build"
rc=${PIPESTATUS[0]}
set -e
if [[ $rc -ne 0 ]]; then rm -rf "$log"; exit "$rc"; fi
# Lane a: the environment tests (about 30–40 minutes of Debian bootstraps on their own, the closure's offline rebuild
# included); lane b: everything else.
lane_a=(Kiln.Environments.IntegrationTests)
lane_b=(Kiln.Core.Tests Kiln.Content.Tests Kiln.Engine.Tests Kiln.Environments.Tests Kiln.Export.Tests Kiln.Ledger.Tests Kiln.Ledger.IntegrationTests
        Kiln.Monitoring.Tests Kiln.Orchestration.Tests Kiln.Serving.Tests Kiln.Ui.Tests Kiln.Swarm.Tests
        Kiln.IntegrationTests Kiln.Swarm.IntegrationTests Kiln.Monitoring.IntegrationTests Kiln.Orchestration.IntegrationTests
        Kiln.Export.IntegrationTests Kiln.SecurityTests Kiln.Ui.BrowserTests Kiln.Remote.IntegrationTests)
# Every test project of the solution must be in a lane: a new one that is not fails the run here, never silently skipped.
for project in $(grep -o 'tests\\[A-Za-z.]*\\' "$here/Kiln.sln" | tr -d '\\' | sed 's/^tests//' | sort -u); do
  if [[ " ${lane_a[*]} ${lane_b[*]} " != *" $project "* ]]; then
    echo "[test] $project is in Kiln.sln but in no lane of scripts/test.sh: add it to lane_a or lane_b" >&2
    rm -rf "$log"; exit 1
  fi
done
run_lane() { # NAME PROJECT...
  local name=$1 status=0; shift
  for project in "$@"; do
    local started=$SECONDS
    dotnet test "$here/tests/$project" --no-build --nologo "${test_args[@]}" 2>&1 | tee -a "$log/$name" | sed -u "s/^/[$name] /"
    [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
    echo "[test] $project: $((SECONDS - started)) s" | tee -a "$log/$name"
  done
  return "$status"
}
test_args=("$@")
set +e
run_lane a "${lane_a[@]}" & pid_a=$!
run_lane b "${lane_b[@]}" & pid_b=$!
wait "$pid_a"; rc_a=$?
wait "$pid_b"; rc_b=$?
set -e
rc=$(( rc_a != 0 || rc_b != 0 ))
# One closing line over all test projects: 'N passed, N failed, N skipped'.
cat "$log/a" "$log/b" | awk '/(Passed|Failed)! +- +Failed: /{
       for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) }
     } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }'
rm -rf "$log"
exit "$rc"
