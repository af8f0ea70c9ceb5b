#!/usr/bin/env bash
# Push images to their registry. An IMAGE ending in `?` is optional: skipped when not built.
# Usage: containers/push-images.sh IMAGE[?]...
# Log in first (e.g. `gcloud auth configure-docker REGION-docker.pkg.dev`).
set -euo pipefail
DOCKER="${DOCKER:-$(command -v /usr/bin/docker || command -v docker || true)}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "push-images: $*" >&2; exit 1; }
images=()
for arg in "$@"; do
    image="${arg%\?}"
    "$ROOT/containers/check-image-ref.sh" "$image"
    case "$image" in localhost/*) die "$image has no registry to push to: set IMAGE_REGISTRY" ;; esac
    if ! "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
        [[ "$arg" == *\? ]] && { echo "push-images: skipping $image (not built)"; continue; }
        die "$image is not built: run make build-images with the same IMAGE_REGISTRY and IMAGE_TAG"
    fi
    images+=("$image")
done
for image in ${images[@]+"${images[@]}"}; do
    echo "push-images: pushing $image"
    "$DOCKER" push "$image"
done
