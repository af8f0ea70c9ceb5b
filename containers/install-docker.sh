#!/usr/bin/env bash
# Install what the container targets need, from Debian packages, when it is missing: the Docker
# engine and client (docker.io: dockerd and /usr/bin/docker with BuildKit) and debootstrap (the
# offline base image). Debian/Ubuntu hosts, as root; other hosts install Docker their own way.
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 && [[ -x /usr/bin/docker ]] || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [[ ${#need[@]} -eq 0 ]]; then
    echo "install-docker: docker.io and debootstrap already installed"
    exit 0
fi
[[ "$(id -u)" == 0 ]] || { echo "install-docker: installing ${need[*]} needs root" >&2; exit 1; }
command -v apt-get >/dev/null 2>&1 || { echo "install-docker: no apt-get; install ${need[*]} yourself" >&2; exit 1; }
echo "install-docker: apt-get install ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${need[@]+"${need[@]}"} >/dev/null
