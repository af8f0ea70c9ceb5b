"""`cxr submit`: compile the pipeline and start a run on a Kubeflow Pipelines endpoint.

Auth: KFP_TOKEN (a bearer token, e.g. `gcloud auth print-identity-token` or a service-account
token) or KFP_COOKIE (`authservice_session=…` from a multi-user Kubeflow login) when set; nothing
for a port-forwarded standalone install.
"""

import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from components.core.errors import CxrError
from components.core.progress import log
from pipelines.compile import compile_pipeline
from pipelines.config import Config, git_tag
from pipelines.pipeline import pipeline_arguments

FINISHED = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED", "CANCELLED", "ERROR"}
WAIT_OUTAGE_SECONDS = 300.0  # --wait rides out an API restart or a dropped port-forward this long


def submit(
    config: Config, *, wait: bool = False, timeout_s: float = 24 * 3600, poll_s: float = 10.0, env=None
) -> dict:
    """Submits one run; with `wait`, follows it and fails unless it succeeds. Returns run id, URL, state."""
    import kfp

    env = os.environ if env is None else env
    host = config.kfp.host.rstrip("/")
    if not host:
        raise CxrError(
            "no KFP endpoint: set KFP_HOST (e.g. http://127.0.0.1:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`) or --host"
        )
    _fingerprint_a_cached_bucket(config)
    run_name = f"{config.kfp.pipeline_name}-{config.images.tag or git_tag()}-{time.strftime('%Y%m%d-%H%M%S')}"
    _check_endpoint(host, env)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(config, Path(tmp) / "pipeline.yaml")
        # kfp.Client prints its own "Run details" links on stdout; keep stdout for our JSON result.
        try:
            with contextlib.redirect_stdout(sys.stderr):
                client = kfp.Client(
                    host=host,
                    existing_token=env.get("KFP_TOKEN") or None,
                    cookies=env.get("KFP_COOKIE") or None,
                    namespace=config.kfp.namespace or "kubeflow",
                )
                result = client.create_run_from_pipeline_package(
                    str(package),
                    arguments=pipeline_arguments(config),
                    run_name=run_name,
                    experiment_name=config.kfp.experiment,
                    namespace=config.kfp.namespace or None,
                    enable_caching=config.placement.caching,
                    service_account=config.kfp.service_account or None,
                )
        except Exception as exc:  # urllib3, ApiException and friends: all mean "the host said no"
            raise CxrError(
                f"KFP endpoint {host} {_reason(exc)}; check KFP_HOST, the port-forward "
                "and KFP_TOKEN / KFP_COOKIE"
            ) from exc
    run_id = result.run_id
    url = f"{host}/#/runs/details/{run_id}"
    log(f"submit: run {run_name} started in experiment {config.kfp.experiment}: {url}")
    outcome = {"run_id": run_id, "run_name": run_name, "url": url, "state": "SUBMITTED"}
    if wait:
        outcome["state"] = _wait(client, run_id, timeout_s, poll_s)
        if outcome["state"] != "SUCCEEDED":
            raise CxrError(f"run {run_id} ended {outcome['state']}: see {url}")
    return outcome


def _fingerprint_a_cached_bucket(config: Config) -> None:
    """Gives a cached run on a gs:// source a fingerprint of its data, from the bucket's listing.

    KFP's cache key never sees the bytes behind a gs:// string: without a fingerprint, a changed bucket
    would be served entirely from cache.
    """
    study = config.study
    if not (study.source.startswith("gs://") and config.placement.caching and not study.dataset_fingerprint):
        return
    from components.core.sources import listing_fingerprint

    try:
        study.dataset_fingerprint = listing_fingerprint(study.source)["fingerprint"]
    except CxrError as exc:
        raise CxrError(
            f"study.dataset_fingerprint is empty for {study.source} with caching on, and it cannot be "
            f"computed here ({exc}): pass one (`cxr fingerprint {study.source}`, or the fingerprint "
            "`cxr ingest` prints), or turn caching off (--set placement.caching=false)"
        ) from exc
    log(f"submit: dataset_fingerprint {study.dataset_fingerprint} (from the listing of {study.source})")


def _wait(client, run_id: str, timeout_s: float, poll_s: float) -> str:
    """Polls the run until it finishes; the endpoint may fail for up to WAIT_OUTAGE_SECONDS at a time."""
    deadline, last, failing_since = time.monotonic() + timeout_s, None, None
    while True:
        try:
            state = str(client.get_run(run_id).state or "PENDING").upper()
            failing_since = None
        except Exception as exc:  # the API went away or refused us while we waited
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                log(f"submit: the KFP endpoint {_reason(exc)}; asking again for {WAIT_OUTAGE_SECONDS:.0f} s")
            if now - failing_since >= WAIT_OUTAGE_SECONDS or now > deadline:
                raise CxrError(
                    f"lost track of run {run_id}: the KFP endpoint {_reason(exc)} for "
                    f"{now - failing_since:.0f} s; the run may still be going: check it in the Kubeflow UI"
                ) from exc
            time.sleep(poll_s)
            continue
        if state != last:
            log(f"submit: run {run_id} is {state}")
            last = state
        if state in FINISHED:
            return state
        if time.monotonic() > deadline:
            raise CxrError(f"run {run_id} still {state} after {timeout_s:.0f} s (--wait timeout)")
        time.sleep(poll_s)


def _check_endpoint(host: str, env) -> None:
    """One quick request to the health endpoint, so an unreachable or refusing host fails in seconds.

    (kfp.Client retries its own health check for about 25 s and then reports only a timeout.)
    """
    request = urllib.request.Request(f"{host}/apis/v2beta1/healthz")
    if env.get("KFP_TOKEN"):
        request.add_header("Authorization", f"Bearer {env['KFP_TOKEN']}")
    if env.get("KFP_COOKIE"):
        request.add_header("Cookie", env["KFP_COOKIE"])
    hint = "check KFP_HOST, the port-forward and KFP_TOKEN / KFP_COOKIE"
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise CxrError(
            f"KFP endpoint {host} refused the request (HTTP {exc.code} {exc.reason}); {hint}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CxrError(f"KFP endpoint {host} is unreachable ({reason}); {hint}") from exc
    try:
        json.loads(body)
    except ValueError as exc:
        raise CxrError(
            f"KFP endpoint {host} answered with a non-API page (a login page?); set "
            "KFP_COOKIE or KFP_TOKEN, or point KFP_HOST at the pipelines API"
        ) from exc


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status:
        return f"refused the request (HTTP {status} {getattr(exc, 'reason', '')})".rstrip()
    return f"is unreachable ({type(exc).__name__})"
