#!/usr/bin/env bash
# A test Docker Swarm on this one machine: N dockerd instances (node 0 = manager, the rest workers), each in its own
# network namespace with its own data-root, exec-root, pidfile, socket and cgroup parent, joined by a bridge; plus
# Debian's docker-registry (the CNCF distribution registry) reachable from every node and from the host.
#
#   sudo scripts/swarm-up.sh 3        # manager + 2 workers
#   source /run/kiln-swarm-0/env      # KILN_SWARM_MANAGER (DOCKER_HOST form), KILN_SWARM_REGISTRY, ...
#   bash /run/kiln-swarm-0/nI/start.sh   # starts node I's dockerd again after it was killed (it rejoins the swarm)
#   sudo scripts/swarm-down.sh        # removes everything this script made
#
# Pitfalls this avoids (measured on this machine kind): `ip netns exec` remounts /sys and dockerd dies ("Devices
# cgroup isn't mounted"), so each daemon is started with `nsenter --net=…`; every node has the same hostname, so
# nodes carry a label `kiln.node=nodeI` to place by; the kernel has no IPVS (use --endpoint-mode dnsrr, publish no
# ports); the host's FORWARD policy is DROP (the main dockerd) and bridged frames pass iptables, so one ACCEPT rule
# for our own bridge is added (and removed by swarm-down.sh).
#
# KILN_SWARM_ID (0-9, default 0) keeps several test swarms apart: bridge ksw<ID>, subnet 10.213.<ID>.0/24,
# namespaces ksw<ID>-n<I>, state under /var/lib/kiln-swarm-<ID> and /run/kiln-swarm-<ID>, registry port 5213+<ID>.
# The main engine on /var/run/docker.sock is never touched.
#
# KILN_SWARM_NODE_RESOURCES="I:KIND=VALUE[,I:KIND=VALUE…]" makes node I's dockerd advertise swarm generic resources
# (dockerd --node-generic-resource; daemon.json "node-generic-resources"), e.g. "2:NVIDIA-GPU=2" for a worker with two
# GPUs (a count; a GPU UUID per entry names them). Nothing checks that the GPUs exist: the scheduler places by it only.
set -euo pipefail

n=${1:-3}
[[ "$n" =~ ^[1-9]$ ]] || { echo "usage: $0 N   (1-9 nodes: one manager, N-1 workers)" >&2; exit 2; }
id=${KILN_SWARM_ID:-0}
[[ "$id" =~ ^[0-9]$ ]] || { echo "KILN_SWARM_ID must be one digit 0-9, not '$id'" >&2; exit 2; }
resources=${KILN_SWARM_NODE_RESOURCES:-}
if [[ -n "$resources" ]]; then
  IFS=, read -ra items <<<"$resources"
  for item in "${items[@]}"; do
    [[ "$item" =~ ^[0-9]:[A-Za-z][A-Za-z0-9_-]*=[A-Za-z0-9_.-]+$ ]] && ((${item%%:*} < n)) ||
      { echo "KILN_SWARM_NODE_RESOURCES: '$item' is not I:KIND=VALUE with a node I below $n (e.g. 2:NVIDIA-GPU=2)" >&2; exit 2; }
  done
fi
[[ $(id -u) -eq 0 ]] || { echo "$0 needs root (network namespaces, dockerd)" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
br=ksw$id
net=10.213.$id
hostip=$net.1
port=$((5213 + id))
state=/var/lib/kiln-swarm-$id
run=/run/kiln-swarm-$id
t0=$(date +%s.%N)

log() { printf '[swarm-up] %s\n' "$*" >&2; }
fail() { log "error: $*"; log "tearing down what was started"; bash "$here/swarm-down.sh" >&2 || true; exit 1; }

if [[ -e $run/env ]] || ip link show "$br" >/dev/null 2>&1; then
  echo "a test swarm with KILN_SWARM_ID=$id is already up (or left over): run scripts/swarm-down.sh first" >&2
  exit 3
fi
for tool in ip nsenter dockerd docker iptables curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is missing (apt-get install -y iproute2 util-linux docker.io iptables curl)" >&2; exit 2; }
done
if [[ ! -x /usr/bin/docker-registry ]]; then
  log "installing Debian's docker-registry"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-registry >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-registry >&2; }
  # The package's own service (port 5000, htpasswd) is not used; ours run from our config below.
fi

mkdir -p "$state" "$run"
: >"$run/nodes"

# The bridge, with the host's address on it (the registry listens there for the nodes).
ip link add "$br" type bridge || fail "cannot create bridge $br"
ip addr add "$hostip/24" dev "$br"
ip link set "$br" up
iptables -I FORWARD -i "$br" -o "$br" -m comment --comment "kiln-swarm-$id" -j ACCEPT || fail "cannot add the FORWARD rule"

# The registry: two processes over one storage folder (distribution supports shared storage), one on 127.0.0.1
# for the host engine and Kiln, one on the bridge address for the nodes. Both plain HTTP.
mkdir -p "$state/registry"
for addr in 127.0.0.1 "$hostip"; do
  cat >"$run/registry-$addr.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $state/registry
  delete:
    enabled: true
http:
  addr: $addr:$port
