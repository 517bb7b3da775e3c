#!/usr/bin/env bash
# Start (or re-create) a container NAME from IMAGE with systemd as PID 1, with the options that
# work on these machines (see shared/NOTES.md: --privileged does not), and wait until systemd
# reports running (or degraded). Fails with systemd's state when it does not get there.
# Usage: systemd-container.sh NAME IMAGE
set -euo pipefail
name=$1
image=$2

docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" --hostname "$name" --cap-add SYS_ADMIN --cap-add NET_ADMIN \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cgroupns=host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    "$image" /lib/systemd/systemd >/dev/null
state=""
for _ in $(seq 1 120); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case $state in running|degraded) exit 0 ;; esac
    sleep 0.5
done
echo "systemd-container: $name: systemd state '$state' after 60 s" >&2
exit 1
