"""Merges evaluation folders into the comparison of the variants: JSON, CSV, Markdown and HTML.

Consumes any number of `cxr evaluate` output folders (metrics.json, dataset.json, predictions.csv).
Every number comes from those folders; on load each entry is checked against itself (accuracy =
trace/sum of its confusion matrix, supports = row sums) and against its predictions.csv, and all
folders must describe the same dataset. Produces, in the output folder:

  comparison.json  the contract of DESIGN.md §3 (class_names, selection_metric, best_variant,
                   dataset, variants sorted by variant id)
  comparison.csv   one row per variant: scalar metrics plus per-class recall and specificity
  report.md        the tables (variants, per class, confusion matrices, dataset, study reference)
  report.html      the same, self-contained (inline CSS and inline SVG figures, no scripts, no
                   external resources), for Kubeflow's HTML viewer
"""

import html
import math
import re
from pathlib import Path

import pandas as pd
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Output

from components.core.artifacts import component
from components.core.classes import CLASS_NAMES
from components.core.dataset import read_json, write_json, write_text
from components.core.errors import CxrError
from components.core.metrics import (
    DATASET_FILE,
    METRIC_KEYS,
    METRICS_FILE,
    PREDICTIONS_FILE,
    compute_metrics,
    labels_from_confusion_matrix,
    metrics_from_predictions,
)
from components.core.plots import confusion_matrix_svg, training_curves_svg
from components.core.progress import log

SELECTION_METRIC = "macro_f1"

# The keys every comparison.json variant entry has (extra keys are carried along).
VARIANT_KEYS = ("variant", "title", "trainable_layers", "trainable_params", "total_params", "epochs",
                "train_seconds", "weights", "n_eval", "accuracy", "macro_f1", "weighted_f1", "per_class",
                "confusion_matrix", "history")
CSV_COLUMNS = ("variant", "title", "trainable_params", "total_params", "epochs", "train_seconds", "n_eval",
               "accuracy", "macro_f1", "weighted_f1")

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
STUDY_SETUP = ("MobileNetV2 with ImageNet weights on the real Kaggle COVID-19 Radiography Database, "
               "10 % test split (2,117 images), 20 epochs, batch 16, Adam 1e-3, trained on 2 × NVIDIA T4 "
               "in about 21 min per model")
STUDY_TEXT_NOTE = ("Metrics are recomputed here from the study's published confusion matrices; the "
                   "accuracies quoted in the study's prose (86.21 / 87.28 / 83.84 %) do not match them.")

MAX_LISTED_SKIPPED = 200


def report(evaluation_dirs: list[Path], out_dir: Path) -> dict:
    """Compares evaluated variants and writes comparison.json, comparison.csv, report.md and report.html.

    Args:
        evaluation_dirs: `cxr evaluate` output folders, one per variant, all on the same dataset.
        out_dir: where the four files go (created; files replaced).

    Returns:
        The comparison.json object.
    """
    evaluation_dirs = [Path(d) for d in evaluation_dirs]
    if not evaluation_dirs:
        raise CxrError("no evaluation folders given; pass --evaluation DIR once per evaluated variant")
    entries, dataset = _load_evaluations(evaluation_dirs)
    comparison = build_comparison(entries, dataset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "comparison.json", comparison)
    write_text(out_dir / "comparison.csv", comparison_table(comparison).to_csv(index=False))
    write_text(out_dir / "report.md", render_markdown(comparison))
    log(f"report: drawing figures for {len(entries)} variants")
    write_text(out_dir / "report.html", render_html(comparison))
    best = comparison["best_variant"]
    log(f"report: best variant {best} (macro-F1 {_entry(comparison, best)['macro_f1']:.4f}) of "
        f"{len(entries)} -> {out_dir}")
    return comparison


def build_comparison(entries: list[dict], dataset: dict) -> dict:
    """The comparison.json object for checked variant entries and their shared dataset summary.

    Args:
        entries: metrics.json entries (one per variant, distinct variant ids).
        dataset: the `dataset` object they share.

    Returns:
        {"class_names", "selection_metric", "best_variant", "dataset", "variants"}, variants sorted by
        variant id; the best variant has the highest macro-F1, ties going to fewer trainable parameters.
    """
    variants = sorted(entries, key=lambda e: _natural_key(e["variant"]))
    best = max(variants, key=lambda e: (e[SELECTION_METRIC], -e["trainable_params"]))
    return {
        "class_names": list(CLASS_NAMES),
        "selection_metric": SELECTION_METRIC,
        "best_variant": best["variant"],
        "dataset": dataset,
        "variants": variants,
    }


