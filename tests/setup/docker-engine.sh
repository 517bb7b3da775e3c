#!/usr/bin/env bash
# Start the Docker engine when it is not answering; idempotent.
# The host has no systemd as PID 1, so dockerd is started in the background directly.
# A dockerd that died with its session leaves /var/run/docker.pid behind; it is removed
# when no dockerd process is running, otherwise dockerd refuses to start.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/ironcache-dockerd.log}
PIDFILE=/var/run/docker.pid
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

log() { echo "docker-engine: $*" >&2; }

if docker info >/dev/null 2>&1; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    log "dockerd missing: installing docker.io"
    if [ "$(id -u)" -ne 0 ]; then
        log "need root to install docker.io"; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    if [ -e "$PIDFILE" ]; then
        log "removing stale $PIDFILE"
        rm -f "$PIDFILE"
    fi
    # containerd's own pid file can be stale too
    rm -f /var/run/docker/containerd/containerd.pid 2>/dev/null || true
    log "starting dockerd (log: $LOG)"
    # setsid + nohup: dockerd survives the shell that started it
    setsid nohup "$(command -v dockerd)" >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$WAIT_SECONDS"); do
    if docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
log "docker info still fails after ${WAIT_SECONDS}s; last lines of $LOG:"
tail -n 20 "$LOG" >&2 || true
exit 1
