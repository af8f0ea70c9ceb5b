#!/usr/bin/env bash
# Fake-GPU lane: advertise nvidia.com/gpu on the kind worker labelled KIND_GPU_NODE_LABEL with run:ai's
# fake-gpu-operator (no real GPU, no driver; pods that ask for GPUs get scheduled and run their CPU
# code), installing the chart pinned at FAKE_GPU_OPERATOR_VERSION. The node already carries GKE's T4
# label and GPU taint from manifests/kind/cluster.yaml, so nothing of KFP runs on it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KIND_GPU_NODE_LABEL="${KIND_GPU_NODE_LABEL:-cxr-kfp/pool=gpu}"
KIND_GPU_COUNT="${KIND_GPU_COUNT:-2}"
FAKE_GPU_OPERATOR_CHART="${FAKE_GPU_OPERATOR_CHART:?set FAKE_GPU_OPERATOR_CHART}"
FAKE_GPU_OPERATOR_VERSION="${FAKE_GPU_OPERATOR_VERSION:?set FAKE_GPU_OPERATOR_VERSION}"
need "$HELM" "helm (v3.8 or later, for OCI charts)"
need_cluster

recreate="recreate the cluster from manifests/kind/cluster.yaml (make kind-down kind-up kind-deploy-kfp)"
nodes="$(k get nodes -l "$KIND_GPU_NODE_LABEL" -o name)"
count="$(printf '%s' "$nodes" | grep -c . || true)"
[[ "$count" == 1 ]] || die "expected one node labelled $KIND_GPU_NODE_LABEL, found $count: $recreate"
node="${nodes#node/}"
taint="$(k get node "$node" -o jsonpath='{.spec.taints[?(@.key=="nvidia.com/gpu")].effect}')"
accelerator="$(k get node "$node" -o jsonpath='{.metadata.labels.cloud\.google\.com/gke-accelerator}')"
[[ "$taint" == NoSchedule && "$accelerator" == nvidia-tesla-t4 ]] ||
    die "node $node is not labelled and tainted like a T4 node (taint nvidia.com/gpu: '$taint', label cloud.google.com/gke-accelerator: '$accelerator'); tainting it now would strand KFP's volumes on it: $recreate"
pool=t4   # fake-gpu-operator node pool (topology.nodePools.t4)

log "node $node: fake-gpu-operator pool '$pool'"
k label node "$node" --overwrite "run.ai/simulated-gpu-node-pool=$pool"

log "installing fake-gpu-operator $FAKE_GPU_OPERATOR_VERSION ($KIND_GPU_COUNT GPUs on $node)"
"$HELM" upgrade --install fake-gpu-operator "$FAKE_GPU_OPERATOR_CHART" --version "$FAKE_GPU_OPERATOR_VERSION" \
    --kube-context "$KUBE_CONTEXT" --namespace gpu-operator --create-namespace \
    --set "topology.nodePools.$pool.gpuProduct=Tesla-T4" \
    --set "topology.nodePools.$pool.gpuCount=$KIND_GPU_COUNT" \
    --set "topology.nodePools.$pool.gpuMemory=15360" \
    --wait --timeout 10m

for ((i = 0; ; i += 5)); do
    allocatable="$(k get node "$node" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')"
    [[ "$allocatable" == "$KIND_GPU_COUNT" ]] && break
    ((i < 300)) || die "node $node advertises nvidia.com/gpu='$allocatable' after 300 s, expected $KIND_GPU_COUNT (kubectl --context $KUBE_CONTEXT -n gpu-operator get pods)"
    sleep 5
done
log "node $node advertises nvidia.com/gpu: $allocatable; next: make kind-test-gpu-placement"