def comparison_table(comparison: dict) -> pd.DataFrame:
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


def _load_evaluations(evaluation_dirs: list[Path]) -> tuple[list[dict], dict]:
    entries: list[dict] = []
    folder_of: dict[str, Path] = {}
    dataset: dict | None = None
    for folder in evaluation_dirs:
        if not folder.is_dir():
            raise CxrError(f"evaluation folder {folder} not found; run `cxr evaluate --out {folder}` first")
        entry = read_json(folder / METRICS_FILE, "evaluate")
        this_dataset = read_json(folder / DATASET_FILE, "evaluate")
        _check_entry(entry, folder)
        if entry["variant"] in folder_of:
            raise CxrError(f"variant {entry['variant']!r} appears twice: in {folder_of[entry['variant']]} "
                           f"and {folder}; pass one evaluation folder per variant")
        if dataset is None:
            dataset, first = this_dataset, (folder, entry)
        elif this_dataset != dataset:
            raise CxrError(f"{folder / DATASET_FILE} differs from {evaluation_dirs[0] / DATASET_FILE}: the "
                           "variants were evaluated on different datasets; evaluate them all on one dataset")
        for key in ("split_fingerprint", "eval_side"):
            if entry.get(key) != first[1].get(key):
                raise CxrError(f"{folder / METRICS_FILE}: {key} {entry.get(key)!r} differs from "
                               f"{first[0] / METRICS_FILE} ({first[1].get(key)!r}): compare variants on "
                               "one split and one side; evaluate them all with the same --split")
        folder_of[entry["variant"]] = folder
        entries.append(entry)
    return entries, dataset


def _check_entry(entry, folder: Path) -> None:
    path = folder / METRICS_FILE
    fix = f"run `cxr evaluate --out {folder}` again"
    if not isinstance(entry, dict):
        raise CxrError(f"{path} must hold one JSON object (a variant entry); {fix}")
    missing = [key for key in VARIANT_KEYS if key not in entry]
    if missing:
        raise CxrError(f"{path} lacks {missing}; {fix}")
    matrix = entry["confusion_matrix"]
    n = len(CLASS_NAMES)
    if not (isinstance(matrix, list) and len(matrix) == n
            and all(isinstance(row, list) and len(row) == n for row in matrix)
            and all(isinstance(v, int) and v >= 0 for row in matrix for v in row)):
        raise CxrError(f"{path}: confusion_matrix must be {n}×{n} non-negative counts; {fix}")
    total = sum(map(sum, matrix))
    trace = sum(matrix[k][k] for k in range(n))
    if total == 0 or total != entry["n_eval"]:
        raise CxrError(f"{path}: n_eval {entry['n_eval']} differs from the confusion matrix total {total}; "
                       f"{fix}")
    if not math.isclose(entry["accuracy"], trace / total, rel_tol=0, abs_tol=1e-9):
        raise CxrError(f"{path}: accuracy {entry['accuracy']} is not trace/sum of its confusion matrix "
                       f"({trace}/{total} = {trace / total:.6f}); {fix}")
    per_class = entry["per_class"]
    if not isinstance(per_class, dict) or set(per_class) != set(CLASS_NAMES):
        raise CxrError(f"{path}: per_class must have exactly the classes {list(CLASS_NAMES)}; {fix}")
    for k, name in enumerate(CLASS_NAMES):
        if per_class[name].get("support") != sum(matrix[k]):
            raise CxrError(f"{path}: support of {name} is not the row sum of the confusion matrix; {fix}")
    if not (folder / PREDICTIONS_FILE).is_file():
        raise CxrError(f"{folder / PREDICTIONS_FILE} not found: every number comes from it; {fix}")
    recomputed = metrics_from_predictions(folder / PREDICTIONS_FILE)
    for key in METRIC_KEYS:
        if not _same(entry[key], recomputed[key]):
            raise CxrError(f"{path}: {key} disagrees with {folder / PREDICTIONS_FILE}; {fix}")


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b


