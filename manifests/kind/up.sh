#!/usr/bin/env bash
# Create the kind cluster from KIND_CONFIG unless it exists, then load the locally built images into
# every node (the kind profile trains on CPU: the cpu and train-cpu images).
# Usage: KIND_CLUSTER_NAME=NAME KIND_CONFIG=FILE manifests/kind/up.sh IMAGE...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KIND_CONFIG="${KIND_CONFIG:-$KIND_DIR/cluster.yaml}"

need "$DOCKER" docker
need "$KIND" "kind (v0.32 or later)"
need "$KUBECTL" kubectl
"$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers ($DOCKER info failed): start Docker first"
for image in "$@"; do
    "$DOCKER" image inspect "$image" >/dev/null 2>&1 ||
        die "image $image is not built: run 'make build-image-cpu build-image-train-cpu' (no registry: 'make build-images-local'), with the same IMAGE_REGISTRY and IMAGE_TAG"
done

if "$KIND" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
    log "kind cluster '$KIND_CLUSTER_NAME' exists: keeping it"
else
    log "creating kind cluster '$KIND_CLUSTER_NAME' from $KIND_CONFIG"
    "$KIND" create cluster --name "$KIND_CLUSTER_NAME" --config "$KIND_CONFIG" --wait 300s
fi

# Under Docker's containerd image store `kind load docker-image` can fail with "content digest ... not
# found" (kind#3795); an archive saved for the nodes' platform loads either way.
load_via_archive() {
    local platform
    archive_dir="$(mktemp -d)"
    trap 'rm -rf "$archive_dir"' EXIT
    platform="$("$DOCKER" version --format '{{.Server.Os}}/{{.Server.Arch}}')"
    "$DOCKER" image save --platform "$platform" -o "$archive_dir/images.tar" "$@" 2>/dev/null ||
        "$DOCKER" image save -o "$archive_dir/images.tar" "$@"
    "$KIND" load image-archive --name "$KIND_CLUSTER_NAME" "$archive_dir/images.tar"
}
if (($#)); then
    log "loading $# image(s) into the nodes"
    if ! "$KIND" load docker-image --name "$KIND_CLUSTER_NAME" "$@"; then
        log "kind load docker-image failed (Docker's containerd image store? kind#3795): loading a saved archive instead"
        load_via_archive "$@"
    fi
fi
k get nodes -o wide
log "ready: kubectl --context $KUBE_CONTEXT; next: make kind-deploy-kfp"
