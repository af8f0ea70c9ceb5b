#!/usr/bin/env bash
# Smoke-test images offline (--network none): they run as a non-root user, leave GPU visibility to
# the device plugin, `cxr --help` works, and the project, kfp and TensorFlow import.
# Usage: containers/smoke-images.sh IMAGE...
set -euo pipefail
DOCKER="${DOCKER:-$(command -v /usr/bin/docker || command -v docker || true)}"

fail() { echo "smoke-images: $*" >&2; exit 1; }
for image in "$@"; do
    "$DOCKER" image inspect "$image" >/dev/null 2>&1 || fail "$image is not built (make build-images-local)"
    run() { "$DOCKER" run --rm --network none "$image" "$@"; }
    uid="$(run id -u)"
    [[ "$uid" != 0 ]] || fail "$image runs as root"
    run sh -c 'test -z "${NVIDIA_VISIBLE_DEVICES+set}"' ||
        fail "$image sets NVIDIA_VISIBLE_DEVICES: which GPUs a pod sees is the device plugin's choice"
    run cxr --help >/dev/null || fail "$image: 'cxr --help' failed"
    run python -c 'import components, pipelines, kfp, tensorflow' 2>/dev/null \
        || fail "$image: importing components, pipelines, kfp, tensorflow failed"
    versions="$(run python -c 'import kfp, tensorflow as tf; print(f"kfp {kfp.__version__}, tensorflow {tf.__version__}")' 2>/dev/null)"
    size="$("$DOCKER" image inspect --format '{{.Size}}' "$image" | awk '{printf "%.2f GB", $1/1e9}')"
    echo "smoke-images: ok $image (uid $uid, $versions, $size)"
done
