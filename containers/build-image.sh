#!/usr/bin/env bash
# Build one image of the project with BuildKit.
#
# Usage: containers/build-image.sh DOCKERFILE IMAGE [docker build args...]
#   e.g. containers/build-image.sh containers/train.Dockerfile localhost/cxr-kfp-train-cpu:abc1234 \
#            --build-arg TF_VARIANT=cpu
# Env:   BASE_IMAGE            base image (empty: the Dockerfile's pinned public default)
#        DOCKER                docker client (default: /usr/bin/docker if present, else docker)
#        DOCKER_BUILD_NETWORK  network of RUN steps (default: host; `default` uses the engine's)
#        GIT_SHA               recorded as the image's revision label (default: git HEAD)
#        PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_DEFAULT_TIMEOUT, PIP_CERT
#                              how pip reaches its index; default: this machine's pip config
#
# pip's settings reach the build as BuildKit secrets (a CA bundle and a generated pip.conf):
# they are readable only by the RUN steps that mount them and never stored in a layer, so index
# URLs with credentials stay out of the image and out of the project's files.
set -euo pipefail

die() { echo "build-image: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: $0 DOCKERFILE IMAGE [docker build args...]"
DOCKERFILE="$1" IMAGE="$2"; shift 2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER="${DOCKER:-$(command -v /usr/bin/docker || command -v docker || true)}"
[[ -n "$DOCKER" ]] || die "no docker client found"
[[ -f "$DOCKERFILE" ]] || die "no such Dockerfile: $DOCKERFILE"
"$ROOT/containers/check-image-ref.sh" "$IMAGE"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
chmod 700 "$TMP"

# --- pip.conf for the build: index settings only, http(s) URLs only (file:// paths of this
# machine do not exist inside the build). Environment first, then `pip config list`.
pip_setting() { # pip_setting KEY...: the first value this machine's pip config gives one of KEYs
    local key
    for key in "$@"; do
        printf '%s\n' "$PIP_CONFIG_LIST" | sed -n "s/^[^.]*\.${key}='\(.*\)'\$/\1/p" | head -n 1 | grep . && return 0
    done
    return 0
}
only_http() { tr ' ' '\n' | grep -E '^https?://' | paste -sd ' ' - || true; }

PIP_CONFIG_LIST="$( (python3 -m pip config list || pip config list) 2>/dev/null || true)"
index_url="$(printf '%s' "${PIP_INDEX_URL:-$(pip_setting index-url)}" | only_http)"
extra_urls="$(printf '%s' "${PIP_EXTRA_INDEX_URL:-$(pip_setting extra-index-url)}" | only_http)"
trusted="${PIP_TRUSTED_HOST:-$(pip_setting trusted-host)}"
timeout="${PIP_DEFAULT_TIMEOUT:-$(pip_setting default-timeout timeout)}"
{
    echo "[global]"
    [[ -n "$index_url" ]] && echo "index-url = $index_url"
    [[ -n "$extra_urls" ]] && echo "extra-index-url = $extra_urls"
    [[ -n "$trusted" ]] && echo "trusted-host = $trusted"
    [[ -n "$timeout" ]] && echo "timeout = $timeout"
    true
} >"$TMP/pip.conf"
chmod 600 "$TMP/pip.conf"

# --- CA bundle pip should trust (machines behind a TLS-inspecting proxy need theirs).
cert=""
for c in "${PIP_CERT:-}" "$(pip_setting cert)" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [[ -n "$c" && -f "$c" ]]; then cert="$c"; break; fi
done
secrets=(--secret "id=pip_conf,src=$TMP/pip.conf")
[[ -n "$cert" ]] && secrets+=(--secret "id=pip_cert,src=$cert")

args=()
[[ -n "${BASE_IMAGE:-}" ]] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
network="${DOCKER_BUILD_NETWORK:-host}"
[[ "$network" == default ]] || args+=(--network "$network")
git_sha="${GIT_SHA:-$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)}"

echo "build-image: $IMAGE from ${DOCKERFILE#"$ROOT"/} (base: ${BASE_IMAGE:-the Dockerfile default})"
start=$(date +%s)
DOCKER_BUILDKIT=1 "$DOCKER" build \
    --file "$DOCKERFILE" --tag "$IMAGE" \
    "${secrets[@]}" ${args[@]+"${args[@]}"} --build-arg "GIT_SHA=$git_sha" \
    "$@" "$ROOT"
size="$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"
echo "build-image: built $IMAGE in $(( $(date +%s) - start ))s, $size"
