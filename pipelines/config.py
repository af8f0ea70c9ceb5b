"""Pipeline configuration: one typed place for the study's parameters, images, placement and cluster.

Resolution order (later wins): the dataclass defaults below, a YAML file (one per environment in
pipelines/configs/), environment variables (ENV_OVERRIDES), then `--set key=value` overrides with
dotted keys such as `study.epochs=3` or `placement.accelerator_count=1`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from components.core import study as defaults
from components.core.checks import (
    check_fractions,
    check_head,
    check_learning_rate,
    check_seed,
    check_stored_size,
    check_training_settings,
)
from components.core.errors import CxrError
from components.core.variants import VARIANTS

CONFIG_DIR = Path(__file__).parent / "configs"
IMAGES_ENV = Path(__file__).parent / "images.env"


def _image_names() -> dict[str, str]:
    """The KEY=VALUE lines of images.env (image names and the default registry, shared with Make)."""
    lines = IMAGES_ENV.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


_IMAGE_NAMES = _image_names()


@dataclass
class StudyConfig:
    """The pipeline's run-time parameters: what one run of the study does."""

    source: str = ""  # dataset folder, .zip or gs:// prefix (empty: demo data, local runs)
    dataset_fingerprint: str = ""  # content fingerprint of `source`, so KFP caching sees data changes
    stored_size: int = 0  # side of the stored pixels; 0 = the most common image size
    val_fraction: float = defaults.VAL_FRACTION
    test_fraction: float = defaults.TEST_FRACTION
    split_seed: int = defaults.SPLIT_SEED
    image_size: int = defaults.IMAGE_SIZE
    epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_SIZE
    learning_rate: float = defaults.LEARNING_RATE
    weights: str = "imagenet"  # imagenet | none | demo | local path | gs:// URI of backbone weights
    seed: int = defaults.SEED
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    head_units: list[int] = field(
        default_factory=lambda: list(defaults.HEAD_UNITS)
    )  # the head's hidden sizes
    dropout: float = defaults.HEAD_DROPOUT  # after each hidden layer of the head
    cross_class_duplicates: str = "exclude"  # identical images under two labels: exclude | keep


@dataclass
class ImagesConfig:
    """Container images; a reference is `<registry>/<name>:<tag>` and never `:latest`.

    The names and the default registry come from pipelines/images.env, which the Makefiles read too.
    """

    registry: str = _IMAGE_NAMES["DEFAULT_IMAGE_REGISTRY"]
    tag: str = ""  # empty: the git SHA of this checkout
    cpu_name: str = _IMAGE_NAMES["CPU_IMAGE_NAME"]
    train_name: str = _IMAGE_NAMES["TRAIN_IMAGE_NAME"]
    train_cpu_name: str = _IMAGE_NAMES["TRAIN_CPU_IMAGE_NAME"]
    train_build: str = "gpu"  # gpu: train_name (TensorFlow + CUDA); cpu: train_cpu_name
    # A cluster pulls the images from a registry: localhost names and -dirty tags are refused when compiling.
    remote: bool = False

    def ref(self, name: str) -> str:
        """Full reference of image `name` at the configured registry and tag."""
        return f"{self.registry.rstrip('/')}/{name}:{self.tag or git_tag()}"

    @property
    def cpu(self) -> str:
        """The image of every step but train."""
        return self.ref(self.cpu_name)

    @property
    def train(self) -> str:
        """The image of the train step: the CUDA build, or its CPU build with train_build: cpu."""
        return self.ref(self.train_cpu_name if self.train_build == "cpu" else self.train_name)


@dataclass
class PlacementConfig:
    """Where and how tasks run on the cluster; the GPU settings apply to the train task only."""

    accelerator_resource: str = "nvidia.com/gpu"  # Kubernetes resource name (not a GKE type string)
    accelerator_count: int = 2  # 0 = train on CPU (kind, CPU-only clusters)
    node_selector_key: str = "cloud.google.com/gke-accelerator"
    node_selector_value: str = "nvidia-tesla-t4"  # empty: no node selector
    toleration_key: str = "nvidia.com/gpu"  # empty: no toleration
    train_cpu: str = "8"
    train_memory: str = "32G"
    step_cpu: str = "2"
    step_memory: str = "8G"
    retries: int = 2  # train retries (preemptible GPU nodes)
    caching: bool = True
    # Where MobileNetV2's frozen prefix runs (README "Where the prefix runs"): "shared" = one featurize
    # step before the fan-out whose features every train and evaluate task reads; "per-task" = each
    # train task runs it on its own GPUs; "auto" = per-task when train has GPUs, else shared.
    feature_pass: str = "auto"
    # Two-GPU training shares memory through NCCL, which falls back to /dev/shm on GCE T4 nodes (no
    # peer-to-peer); a pod's default /dev/shm is 64 MiB. A memory-backed emptyDir of this size replaces it.
    shm_size: str = "4Gi"
    # How long Argo keeps retrying a train task, counted from its first attempt's start (pending and
    # image pull included): a whole training plus a node scale-up, not Argo's default hour.
    retry_window_seconds: int = 8 * 3600
    train_timeout_seconds: int = 6 * 3600  # a hung train pod is killed after this

    @property
    def shared_feature_pass(self) -> bool:
        """True when one featurize step serves every variant."""
        if self.feature_pass == "auto":
            return self.accelerator_count == 0
        return self.feature_pass == "shared"