EOF
  setsid /usr/bin/docker-registry serve "$run/registry-$addr.yml" >"$run/registry-$addr.log" 2>&1 < /dev/null &
  echo $! >"$run/registry-$addr.pid"
done

# The nodes.
for ((i = 0; i < n; i++)); do
  ns=ksw$id-n$i
  ip netns add "$ns" || fail "cannot create namespace $ns"
  ip link add "ksw$id-h$i" type veth peer name "ksw$id-p$i" || fail "cannot create veth for node $i"
  ip link set "ksw$id-h$i" master "$br" up
  ip link set "ksw$id-p$i" netns "$ns"
  ip -n "$ns" link set "ksw$id-p$i" name eth0
  ip -n "$ns" addr add "$net.$((10 + i))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add default via "$hostip"
  mkdir -p "$state/n$i/data" "$run/n$i/exec"
  generic=""
  if [[ -n "$resources" ]]; then
    for item in "${items[@]}"; do
      [[ ${item%%:*} == "$i" ]] && generic+="${generic:+, }\"${item#*:}\""
    done
  fi
  [[ -n "$generic" ]] && generic=", \"node-generic-resources\": [$generic]"
  cat >"$run/n$i/daemon.json" <<EOF
{ "insecure-registries": ["$hostip:$port"], "log-driver": "json-file", "storage-driver": "overlay2"$generic }
EOF
  # nsenter --net only: the daemon keeps the host's mount namespace and /sys (ip netns exec would remount /sys).
  # The command is kept in start.sh, so that a test that killed a node's dockerd can start it again (it rejoins).
  cat >"$run/n$i/start.sh" <<EOF
setsid nsenter --net=/run/netns/$ns dockerd \\
  --config-file $run/n$i/daemon.json \\
  --data-root $state/n$i/data --exec-root $run/n$i/exec --pidfile $run/n$i/dockerd.pid \\
  -H unix://$run/n$i/docker.sock --cgroup-parent /kiln-swarm-$id-n$i \\
  >>$run/n$i/dockerd.log 2>&1 < /dev/null &
EOF
  bash "$run/n$i/start.sh"
  echo "$i $ns $net.$((10 + i)) unix://$run/n$i/docker.sock" >>"$run/nodes"
done

wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}
for addr in 127.0.0.1 "$hostip"; do
  wait_for "registry on $addr" 20 curl -fsS --max-time 2 "http://$addr:$port/v2/" ||
    fail "docker-registry did not answer on $addr:$port: $(tail -5 "$run/registry-$addr.log")"
done
for ((i = 0; i < n; i++)); do
  wait_for "node $i" 60 docker -H "unix://$run/n$i/docker.sock" version ||
    fail "dockerd of node $i did not answer within 60 s: $(tail -5 "$run/n$i/dockerd.log")"
done

mgr="unix://$run/n0/docker.sock"
# A 2 s heartbeat (default 5 s): a node whose dockerd is gone is marked down in ~6 s, so a lost stage is retried soon.
docker -H "$mgr" swarm init --advertise-addr "$net.10" --listen-addr "$net.10:2377" --dispatcher-heartbeat 2s >/dev/null ||
  fail "swarm init on the manager failed"
token=$(docker -H "$mgr" swarm join-token -q worker)
for ((i = 1; i < n; i++)); do
  docker -H "unix://$run/n$i/docker.sock" swarm join --token "$token" --advertise-addr "$net.$((10 + i))" \
    --listen-addr "$net.$((10 + i)):2377" "$net.10:2377" >/dev/null || fail "node $i could not join the swarm"
done
# Label each node by its own node id (all nodes share one hostname, so names cannot tell them apart).
for ((i = 0; i < n; i++)); do
  nid=$(docker -H "unix://$run/n$i/docker.sock" info --format '{{.Swarm.NodeID}}')
  role=worker; ((i == 0)) && role=manager
  docker -H "$mgr" node update --label-add "kiln.node=node$i" --label-add "kiln.role=$role" "$nid" >/dev/null
done
# The manager takes no stages (drained, as managers of a real swarm usually are): a test may kill a worker mid-stage
# without taking the swarm's control plane with it. With one node only, the manager must work.
((n > 1)) && docker -H "$mgr" node update --availability drain "$(docker -H "$mgr" info --format '{{.Swarm.NodeID}}')" >/dev/null
wait_for "all nodes ready" 30 bash -c "[[ \$(docker -H '$mgr' node ls --format '{{.Status}}' | grep -c Ready) -eq $n ]]" ||
  fail "not every node became Ready: $(docker -H "$mgr" node ls)"

cat >"$run/env" <<EOF
KILN_SWARM_ID=$id
KILN_SWARM_NODES=$n
KILN_SWARM_MANAGER=$mgr
KILN_SWARM_REGISTRY=127.0.0.1:$port
KILN_SWARM_NODE_REGISTRY=$hostip:$port
KILN_SWARM_BRIDGE=$br
KILN_SWARM_NODE_RESOURCES=$resources
EOF
t1=$(date +%s.%N)
log "swarm of $n nodes up in $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s; manager $mgr; registry 127.0.0.1:$port (nodes: $hostip:$port)"
log "environment in $run/env"
