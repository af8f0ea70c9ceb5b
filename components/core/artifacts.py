"""What the KFP components share: the default image and how results become Kubeflow UI metrics."""

from __future__ import annotations

import os

from components.core.classes import CLASS_NAMES

# Components are declared with this image; the pipeline pins the configured image on every task
# at compile time (pipelines/pipeline.py), so it only shows up if a component runs outside it.
DEFAULT_IMAGE = "localhost/cxr-kfp/cxr-kfp-cpu:dev"



def component(func):
    """`@dsl.component` with the project's defaults: the project image, kfp already installed.

    Inside a running component KFP sets _KFP_RUNTIME=true and its runtime `kfp.dsl` has no
    decorators; the step module is imported there for its plain function, so the decorator
    steps aside.
    """
    if os.environ.get("_KFP_RUNTIME") == "true":
        return func
    from kfp import dsl

    return dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)(func)


# The scalar metrics an evaluation shows in the Kubeflow UI (Metrics artifacts only show these).
UI_METRICS = ("accuracy", "macro_f1", "covid_sensitivity", "covid_specificity", "train_seconds",
              "trainable_params")


def ui_metrics(entry: dict) -> dict[str, float]:
    """The UI scalars of one `variants[]` entry of comparison.json."""
    covid = entry["per_class"]["COVID"]
    values = dict(entry, covid_sensitivity=covid["recall"], covid_specificity=covid["specificity"])
    return {name: float(values[name]) for name in UI_METRICS}


def log_metrics(metrics, entry: dict, prefix: str = "") -> None:
    """Logs an entry's UI scalars on a KFP Metrics artifact, optionally keyed `<prefix>_<metric>`."""
    for name, value in ui_metrics(entry).items():
        metrics.log_metric(f"{prefix}_{name}" if prefix else name, value)


def log_confusion_matrix(classification_metrics, entry: dict) -> None:
    """Logs an entry's confusion matrix (rows true, columns predicted) on a ClassificationMetrics artifact."""
    classification_metrics.log_confusion_matrix(list(CLASS_NAMES), entry["confusion_matrix"])
