# Kiln's stage executor inside a swarm task (bash; needs only coreutils, findutils and bash's /dev/tcp). It fetches the
# stage's inputs by digest from the registry, checks every byte (sha256sum), runs the command in /work, uploads every file
# of the declared output folders, and prints the digest of the list of what it uploaded as its last line:
#   KILN-OUTPUTS sha256:<hex>
# Environment: KILN_EXEC_REGISTRY (host:port), KILN_EXEC_REPO, KILN_EXEC_INPUTS (digest of the input list),
# KILN_EXEC_COMMAND (run with /bin/sh -c), KILN_EXEC_NETWORK (1: the command keeps the task's network), KILN_EXEC_USER
# (uid:gid the command runs as; empty: root). Input list lines: "F <digest> <mode> <absolute path>", "O <output folder>".
#
# Only the executor talks to the network (to the registry). The command runs in a mount namespace of its own with a
# read-only root (its output folders and /tmp writable) and, without KILN_EXEC_NETWORK=1, in a network namespace of its
# own (a loopback, nothing else); both need the CAP_SYS_ADMIN the task was given, which the command never holds: setpriv
# drops it and NET_RAW from the bounding set (so no child can regain them) with no-new-privileges, and switches to the
# stage's user. Without unshare or setpriv in the image the stage is refused rather than run unisolated.
set -euo pipefail
host=${KILN_EXEC_REGISTRY%:*}
port=${KILN_EXEC_REGISTRY##*:}
repo=$KILN_EXEC_REPO
die() { echo "kiln-executor: $*" >&2; exit 97; }

# request METHOD PATH [FILE]: sends one HTTP/1.0 request (FILE as its body), leaves the status line in $status, the
# headers in $headers and fd 3 open at the body.
request() {
  exec 3<>"/dev/tcp/$host/$port" || die "cannot connect to the registry $KILN_EXEC_REGISTRY"
  if [[ -n "${3:-}" ]]; then
    printf '%s %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %s\r\n\r\n' "$1" "$2" "$KILN_EXEC_REGISTRY" "$(stat -c %s "$3")" >&3
    cat "$3" >&3
  else
    printf '%s %s HTTP/1.0\r\nHost: %s\r\nContent-Length: 0\r\n\r\n' "$1" "$2" "$KILN_EXEC_REGISTRY" >&3
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

mkdir -p /tmp/kiln-exec
fetch "$KILN_EXEC_INPUTS" /tmp/kiln-exec/inputs
outs=()
while read -r kind a b c; do
  case "$kind" in
    F) mkdir -p "$(dirname "$c")"; fetch "$a" "$c"; chmod "$b" "$c" ;;
    D) mkdir -p "$a" ;;
    O) mkdir -p "$a"; outs+=("$a") ;;
  esac
done </tmp/kiln-exec/inputs

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

# The working folder exists even for a stage with no inputs and no outputs (as a local stage's /work does).
mkdir -p "${KILN_EXEC_WORKDIR:-/work}"
set +e
( cd "${KILN_EXEC_WORKDIR:-/work}" && unshare "${namespaces[@]}" -- /bin/bash -c "$read_only_root" kiln-sandbox "${#outs[@]}" "${outs[@]}" \
    "${privileges[@]}" /bin/sh -c "$KILN_EXEC_COMMAND" )
rc=$?
set -e
if [[ $rc -ne 0 ]]; then exit "$rc"; fi

: >/tmp/kiln-exec/outputs
for o in "${outs[@]}"; do
  while IFS= read -r -d '' f; do
    mode=644; [[ -x "$f" ]] && mode=755
    d=$(upload "$f") || exit 97
    printf 'F %s %s %s\n' "$d" "$mode" "$f" >>/tmp/kiln-exec/outputs
  done < <(find "$o" -type f -print0)
  while IFS= read -r -d '' l; do
    die "output $l is a symbolic link: not supported on the swarm yet"
  done < <(find "$o" -type l -print0)
done
d=$(upload /tmp/kiln-exec/outputs) || exit 97
echo "KILN-OUTPUTS $d"
