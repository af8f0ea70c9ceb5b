"""The comparison artifact: the variants of one run side by side, as `cxr report` wrote it.

Layout of a report folder D:
  D/comparison.json  Comparison (below): the contract other code relies on (DESIGN.md §3)
  D/comparison.csv   one row per variant: scalar metrics plus per-class recall and specificity
  D/report.md        the report in Markdown (the Kubeflow UI's Markdown viewer)
  D/report.html      the same report, one self-contained page (the Kubeflow UI's HTML viewer)
  D/artifact.json    kind "comparison", written last (manifest.py)

comparison.json, schema version 1 (keys may be added; none is removed or renamed without a new version):

    schema_version     int, 1
    class_names        ["COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"]: the order of every
                       per-class list and of the confusion matrices' rows and columns
    selection_metric   "macro_f1": what best_variant maximises
    best_variant       the variant id with the highest selection metric (ties: fewer trainable params)
    dataset            the dataset object:
        images             accepted images
        per_class          class name → images
        skipped            [{path, reason, detail}]: files not used, with a stable reason code
        duplicate_groups   groups of identical images (each kept on one side of every split)
    variants           one entry per variant, sorted by id:
        variant, title     "model1", "FC head"
        trainable_layers   names of the layers that trained
        trainable_params, total_params
        epochs, train_seconds, weights
        n_eval             images scored (the split's test side, else its validation side)
        eval_side          "test" or "val"
        split_fingerprint  ties every entry to one split
        accuracy, macro_f1, weighted_f1
        per_class          class name → {precision, recall, f1, specificity, support}
        confusion_matrix   [[int]]: rows = true class, columns = predicted
        history            {loss, accuracy, val_loss, val_accuracy}: per-epoch lists
      plus the rest of the variant's train.json (settings, per-epoch seconds, fingerprints).

Every number in a variant entry is computed from that variant's predictions.csv (evaluation.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from components.artifacts.dataset import DatasetObject
from components.artifacts.evaluation import VariantEntry
from components.artifacts.manifest import MANIFEST_FILE, ArtifactKind
from components.core.errors import CxrError
from components.core.files import read_json, write_json, write_text

COMPARISON_FILE = "comparison.json"
CSV_FILE = "comparison.csv"
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
SCHEMA_VERSION = 1
KIND = ArtifactKind(
    "comparison", SCHEMA_VERSION, "report", (COMPARISON_FILE, CSV_FILE, MARKDOWN_FILE, HTML_FILE)
)


class Comparison(TypedDict):
    """comparison.json (see the module docstring)."""

    schema_version: int
    class_names: list[str]
    selection_metric: str
    best_variant: str
    dataset: DatasetObject
    variants: list[VariantEntry]


@dataclass(frozen=True)
class ReportFiles:
    """The renderings of a comparison that go beside comparison.json."""

    csv: str
    markdown: str
    html: str


def write_comparison(out_dir: Path, comparison: Comparison, files: ReportFiles) -> None:
    """Writes a report folder: comparison.json, its renderings, then the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    write_json(out_dir / COMPARISON_FILE, comparison)
    write_text(out_dir / CSV_FILE, files.csv)
    write_text(out_dir / MARKDOWN_FILE, files.markdown)
    write_text(out_dir / HTML_FILE, files.html)
    KIND.write_manifest(out_dir)


def read_comparison(folder: Path, what: str = "") -> Comparison:
    """Reads comparison.json of a report folder; a one-line CxrError when it is not a whole one."""
    folder = KIND.check(folder, what)
    comparison = read_json(folder / COMPARISON_FILE, KIND.command)
    missing = sorted(key for key in Comparison.__required_keys__ if key not in comparison)
    if missing:
        raise CxrError(f"{folder / COMPARISON_FILE} lacks {missing}; run `cxr report` again")
    return comparison
