#!/usr/bin/env bash
# Idempotent set-up: a Docker Engine (installed and started when none answers and we are root on Debian),
# mmdebstrap, the NuGet restore, the kiln CLI (and its inference server) published to artifacts/kiln and linked as /usr/local/bin/kiln
# (when root; otherwise use scripts/kiln). Safe to run again: it installs nothing that is already there.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[setup] %s\n' "$*" >&2; }

if ! command -v dotnet >/dev/null 2>&1; then
  log "error: the .NET SDK (dotnet, 10.0) is not on PATH; install it first (https://dot.net), then run this again"
  exit 1
fi

bash "$here/scripts/setup-engine.sh"

log "restoring NuGet packages and publishing the kiln CLI to artifacts/kiln"
dotnet restore "$here/Kiln.sln" --nologo -v quiet >&2
dotnet publish "$here/src/Kiln.Cli/Kiln.Cli.csproj" -c Release -o "$here/artifacts/kiln" --nologo -v quiet >&2
# kiln serve puts Kiln's inference server into serving images: self-contained, since environment images have no .NET.
log "publishing the inference server (self-contained linux-x64) to artifacts/kiln/kiln-serve"
dotnet publish "$here/src/Kiln.Serving/Kiln.Serving.csproj" -c Release -r linux-x64 --self-contained -o "$here/artifacts/kiln/kiln-serve" --nologo -v quiet >&2

if [[ $(id -u) -eq 0 && -d /usr/local/bin ]]; then
  ln -sf "$here/scripts/kiln" /usr/local/bin/kiln
  log "kiln is on PATH (/usr/local/bin/kiln → scripts/kiln)"
else
  log "not root: use $here/scripts/kiln (or add $here/scripts to PATH)"
fi
