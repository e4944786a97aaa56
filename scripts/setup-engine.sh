#!/usr/bin/env bash
# Makes sure a Docker Engine answers. Installs nothing when one already does.
# When none answers and we are root on Debian/Ubuntu: installs docker.io (and mmdebstrap, which Kiln
# uses to bootstrap its base images) from the OS packages, starts dockerd in the background (no
# systemd needed) and waits until it answers. Otherwise it stops and says how to get an engine.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
DOCKERD_LOG=${KILN_DOCKERD_LOG:-/var/log/kiln-dockerd.log}

engine_socket() {
  if [[ -n "${DOCKER_HOST:-}" ]]; then
    case "$DOCKER_HOST" in unix://*) printf '%s' "${DOCKER_HOST#unix://}" ;; *) printf '' ;; esac
  else
    printf '/var/run/docker.sock'
  fi
}

engine_answers() {
  local sock; sock=$(engine_socket)
  if [[ -n "${DOCKER_HOST:-}" && -z "$sock" ]]; then
    # tcp:// or ssh:// engines: ask with the docker CLI when there is one.
    command -v docker >/dev/null 2>&1 && docker version >/dev/null 2>&1
    return
  fi
  [[ -S "$sock" ]] || return 1
  command -v curl >/dev/null 2>&1 || { command -v docker >/dev/null 2>&1 && docker version >/dev/null 2>&1; return; }
  curl -fsS --max-time 5 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1
}

is_debian_like() { [[ -r /etc/os-release ]] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]} from the OS packages"
  if [[ ! -f /var/lib/apt/periodic/kiln-updated ]] || [[ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]]; then
    apt-get update -q >&2
    mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/kiln-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || {
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  }
}

if engine_answers; then
  log "Docker Engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
else
  if [[ $(id -u) -ne 0 ]] || ! is_debian_like; then
    cat >&2 <<MSG
[setup] error: no Docker Engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}.
  Kiln runs every stage in a container and needs one. To get one:
  - Debian/Ubuntu: run this script as root (it installs docker.io and starts dockerd), or
    'sudo apt-get install docker.io && sudo systemctl start docker', then add yourself to the docker group;
  - elsewhere: install Docker Engine (or Docker Desktop) and start it, or point DOCKER_HOST at one.
MSG
    exit 3
  fi
  apt_install docker.io iptables ca-certificates curl
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd in the background; its log goes to $DOCKERD_LOG"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid: dockerd outlives this script and the shell that ran it.
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    engine_answers && break
    sleep 1
  done
  if ! engine_answers; then
    log "error: dockerd did not answer within 60 s; the last lines of $DOCKERD_LOG:"
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    exit 3
  fi
  log "Docker Engine is up ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
fi

# mmdebstrap bootstraps Kiln's base images (no registry is needed). Only installed when missing.
if ! command -v mmdebstrap >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && is_debian_like; then
    apt_install mmdebstrap
  else
    log "warning: mmdebstrap is missing; Kiln cannot bootstrap base images without it (apt-get install mmdebstrap)"
  fi
fi

# docker-registry (Debian's OCI distribution registry): the portability integration tests start one on 127.0.0.1. Only when missing.
if ! command -v docker-registry >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && is_debian_like; then apt_install docker-registry; else log "warning: docker-registry is missing; the push/pull integration tests need it (apt-get install docker-registry)"; fi
fi