@dataclass
class KfpConfig:
    """The Kubeflow Pipelines endpoint and how runs are named."""

    host: str = ""  # KFP API endpoint; KFP_HOST overrides
    experiment: str = "cxr-kfp"
    namespace: str = ""  # multi-user Kubeflow profile namespace
    service_account: str = ""  # run the pipeline's pods as this Kubernetes service account
    pipeline_name: str = "cxr-transfer-learning"
    pipeline_root: str = ""  # where artifacts go, e.g. gs://BUCKET/pipeline-root; empty: KFP's object store
    # Where train tasks checkpoint every epoch, so a retried (preempted) task resumes: a KFP output is
    # uploaded only when its task ends, so checkpoints inside it die with the pod. Empty: under
    # pipeline_root when that is gs://, else in the task's own output folder (local runs).
    checkpoint_root: str = ""
    run_deadline_seconds: int = 12 * 3600  # the whole run is stopped after this (two T4 nodes per variant)

    @property
    def train_checkpoints(self) -> str:
        """The gs:// prefix train checkpoints go under (run id and variant appended), or "" for none."""
        if self.checkpoint_root:
            return self.checkpoint_root.rstrip("/")
        if self.pipeline_root.startswith("gs://"):
            return self.pipeline_root.rstrip("/") + "/checkpoints"
        return ""


FEATURE_PASSES = ("auto", "shared", "per-task")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?")
_CPU_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?m?")  # cores ("8", "0.5") or millicores ("500m")


