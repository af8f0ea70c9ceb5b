#!/usr/bin/env bash
# Workload Identity for the pipeline: a Google service account that may read the dataset bucket (and
# read/write the artifact bucket when the pipeline root is on GCS), bound to the Kubernetes service
# account kubeflow/cxr-pipeline-runner of manifests/cluster, which is then applied with PROJECT_ID
# filled in. The cluster needs Workload Identity (--workload-pool=PROJECT_ID.svc.id.goog) and the GPU
# pool GKE_METADATA (gpu-node-pool.sh sets it).
#
#   PROJECT_ID=my-project DATA_BUCKET=my-xray-data [ARTIFACT_BUCKET=my-kfp-artifacts] \
#     manifests/gke/workload-identity.sh [--dry-run]
#
# kubectl acts on the current context: point it at the GKE cluster first (gcloud container clusters
# get-credentials ...).
set -euo pipefail

# shellcheck source=manifests/gke/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require workload-identity "PROJECT_ID, DATA_BUCKET; ARTIFACT_BUCKET optional" PROJECT_ID DATA_BUCKET
GSA_NAME="${GSA_NAME:-cxr-pipeline}"     # must match the annotation in manifests/cluster/pipeline-runner-sa.yaml
KSA=cxr-pipeline-runner                  # manifests/cluster/pipeline-runner-sa.yaml
NAMESPACE=kubeflow
gsa="$GSA_NAME@$PROJECT_ID.iam.gserviceaccount.com"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if $dry_run || ! gcloud iam service-accounts describe "$gsa" --project "$PROJECT_ID" >/dev/null 2>&1; then
    run gcloud iam service-accounts create "$GSA_NAME" --project "$PROJECT_ID" \
        --display-name "cxr-kfp pipeline runner"
fi
run gcloud storage buckets add-iam-policy-binding "gs://$DATA_BUCKET" \
    --member "serviceAccount:$gsa" --role roles/storage.objectViewer
if [[ -n "${ARTIFACT_BUCKET:-}" ]]; then
    run gcloud storage buckets add-iam-policy-binding "gs://$ARTIFACT_BUCKET" \
        --member "serviceAccount:$gsa" --role roles/storage.objectUser
fi
run gcloud iam service-accounts add-iam-policy-binding "$gsa" --project "$PROJECT_ID" \
    --role roles/iam.workloadIdentityUser \
    --member "serviceAccount:$PROJECT_ID.svc.id.goog[$NAMESPACE/$KSA]"

# manifests/cluster with the placeholder annotation replaced by this account.
placeholder='cxr-pipeline@PROJECT_ID\.iam\.gserviceaccount\.com'
if $dry_run; then
    echo "kubectl kustomize $here/../cluster | sed 's#$placeholder#$gsa#' | kubectl apply -f -"
else
    kubectl kustomize "$here/../cluster" | sed "s#$placeholder#$gsa#" | kubectl apply -f -
fi
