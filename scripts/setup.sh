#!/usr/bin/env bash
# Idempotent set-up: a Docker Engine (installed and started when none answers and we are root on Debian),
# mmdebstrap, the NuGet restore, the kiln CLI published to artifacts/kiln (a self-contained ReadyToRun executable;
# published again only when its sources changed: scripts/publish-cli.sh) and linked as /usr/local/bin/kiln (when
# root; otherwise add artifacts/kiln to PATH), and Kiln's inference server (for kiln serve) to artifacts/kiln-serve.
# Safe to run again: it installs nothing that is already there.
# KILN_BIN_DIR names another folder for the kiln link (default /usr/local/bin).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[setup] %s\n' "$*" >&2; }

if ! command -v dotnet >/dev/null 2>&1; then
  log "error: the .NET SDK (dotnet, 10.0) is not on PATH; install it first (https://dot.net), then run this again"
  exit 1
fi

bash "$here/scripts/setup-engine.sh"

log "restoring NuGet packages"
dotnet restore "$here/Kiln.sln" --nologo -v quiet >&2
bash "$here/scripts/publish-cli.sh"
# kiln serve puts Kiln's inference server into serving images: self-contained, since environment images have no .NET.
log "publishing the inference server (self-contained linux-x64) to artifacts/kiln-serve"
dotnet publish "$here/src/Kiln.Serving/Kiln.Serving.csproj" -c Release -r linux-x64 --self-contained -o "$here/artifacts/kiln-serve" --nologo -v quiet >&2

bin=${KILN_BIN_DIR:-/usr/local/bin}
if [[ -n ${KILN_BIN_DIR:-} || ( $(id -u) -eq 0 && -d $bin ) ]]; then
  mkdir -p "$bin"
  ln -sfn "$here/artifacts/kiln/kiln" "$bin/kiln.new" && mv -T "$bin/kiln.new" "$bin/kiln"
  log "kiln is on PATH ($bin/kiln → artifacts/kiln/kiln)"
else
  log "not root: add $here/artifacts/kiln to PATH (or link $here/artifacts/kiln/kiln into a folder on it)"
fi