def _natural_key(variant: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", variant)]


def _entry(comparison: dict, variant: str) -> dict:
    return next(e for e in comparison["variants"] if e["variant"] == variant)


# ---------------------------------------------------------------------------------------------
# Formatting shared by Markdown and HTML


def _f(value: float) -> str:
    return f"{value:.4f}"


def _int(value: int) -> str:
    return f"{value:,}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _eval_images(entry: dict) -> str:
    side = entry.get("eval_side")
    return f"{_int(entry['n_eval'])} ({side})" if side else _int(entry["n_eval"])


def _variant_rows(comparison: dict) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "title", "trainable params", "total params", "epochs", "train time",
              "eval images", "accuracy", "macro-F1", "weighted-F1"]
    rows = [[e["variant"], e["title"], _int(e["trainable_params"]), _int(e["total_params"]), str(e["epochs"]),
             _duration(e["train_seconds"]), _eval_images(e), _f(e["accuracy"]), _f(e["macro_f1"]),
             _f(e["weighted_f1"])] for e in comparison["variants"]]
    return header, rows


def _per_class_rows(comparison: dict) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "class", "precision", "recall", "F1", "specificity", "support"]
    rows = []
    for e in comparison["variants"]:
        for name in CLASS_NAMES:
            m = e["per_class"][name]
            rows.append([e["variant"], name, _f(m["precision"]), _f(m["recall"]), _f(m["f1"]),
                         _f(m["specificity"]), _int(m["support"])])
    return header, rows


def _confusion_rows(matrix: list[list[int]]) -> tuple[list[str], list[list[str]]]:
    header = ["true \\ predicted", *CLASS_NAMES]
    return header, [[name, *(_int(v) for v in row)] for name, row in zip(CLASS_NAMES, matrix, strict=True)]


def _reference_rows() -> tuple[list[str], list[list[str]]]:
    header = ["variant", "retrained", "test images", "accuracy", "macro-F1", "weighted-F1",
              *(f"recall {name}" for name in CLASS_NAMES)]
    rows = [[r["variant"], r["retrained"], _int(r["n_eval"]), _f(r["accuracy"]), _f(r["macro_f1"]),
             _f(r["weighted_f1"]), *(_f(r["per_class"][name]["recall"]) for name in CLASS_NAMES)]
            for r in study_reference()]
    return header, rows


def _dataset_class_rows(dataset: dict) -> tuple[list[str], list[list[str]]]:
    per_class = dataset.get("per_class") or {}
    if all(isinstance(v, dict) for v in per_class.values()) and per_class:
        columns = list(dict.fromkeys(k for v in per_class.values() for k in v))
        return ["class", *columns], [[name, *(_cell(v.get(c, "")) for c in columns)]
                                     for name, v in per_class.items()]
    return ["class", "images"], [[name, _cell(v)] for name, v in per_class.items()]


def _cell(value) -> str:
    return _int(value) if isinstance(value, int) else str(value)


def _duplicate_groups(dataset: dict) -> str:
    groups = dataset.get("duplicate_groups", 0)
    return _int(len(groups) if isinstance(groups, list) else groups)


def _best_sentence(comparison: dict) -> str:
    best = _entry(comparison, comparison["best_variant"])
    return (f"{best['variant']} ({best['title']}): macro-F1 {_f(best['macro_f1'])}, "
            f"accuracy {_f(best['accuracy'])}, {_int(best['trainable_params'])} trainable parameters")


