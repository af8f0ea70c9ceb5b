"""Merges evaluation folders into the comparison of the variants: JSON, CSV, Markdown and HTML.

Consumes any number of evaluation folders (components/artifacts/evaluation.py). Every number comes
from them; each is checked against itself and its predictions.csv on load, and all must describe the
same dataset, split and evaluated side. Produces a report folder (components/artifacts/comparison.py):
comparison.json (the contract), comparison.csv, and one report rendered as report.md and a
self-contained report.html (components/core/render.py).
"""

import re
from pathlib import Path

import pandas as pd

from components.artifacts.comparison import SCHEMA_VERSION, Comparison, ReportFiles, write_comparison
from components.artifacts.dataset import DatasetObject
from components.artifacts.evaluation import VariantEntry, read_evaluation
from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.metrics import compute_metrics, labels_from_confusion_matrix
from components.core.plots import confusion_matrix_svg, training_curves_svg
from components.core.progress import log
from components.core.render import (
    BulletList,
    Document,
    Figure,
    Figures,
    Paragraph,
    Section,
    Strong,
    Table,
    to_html,
    to_markdown,
)

SELECTION_METRIC = "macro_f1"
TITLE = "Chest X-ray transfer learning: variant comparison"
CSV_COLUMNS = (
    "variant",
    "title",
    "trainable_params",
    "total_params",
    "epochs",
    "train_seconds",
    "n_eval",
    "accuracy",
    "macro_f1",
    "weighted_f1",
)

# The study's published confusion matrices (../shared/seed/lab4-report.txt): rows = true class,
# columns = predicted, CLASS_NAMES order; supports 362/602/1019/134 = its 10 % test split.
STUDY_CONFUSION_MATRICES: dict[str, list[list[int]]] = {
    "model1": [[300, 17, 42, 3], [9, 481, 112, 0], [11, 53, 952, 3], [1, 0, 7, 126]],
    "model2": [[331, 13, 15, 3], [6, 505, 91, 0], [9, 65, 944, 1], [0, 0, 5, 129]],
    "model3": [[338, 8, 14, 2], [14, 512, 76, 0], [50, 98, 869, 2], [1, 1, 6, 126]],
}
STUDY_RETRAINED = {
    "model1": "last 3 fully connected layers",
    "model2": "last conv layer + 3 FC layers",
    "model3": "last 2 conv layers + 3 FC layers",
}
STUDY_SETUP = (
    "MobileNetV2 with ImageNet weights on the real Kaggle COVID-19 Radiography Database, "
    "10 % test split (2,117 images), 20 epochs, batch 16, Adam 1e-3, trained on 2 × NVIDIA T4 "
    "in about 21 min per model"
)
STUDY_TEXT_NOTE = (
    "Metrics are recomputed here from the study's published confusion matrices; the "
    "accuracies quoted in the study's prose (86.21 / 87.28 / 83.84 %) do not match them."
)

MAX_LISTED_SKIPPED = 200


def report(evaluation_dirs: list[Path], out_dir: Path) -> Comparison:
    """Compares evaluated variants and writes comparison.json, comparison.csv, report.md and report.html.

    Args:
        evaluation_dirs: evaluation folders (`cxr evaluate --out`), one per variant, all on one dataset.
        out_dir: the report folder to write (created; files replaced).

    Returns:
        The comparison.json object.
    """
    evaluation_dirs = [Path(d) for d in evaluation_dirs]
    if not evaluation_dirs:
        raise CxrError("no evaluation folders given; pass --evaluation DIR once per evaluated variant")
    entries, dataset = _load_evaluations(evaluation_dirs)
    comparison = build_comparison(entries, dataset)
    log(f"report: drawing figures for {len(entries)} variants")
    document = report_document(comparison)
    files = ReportFiles(
        csv=comparison_table(comparison).to_csv(index=False),
        markdown=to_markdown(document),
        html=to_html(document),
    )
    write_comparison(Path(out_dir), comparison, files)
    best = _entry(comparison, comparison["best_variant"])
    log(
        f"report: best variant {best['variant']} (macro-F1 {best['macro_f1']:.4f}) of "
        f"{len(entries)} -> {out_dir}"
    )
    return comparison


