#!/usr/bin/env bash
# Port-forward the KFP UI of the kind cluster to 127.0.0.1:KFP_PORT, run the submit command (which must
# print cxr submit's JSON on stdout and exit non-zero unless the run succeeded), then read the run back
# with check_run.py. The port-forward is restarted if it drops and stopped on exit, whatever happens.
#
# Usage: KFP_PORT=8080 run-test.sh [CHECK_RUN_OPTION...] -- SUBMIT_COMMAND...
#   CHECK_RUN_OPTIONs go to check_run.py (e.g. --gpu-node-label cxr-kfp/pool=gpu --gpu-count 2).
# Writes submit.json and check.json under KIND_OUT (default runs/kind).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KFP_PORT="${KFP_PORT:-8080}"
PYTHON="${PYTHON:-python3}"
KIND_OUT="${KIND_OUT:-runs/kind}"

check_args=()
while (($#)) && [[ "$1" != -- ]]; do
    check_args+=("$1")
    shift
done
(($#)) || die "usage: run-test.sh [CHECK_RUN_OPTION...] -- SUBMIT_COMMAND..."
shift
(($#)) || die "no submit command after --"

need_cluster
k -n "$KFP_NAMESPACE" get service ml-pipeline-ui >/dev/null 2>&1 ||
    die "Kubeflow Pipelines is not installed on '$KIND_CLUSTER_NAME': run 'make kind-deploy-kfp'"
mkdir -p "$KIND_OUT"
host="http://127.0.0.1:$KFP_PORT"

pf_log="$KIND_OUT/port-forward.log"
: >"$pf_log"
# kubectl port-forward ends when its connection to the API server drops, and the run can take 90 min:
# a supervisor starts it again, and gives up when it keeps exiting at once (KFP_PORT in use, no UI).
supervise_port_forward() {
    local child="" started quick=0
    trap 'if [[ -n "$child" ]]; then kill "$child" 2>/dev/null; fi; exit 0' TERM
    while ((quick < 3)); do
        started=$SECONDS
        "$KUBECTL" --context "$KUBE_CONTEXT" -n "$KFP_NAMESPACE" port-forward --address 127.0.0.1 \
            service/ml-pipeline-ui "$KFP_PORT:80" >>"$pf_log" 2>&1 &
        child=$!
        wait "$child" || true
        if ((SECONDS - started < 5)); then quick=$((quick + 1)); else quick=0; fi
        echo "run-test: port-forward exited; forwarding again" >>"$pf_log"
        sleep 1
    done
}
supervise_port_forward &
pf_pid=$!
stop_port_forward() {
    kill "$pf_pid" 2>/dev/null || true
    wait "$pf_pid" 2>/dev/null || true
}
trap stop_port_forward EXIT

# Up when the UI answers the API health check through the tunnel.
for ((i = 0; ; i++)); do
    kill -0 "$pf_pid" 2>/dev/null ||
        die "kubectl port-forward keeps exiting (port $KFP_PORT in use? set KFP_PORT=...): $(grep -v '^run-test:' "$pf_log" | tail -n 2)"
    if "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5).read()' \
        "$host/apis/v2beta1/healthz" 2>/dev/null; then
        break
    fi
    ((i < 120)) || die "KFP at $host did not answer for 60 s (see $pf_log; is ml-pipeline Available?)"
    sleep 0.5
done
log "KFP UI and API at $host (port-forward kept up by pid $pf_pid)"

"$@" | tee "$KIND_OUT/submit.json"
run_id="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["run_id"])' "$KIND_OUT/submit.json")"
"$PYTHON" "$KIND_DIR/check_run.py" --host "$host" --run-id "$run_id" --kube-context "$KUBE_CONTEXT" \
    --kubectl "$KUBECTL" ${check_args[@]+"${check_args[@]}"} | tee "$KIND_OUT/check.json"
log "run $run_id passed the checks: $host/#/runs/details/$run_id"
