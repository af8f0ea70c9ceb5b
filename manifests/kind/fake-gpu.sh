#!/usr/bin/env bash
# Fake-GPU lane: make the kind worker labelled KIND_GPU_NODE_LABEL look like a GKE T4 node and advertise
# nvidia.com/gpu on it with run:ai's fake-gpu-operator (no real GPU, no driver; pods that ask for GPUs
# get scheduled and run their CPU code). Labels cloud.google.com/gke-accelerator=nvidia-tesla-t4, taints
# nvidia.com/gpu=present:NoSchedule as GKE does, installs the chart pinned at FAKE_GPU_OPERATOR_VERSION.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KIND_GPU_NODE_LABEL="${KIND_GPU_NODE_LABEL:-cxr-kfp/pool=gpu}"
KIND_GPU_COUNT="${KIND_GPU_COUNT:-2}"
FAKE_GPU_OPERATOR_CHART="${FAKE_GPU_OPERATOR_CHART:?set FAKE_GPU_OPERATOR_CHART}"
FAKE_GPU_OPERATOR_VERSION="${FAKE_GPU_OPERATOR_VERSION:?set FAKE_GPU_OPERATOR_VERSION}"
need "$HELM" "helm (v3.8 or later, for OCI charts)"
need_cluster

mapfile -t nodes < <(k get nodes -l "$KIND_GPU_NODE_LABEL" -o name)
((${#nodes[@]} == 1)) ||
    die "expected one node labelled $KIND_GPU_NODE_LABEL (manifests/kind/cluster.yaml), found ${#nodes[@]}: recreate the cluster (make kind-down kind-up)"
node="${nodes[0]#node/}"
pool=t4   # fake-gpu-operator node pool (topology.nodePools.t4)

log "node $node: GKE T4 label and GPU taint, fake-gpu-operator pool '$pool'"
k label node "$node" --overwrite cloud.google.com/gke-accelerator=nvidia-tesla-t4 \
    "run.ai/simulated-gpu-node-pool=$pool"
k taint node "$node" --overwrite nvidia.com/gpu=present:NoSchedule

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
