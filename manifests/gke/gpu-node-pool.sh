#!/usr/bin/env bash
# Create the GKE node pool the train task runs on: n1-standard-16 nodes with two NVIDIA T4 each,
# the NVIDIA driver installed by GKE, the Workload Identity metadata server, autoscaling 0..MAX_NODES.
#
#   PROJECT_ID=my-project CLUSTER=my-cluster LOCATION=us-central1-a manifests/gke/gpu-node-pool.sh [--dry-run]
#
# GKE labels the nodes cloud.google.com/gke-accelerator=nvidia-tesla-t4 (the pipeline's node selector)
# and, in a cluster that also has non-GPU node pools, taints them nvidia.com/gpu=present:NoSchedule
# (the pipeline's toleration), so nothing else lands on the expensive nodes. Neither is set here.
# Needs the regional NVIDIA_T4_GPUS quota for 2 x MAX_NODES GPUs and a zone that offers T4s.
set -euo pipefail

# shellcheck source=manifests/gke/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require gpu-node-pool "PROJECT_ID, CLUSTER and LOCATION, a zone with T4s such as us-central1-a" PROJECT_ID CLUSTER LOCATION
POOL="${POOL:-t4x2}"
MACHINE_TYPE="${MACHINE_TYPE:-n1-standard-16}"   # 16 vCPU / 60 GB: one train task (8 CPU, 32G) per node
GPUS_PER_NODE="${GPUS_PER_NODE:-2}"               # pipelines/configs/cluster.yaml placement.accelerator_count
INITIAL_NODES="${INITIAL_NODES:-1}"
MIN_NODES="${MIN_NODES:-0}"
MAX_NODES="${MAX_NODES:-3}"                       # three variants train in parallel
DISK_SIZE_GB="${DISK_SIZE_GB:-200}"               # the GPU training image is several GB
SPOT="${SPOT:-false}"                             # true: Spot VMs (train retries cover preemption)

args=(container node-pools create "$POOL"
    --project "$PROJECT_ID" --cluster "$CLUSTER" --location "$LOCATION"
    --machine-type "$MACHINE_TYPE"
    --accelerator "type=nvidia-tesla-t4,count=$GPUS_PER_NODE,gpu-driver-version=default"
    --num-nodes "$INITIAL_NODES" --enable-autoscaling --min-nodes "$MIN_NODES" --max-nodes "$MAX_NODES"
    --disk-type pd-balanced --disk-size "$DISK_SIZE_GB"
    --workload-metadata GKE_METADATA
    --enable-autorepair --enable-autoupgrade
    --node-labels cxr-kfp/pool=gpu)
if [[ "$SPOT" == true ]]; then args+=(--spot); fi

run gcloud "${args[@]}"