# ---------------------------------------------------------------------------------------------
# Markdown


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def render_markdown(comparison: dict) -> str:
    """report.md: best variant, variant and per-class tables, confusion matrices, dataset, study reference."""
    best = comparison["best_variant"]
    header, rows = _variant_rows(comparison)
    rows = [[f"**{r[0]}** (best)" if r[0] == best else r[0], *r[1:]] for r in rows]
    dataset = comparison["dataset"]
    parts = [
        "# Chest X-ray transfer learning: variant comparison",
        f"**Best variant by macro-F1: {_best_sentence(comparison)}.** Ties go to fewer trainable parameters.",
        "## Variants", _md_table(header, rows),
        "## Per-class metrics", _md_table(*_per_class_rows(comparison)),
        "## Confusion matrices",
        "Rows are the true class, columns the predicted class.",
    ]
    for e in comparison["variants"]:
        parts += [f"### {e['variant']}: {e['title']}", _md_table(*_confusion_rows(e["confusion_matrix"]))]
    skipped = dataset.get("skipped") or []
    parts += [
        "## Dataset",
        f"{_int(dataset.get('images', 0))} images, {_duplicate_groups(dataset)} groups of identical images "
        f"(kept on one side of every split), {_int(len(skipped))} files skipped.",
        _md_table(*_dataset_class_rows(dataset)),
    ]
    if skipped:
        parts += ["### Skipped files", _md_table(["path", "reason"], [[s.get("path", ""), s.get("reason", "")]
                                                                      for s in skipped[:MAX_LISTED_SKIPPED]])]
        if len(skipped) > MAX_LISTED_SKIPPED:
            parts.append(f"… and {_int(len(skipped) - MAX_LISTED_SKIPPED)} more (see comparison.json).")
    parts += [
        "## Published reference: the Lab 4 study (not this run)",
        f"{STUDY_SETUP}. {STUDY_TEXT_NOTE}",
        _md_table(*_reference_rows()),
    ]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 24px;
       color: #1d1d1f; background: #fff; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.3em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 4px 8px; text-align: right; }
