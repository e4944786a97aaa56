#!/usr/bin/env bash
# Removes the test swarm scripts/swarm-up.sh made (KILN_SWARM_ID, default 0): services and containers on its nodes,
# its daemons (and their containerd and shims), mounts under its folders, namespaces, veths, bridge, the FORWARD rule,
# the registry processes and every folder. Safe to run twice and after a half-finished swarm-up.sh. Touches nothing
# else: only processes whose pid it recorded (and their children), only names with its own prefix.
set -uo pipefail

id=${KILN_SWARM_ID:-0}
[[ "$id" =~ ^[0-9]$ ]] || { echo "KILN_SWARM_ID must be one digit 0-9, not '$id'" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "$0 needs root" >&2; exit 2; }
br=ksw$id
state=/var/lib/kiln-swarm-$id
run=/run/kiln-swarm-$id
t0=$(date +%s.%N)
log() { printf '[swarm-down] %s\n' "$*" >&2; }

descendants() { # pid -> its descendants
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}
stop_all() { # pids: TERM them all at once, give them 2 s together, then KILL what is left. A daemon's own clean
  # shutdown (leaving the swarm's raft) takes ~9 s and buys nothing here: its whole state is deleted next.
  local all="$*" p alive
  [[ -n "${all// /}" ]] || return 0
  kill -TERM $all 2>/dev/null
  for _ in $(seq 1 20); do
    alive=0
    for p in $all; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  kill -KILL $all 2>/dev/null
  sleep 0.2
}

# 1. Leave nothing running on the nodes: the swarm's services first (the manager), then every container per node.
if [[ -d $run ]]; then
  mgr=unix://$run/n0/docker.sock
  if [[ -S $run/n0/docker.sock ]]; then
    svcs=$(timeout 10 docker -H "$mgr" service ls -q 2>/dev/null)
    [[ -n "$svcs" ]] && timeout 20 docker -H "$mgr" service rm $svcs >/dev/null 2>&1
  fi
  for sock in "$run"/n*/docker.sock; do
    [[ -S $sock ]] || continue
    cs=$(timeout 10 docker -H "unix://$sock" ps -aq 2>/dev/null)
    [[ -n "$cs" ]] && timeout 30 docker -H "unix://$sock" rm -f $cs >/dev/null 2>&1
  done
  # 2. The daemons (by the pid they wrote) with their containerd and shims, and the registries: all together.
  pids=""
  for f in "$run"/n*/dockerd.pid "$run"/registry-*.pid; do
    pid=$(cat "$f" 2>/dev/null) || continue
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && pids+=" $pid $(descendants "$pid" | tr '\n' ' ')"
  done
  # Shims re-parent to init: find them by our exec-root in their command line (ours only).
  pids+=" $(pgrep -f "$run/n[0-9]+/exec" 2>/dev/null | tr '\n' ' ')"
  stop_all $pids
fi

# 4. Mounts under our folders (overlay layers, netns bind mounts of the daemons), deepest first.
for root in "$run" "$state"; do
  awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
done

# 5. Namespaces (their veth ends go with them), host veth ends, the bridge, the FORWARD rule.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^ksw$id-n[0-9]+$"); do
  ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"
done
for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^ksw$id-[hp][0-9]+$"); do
  ip link del "$l" 2>/dev/null
done
ip link show "$br" >/dev/null 2>&1 && ip link del "$br"
while iptables -C FORWARD -i "$br" -o "$br" -m comment --comment "kiln-swarm-$id" -j ACCEPT 2>/dev/null; do
  iptables -D FORWARD -i "$br" -o "$br" -m comment --comment "kiln-swarm-$id" -j ACCEPT
done
# The daemons' cgroups (cgroupfs driver: one folder per controller).
for cg in /sys/fs/cgroup/*/kiln-swarm-"$id"-n*; do
  [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
done

# 6. Folders.
rm -rf "$run" "$state"

left=""
ip link show "$br" >/dev/null 2>&1 && left+=" bridge $br;"
ip netns list 2>/dev/null | grep -qE "^ksw$id-n" && left+=" namespaces;"
pgrep -f "kiln-swarm-$id/" >/dev/null 2>&1 && left+=" processes $(pgrep -f "kiln-swarm-$id/" | tr '\n' ' ');"
[[ -e $run || -e $state ]] && left+=" folders;"
if [[ -n "$left" ]]; then
  log "left behind:$left"
  exit 1
fi
log "test swarm $id removed in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s"
