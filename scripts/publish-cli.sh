#!/usr/bin/env bash
# Publishes the kiln CLI once per state of its sources, to artifacts/kiln/ (a link to artifacts/kiln-builds/<stamp>/).
#
#   scripts/publish-cli.sh            publish when the sources changed since the last publish (else say so and stop)
#   scripts/publish-cli.sh --quiet    the same, silent when nothing is to be done (the development wrapper scripts/kiln)
#   scripts/publish-cli.sh --stamp    print the sources' stamp and the published one, and exit 0 when they agree
#
# Whether to publish is decided by a content stamp, never by file times: the SHA-256 of the sorted list of
# (path, SHA-256 of contents) of every file under src/ except bin/ and obj/ (and editor swap files), of the
# Directory.*.props/targets, global.json and NuGet.config at the top, and of this script (it holds the publish options).
# A build writes only under bin/ and obj/, so building or testing never makes the CLI stale; an edit does, even one
# that restores an older time. The stamp is taken before publishing and stored beside the executable only when the
# publish succeeded, so an edit made during a publish is seen by the next call.
#
# What is published: a self-contained single-file executable for this machine's runtime (linux-x64 or linux-arm64),
# ReadyToRun (precompiled: no JIT of Kiln's code at start), not trimmed (Docker.DotNet, YamlDotNet and System.Text.Json
# use reflection that trimming breaks). KILN_PUBLISH=framework-dependent publishes an apphost + kiln.dll that uses
# the installed .NET runtime instead (smaller; needs the runtime at run time). The new build is made in its own folder
# and then swapped in with one rename of the artifacts/kiln link, so a kiln that is running or starting meanwhile
# never sees half a build; the previous build is kept (a process started from it may still be running), older ones go.
# Publishes are serialised with a lock (two callers at once publish once).
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
artifacts="$here/artifacts"
link="$artifacts/kiln"
mode=${KILN_PUBLISH:-single-file}
quiet=false
case ${1:-} in
  --quiet) quiet=true ;;
  --stamp | "") ;;
  *) echo "usage: scripts/publish-cli.sh [--quiet | --stamp]" >&2; exit 64 ;;
esac
log() { $quiet || printf '[publish] %s\n' "$*" >&2; }

# source_stamp: the content stamp of everything the CLI is built from (see above), plus the publish mode.
source_stamp() {
  (
    cd "$here"
    {
      find src \( -name bin -o -name obj \) -prune -o -type f ! -name '*.swp' ! -name '*~' ! -name '.#*' -print0
      find . -maxdepth 1 -type f \( -name 'Directory.*.props' -o -name 'Directory.*.targets' -o -name global.json -o -iname nuget.config \) -print0
      printf '%s\0' scripts/publish-cli.sh
    } | LC_ALL=C sort -z | xargs -0 sha256sum
    echo "mode $mode"
  ) | sha256sum | cut -c1-64
}

case $(uname -m) in
  x86_64) rid=linux-x64 ;;
  aarch64 | arm64) rid=linux-arm64 ;;
  *) echo "[publish] error: no .NET runtime identifier known for machine type '$(uname -m)'; publish by hand with 'dotnet publish src/Kiln.Cli -r RID'" >&2; exit 1 ;;
esac

published_stamp() { cat "$link/.source-stamp" 2>/dev/null || true; }
up_to_date() { [[ $(published_stamp) == "$1" && -x $link/kiln ]]; }

stamp=$(source_stamp)
if [[ ${1:-} == --stamp ]]; then
  echo "sources   $stamp"
  echo "published $(published_stamp)"
  up_to_date "$stamp"
  exit
fi
if up_to_date "$stamp"; then
  log "the kiln CLI in artifacts/kiln is up to date with the sources (stamp ${stamp:0:12})"
  exit 0
fi

mkdir -p "$artifacts/kiln-builds"
exec 9>"$artifacts/.publish.lock"
flock 9
stamp=$(source_stamp) # another caller may have published while we waited for the lock
if up_to_date "$stamp"; then exit 0; fi

out="$artifacts/kiln-builds/${stamp:0:16}"
rm -rf "$out"
case $mode in
  single-file) opts=(--self-contained -p:PublishSingleFile=true) ;;
  framework-dependent) opts=(--no-self-contained) ;;
  *) echo "[publish] error: KILN_PUBLISH=$mode: expected single-file or framework-dependent" >&2; exit 64 ;;
esac
printf '[kiln] building the CLI (dotnet publish, %s, %s, ReadyToRun) into %s ...\n' "$mode" "$rid" "${out#"$here"/}" >&2
# bin/obj of this publish are kept apart (artifacts/kiln-obj) so that it neither races with nor changes the
# team's Debug builds and test runs in src/*/obj.
if ! dotnet publish "$here/src/Kiln.Cli/Kiln.Cli.csproj" -c Release -r "$rid" "${opts[@]}" -p:PublishReadyToRun=true \
     --artifacts-path "$artifacts/kiln-obj" -o "$out" --nologo -v quiet >"$artifacts/kiln-publish.log" 2>&1; then
  tail -n 30 "$artifacts/kiln-publish.log" >&2
  echo "[publish] error: 'dotnet publish' of src/Kiln.Cli failed (full log: artifacts/kiln-publish.log); artifacts/kiln is unchanged" >&2
  rm -rf "$out"
  exit 1
fi
rm -f "$out"/*.pdb
echo "$stamp" >"$out/.source-stamp"

previous=$(readlink "$link" 2>/dev/null || true)
[[ -d $link && ! -L $link ]] && rm -rf "$link" # a plain folder left by an older set-up
ln -sfn "kiln-builds/${stamp:0:16}" "$link.new"
mv -T "$link.new" "$link"
for old in "$artifacts"/kiln-builds/*; do
  case $old in "$out" | "$artifacts/${previous:-none}") ;; *) rm -rf "$old" ;; esac
done
log "published the kiln CLI to artifacts/kiln/kiln (stamp ${stamp:0:12})"
