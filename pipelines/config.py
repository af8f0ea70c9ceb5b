"""Pipeline configuration: one typed place for the study's parameters, images, placement and cluster.

Resolution order (later wins): the dataclass defaults below, a YAML file (one per environment in
pipelines/configs/), environment variables (ENV_OVERRIDES), then `--set key=value` overrides with
dotted keys such as `study.epochs=3` or `placement.accelerator_count=1`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from components.core.checks import check_fractions, check_training_settings
from components.core.errors import CxrError
from components.core.variants import VARIANTS

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class StudyConfig:
    """The pipeline's run-time parameters: what one run of the study does."""

    source: str = ""                 # dataset folder, .zip or gs:// prefix (empty: demo data, local runs)
    dataset_fingerprint: str = ""    # content fingerprint of `source`, so KFP caching sees data changes
    stored_size: int = 0             # side of the stored pixels; 0 = the most common image size
    val_fraction: float = 0.3
    test_fraction: float = 0.0
    split_seed: int = 42
    image_size: int = 224
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-3
    weights: str = "imagenet"        # imagenet | none | local path | gs:// URI of a backbone weights file
    seed: int = 42
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))


@dataclass
class ImagesConfig:
    """Container images; a reference is `<registry>/<name>:<tag>` and never `:latest`."""

    registry: str = "localhost/cxr-kfp"
    tag: str = ""                    # empty: the git SHA of this checkout
    cpu_name: str = "cxr-kfp-cpu"
    train_name: str = "cxr-kfp-train"

    def ref(self, name: str) -> str:
        """Full reference of image `name` at the configured registry and tag."""
        return f"{self.registry.rstrip('/')}/{name}:{self.tag or git_tag()}"

    @property
    def cpu(self) -> str:
        return self.ref(self.cpu_name)

    @property
    def train(self) -> str:
        return self.ref(self.train_name)


@dataclass
class PlacementConfig:
    """Where and how tasks run on the cluster; the GPU settings apply to the train task only."""

    accelerator_resource: str = "nvidia.com/gpu"   # Kubernetes resource name (not a GKE type string)
    accelerator_count: int = 2                     # 0 = train on CPU (kind, CPU-only clusters)
    node_selector_key: str = "cloud.google.com/gke-accelerator"
    node_selector_value: str = "nvidia-tesla-t4"   # empty: no node selector
    toleration_key: str = "nvidia.com/gpu"         # empty: no toleration
    train_cpu: str = "8"
    train_memory: str = "32G"
    step_cpu: str = "2"
    step_memory: str = "8G"
    retries: int = 2                               # train retries (preemptible GPU nodes)
    caching: bool = True


@dataclass
class KfpConfig:
    """The Kubeflow Pipelines endpoint and how runs are named."""

    host: str = ""                   # KFP API endpoint; KFP_HOST overrides
    experiment: str = "cxr-kfp"
    namespace: str = ""              # multi-user Kubeflow profile namespace
    service_account: str = ""        # run the pipeline's pods as this Kubernetes service account
    pipeline_name: str = "cxr-transfer-learning"


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
        if p.accelerator_count < 0 or p.retries < 0:
            raise CxrError("placement.accelerator_count and placement.retries must be >= 0")
        if self.images.tag == "latest":
            raise CxrError("images.tag 'latest' is not allowed: pin a tag (default: the git SHA)")
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
        raise CxrError(f"{origin}: unknown setting {dotted!r} (sections: {sections}; see README "
                       "'Configuration reference')")
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
        return [str(v).strip() for v in items if str(v).strip()]
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
    """Short git SHA of this checkout (`-dirty` with uncommitted changes); 'dev' outside git."""
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.CalledProcessError):
        return "dev"


def as_dict(config: Config) -> dict:
    """The configuration as plain data (for logs and run metadata)."""
    return dataclasses.asdict(config)
