#!/usr/bin/env bash
# Create the GKE node pool the train task runs on: n1-standard-16 nodes with two NVIDIA T4 each, the
# NVIDIA driver installed by GKE, the Workload Identity metadata server, no node until a train task asks
# for one (autoscaling 0..MAX_NODES), and its own node service account that may pull the images.
#
#   PROJECT_ID=my-project CLUSTER=my-cluster LOCATION=us-central1-a \
#     [IMAGE_REGISTRY=us-central1-docker.pkg.dev/my-project/cxr] manifests/gke/gpu-node-pool.sh [--dry-run]
#
# A regional cluster (LOCATION=us-central1) needs NODE_LOCATIONS, zones of that region that offer T4s
# (gcloud compute accelerator-types list --filter 'name=nvidia-tesla-t4 AND zone~^us-central1-').
# Quotas: NVIDIA_T4_GPUS (PREEMPTIBLE_NVIDIA_T4_GPUS with SPOT=true) in the region and GPUS_ALL_REGIONS,
# each at least GPUS_PER_NODE x MAX_NODES (manifests/README.md, "First run on a cluster").
# GKE labels the nodes cloud.google.com/gke-accelerator=nvidia-tesla-t4 (the pipeline's node selector)
# and, in a cluster that also has non-GPU node pools, taints them nvidia.com/gpu=present:NoSchedule
# (the pipeline's toleration), so nothing else lands on the expensive nodes. Neither is set here.
set -euo pipefail

# shellcheck source=manifests/gke/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require gpu-node-pool "PROJECT_ID, CLUSTER and LOCATION, a zone with T4s such as us-central1-a or a region" \
    PROJECT_ID CLUSTER LOCATION
POOL="${POOL:-t4x2}"
MACHINE_TYPE="${MACHINE_TYPE:-n1-standard-16}"   # 16 vCPU / 60 GB: one train task (8 CPU, 32G) per node
GPUS_PER_NODE="${GPUS_PER_NODE:-2}"               # pipelines/configs/cluster.yaml placement.accelerator_count
MAX_NODES="${MAX_NODES:-3}"                       # in all zones together; three variants train in parallel
DISK_SIZE_GB="${DISK_SIZE_GB:-200}"               # the GPU training image is several GB
SPOT="${SPOT:-false}"                             # true: Spot VMs (train retries cover preemption)
NODE_LOCATIONS="${NODE_LOCATIONS:-}"
NODE_SA_NAME="${NODE_SA_NAME:-cxr-gke-node}"      # manifests/gke/node-service-account.yaml
node_sa="$(sa_email "$NODE_SA_NAME")"

region_pattern='^[a-z]+-[a-z]+[0-9]+$'
if [[ "$LOCATION" =~ $region_pattern && -z "$NODE_LOCATIONS" ]]; then
    die "LOCATION=$LOCATION is a region and not all of its zones have T4s: set NODE_LOCATIONS to those that do (gcloud compute accelerator-types list --filter 'name=nvidia-tesla-t4 AND zone~^$LOCATION-')"
fi
case "$SPOT" in true | false) ;; *) die "SPOT must be true or false, not '$SPOT'" ;; esac

# The nodes' own account: GKE's logging and monitoring, and image pulls. Projects created since May
# 2024 give the Compute Engine default account no roles, so its nodes cannot pull (403).
ensure_service_account "$NODE_SA_NAME" "cxr-kfp GKE nodes"
grant_project_role "serviceAccount:$node_sa" roles/container.defaultNodeServiceAccount
grant_image_pulls "serviceAccount:$node_sa"

args=(container node-pools create "$POOL"
    --project "$PROJECT_ID" --cluster "$CLUSTER" --location "$LOCATION"
    --machine-type "$MACHINE_TYPE"
    --accelerator "type=nvidia-tesla-t4,count=$GPUS_PER_NODE,gpu-driver-version=default"
    --num-nodes 0 --enable-autoscaling --total-min-nodes 0 --total-max-nodes "$MAX_NODES" --location-policy ANY
    --disk-type pd-balanced --disk-size "$DISK_SIZE_GB"
    --service-account "$node_sa" --scopes cloud-platform
    --workload-metadata GKE_METADATA
    --enable-autorepair --enable-autoupgrade
    --node-labels cxr-kfp/pool=gpu)
if [[ -n "$NODE_LOCATIONS" ]]; then args+=(--node-locations "$NODE_LOCATIONS"); fi
if [[ "$SPOT" == true ]]; then args+=(--spot); fi

run gcloud "${args[@]}"
