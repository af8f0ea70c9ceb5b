#!/usr/bin/env bash
# Install Kubeflow Pipelines standalone at KFP_BACKEND_VERSION (manifests/kfp-version.env) on the kind
# cluster: cluster-scoped resources, wait for the CRDs, the platform-agnostic env; then manifests/cluster
# and the pipeline runner account KFP_RUNNER_SA. Idempotent: rerun to repair or to change the account.
# Needs network access (kubectl fetches the kustomizations from GitHub, the nodes pull KFP's images).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../kfp-version.env
source "$MANIFESTS_DIR/kfp-version.env"
KFP_RUNNER_SA="${KFP_RUNNER_SA:-cxr-pipeline-runner}"
KIND_TIMEOUT="${KIND_TIMEOUT:-900}"
KIND_FETCH_TIMEOUT="${KIND_FETCH_TIMEOUT:-300}"
need "$KUBECTL" kubectl
need git "git (kubectl fetches KFP's kustomizations with it)"
need_cluster

kustomize_base="github.com/kubeflow/pipelines/manifests/kustomize"
# kustomize gives a remote git fetch 27 s unless the URL says otherwise: too short on a slow link.
fetch="ref=$KFP_BACKEND_VERSION&timeout=${KIND_FETCH_TIMEOUT}s"
log "installing Kubeflow Pipelines $KFP_BACKEND_VERSION (standalone, platform-agnostic) into $KFP_NAMESPACE"
retry 3 k apply -k "$kustomize_base/cluster-scoped-resources?$fetch"
k wait --for condition=established --timeout=60s crd/applications.app.k8s.io
retry 3 k apply -k "$kustomize_base/env/platform-agnostic?$fetch"

log "applying manifests/cluster (runner service account, RBAC, GPU quota)"
k apply -k "$MANIFESTS_DIR/cluster"
current="$(k -n "$KFP_NAMESPACE" get deployment ml-pipeline -o \
    jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="DEFAULTPIPELINERUNNERSERVICEACCOUNT")].value}')"
if [[ "$KFP_RUNNER_SA" == pipeline-runner ]]; then
    # KFP's own default account (broad RBAC): drop our override if an earlier deploy set one.
    if [[ -n "$current" ]]; then
        k -n "$KFP_NAMESPACE" set env deployment/ml-pipeline DEFAULTPIPELINERUNNERSERVICEACCOUNT-
    fi
elif [[ "$current" != "$KFP_RUNNER_SA" ]]; then
    k -n "$KFP_NAMESPACE" get serviceaccount "$KFP_RUNNER_SA" >/dev/null ||
        die "KFP_RUNNER_SA=$KFP_RUNNER_SA: no such service account in $KFP_NAMESPACE"
    k -n "$KFP_NAMESPACE" set env deployment/ml-pipeline DEFAULTPIPELINERUNNERSERVICEACCOUNT="$KFP_RUNNER_SA"
fi

log "waiting for KFP (up to ${KIND_TIMEOUT}s per step; first start pulls several GB of images)"
for deployment in mysql ml-pipeline; do
    k -n "$KFP_NAMESPACE" wait --for=condition=Available --timeout="${KIND_TIMEOUT}s" "deployment/$deployment"
done
k -n "$KFP_NAMESPACE" rollout status deployment/ml-pipeline --timeout="${KIND_TIMEOUT}s"
k -n "$KFP_NAMESPACE" wait --for=condition=Available --timeout="${KIND_TIMEOUT}s" deployment --all
k -n "$KFP_NAMESPACE" get deployments
log "KFP $KFP_BACKEND_VERSION is up; runs use service account $KFP_RUNNER_SA; next: make kind-test"
