"""The comparison artifact: the variants of one run side by side, as `cxr report` wrote it.

Layout of a report folder D:
  D/comparison.json  Comparison (below): the contract other code relies on (DESIGN.md §3)
  D/comparison.csv   one row per variant: scalar metrics plus per-class recall and specificity
  D/report.md        the report in Markdown (the Kubeflow UI's Markdown viewer)
  D/report.html      the same report, one self-contained page (the Kubeflow UI's HTML viewer)
  D/model_card.md    what was trained on what, for what use, how well, and what was not evaluated
  D/artifact.json    kind "comparison", written last (manifest.py)

comparison.json, schema version 2 (keys may be added; none is removed or renamed without a new version;
version 2 made undefined per-class values null and added statistics, verdict, comparisons, protocol
and split):

    schema_version     int, 2
    class_names        ["COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"]: the order of every
                       per-class list and of the confusion matrices' rows and columns
    selection_metric   "macro_f1": what best_variant maximises
    best_variant       the variant id with the highest selection metric (ties: fewer trainable params)
    dataset            the dataset object:
        images             accepted images
        per_class          class name → images
        skipped            [{path, reason, detail}]: files not used, with a stable reason code
        duplicate_groups   groups of identical images (each kept on one side of every split)
        color_modes        PNG colour mode (before the decode to grayscale) → images
        near_duplicate_groups, near_duplicate_distance
                           groups of near-identical images (perceptual hash within that many
                           bits, core/duplicates.py), each kept on one side of every split
        cross_class_duplicates
                           [{ids, classes}]: identical images filed under more than one class
        synthetic          true when the images are the demo's synthetic ones
    variants           one entry per variant, sorted by id:
        variant, title     "model1", "FC head"
        trainable_layers   names of the layers that trained
        trainable_params, total_params
        epochs, train_seconds, weights
        n_eval             images scored (the split's test side, else its validation side)
        eval_side          "test" or "val"
        split_fingerprint  ties every entry to one split
        accuracy, macro_f1, weighted_f1
        per_class          class name → {precision, recall, f1, specificity, support}; a value
                           is null where undefined (no images of the class, no negatives, never
                           predicted), and macro averages leave out classes without images
        confusion_matrix   [[int]]: rows = true class, columns = predicted
        statistics         core/statistics.py variant_statistics: intervals (bootstrap: accuracy,
                           macro_f1, weighted_f1, per_class), COVID_vs_rest (sensitivity,
                           specificity, ppv, npv with Wilson intervals), roc (auc, interval, fpr,
                           tpr per class), calibration (ece, brier, bins, reliability)
        history            {loss, accuracy, val_loss, val_accuracy}: per-epoch lists
      plus the rest of the variant's train.json (settings, per-epoch seconds, fingerprints).
    verdict            best_variant, selection_metric, distinguishable, not_distinguishable_from,
                       cheapest_equivalent, headline, comparisons (core/verdict.py)
    comparisons        every pair: first, second, accuracy and macro_f1 {difference, interval},
                       mcnemar {only_first_right, only_second_right, p_value}, sentence
    protocol           eval_side, eval_side_note, synthetic_data, demo_weights, head_units, dropout,
                       resize, departures_from_study
    split              the split's fractions, seed, counts, per_class per side, groups_across_sides,
                       cross_class_duplicates and excluded
    statistics         how the intervals and tests were made

Every number in a variant entry is computed from that variant's predictions.csv (evaluation.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from components.artifacts.dataset import DatasetObject
from components.artifacts.evaluation import VariantEntry
from components.artifacts.manifest import ArtifactKind
from components.core.errors import CxrError
from components.core.files import read_json, write_json, write_text

COMPARISON_FILE = "comparison.json"
CSV_FILE = "comparison.csv"
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
MODEL_CARD_FILE = "model_card.md"
SCHEMA_VERSION = 2
KIND = ArtifactKind(
    "comparison",
    SCHEMA_VERSION,
    "report",
    (COMPARISON_FILE, CSV_FILE, MARKDOWN_FILE, HTML_FILE, MODEL_CARD_FILE),
)


class Comparison(TypedDict):
    """comparison.json (see the module docstring)."""

    schema_version: int
    class_names: list[str]
    selection_metric: str
    best_variant: str
    dataset: DatasetObject
    variants: list[VariantEntry]
    verdict: dict
    comparisons: list[dict]
    protocol: dict
    split: dict
    statistics: dict


@dataclass(frozen=True)
class ReportFiles:
    """The renderings of a comparison that go beside comparison.json."""

    csv: str
    markdown: str
    html: str
    model_card: str


def write_comparison(out_dir: Path, comparison: Comparison, files: ReportFiles) -> None:
    """Writes a report folder: comparison.json, its renderings, then the manifest."""
    out_dir = KIND.ensure_prepared(out_dir)
    write_json(out_dir / COMPARISON_FILE, comparison)
    write_text(out_dir / CSV_FILE, files.csv)
    write_text(out_dir / MARKDOWN_FILE, files.markdown)
    write_text(out_dir / HTML_FILE, files.html)
    write_text(out_dir / MODEL_CARD_FILE, files.model_card)
    KIND.write_manifest(out_dir)


def read_comparison(folder: Path, what: str = "") -> Comparison:
    """Reads comparison.json of a report folder; a one-line CxrError when it is not a whole one."""
    folder = KIND.check(folder, what)
    comparison = read_json(folder / COMPARISON_FILE, KIND.command)
    missing = sorted(key for key in Comparison.__required_keys__ if key not in comparison)
    if missing:
        raise CxrError(f"{folder / COMPARISON_FILE} lacks {missing}; run `cxr report` again")
    return comparison
