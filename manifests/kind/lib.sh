# shellcheck shell=bash disable=SC2034  # sourced by the kind scripts, which use these variables
# Shared helpers of the kind scripts (sourced, not run; bash 3.2 safe, as tests/shell.py checks). Every
# kubectl call goes through `k`, which names the kind cluster's context: these scripts never act on
# whatever context is current.
KIND="${KIND:-kind}"
KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-helm}"
DOCKER="${DOCKER:-docker}"
KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-cxr-kfp}"
KUBE_CONTEXT="kind-$KIND_CLUSTER_NAME"
KFP_NAMESPACE=kubeflow   # where KFP standalone installs itself
KIND_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MANIFESTS_DIR="$(dirname "$KIND_DIR")"

log() { echo "$(basename "$0" .sh): $*" >&2; }
die() { log "$*"; exit 1; }

# need TOOL WHAT: fail with a hint unless TOOL runs.
need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: install $2 (see manifests/README.md, prerequisites)"
}

k() { "$KUBECTL" --context "$KUBE_CONTEXT" "$@"; }

# Fails unless the kind cluster exists and answers.
need_cluster() {
    need "$KUBECTL" kubectl
    if ! k get --raw /readyz >/dev/null 2>&1; then
        die "no running kind cluster '$KIND_CLUSTER_NAME' (context $KUBE_CONTEXT): run 'make kind-up'"
    fi
}

# retry N COMMAND...: runs COMMAND up to N times, 15 s apart.
retry() {
    local attempts="$1" i
    shift
    for ((i = 1; ; i++)); do
        "$@" && return 0
        ((i < attempts)) || return 1
        log "retrying ($i/$attempts failed): $*"
        sleep 15
    done
}