th { background: #f3f4f6; }
td.text, th.text { text-align: left; }
tr.best td { background: #fff4c2; font-weight: 600; }
.badge { display: inline-block; background: #b45309; color: #fff; border-radius: 3px; padding: 0 5px;
         font-size: 0.75em; margin-left: 4px; vertical-align: middle; }
.callout { background: #fff4c2; border-left: 5px solid #b45309; padding: 8px 12px; margin: 12px 0; }
.reference { background: #f5f7fa; border: 1px dashed #8a94a6; padding: 4px 14px 10px; margin-top: 1.8em; }
.reference h2 { border-bottom: none; margin-top: 0.6em; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; }
.muted { color: #666; font-size: 0.9em; }
nav a { margin-right: 12px; }
"""


def _html_table(header: list[str], rows: list[list[str]], *, text_columns: int = 1,
                row_classes: list[str] | None = None, caption: str = "") -> str:
    def cells(tag, values):
        return "".join(f'<{tag} class="text">{v}</{tag}>' if i < text_columns else f"<{tag}>{v}</{tag}>"
                       for i, v in enumerate(values))

    row_classes = row_classes or [""] * len(rows)
    body = "".join(f'<tr class="{cls}">{cells("td", row)}</tr>' if cls else f"<tr>{cells('td', row)}</tr>"
                   for row, cls in zip(rows, row_classes, strict=True))
    caption_html = f"<caption>{caption}</caption>" if caption else ""
    return f"<table>{caption_html}<thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def _escape_rows(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    return [html.escape(h) for h in header], [[html.escape(str(c)) for c in row] for row in rows]


def render_html(comparison: dict) -> str:
    """report.html: the report as one self-contained page (inline CSS, inline SVG figures, no scripts)."""
    esc = html.escape
    best = comparison["best_variant"]
    dataset = comparison["dataset"]
    variants = comparison["variants"]

    header, rows = _escape_rows(*_variant_rows(comparison))
    rows = [[f'{r[0]}<span class="badge">best</span>' if r[0] == best else r[0], *r[1:]] for r in rows]
    variant_table = _html_table(header, rows, text_columns=2,
                                row_classes=["best" if e["variant"] == best else "" for e in variants])
    layers = "".join(f"<li><strong>{esc(e['variant'])}</strong>: {esc(', '.join(e['trainable_layers']))} "
                     f"(weights: {esc(str(e['weights']))})</li>" for e in variants)

    header, rows = _escape_rows(*_per_class_rows(comparison))
    per_class_table = _html_table(header, rows, text_columns=2,
                                  row_classes=["best" if r[0] == best else "" for r in rows])

    confusion, curves = [], []
    for e in variants:
        variant, title = esc(e["variant"]), f"{e['variant']}: {e['title']}"
        matrix_svg = confusion_matrix_svg(e["confusion_matrix"], CLASS_NAMES, title, salt=f"cm-{variant}")
        curves_svg = training_curves_svg(e["history"], title, salt=f"curves-{variant}")
        confusion.append(f'<figure class="confusion-matrix" data-variant="{variant}">{matrix_svg}</figure>')
        curves.append(f'<figure class="training-curves" data-variant="{variant}">{curves_svg}</figure>')

    skipped = dataset.get("skipped") or []
    class_header, class_rows = _escape_rows(*_dataset_class_rows(dataset))
    skipped_html = ""
    if skipped:
        header, rows = _escape_rows(["path", "reason"], [[s.get("path", ""), s.get("reason", "")]
                                                         for s in skipped[:MAX_LISTED_SKIPPED]])
        skipped_html = "<h3>Skipped files</h3>" + _html_table(header, rows, text_columns=2)
        if len(skipped) > MAX_LISTED_SKIPPED:
            skipped_html += (f'<p class="muted">… and {_int(len(skipped) - MAX_LISTED_SKIPPED)} more '
                             "(see comparison.json).</p>")
    header, rows = _escape_rows(*_reference_rows())

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Chest X-ray transfer learning: variant comparison</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Chest X-ray transfer learning: variant comparison</h1>
<nav><a href="#variants">Variants</a> <a href="#per-class">Per class</a>
<a href="#confusion">Confusion matrices</a> <a href="#curves">Training curves</a>
<a href="#dataset">Dataset</a> <a href="#reference">Study reference</a></nav>
<p class="callout" id="best">Best variant by macro-F1: <strong>{esc(_best_sentence(comparison))}</strong>.
<span class="muted">Ties go to fewer trainable parameters.</span></p>

<h2 id="variants">Variants</h2>
{variant_table}
<p class="muted">Trainable layers:</p><ul class="muted">{layers}</ul>

<h2 id="per-class">Per-class metrics</h2>
{per_class_table}

<h2 id="confusion">Confusion matrices</h2>
<p class="muted">Rows are the true class, columns the predicted class; each cell shows the count and, as
number and shade, its share of the true class (the diagonal is the recall).</p>
<div class="figures">{"".join(confusion)}</div>

<h2 id="curves">Training curves</h2>
<p class="muted">Loss and accuracy per epoch on the training and validation sides.</p>
<div class="figures">{"".join(curves)}</div>

<h2 id="dataset">Dataset</h2>
<p>{_int(dataset.get("images", 0))} images, {_duplicate_groups(dataset)} groups of identical images
(kept on one side of every split), {_int(len(skipped))} files skipped.</p>
{_html_table(class_header, class_rows)}
{skipped_html}

<section class="reference" id="reference">
<h2>Published reference: the Lab 4 study (not this run)</h2>
<p>{esc(STUDY_SETUP)}.<br>{esc(STUDY_TEXT_NOTE)}</p>
{_html_table(header, rows, text_columns=2)}
</section>

<p class="muted">Every number outside the study reference is computed from each variant's saved
predictions.csv (selection metric: {esc(comparison["selection_metric"])}).</p>
</body>
</html>
"""


@component
def report_op(evaluations: Input[list[Artifact]], comparison: Output[Artifact], report_html: Output[HTML],
              report_markdown: Output[Markdown], run_metrics: Output[Metrics]):
    """Merges every variant's evaluation into the run's comparison.

    Consumes the collected `evaluations` of the ParallelFor; produces `comparison` (a folder with
    comparison.json, comparison.csv, report.md and report.html), the same report as `report_html`
    and `report_markdown` for the Kubeflow UI, and `run_metrics` keyed `<variant>_<metric>` so
    whole runs compare in the UI.
    """
    import shutil
    from pathlib import Path

    from components.core.artifacts import log_metrics
    from components.report import report

    result = report([Path(e.path) for e in evaluations], Path(comparison.path))
    shutil.copyfile(Path(comparison.path) / "report.html", report_html.path)
    shutil.copyfile(Path(comparison.path) / "report.md", report_markdown.path)
    comparison.metadata["best_variant"] = result["best_variant"]
    run_metrics.metadata["best_variant"] = result["best_variant"]
    for entry in result["variants"]:
        log_metrics(run_metrics, entry, prefix=entry["variant"])
