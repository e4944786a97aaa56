#!/usr/bin/env bash
# Packages the kiln CLI the two ways .NET programs are installed, and checks that each one starts:
#   artifacts/nupkg/kiln.<version>.nupkg   a .NET tool package (framework-dependent, any OS with the .NET 10 runtime):
#                                          dotnet tool install --global --add-source ./artifacts/nupkg kiln
#   artifacts/dist/kiln-<rid>              one self-contained executable for this machine's runtime (linux-x64 here),
#                                          ReadyToRun, no .NET needed where it runs (SQLite's native library inside;
#                                          it is unpacked once, under $DOTNET_BUNDLE_EXTRACT_BASE_DIR or ~/.net)
# Neither is trimmed: Docker.DotNet, YamlDotNet and System.Text.Json use reflection that trimming breaks.
# Builds go to artifacts/pack-obj (apart from the team's bin/obj). Usage: scripts/pack.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[pack] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
case $(uname -m) in
  x86_64) rid=linux-x64 ;;
  aarch64 | arm64) rid=linux-arm64 ;;
  *) die "no .NET runtime identifier known for machine type '$(uname -m)'" ;;
esac
csproj="$here/src/Kiln.Cli/Kiln.Cli.csproj"
obj="$here/artifacts/pack-obj"
logf="$here/artifacts/pack.log"
mkdir -p "$here/artifacts/nupkg" "$here/artifacts/dist"
: >"$logf"
run() { "$@" >>"$logf" 2>&1 || { tail -n 30 "$logf" >&2; die "'$*' failed (full log: artifacts/pack.log)"; }; }

log "the .NET tool package (dotnet pack) into artifacts/nupkg"
rm -f "$here"/artifacts/nupkg/kiln.*.nupkg
run dotnet pack "$csproj" -c Release --artifacts-path "$obj" -o "$here/artifacts/nupkg" --nologo
nupkg=$(ls "$here"/artifacts/nupkg/kiln.*.nupkg)
version=$(basename "$nupkg" .nupkg); version=${version#kiln.}

log "the self-contained single-file executable ($rid, ReadyToRun) into artifacts/dist"
tmp="$here/artifacts/dist/.kiln-$rid.tmp"
rm -rf "$tmp"
run dotnet publish "$csproj" -c Release -r "$rid" --self-contained -p:PublishSingleFile=true -p:PublishReadyToRun=true \
  -p:IncludeNativeLibrariesForSelfExtract=true -p:DebugType=none --artifacts-path "$obj" -o "$tmp" --nologo
mv -f "$tmp/kiln" "$here/artifacts/dist/kiln-$rid"
rm -rf "$tmp"

# Each one must start and say its version: the tool installed into a scratch tool path, the executable as it is.
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
run dotnet tool install --tool-path "$check/tools" --add-source "$here/artifacts/nupkg" --version "$version" kiln
tool_version=$("$check/tools/kiln" --version) || die "the installed tool does not start ($check/tools/kiln --version)"
exe_version=$(DOTNET_BUNDLE_EXTRACT_BASE_DIR="$check/extract" "$here/artifacts/dist/kiln-$rid" --version) \
  || die "artifacts/dist/kiln-$rid does not start"
log "ok: artifacts/nupkg/$(basename "$nupkg") (tool: kiln --version → $tool_version)"
log "ok: artifacts/dist/kiln-$rid, $(du -m "$here/artifacts/dist/kiln-$rid" | cut -f1) MB (kiln --version → $exe_version)"