@dataclass
class Config:
    """Everything one environment needs: study parameters, images, placement, KFP endpoint."""

    study: StudyConfig = field(default_factory=StudyConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    kfp: KfpConfig = field(default_factory=KfpConfig)

    def validate(self) -> Config:
        """Checks values a run would otherwise fail on late; returns self."""
        s, p = self.study, self.placement
        unknown = [v for v in s.variants if v not in VARIANTS]
        if unknown or not s.variants:
            raise CxrError(f"study.variants {s.variants}: choose from {', '.join(VARIANTS)}")
        check_fractions(s.val_fraction, s.test_fraction, prefix="study.")
        check_training_settings(s.epochs, s.batch_size, s.image_size, prefix="study.")
        check_stored_size(s.stored_size, prefix="study.")
        check_learning_rate(s.learning_rate, prefix="study.")
        check_seed(s.seed, "study.seed")
        check_seed(s.split_seed, "study.split_seed")
        check_head(s.head_units, s.dropout, prefix="study.")
        if s.cross_class_duplicates not in ("exclude", "keep"):
            raise CxrError(
                f"study.cross_class_duplicates {s.cross_class_duplicates!r}: choose exclude or keep"
            )
        if p.accelerator_count < 0 or p.retries < 0:
            raise CxrError("placement.accelerator_count and placement.retries must be >= 0")
        if min(p.retry_window_seconds, p.train_timeout_seconds, self.kfp.run_deadline_seconds) < 1:
            raise CxrError(
                "placement.retry_window_seconds, placement.train_timeout_seconds and "
                "kfp.run_deadline_seconds must be positive numbers of seconds"
            )
        if not _QUANTITY.fullmatch(p.shm_size):
            raise CxrError(f"placement.shm_size {p.shm_size!r}: give a Kubernetes quantity such as 4Gi")
        for name, pattern, example in (
            ("train_cpu", _CPU_QUANTITY, "8 or 500m"),
            ("step_cpu", _CPU_QUANTITY, "2 or 500m"),
            ("train_memory", _QUANTITY, "32G or 16Gi"),
            ("step_memory", _QUANTITY, "8G or 4Gi"),
        ):
            value = str(getattr(p, name))
            if not pattern.fullmatch(value) or not float(re.match(r"[0-9.]+", value).group()):
                raise CxrError(
                    f"placement.{name} {value!r}: give a positive Kubernetes quantity such as {example}"
                )
        if self.kfp.checkpoint_root and not self.kfp.checkpoint_root.startswith("gs://"):
            raise CxrError(
                f"kfp.checkpoint_root {self.kfp.checkpoint_root!r}: give gs://BUCKET/PATH (pods are "
                "preempted with their disks), or leave it empty"
            )
        if self.kfp.pipeline_root and not self.kfp.pipeline_root.startswith(("gs://", "s3://", "minio://")):
            raise CxrError(
                f"kfp.pipeline_root {self.kfp.pipeline_root!r}: give gs://BUCKET/PATH (or s3://, "
                "minio://), or leave it empty for KFP's own object store"
            )
        if p.feature_pass not in FEATURE_PASSES:
            raise CxrError(f"placement.feature_pass {p.feature_pass!r}: choose {', '.join(FEATURE_PASSES)}")
        if self.images.tag == "latest":
            raise CxrError("images.tag 'latest' is not allowed: pin a tag (default: the git SHA)")
        if self.images.train_build not in ("gpu", "cpu"):
            raise CxrError(
                f"images.train_build {self.images.train_build!r}: choose gpu (the CUDA image) "
                "or cpu (its CPU build)"
            )
        return self


# Environment variables that override configuration keys.
ENV_OVERRIDES = {
    "KFP_HOST": "kfp.host",
    "KFP_EXPERIMENT": "kfp.experiment",
    "KFP_NAMESPACE": "kfp.namespace",
    "KFP_SERVICE_ACCOUNT": "kfp.service_account",
    "IMAGE_REGISTRY": "images.registry",
    "IMAGE_TAG": "images.tag",
}


def load_config(path: Path | str | None = None, overrides: list[str] = (), env=None) -> Config:
    """Config from defaults, the YAML file `path`, environment variables and `key=value` overrides."""
    env = os.environ if env is None else env
    config = Config()
    if path:
        path = Path(path)
        if not path.is_file():
            known = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
            raise CxrError(f"--config {path}: no such file (shipped configs in {CONFIG_DIR}: {known})")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise CxrError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
        if not isinstance(data, dict):
            raise CxrError(f"--config {path}: expected sections (study:, images:, placement:, kfp:)")
        for section, values in data.items():
            if not isinstance(values, dict | None):
                raise CxrError(f"--config {path}: section {section!r} must be a mapping of key: value")
            for key, value in (values or {}).items():
                _set(config, f"{section}.{key}", value, origin=str(path))
    for var, key in ENV_OVERRIDES.items():
        if env.get(var):
            _set(config, key, env[var], origin=f"${var}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise CxrError(f"--set {item!r}: expected key=value, e.g. study.epochs=3")
        _set(config, key.strip(), value, origin="--set")
    return config.validate()


def _set(config: Config, dotted: str, value, *, origin: str) -> None:
    section_name, _, key = dotted.partition(".")
    section = getattr(config, section_name, None)
    fields = {f.name: f for f in dataclasses.fields(section)} if dataclasses.is_dataclass(section) else {}
    if key not in fields:
        sections = ", ".join(f.name for f in dataclasses.fields(Config))
        raise CxrError(
            f"{origin}: unknown setting {dotted!r} (sections: {sections}; see README "
            "'Configuration reference')"
        )
    setattr(section, key, _convert(value, getattr(section, key), f"{origin}: {dotted}={value!r}"))


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _convert(value, current, what: str):
    """`value` (from YAML or a --set string) as the type of the setting's `current` value."""
    if isinstance(current, bool):
        word = str(value).lower()
        if isinstance(value, bool) or word in _TRUE | _FALSE:
            return value if isinstance(value, bool) else word in _TRUE
        raise CxrError(f"{what} is not true or false")
    if isinstance(current, list):
        items = value if isinstance(value, list) else str(value).split(",")
        element = current[0] if current else ""  # the type of the list's items
        return [_convert(str(v).strip(), element, what) for v in items if str(v).strip()]
    if isinstance(current, int):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not number.is_integer() or isinstance(value, bool):
            raise CxrError(f"{what} is not a whole number")
        return int(number)
    if isinstance(current, float):
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise CxrError(f"{what} is not a number") from exc
    return "" if value is None else str(value)


def git_tag() -> str:
    """Short git SHA of this checkout, `-dirty` with uncommitted changes to tracked files.

    Raises:
        CxrError: not a git checkout with a commit (images cannot be pinned to a SHA): set the tag.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CxrError(
            f"cannot pin images to a git SHA: {root} is not a git checkout with a commit; "
            "set IMAGE_TAG (or --set images.tag=VERSION) to the tag the images were built with"
        ) from exc
    return f"{sha}-dirty" if dirty else sha


def check_pullable(images: ImagesConfig) -> None:
    """For images a cluster pulls (images.remote): a registry it can reach and a tag of committed code.

    Raises:
        CxrError: a localhost registry, or a `-dirty` tag (reused across different uncommitted code,
            it gives stale images on nodes and false cache hits).
    """
    if not images.remote:
        return
    registry = images.registry.rstrip("/")
    if registry == "localhost" or registry.startswith(("localhost/", "localhost:", "127.0.0.1")):
        raise CxrError(
            f"images.registry {registry!r} is this machine's: a cluster cannot pull from it; set "
            "IMAGE_REGISTRY to the registry your cluster pulls from (e.g. "
            "europe-west4-docker.pkg.dev/PROJECT/REPO) and run `make build-images push-images`"
        )
    tag = images.tag or git_tag()
    if tag.endswith("-dirty"):
        raise CxrError(
            f"image tag {tag!r} names uncommitted code, which it does not pin: commit, then "
            "`make build-images push-images`, or set IMAGE_TAG to a tag you built and pushed"
        )
