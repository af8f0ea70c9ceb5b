"""Reads a finished run back from Kubeflow Pipelines and checks what the study must have produced.

Used by manifests/kind/run-test.sh (make kind-test, kind-test-gpu-placement) after `cxr submit --wait`:
- the run SUCCEEDED and its report task succeeded (kfp.Client, then ML Metadata);
- every evaluate task logged accuracy on its Metrics artifact, one per variant (ML Metadata, read through
  the KFP UI's grpc-web proxy at /ml_metadata.MetadataStoreService/*, so the one port-forward to the UI
  serves the API and the metadata);
- with --gpu-node-label: every train pod asked for and got --gpu-count nvidia.com/gpu on that node and
  carried the T4 node selector and the GPU toleration (kubectl, the kind context).

Prints a JSON summary on stdout; exits 1 with a one-line reason on the first failed check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

from pipelines.config import PlacementConfig

MLMD_SERVICE = "ml_metadata.MetadataStoreService"
RUN_CONTEXT_TYPE = "system.PipelineRun"
EXECUTION_DONE = {3: "COMPLETE", 5: "CACHED"}  # ml_metadata.Execution.State values that count as success
# What the pipeline's train placement asks for: the configuration's defaults (one home).
_PLACEMENT = PlacementConfig()
GPU_RESOURCE = _PLACEMENT.accelerator_resource
T4_SELECTOR = (_PLACEMENT.node_selector_key, _PLACEMENT.node_selector_value)


class CheckError(Exception):
    """A check failed; the message says which and why."""


# --- ML Metadata messages: the few fields this check reads, with the field numbers of
# ml_metadata/proto/metadata_store{,_service}.proto (the ml-metadata package is not a dependency).
_MESSAGES = {
    "Value": [
        ("int_value", 1, "int64"),
        ("double_value", 2, "double"),
        ("string_value", 3, "string"),
        ("bool_value", 6, "bool"),
    ],
    "Artifact": [
        ("id", 1, "int64"),
        ("type_id", 2, "int64"),
        ("uri", 3, "string"),
        ("custom_properties", 5, "map"),
        ("name", 7, "string"),
        ("type", 8, "string"),
    ],
    "Execution": [
        ("id", 1, "int64"),
        ("type_id", 2, "int64"),
        ("last_known_state", 3, "int32"),
        ("custom_properties", 5, "map"),
        ("name", 6, "string"),
        ("type", 7, "string"),
    ],
    "Context": [("id", 1, "int64"), ("type_id", 2, "int64"), ("name", 3, "string"), ("type", 6, "string")],
    "GetContextByTypeAndNameRequest": [("type_name", 1, "string"), ("context_name", 2, "string")],
    "GetContextByTypeAndNameResponse": [("context", 1, "Context")],
    "GetArtifactsByContextRequest": [("context_id", 1, "int64")],
    "GetArtifactsByContextResponse": [("artifacts", 1, "Artifact*"), ("next_page_token", 2, "string")],
    "GetExecutionsByContextRequest": [("context_id", 1, "int64")],
    "GetExecutionsByContextResponse": [("executions", 1, "Execution*"), ("next_page_token", 2, "string")],
}


def mlmd_messages() -> dict[str, type]:
    """Message classes for _MESSAGES, built in a private descriptor pool."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fp = descriptor_pb2.FieldDescriptorProto
    scalars = {
        "int64": fp.TYPE_INT64,
        "int32": fp.TYPE_INT32,
        "double": fp.TYPE_DOUBLE,
        "string": fp.TYPE_STRING,
        "bool": fp.TYPE_BOOL,
    }
    package = "ml_metadata"
    file = descriptor_pb2.FileDescriptorProto(name="cxr_kfp_mlmd.proto", package=package, syntax="proto2")
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind in fields:
            field = message.field.add(name=field_name, number=number, label=fp.LABEL_OPTIONAL)
            if kind in scalars:
                field.type = scalars[kind]
            elif kind == "map":  # map<string, Value>
                entry = message.nested_type.add(name="CustomPropertiesEntry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, label=fp.LABEL_OPTIONAL, type=fp.TYPE_STRING)
                entry.field.add(
                    name="value",
                    number=2,
                    label=fp.LABEL_OPTIONAL,
                    type=fp.TYPE_MESSAGE,
                    type_name=f".{package}.Value",
                )
                field.label, field.type = fp.LABEL_REPEATED, fp.TYPE_MESSAGE
                field.type_name = f".{package}.{name}.CustomPropertiesEntry"
            else:  # another message, `*` = repeated
                field.type, field.type_name = fp.TYPE_MESSAGE, f".{package}.{kind.rstrip('*')}"
                if kind.endswith("*"):
                    field.label = fp.LABEL_REPEATED
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name in _MESSAGES
    }


def value_of(value):
    """The Python value of an ml_metadata.Value (None for the kinds not read here)."""
    for field in ("double_value", "int_value", "string_value", "bool_value"):
        if value.HasField(field):
            return getattr(value, field)
    return None