def build_comparison(entries: list[VariantEntry], dataset: DatasetObject) -> Comparison:
    """The comparison.json object for checked variant entries and their shared dataset object.

    Args:
        entries: metrics.json entries (one per variant, distinct variant ids).
        dataset: the `dataset` object they share.

    Returns:
        comparison.json, variants sorted by variant id; the best variant has the highest macro-F1,
        ties going to fewer trainable parameters.
    """
    variants = sorted(entries, key=lambda e: _natural_key(e["variant"]))
    best = max(variants, key=lambda e: (e[SELECTION_METRIC], -e["trainable_params"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "class_names": list(CLASS_NAMES),
        "selection_metric": SELECTION_METRIC,
        "best_variant": best["variant"],
        "dataset": dataset,
        "variants": variants,
    }


def comparison_table(comparison: Comparison) -> pd.DataFrame:
    """One row per variant: the scalar columns of CSV_COLUMNS, then recall_<class> and specificity_<class>."""
    rows = []
    for entry in comparison["variants"]:
        row = {key: entry[key] for key in CSV_COLUMNS}
        for name in CLASS_NAMES:
            row[f"recall_{name}"] = entry["per_class"][name]["recall"]
            row[f"specificity_{name}"] = entry["per_class"][name]["specificity"]
        rows.append(row)
    return pd.DataFrame(rows)


def study_reference() -> list[dict]:
    """The study's published results: compute_metrics of each of its confusion matrices, by variant id."""
    reference = []
    for variant, matrix in STUDY_CONFUSION_MATRICES.items():
        metrics = compute_metrics(*labels_from_confusion_matrix(matrix))
        reference.append({"variant": variant, "retrained": STUDY_RETRAINED[variant]} | metrics)
    return reference


# ---------------------------------------------------------------------------------------------
# Loading and checking evaluation folders


def _load_evaluations(evaluation_dirs: list[Path]) -> tuple[list[VariantEntry], DatasetObject]:
    evaluations = [read_evaluation(folder) for folder in evaluation_dirs]
    first = evaluations[0]
    folder_of: dict[str, Path] = {}
    for evaluation in evaluations:
        entry, folder = evaluation.entry, evaluation.path
        if entry["variant"] in folder_of:
            raise CxrError(
                f"variant {entry['variant']!r} appears twice: in {folder_of[entry['variant']]} "
                f"and {folder}; pass one evaluation folder per variant"
            )
        folder_of[entry["variant"]] = folder
        if evaluation.dataset != first.dataset:
            raise CxrError(
                f"{folder / 'dataset.json'} differs from {first.path / 'dataset.json'}: the "
                "variants were evaluated on different datasets; evaluate them all on one dataset"
            )
        for key in ("split_fingerprint", "eval_side"):
            if entry.get(key) != first.entry.get(key):
                raise CxrError(
                    f"{folder / 'metrics.json'}: {key} {entry.get(key)!r} differs from "
                    f"{first.path / 'metrics.json'} ({first.entry.get(key)!r}): compare variants "
                    "on one split and one side; evaluate them all with the same --split"
                )
    return [e.entry for e in evaluations], first.dataset


def _natural_key(variant: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", variant)]


def _entry(comparison: Comparison, variant: str) -> VariantEntry:
    return next(e for e in comparison["variants"] if e["variant"] == variant)


# ---------------------------------------------------------------------------------------------
# The report document (rendered as report.md and report.html)


def report_document(comparison: Comparison) -> Document:
    """The report: the verdict, then the tables, per-variant figures, dataset and the study's reference."""
    variants = comparison["variants"]
    best = comparison["best_variant"]
    best_rows = frozenset(i for i, e in enumerate(variants) if e["variant"] == best)
    lead = (
        Paragraph(
            (
                f"Best variant by {_metric_name(comparison['selection_metric'])}: ",
                Strong(_best_sentence(_entry(comparison, best))),
                ". Ties go to fewer trainable parameters.",
            ),
            style="callout",
        ),
    )
    sections = (
        Section(
            "variants",
            "Variants",
            (
                Table(*_variant_rows(variants), text_columns=2, highlight=best_rows, badge="best"),
                Paragraph(("Trainable layers:",), style="muted"),
                BulletList(
                    tuple(
                        (
                            Strong(e["variant"]),
                            f": {', '.join(e['trainable_layers'])} (weights: {e['weights']})",
                        )
                        for e in variants
                    ),
                    style="muted",
                ),
            ),
        ),
        Section("per-class", "Per-class metrics", (_per_class_table(variants, best),)),
        Section(
            "confusion",
            "Confusion matrices",
            (
                Paragraph(
                    (
                        "Rows are the true class, columns the predicted class; each cell shows the count "
                        "and, as number and shade, its share of the true class (the diagonal is the "
                        "recall).",
                    ),
                    style="muted",
                ),
                Figures(tuple(_confusion_figure(e) for e in variants)),
            ),
        ),
        Section(
            "curves",
            "Training curves",
            (
                Paragraph(
                    ("Loss and accuracy per epoch on the training and validation sides.",), style="muted"
                ),
                Figures(
                    tuple(
                        Figure(
                            training_curves_svg(e["history"], _caption(e), salt=f"curves-{e['variant']}"),
                            _caption(e),
                            "training-curves",
                            {"variant": e["variant"]},
                        )
                        for e in variants
                    ),
                    markdown_note="The training curves are figures in report.html.",
                ),
            ),
        ),
        _dataset_section(comparison["dataset"]),
        Section(
            "reference",
            "Published reference: the Lab 4 study (not this run)",
            (
                Paragraph((f"{STUDY_SETUP}. {STUDY_TEXT_NOTE}",)),
                Table(*_reference_rows(), text_columns=2),
            ),
            style="reference",
        ),
    )
    footer = (
        Paragraph(
            (
                "Every number outside the study reference is computed from each variant's saved "
                f"predictions.csv (selection metric: {comparison['selection_metric']}).",
            ),
            style="muted",
        ),
    )
    return Document(TITLE, lead, sections, footer)


def _f(value: float) -> str:
    return f"{value:.4f}"


def _int(value: int) -> str:
    return f"{value:,}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _metric_name(metric: str) -> str:
    return {"macro_f1": "macro-F1", "weighted_f1": "weighted-F1"}.get(metric, metric)


def _caption(entry: VariantEntry) -> str:
    return f"{entry['variant']}: {entry['title']}"


def _best_sentence(best: VariantEntry) -> str:
    return (
        f"{best['variant']} ({best['title']}): macro-F1 {_f(best['macro_f1'])}, "
        f"accuracy {_f(best['accuracy'])}, {_int(best['trainable_params'])} trainable parameters"
    )


def _variant_rows(variants: list[VariantEntry]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    header = (
        "variant",
        "title",
        "trainable params",
        "total params",
        "epochs",
        "train time",
        "eval images",
        "accuracy",
        "macro-F1",
        "weighted-F1",
    )
    rows = tuple(
        (
            e["variant"],
            e["title"],
            _int(e["trainable_params"]),
            _int(e["total_params"]),
            str(e["epochs"]),
            _duration(e["train_seconds"]),
            f"{_int(e['n_eval'])} ({e['eval_side']})",
            _f(e["accuracy"]),
            _f(e["macro_f1"]),
            _f(e["weighted_f1"]),
        )
        for e in variants
    )
    return header, rows


def _per_class_table(variants: list[VariantEntry], best: str) -> Table:
    header = ("variant", "class", "precision", "recall", "F1", "specificity", "support")
    rows = []
    for e in variants:
        for name in CLASS_NAMES:
            m = e["per_class"][name]
            rows.append(
                (
                    e["variant"],
                    name,
                    _f(m["precision"]),
                    _f(m["recall"]),
                    _f(m["f1"]),
                    _f(m["specificity"]),
                    _int(m["support"]),
                )
            )
    return Table(
        header,
        tuple(rows),
        text_columns=2,
        highlight=frozenset(i for i, r in enumerate(rows) if r[0] == best),
    )


def _confusion_figure(entry: VariantEntry) -> Figure:
    matrix = entry["confusion_matrix"]
    table = Table(
        ("true \\ predicted", *CLASS_NAMES),
        tuple((name, *(_int(v) for v in row)) for name, row in zip(CLASS_NAMES, matrix, strict=True)),
    )
    svg = confusion_matrix_svg(matrix, CLASS_NAMES, _caption(entry), salt=f"cm-{entry['variant']}")
    return Figure(svg, _caption(entry), "confusion-matrix", {"variant": entry["variant"]}, fallback=table)


def _dataset_section(dataset: DatasetObject) -> Section:
    skipped = dataset["skipped"]
    blocks = [
        Paragraph(
            (
                f"{_int(dataset['images'])} images, {_int(dataset['duplicate_groups'])} groups of identical "
                f"images (kept on one side of every split), {_int(len(skipped))} files skipped.",
            )
        ),
        Table(("class", "images"), tuple((name, _int(n)) for name, n in dataset["per_class"].items())),
    ]
    subsections = ()
    if skipped:
        listed = [
            Table(
                ("path", "reason"),
                tuple((s["path"], s["reason"]) for s in skipped[:MAX_LISTED_SKIPPED]),
                text_columns=2,
            )
        ]
        if len(skipped) > MAX_LISTED_SKIPPED:
            listed.append(
                Paragraph(
                    (f"… and {_int(len(skipped) - MAX_LISTED_SKIPPED)} more (see comparison.json).",),
                    style="muted",
                )
            )
        subsections = (Section("skipped", "Skipped files", tuple(listed)),)
    return Section("dataset", "Dataset", tuple(blocks), subsections=subsections)


def _reference_rows() -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    header = (
        "variant",
        "retrained",
        "test images",
        "accuracy",
        "macro-F1",
        "weighted-F1",
        *(f"recall {name}" for name in CLASS_NAMES),
    )
    rows = tuple(
        (
            r["variant"],
            r["retrained"],
            _int(r["n_eval"]),
            _f(r["accuracy"]),
            _f(r["macro_f1"]),
            _f(r["weighted_f1"]),
            *(_f(r["per_class"][name]["recall"]) for name in CLASS_NAMES),
        )
        for r in study_reference()
    )
    return header, rows
