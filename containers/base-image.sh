#!/usr/bin/env bash
# Build the local Debian bookworm base image with debootstrap, once.
#
# For machines that cannot pull from a container registry: the image holds a minimal Debian
# bookworm with python3 (3.11), python3-venv and ca-certificates, which is all the project's
# Dockerfiles need from a base (pass it as --build-arg BASE_IMAGE=NAME).
#
# Usage: containers/base-image.sh [NAME]          (default NAME: cxr-kfp-base:bookworm)
# Env:   DEBIAN_MIRROR  Debian mirror URL; default: the first source of this machine's apt
#                       configuration that serves Debian's main archive
#        FORCE=1        rebuild even if NAME exists
#        DOCKER         docker client (default: /usr/bin/docker if present, else docker)
# Needs root, debootstrap and a running engine.
set -euo pipefail

NAME="${1:-cxr-kfp-base:bookworm}"
SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
DOCKER="${DOCKER:-$(command -v /usr/bin/docker || command -v docker || true)}"

die() { echo "base-image: $*" >&2; exit 1; }

if [[ "${FORCE:-0}" != 1 ]] && "$DOCKER" image inspect "$NAME" >/dev/null 2>&1; then
    echo "base-image: $NAME already present (FORCE=1 rebuilds it)"
    exit 0
fi

[[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install -y debootstrap)"

# The mirror: $DEBIAN_MIRROR, else the first Debian main-archive URI in this machine's apt
# sources (deb822 *.sources files and one-line *.list files). Never written into the project.
apt_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r "$f" ]] || continue
        case "$f" in
        *.sources)
            # deb822 stanzas: print URIs of stanzas whose Suites contain the plain suite.
            awk -v suite="$SUITE" '
                BEGIN { RS = ""; FS = "\n" }
                {
                    uris = ""; ok = 0
                    for (i = 1; i <= NF; i++) {
                        if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", $i); uris = $i }
                        if ($i ~ /^Suites:/) { n = split(substr($i, 8), s, /[ \t]+/); for (j = 1; j <= n; j++) if (s[j] == suite) ok = 1 }
                    }
                    if (ok && uris != "") { split(uris, u, /[ \t]+/); print u[1] }
                }' "$f"
            ;;
        *)
            awk -v suite="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == suite) print $i }' "$f"
            ;;
        esac
    done | grep -E '^https?://' | head -n 1
}

MIRROR="${DEBIAN_MIRROR:-$(apt_mirror || true)}"
[[ -n "$MIRROR" ]] || die "no Debian mirror found in /etc/apt/sources*; set DEBIAN_MIRROR=URL"

ROOTFS="$(mktemp -d /var/tmp/cxr-kfp-rootfs.XXXXXX)"
trap 'rm -rf --one-file-system "$ROOTFS"' EXIT

echo "base-image: debootstrap $SUITE (+$INCLUDE) from the machine's apt mirror into $ROOTFS"
start=$(date +%s)
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
    || { tail -n 30 "$ROOTFS.log" >&2; die "debootstrap failed (log: $ROOTFS.log)"; }
rm -f "$ROOTFS.log"

# Slim it: no package lists, caches or logs in the image.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
[[ -x "$ROOTFS/usr/bin/python3" ]] || die "python3 missing from the bootstrapped rootfs"

tar --numeric-owner -C "$ROOTFS" -c . \
    | "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --message "debootstrap --variant=minbase --include=$INCLUDE $SUITE" \
        - "$NAME" >/dev/null
echo "base-image: built $NAME in $(( $(date +%s) - start ))s ($("$DOCKER" image inspect --format '{{.Size}}' "$NAME" | awk '{printf "%.0f MB", $1/1e6}'))"
