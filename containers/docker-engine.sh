#!/usr/bin/env bash
# Start a Docker engine unless one already answers; wait until `docker info` works.
#
# Usage: containers/docker-engine.sh
# Env:   DOCKER          docker client to use (default: /usr/bin/docker if present, else docker)
#        DOCKERD_LOG     where dockerd writes its log (default: /var/log/cxr-kfp-dockerd.log)
#        DOCKER_WAIT_S   seconds to wait for the engine to answer (default: 60)
#
# Starting dockerd needs root. Machines with a managed engine (Docker Desktop, systemd) answer
# the first `docker info` and nothing is started.
set -euo pipefail

DOCKER="${DOCKER:-$(command -v /usr/bin/docker || command -v docker || true)}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/cxr-kfp-dockerd.log}"
DOCKER_WAIT_S="${DOCKER_WAIT_S:-60}"

die() { echo "docker-engine: $*" >&2; exit 1; }

[[ -n "$DOCKER" ]] || die "no docker client found (install docker.io: apt-get install -y docker.io)"

if "$DOCKER" info >/dev/null 2>&1; then
    echo "docker-engine: an engine already answers ($("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

command -v dockerd >/dev/null 2>&1 \
    || die "no engine answers and dockerd is not installed (apt-get install -y docker.io)"
[[ "$(id -u)" == 0 ]] || die "no engine answers; starting dockerd needs root (run as root or start Docker yourself)"

if pgrep -x dockerd >/dev/null 2>&1; then
    echo "docker-engine: dockerd is running but not answering yet; waiting"
else
    echo "docker-engine: starting dockerd (log: $DOCKERD_LOG)"
    # setsid + nohup: the engine outlives this script and the make that called it.
    setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
fi

for ((i = 0; i < DOCKER_WAIT_S; i++)); do
    if "$DOCKER" info >/dev/null 2>&1; then
        echo "docker-engine: engine ready after ${i}s"
        exit 0
    fi
    sleep 1
done
tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
die "dockerd did not answer within ${DOCKER_WAIT_S}s (see $DOCKERD_LOG)"
