# Kiln's stage executor inside a swarm task (bash; needs only coreutils, findutils and bash's /dev/tcp). It fetches the
# stage's inputs by digest from the registry, checks every byte (sha256sum), runs the command in /work, uploads every file
# of the declared output folders, and prints the digest of the list of what it uploaded as its last line:
#   KILN-OUTPUTS sha256:<hex>
# Environment: KILN_EXEC_REGISTRY (host:port), KILN_EXEC_REPO, KILN_EXEC_INPUTS (digest of the input list),
# KILN_EXEC_COMMAND (run with /bin/sh -c), KILN_EXEC_NETWORK (1: the command keeps the task's network), KILN_EXEC_USER
# (uid:gid the command runs as; empty: root). Input list lines: "F <digest> <mode> <absolute path>", "D <folder>",
# "O <output folder>", and (Kubernetes/Argo exports) "U <tag> - <absolute path>": the files at or below that path in the
# output list an upstream stage published under <tag> (waited for; each line checked; every byte checked by digest).
# KILN_EXEC_PUBLISH=<tag> (Kubernetes/Argo exports): also publish the output list under that tag, as an OCI manifest whose
# config is the list and whose layers are its blobs; a stage that fails (or is skipped: exit 125) publishes "X <exit code>".
#
# Only the executor talks to the network (to the registry). The command runs in a mount namespace of its own with a
# read-only root (its output folders and /tmp writable) and, without KILN_EXEC_NETWORK=1, in a network namespace of its
# own (a loopback, nothing else); both need the CAP_SYS_ADMIN the task was given, which the command never holds: setpriv
# drops it and NET_RAW from the bounding set (so no child can regain them) with no-new-privileges, and switches to the
# stage's user. Without unshare or setpriv in the image the stage is refused rather than run unisolated.
#
# KILN_EXEC_MODE (Kubernetes/Argo exports, whose pod is the sandbox instead of namespaces): unset or "all" is all of the
# above (the swarm's). "fetch" (the pod's init container) fetches and checks the inputs as above, into the pod's
# emptyDirs, and stops. "run" (the stage container: read-only root, the inputs mounted
# read-only, writable emptyDirs only at the output folders and /tmp, non-root, no capabilities, the network held to the
# registry by a NetworkPolicy) fetches only the input list (checked) for its output folders, runs the command as it is,
# without unshare or setpriv, and uploads and publishes the outputs as above.
set -euo pipefail
mode=${KILN_EXEC_MODE:-all}
host=${KILN_EXEC_REGISTRY%:*}
port=${KILN_EXEC_REGISTRY##*:}
repo=$KILN_EXEC_REPO
die() { echo "kiln-executor: $*" >&2; exit 97; }
[[ "$mode" == all || "$mode" == fetch || "$mode" == run ]] || die "KILN_EXEC_MODE must be all, fetch or run, not '$mode'"

# request METHOD PATH [FILE]: sends one HTTP/1.0 request (FILE as its body), leaves the status line in $status, the
# headers in $headers and fd 3 open at the body.
request() {
  exec 3<>"/dev/tcp/$host/$port" || die "cannot connect to the registry $KILN_EXEC_REGISTRY"
  if [[ -n "${3:-}" ]]; then
    printf '%s %s HTTP/1.0\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %s\r\n\r\n' "$1" "$2" "$KILN_EXEC_REGISTRY" "${req_type:-application/octet-stream}" "$(stat -c %s "$3")" >&3
    cat "$3" >&3
  else
    local accept=""
    [[ -z "${req_accept:-}" ]] || accept="Accept: $req_accept"$'\r\n'
    printf '%s %s HTTP/1.0\r\nHost: %s\r\n%sContent-Length: 0\r\n\r\n' "$1" "$2" "$KILN_EXEC_REGISTRY" "$accept" >&3
  fi
  IFS= read -r status <&3 || die "$1 $2: no answer"
  status=${status%$'\r'}
  headers=""
  local line
  while IFS= read -r line <&3; do
    line=${line%$'\r'}
    [[ -z "$line" ]] && break
    headers+="$line"$'\n'
  done
}

fetch() { # digest destination
  request GET "/v2/$repo/blobs/$1"
  [[ "$status" == *" 200 "* ]] || die "GET of blob $1: $status"
  cat <&3 >"$2"
  exec 3<&-
  [[ "sha256:$(sha256sum "$2" | cut -d' ' -f1)" == "$1" ]] || { rm -f "$2"; die "the registry served bytes for $1 that do not match it: refused"; }
}

upload() { # file -> prints its digest
  local d loc
  d="sha256:$(sha256sum "$1" | cut -d' ' -f1)"
  request HEAD "/v2/$repo/blobs/$d"; exec 3<&-
  if [[ "$status" != *" 200 "* ]]; then
    request POST "/v2/$repo/blobs/uploads/"; exec 3<&-
    [[ "$status" == *" 202 "* ]] || die "starting an upload: $status"
    loc=$(printf '%s' "$headers" | sed -n 's/^[Ll]ocation: *//p' | head -1)
    loc="/${loc#*://*/}"
    if [[ "$loc" == *\?* ]]; then loc+="&digest=$d"; else loc+="?digest=$d"; fi
    request PUT "$loc" "$1"; exec 3<&-
    [[ "$status" == *" 201 "* ]] || die "upload of $1: $status"
  fi
  printf '%s' "$d"
}

manifest_type=application/vnd.oci.image.manifest.v1+json

publish() { # list tag: the list (config) and every blob it names (layers) as an OCI manifest under tag
  local ld layers="" sep="" kind d mode path
  local -A seen=()
  ld=$(upload "$1") || exit 97
  while read -r kind d mode path; do
    [[ "$kind" == F && -z "${seen[$d]:-}" ]] || continue
    seen[$d]=1
    layers+="$sep{\"mediaType\":\"application/vnd.dev.kiln.blob.v1\",\"digest\":\"$d\",\"size\":$(stat -c %s "$path")}"; sep=,
  done <"$1"
  layers+="$sep{\"mediaType\":\"application/vnd.dev.kiln.outputs.v1\",\"digest\":\"$ld\",\"size\":$(stat -c %s "$1")}"
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.dev.kiln.outputs.v1","digest":"%s","size":%s},"layers":[%s]}' \
    "$manifest_type" "$ld" "$(stat -c %s "$1")" "$layers" >/tmp/kiln-exec/manifest
  req_type=$manifest_type request PUT "/v2/$repo/manifests/$2" /tmp/kiln-exec/manifest; exec 3<&-
  [[ "$status" == *" 201 "* ]] || die "publishing the output list under $2: $status"
}

resolve() { # tag destination: waits until tag names a manifest, then fetches (and checks) the output list it names
  local body ld
  while :; do
    req_accept=$manifest_type request GET "/v2/$repo/manifests/$1"
    if [[ "$status" == *" 200 "* ]]; then body=$(head -c 65536 <&3 | tr -d ' \t\r\n'); exec 3<&-; break; fi
    exec 3<&-
    [[ "$status" == *" 404 "* ]] || die "GET of the manifest $1: $status"
    sleep "${KILN_EXEC_POLL_SECONDS:-5}"
  done
  ld=$(printf '%s' "$body" | grep -o '"config":{[^}]*}' | grep -o 'sha256:[0-9a-f]\{64\}' | head -1) || true
  [[ -n "$ld" ]] || die "the manifest under $1 names no output list"
  fetch "$ld" "$2"
}

mkdir -p /tmp/kiln-exec
if [[ -n "${KILN_EXEC_PUBLISH:-}" ]]; then
  [[ "$KILN_EXEC_PUBLISH" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ ]] || die "KILN_EXEC_PUBLISH is not a tag: '$KILN_EXEC_PUBLISH'"
  # Whatever ends this stage without its outputs published (a failed command, a refused input, a skipped upstream) is
  # published as "X <exit code>", so that a dependent waiting for this tag is skipped instead of waiting for ever.
  published=0
  on_exit() {
    local rc=$?
    trap - EXIT
    if ((rc != 0 && published == 0)); then
      printf 'X %s\n' "$rc" >/tmp/kiln-exec/failed
      publish /tmp/kiln-exec/failed "$KILN_EXEC_PUBLISH" || true
    fi
    exit "$rc"
  }
  trap on_exit EXIT
fi
fetch "$KILN_EXEC_INPUTS" /tmp/kiln-exec/inputs
outs=()
while read -r kind a b c; do
  if [[ "$mode" == run ]]; then # the init container fetched the files: only the output folders matter here
    [[ "$kind" == O ]] && outs+=("$a")
    continue
  fi
  case "$kind" in
    F) mkdir -p "$(dirname "$c")"; fetch "$a" "$c"; chmod "$b" "$c" ;;
    D) mkdir -p "$a" ;;
    O) mkdir -p "$a"; outs+=("$a") ;;
    U)
      resolve "$a" /tmp/kiln-exec/upstream
      if x=$(grep -m1 '^X ' /tmp/kiln-exec/upstream); then
        echo "kiln-executor: upstream stage ($a) ended with ${x#X }: skipped" >&2
        exit 125
      fi
      found=0
      while read -r uk ud um up; do
        [[ "$uk" == F && ( "$up" == "$c" || "$up" == "$c"/* ) ]] || continue
        [[ "$ud" =~ ^sha256:[0-9a-f]{64}$ && "$um" =~ ^(644|755)$ ]] || die "the output list under $a has a malformed line for $up"
        [[ "/$up/" != */../* && "/$up/" != */./* && "$up" != *//* ]] || die "the output list under $a names an unsafe path '$up'"
        mkdir -p "$(dirname "$up")"; fetch "$ud" "$up"
        if [[ "$um" == 755 ]]; then chmod 555 "$up"; else chmod 444 "$up"; fi
        found=1
      done </tmp/kiln-exec/upstream
      ((found)) || die "the upstream stage published nothing at $c (tag $a)"
      ;;
  esac
done </tmp/kiln-exec/inputs
[[ "$mode" != fetch ]] || exit 0

sandbox=() # in "run" mode the pod is the sandbox: no namespaces to make, no privileges to drop
if [[ "$mode" != run ]]; then
# The command's sandbox. unshare: a mount namespace of its own, in which the output folders are bound onto themselves and
# then the root is remounted read-only (so only the outputs, /tmp and /dev stay writable, as for a local stage), and,
# without KILN_EXEC_NETWORK=1, a network namespace of its own. Then setpriv drops the capabilities and switches user.
command -v unshare >/dev/null || die "the image has no unshare (util-linux): the stage cannot be isolated; add util-linux to the environment"
command -v setpriv >/dev/null || die "the image has no setpriv (util-linux): the stage's command cannot be started with its privileges dropped; add util-linux to the environment"
namespaces=(--mount)
[[ "${KILN_EXEC_NETWORK:-0}" == 1 ]] || namespaces+=(--net)
privileges=(setpriv --no-new-privs --bounding-set -sys_admin,-net_raw)
if [[ -n "${KILN_EXEC_USER:-}" ]]; then
  uid=${KILN_EXEC_USER%%:*}; gid=${KILN_EXEC_USER#*:}
  [[ "$uid" =~ ^[0-9]+$ && "$gid" =~ ^[0-9]+$ ]] || die "KILN_EXEC_USER must be uid:gid, not '$KILN_EXEC_USER'"
  privileges+=(--reuid "$uid" --regid "$gid" --clear-groups)
  for o in "${outs[@]}"; do chown "$uid:$gid" "$o"; done
fi
privileges+=(--)
# Run inside the new namespaces: N output folders, then the command line. A node whose container profile forbids mount
# (AppArmor's docker-default) keeps the root writable: said in the stage's log; what the stage writes outside its output
# folders is never uploaded either way.
read_only_root='
  n=$1; shift; bound=1
  for ((i = 0; i < n; i++)); do mount --bind "$1" "$1" 2>/dev/null || bound=0; shift; done
  if ((bound == 0)) || ! mount -o remount,bind,ro / 2>/dev/null; then
    echo "kiln-executor: this node does not allow mounts in a container: the root file system stays writable for this stage" >&2
  fi
  exec "$@"'

sandbox=(unshare "${namespaces[@]}" -- /bin/bash -c "$read_only_root" kiln-sandbox "${#outs[@]}" "${outs[@]}" "${privileges[@]}")
# The working folder exists even for a stage with no inputs and no outputs (as a local stage's /work does).
mkdir -p "${KILN_EXEC_WORKDIR:-/work}"
fi

set +e
( cd "${KILN_EXEC_WORKDIR:-/work}" && "${sandbox[@]}" /bin/sh -c "$KILN_EXEC_COMMAND" )
rc=$?
set -e
if [[ $rc -ne 0 ]]; then exit "$rc"; fi

: >/tmp/kiln-exec/outputs
for o in "${outs[@]}"; do
  while IFS= read -r -d '' f; do
    [[ "$f" != *$'\n'* ]] || die "output file name with a line break: not supported"
    mode=644; [[ -x "$f" ]] && mode=755
    d=$(upload "$f") || exit 97
    printf 'F %s %s %s\n' "$d" "$mode" "$f" >>/tmp/kiln-exec/outputs
  done < <(find "$o" -type f -print0)
  while IFS= read -r -d '' l; do
    die "output $l is a symbolic link: not supported on the swarm yet"
  done < <(find "$o" -type l -print0)
done
d=$(upload /tmp/kiln-exec/outputs) || exit 97
if [[ -n "${KILN_EXEC_PUBLISH:-}" ]]; then
  publish /tmp/kiln-exec/outputs "$KILN_EXEC_PUBLISH"
  published=1
fi
echo "KILN-OUTPUTS $d"