def properties(node) -> dict:
    """An ML Metadata node's custom properties as plain values."""
    return {key: value_of(value) for key, value in node.custom_properties.items()}


def grpc_web_frame(message: bytes, trailer: bool = False) -> bytes:
    """One grpc-web frame: flag byte (0x80 for trailers), 4-byte big-endian length, payload."""
    return bytes([0x80 if trailer else 0]) + len(message).to_bytes(4, "big") + message


def grpc_web_call(host: str, method: str, request, response_class, timeout: float = 30.0):
    """Unary call to ML Metadata through the KFP UI's grpc-web proxy."""
    url = f"{host.rstrip('/')}/{MLMD_SERVICE}/{method}"
    http_request = urllib.request.Request(
        url,
        data=grpc_web_frame(request.SerializeToString()),
        method="POST",
        headers={
            "Content-Type": "application/grpc-web+proto",
            "Accept": "application/grpc-web+proto",
            "X-Grpc-Web": "1",
        },
    )
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as response:
            body, headers = response.read(), response.headers
    except (urllib.error.URLError, OSError) as exc:
        raise CheckError(
            f"ML Metadata {method} via {url} failed ({getattr(exc, 'reason', exc)}); is the "
            "KFP UI port-forward up and metadata-envoy-deployment Available?"
        ) from exc
    payload, status, detail = b"", headers.get("grpc-status"), headers.get("grpc-message", "")
    offset = 0
    while offset + 5 <= len(body):
        flag, length = body[offset], int.from_bytes(body[offset + 1 : offset + 5], "big")
        chunk = body[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if flag & 0x80:
            trailers = dict(line.split(":", 1) for line in chunk.decode().splitlines() if ":" in line)
            trailers = {k.strip().lower(): v.strip() for k, v in trailers.items()}
            status, detail = trailers.get("grpc-status", status), trailers.get("grpc-message", detail)
        else:
            payload += chunk
    if status not in (None, "0"):
        raise CheckError(f"ML Metadata {method} failed: grpc-status {status} {urllib.parse.unquote(detail)}")
    return response_class.FromString(payload)


def read_metadata(host: str, run_id: str) -> tuple[list, list]:
    """The executions and artifacts of the run (its system.PipelineRun context is named after the run id)."""
    m = mlmd_messages()

    def call(method: str, **fields):
        return grpc_web_call(host, method, m[f"{method}Request"](**fields), m[f"{method}Response"])

    found = call("GetContextByTypeAndName", type_name=RUN_CONTEXT_TYPE, context_name=run_id)
    if not found.HasField("context"):
        raise CheckError(f"ML Metadata has no {RUN_CONTEXT_TYPE} context for run {run_id}")
    executions = call("GetExecutionsByContext", context_id=found.context.id).executions
    artifacts = call("GetArtifactsByContext", context_id=found.context.id).artifacts
    return list(executions), list(artifacts)


def read_run(host: str, run_id: str) -> tuple[str, list[dict]]:
    """State of the run and its task details (display name, state) from the KFP API."""
    import kfp

    try:
        with contextlib.redirect_stdout(sys.stderr):
            run = kfp.Client(host=host, namespace="kubeflow").get_run(run_id)
    except Exception as exc:  # urllib3 / ApiException: the API said no or is not there
        raise CheckError(
            f"KFP API at {host} could not return run {run_id} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    details = run.run_details.task_details if run.run_details and run.run_details.task_details else []
    tasks = [{"name": t.display_name, "state": str(t.state)} for t in details]
    return str(run.state), tasks


def check_study(host: str, run_id: str, variants: list[str]) -> dict:
    """Run state, report task and per-variant accuracy; returns the summary."""
    state, tasks = read_run(host, run_id)
    if state != "SUCCEEDED":
        raise CheckError(f"run {run_id} is {state}, not SUCCEEDED")
    report_tasks = [t for t in tasks if t["name"] in ("report", "report-op")]
    if report_tasks and not any(t["state"] == "SUCCEEDED" for t in report_tasks):
        raise CheckError(f"the report task did not succeed: {report_tasks}")

    executions, artifacts = read_metadata(host, run_id)

    def done(task: str) -> list:
        return [
            e
            for e in executions
            if properties(e).get("display_name") == task and e.last_known_state in EXECUTION_DONE
        ]

    if not done("report"):
        seen = sorted({str(properties(e).get("display_name")) for e in executions})
        raise CheckError(
            f"no completed report execution in ML Metadata for run {run_id} (tasks seen: {seen})"
        )
    if len(done("evaluate")) < len(variants):
        raise CheckError(f"{len(done('evaluate'))} completed evaluate executions, expected {len(variants)}")

    accuracy = {}
    for artifact in artifacts:
        props = properties(artifact)
        if isinstance(props.get("accuracy"), float) and isinstance(props.get("variant"), str):
            accuracy[props["variant"]] = props["accuracy"]
    missing = [v for v in variants if v not in accuracy]
    if missing:
        raise CheckError(
            f"no logged accuracy for {', '.join(missing)} (found {sorted(accuracy) or 'none'}): "
            "each evaluate task logs it on its metrics artifact"
        )
    bad = {v: a for v, a in accuracy.items() if not 0.0 <= a <= 1.0}
    if bad:
        raise CheckError(f"accuracy outside [0, 1]: {bad}")
    best = next((p["best_variant"] for p in map(properties, artifacts) if "best_variant" in p), None)
    return {
        "run_id": run_id,
        "state": state,
        "tasks": len(tasks),
        "executions": len(executions),
        "accuracy": {v: round(accuracy[v], 4) for v in variants},
        "best_variant": best,
    }


def kubectl_json(kubectl: str, context: str, *args: str) -> dict:
    """`kubectl --context CONTEXT ARGS -o json`, parsed; a CheckError when it fails."""
    command = [kubectl, "--context", context, *args, "-o", "json"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise CheckError(f"{' '.join(command)} failed: {reason}")
    return json.loads(result.stdout)


def check_gpu_placement(
    kubectl: str,
    context: str,
    run_id: str,
    node_label: str,
    gpu_count: int,
    expected_pods: int,
    namespace: str = "kubeflow",
) -> dict:
    """Every train pod of the run requested and got `gpu_count` GPUs on the one node labelled `node_label`."""
    nodes = kubectl_json(kubectl, context, "get", "nodes", "-l", node_label)["items"]
    if len(nodes) != 1:
        raise CheckError(f"expected one node labelled {node_label}, found {len(nodes)}")
    node = nodes[0]["metadata"]["name"]
    allocatable = nodes[0].get("status", {}).get("allocatable", {}).get(GPU_RESOURCE)
    if not str(allocatable).isdigit() or int(allocatable) < gpu_count:
        raise CheckError(
            f"node {node} advertises {GPU_RESOURCE}={allocatable}, fewer than {gpu_count} "
            "(make kind-fake-gpu)"
        )
    pods = kubectl_json(kubectl, context, "-n", namespace, "get", "pods", "-l", f"pipeline/runid={run_id}")[
        "items"
    ]

    def gpu_container(pod):
        return next(
            (
                c
                for c in pod["spec"]["containers"]
                if GPU_RESOURCE in (c.get("resources", {}).get("limits") or {})
            ),
            None,
        )

    train = [p for p in pods if gpu_container(p)]
    if len(train) < expected_pods:
        raise CheckError(
            f"{len(train)} pods of run {run_id} request {GPU_RESOURCE}, expected "
            f"{expected_pods} (one train pod per variant; a cached run starts none: submit "
            "with placement.caching=false)"
        )
    placed = []
    for pod in train:
        name, spec, resources = pod["metadata"]["name"], pod["spec"], gpu_container(pod)["resources"]
        requested = {
            kind: str((resources.get(kind) or {}).get(GPU_RESOURCE)) for kind in ("requests", "limits")
        }
        if requested != {"requests": str(gpu_count), "limits": str(gpu_count)}:
            raise CheckError(f"pod {name} asks for {GPU_RESOURCE} {requested}, expected {gpu_count}")
        if spec.get("nodeName") != node:
            raise CheckError(f"pod {name} ran on {spec.get('nodeName')}, not on the GPU node {node}")
        if (spec.get("nodeSelector") or {}).get(T4_SELECTOR[0]) != T4_SELECTOR[1]:
            raise CheckError(f"pod {name} lacks the node selector {T4_SELECTOR[0]}={T4_SELECTOR[1]}")
        if not any(
            t.get("key") == _PLACEMENT.toleration_key and t.get("effect") == "NoSchedule"
            for t in spec.get("tolerations") or []
        ):
            raise CheckError(f"pod {name} lacks the {_PLACEMENT.toleration_key} NoSchedule toleration")
        phase = pod.get("status", {}).get("phase")
        if phase != "Succeeded":
            raise CheckError(f"pod {name} is {phase}, not Succeeded")
        placed.append(name)
    return {"gpu_node": node, "gpus_per_pod": gpu_count, "train_pods": sorted(placed)}


def main(argv: list[str] | None = None) -> int:
    """Checks a finished run; prints the JSON summary, returns 0, or 1 with a reason on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="KFP UI/API URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--variants", default="model1,model2,model3", help="variants the run trained")
    parser.add_argument("--kube-context", default="kind-cxr-kfp", help="kubectl context (GPU check)")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument(
        "--gpu-node-label",
        default="",
        help="KEY=VALUE label of the (fake) GPU node: also check the train pods' placement",
    )
    parser.add_argument("--gpu-count", type=int, default=2, help="GPUs each train pod must get")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    try:
        summary = check_study(args.host, args.run_id, variants)
        if args.gpu_node_label:
            summary["gpu_placement"] = check_gpu_placement(
                args.kubectl,
                args.kube_context,
                args.run_id,
                args.gpu_node_label,
                args.gpu_count,
                len(variants),
            )
    except CheckError as exc:
        print(f"check-run: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
