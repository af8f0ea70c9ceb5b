#!/usr/bin/env bash
# Workload Identity for the pipeline, checked on the cluster and granted in IAM:
#  - the cluster has a workload pool, and both node pools (CPU_POOL: ingest, split, evaluate, report and
#    KFP itself; GPU_POOL: train) run GKE's metadata server (GKE_METADATA); --update-node-pools sets it
#    where it is missing (GKE then recreates that pool's nodes);
#  - the CPU pool's node service account may pull the images (the GPU pool's gets that from
#    gpu-node-pool.sh);
#  - a Google service account GSA_NAME that may read DATA_BUCKET, and read and write ARTIFACT_BUCKET when
#    the pipeline root is on GCS, impersonated by kubeflow/cxr-pipeline-runner (manifests/cluster, applied
#    here with PROJECT_ID filled in);
#  - with ARTIFACT_BUCKET, a second one, UI_GSA_NAME, that may read it, for KFP's UI server
#    (kubeflow/ml-pipeline-ui), which shows the artifacts.
#
#   PROJECT_ID=my-project CLUSTER=my-cluster LOCATION=us-central1 DATA_BUCKET=my-xray-data \
#     [ARTIFACT_BUCKET=my-kfp-artifacts] [IMAGE_REGISTRY=...] manifests/gke/workload-identity.sh \
#     [--update-node-pools] [--dry-run]
#
# kubectl acts on the current context: point it at the GKE cluster first (gcloud container clusters
# get-credentials ...).
set -euo pipefail

FLAGS=--update-node-pools
# shellcheck source=manifests/gke/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require workload-identity "PROJECT_ID, CLUSTER, LOCATION, DATA_BUCKET; ARTIFACT_BUCKET optional" \
    PROJECT_ID CLUSTER LOCATION DATA_BUCKET
CPU_POOL="${CPU_POOL:-default-pool}"
GPU_POOL="${GPU_POOL:-t4x2}"             # gpu-node-pool.sh POOL
GSA_NAME="${GSA_NAME:-cxr-pipeline}"     # must match the annotation in manifests/cluster/pipeline-runner-sa.yaml
UI_GSA_NAME="${UI_GSA_NAME:-cxr-kfp-ui}"
KSA=cxr-pipeline-runner                  # manifests/cluster/pipeline-runner-sa.yaml
UI_KSA=ml-pipeline-ui                    # KFP standalone's UI server
NAMESPACE=kubeflow
gsa="$(sa_email "$GSA_NAME")"
ui_gsa="$(sa_email "$UI_GSA_NAME")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
where=(--cluster "$CLUSTER" --location "$LOCATION" --project "$PROJECT_ID")

# query VAR GCLOUD-ARGS...: VAR is what a read-only gcloud query prints; under --dry-run the query is
# printed and VAR is empty.
query() {
    local var="$1" answer=""
    shift
    if $dry_run; then show gcloud "$@"; else answer="$(gcloud "$@")" || return 1; fi
    printf -v "$var" '%s' "$answer"
}
workload_pool="" config="" cpu_node_sa=""

query workload_pool container clusters describe "$CLUSTER" --location "$LOCATION" --project "$PROJECT_ID" \
    --format 'value(workloadIdentityConfig.workloadPool)' || die "cannot describe cluster $CLUSTER in $LOCATION"
if ! $dry_run && [[ "$workload_pool" != "$PROJECT_ID.svc.id.goog" ]]; then
    die "cluster $CLUSTER has no Workload Identity (workload pool '$workload_pool'): gcloud container clusters update $CLUSTER --location $LOCATION --workload-pool=$PROJECT_ID.svc.id.goog"
fi

for node_pool in "$CPU_POOL" "$GPU_POOL"; do
    query config container node-pools describe "$node_pool" "${where[@]}" \
        --format 'value(config.workloadMetadataConfig.mode,config.serviceAccount)' ||
        die "no node pool $node_pool in cluster $CLUSTER (set CPU_POOL / GPU_POOL; the GPU pool comes from gpu-node-pool.sh)"
    mode="$(printf '%s' "$config" | cut -f1)"
    if [[ "$mode" != GKE_METADATA ]]; then
        if flag --update-node-pools; then
            run gcloud container node-pools update "$node_pool" "${where[@]}" --workload-metadata GKE_METADATA
        elif ! $dry_run; then
            die "node pool $node_pool has workload metadata '${mode:-unset}', not GKE_METADATA: its pods would get the node's identity instead of their service account's. Rerun with --update-node-pools (GKE recreates that pool's nodes)"
        fi
    fi
    if [[ "$node_pool" == "$CPU_POOL" ]]; then cpu_node_sa="$(printf '%s' "$config" | cut -s -f2)"; fi
done
if $dry_run; then
    cpu_node_sa="NODE_SA_OF_$CPU_POOL"
elif [[ "$cpu_node_sa" == default || -z "$cpu_node_sa" ]]; then
    cpu_node_sa="$(gcloud projects describe "$PROJECT_ID" --format 'value(projectNumber)')-compute@developer.gserviceaccount.com"
fi
grant_image_pulls "serviceAccount:$cpu_node_sa"

bind_workload_identity() {  # bind_workload_identity GSA KSA: pods running as kubeflow/KSA act as GSA
    run gcloud iam service-accounts add-iam-policy-binding "$1" --project "$PROJECT_ID" \
        --role roles/iam.workloadIdentityUser \
        --member "serviceAccount:$PROJECT_ID.svc.id.goog[$NAMESPACE/$2]"
}

ensure_service_account "$GSA_NAME" "cxr-kfp pipeline runner"
grant_bucket_role "$DATA_BUCKET" "serviceAccount:$gsa" roles/storage.objectViewer
if [[ -n "${ARTIFACT_BUCKET:-}" ]]; then
    # The launcher in every task uploads its outputs and downloads its inputs there.
    grant_bucket_role "$ARTIFACT_BUCKET" "serviceAccount:$gsa" roles/storage.objectUser
fi
bind_workload_identity "$gsa" "$KSA"

# manifests/cluster with the placeholder annotation replaced by this account.
placeholder='cxr-pipeline@PROJECT_ID\.iam\.gserviceaccount\.com'
if $dry_run; then
    echo "kubectl kustomize $here/../cluster | sed 's#$placeholder#$gsa#' | kubectl apply -f -"
else
    kubectl kustomize "$here/../cluster" | sed "s#$placeholder#$gsa#" | kubectl apply -f -
fi

if [[ -n "${ARTIFACT_BUCKET:-}" ]]; then
    # The UI server lists and reads artifacts (metrics, HTML, Markdown) with its own identity.
    ensure_service_account "$UI_GSA_NAME" "cxr-kfp Kubeflow UI (reads pipeline artifacts)"
    grant_bucket_role "$ARTIFACT_BUCKET" "serviceAccount:$ui_gsa" roles/storage.objectViewer
    bind_workload_identity "$ui_gsa" "$UI_KSA"
    run kubectl -n "$NAMESPACE" annotate serviceaccount "$UI_KSA" --overwrite "iam.gke.io/gcp-service-account=$ui_gsa"
fi
