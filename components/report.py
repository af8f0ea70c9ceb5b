"""Merges evaluation folders into the comparison of the variants: the verdict first, then the evidence.

Consumes any number of evaluation folders (components/artifacts/evaluation.py). Every number comes
from their predictions files: each folder is checked against its own on load, all must describe the
same dataset, split and evaluated side, and the variants are compared on the same images
(components/core/verdict.py). Produces a report folder (components/artifacts/comparison.py):
comparison.json (the contract), comparison.csv, one report rendered as report.md and a self-contained
report.html (components/core/render.py), and model_card.md.
"""

import re
from pathlib import Path

import pandas as pd

from components.artifacts.comparison import KIND as COMPARISON_KIND
from components.artifacts.comparison import SCHEMA_VERSION, Comparison, ReportFiles, write_comparison
from components.artifacts.evaluation import Evaluation, VariantEntry, read_evaluation
from components.core import study
from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.metrics import compute_metrics, labels_from_confusion_matrix
from components.core.plots import (
    confusion_matrix_svg,
    gradcam_png,
    reliability_svg,
    roc_curves_svg,
    training_curves_svg,
)
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
from components.core.statistics import BOOTSTRAP_RESAMPLES, CALIBRATION_BINS, CONFIDENCE
from components.core.verdict import SELECTION_METRIC, pairwise, verdict

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
SYNTHETIC_WARNING = (
    "Synthetic data: says nothing about chest X-rays. This run used {what}; its numbers test "
    "the plumbing, not which layers are worth fine-tuning on real images."
)
INTENDED_USE = (
    "Research and teaching: comparing transfer-learning variants on a public dataset. Not a "
    "medical device and not for diagnosis, triage or any clinical decision."
)
HAZARDS = (
    "All Viral Pneumonia images are paediatric: the class is confounded with the patients' age and the "
    "source, so a model may learn the child's chest, not the pneumonia.",
    "Source and class are confounded throughout: the COVID images are pooled from several public sources, "
    "the other classes from others, so scanners, hospitals and processing can tell the classes apart.",
    "There are no patient ids: one patient's images can sit on both sides of a split.",
    "Duplicates: identical and near-identical images exist, across classes too; they are kept on one side "
    "(and identical images with two labels are left out), but only copies this run detects.",
)
NOT_EVALUATED = (
    "external data from other hospitals, scanners or populations",
    "a clinical setting, prevalence or workflow",
    "subgroups (age, sex, device), and calibration on shifted data",
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
    f"in about {study.T4_MINUTES_PER_VARIANT} min per model"
)
STUDY_TEXT_NOTE = (
    "Metrics are recomputed here from the study's published confusion matrices; the "
    "accuracies quoted in the study's prose (86.21 / 87.28 / 83.84 %) do not match them."
)

MAX_LISTED = 200


@COMPARISON_KIND.cleans_up
def report(evaluation_dirs: list[Path], out_dir: Path) -> Comparison:
    """Compares evaluated variants and writes the report folder.

    Args:
        evaluation_dirs: evaluation folders (`cxr evaluate --out`), one per variant, all on one dataset.
        out_dir: the report folder to write (created; files replaced).

    Returns:
        The comparison.json object.
    """
    evaluation_dirs = [Path(d) for d in evaluation_dirs]
    if not evaluation_dirs:
        raise CxrError("no evaluation folders given; pass --evaluation DIR once per evaluated variant")
    out_dir = COMPARISON_KIND.prepare_output(out_dir, inputs=[("--evaluation", d) for d in evaluation_dirs])
    evaluations = _load_evaluations(evaluation_dirs)
    comparison = build_comparison(evaluations)
    log(f"report: drawing figures for {len(evaluations)} variants")
    by_variant = {e.entry["variant"]: e for e in evaluations}
    document = report_document(comparison, by_variant)
    files = ReportFiles(
        csv=comparison_table(comparison).to_csv(index=False),
        markdown=to_markdown(document),
        html=to_html(document),
        model_card=to_markdown(model_card(comparison)),
    )
    write_comparison(out_dir, comparison, files)
    for line in console_summary(comparison):
        log(f"report: {line}")
    log(f"report: wrote {out_dir}")
    return comparison


def build_comparison(evaluations: list[Evaluation]) -> Comparison:
    """comparison.json for checked evaluations of one dataset, split and side.

    Variants are sorted by id; the verdict and the pairwise comparisons come from their predictions.
    """
    evaluations = sorted(evaluations, key=lambda e: _natural_key(e.entry["variant"]))
    entries = [e.entry for e in evaluations]
    predictions = {e.entry["variant"]: e.predictions() for e in evaluations}
    first = next(iter(predictions.values()))
    for variant, p in predictions.items():
        if p.ids != first.ids:
            raise CxrError(
                f"the predictions of {variant} are not of the same images as the others'; evaluate "
                "every variant with the same --dataset and --split"
            )
    pairs = pairwise(
        [e["variant"] for e in entries],
        first.y_true,
        {v: p.y_pred for v, p in predictions.items()},
        len(CLASS_NAMES),
    )
    ruling = verdict(entries, pairs)
    dataset, split = evaluations[0].dataset, evaluations[0].split
    return {
        "schema_version": SCHEMA_VERSION,
        "class_names": list(CLASS_NAMES),
        "selection_metric": SELECTION_METRIC,
        "best_variant": ruling["best_variant"],
        "dataset": dataset,
        "variants": entries,
        "verdict": ruling,
        "comparisons": pairs,
        "protocol": _protocol(entries, dataset),
        "split": {
            key: split[key]
            for key in (
                "val_fraction",
                "test_fraction",
                "seed",
                "counts",
                "per_class",
                "groups_across_sides",
                "cross_class_duplicates",
                "excluded",
            )
            if key in split
        },
        "statistics": {
            "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
            "confidence": CONFIDENCE,
            "calibration_bins": CALIBRATION_BINS,
            "proportions": "Wilson score intervals",
            "pairs": "McNemar's exact test and paired bootstrap intervals, uncorrected",
        },
    }


def comparison_table(comparison: Comparison) -> pd.DataFrame:
    """One row per variant: the scalar columns of CSV_COLUMNS, intervals, per-class recall and specificity."""
    rows = []
    for entry in comparison["variants"]:
        row = {key: entry[key] for key in CSV_COLUMNS}
        intervals = entry["statistics"]["intervals"]
        for key in ("accuracy", "macro_f1"):
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = intervals[key] or (None, None)
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


def console_summary(comparison: Comparison) -> list[str]:
    """The verdict and the variant table with intervals, as console lines."""
    lines = [f"verdict: {comparison['verdict']['headline']}", *comparison["verdict"]["comparisons"]]
    lines.append(f"{'variant':8s} {'accuracy [95 % CI]':26s} {'macro-F1 [95 % CI]':26s} COVID sensitivity")
    for e in comparison["variants"]:
        intervals = e["statistics"]["intervals"]
        covid = e["statistics"]["COVID_vs_rest"]["sensitivity"]
        lines.append(
            f"{e['variant']:8s} {_ci(e['accuracy'], intervals['accuracy']):26s} "
            f"{_ci(e['macro_f1'], intervals['macro_f1']):26s} {_ci(covid['value'], covid['interval'])}"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Loading and checking evaluation folders


def _load_evaluations(evaluation_dirs: list[Path]) -> list[Evaluation]:
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
    return evaluations


def _natural_key(variant: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", variant)]


def _protocol(entries: list[VariantEntry], dataset: dict) -> dict:
    """What the evaluation can and cannot tell: the side scored, synthetic inputs, departures."""
    side = entries[0]["eval_side"]
    demo_weights = sorted(e["variant"] for e in entries if e.get("demo_weights"))
    if side == "val":
        side_note = (
            "Evaluated on the validation side, the 70/30 default: the same images also chose the best "
            "variant here, so the winner's figures lean optimistic; the study's reference row comes from "
            "a separate 10 % test split, so the two are not the same protocol (`--preset study-80-10-10` "
            "gives a test side nothing else looks at)."
        )
    else:
        side_note = (
            "Evaluated on the test side, which neither training nor the choice of the best variant saw."
        )
    first = entries[0]
    return {
        "eval_side": side,
        "eval_side_note": side_note,
        "synthetic_data": bool(dataset.get("synthetic")),
        "demo_weights": demo_weights,
        "head_units": first.get("head_units"),
        "dropout": first.get("dropout"),
        "resize": first.get("resize"),
        "departures_from_study": first.get("departures_from_study", {}),
    }


# ---------------------------------------------------------------------------------------------
# Formatting


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _int(value: int) -> str:
    return f"{value:,}"


def _ci(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else f"{value:.4f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _caption(entry: VariantEntry) -> str:
    return f"{entry['variant']}: {entry['title']}"


def _synthetic_inputs(comparison: Comparison) -> str:
    protocol = comparison["protocol"]
    parts = (["synthetic demo images"] if protocol["synthetic_data"] else []) + (
        [f"the offline demo backbone ({', '.join(protocol['demo_weights'])})"]
        if protocol["demo_weights"]
        else []
    )
    return " and ".join(parts)


# ---------------------------------------------------------------------------------------------
# The report document (rendered as report.md and report.html)


def report_document(comparison: Comparison, evaluations: dict[str, Evaluation]) -> Document:
    """The report: the verdict first (best variant, by how much, how sure), then the evidence."""
    variants, ruling = comparison["variants"], comparison["verdict"]
    best = ruling["best_variant"]
    best_rows = frozenset(i for i, e in enumerate(variants) if e["variant"] == best)
    lead = []
    synthetic = _synthetic_inputs(comparison)
    if synthetic:
        lead.append(Paragraph((Strong(SYNTHETIC_WARNING.format(what=synthetic)),), style="warning"))
    lead += [
        Paragraph((Strong("Verdict: "), ruling["headline"]), style="callout"),
        BulletList(tuple((sentence,) for sentence in ruling["comparisons"])),
        Paragraph((comparison["protocol"]["eval_side_note"],), style="muted"),
    ]
    level = round(CONFIDENCE * 100)
    method = (
        f"Intervals: {level} % stratified bootstrap over the evaluated images ({BOOTSTRAP_RESAMPLES:,} "
        "resamples, seeded); proportions of the COVID-vs-rest table: Wilson; pairs of variants: McNemar's "
        "exact test and paired bootstrap, uncorrected for multiple comparisons. n/a: undefined (no images "
        "of the class, no negatives, or never predicted)."
    )
    sections = (
        Section(
            "variants",
            "Variants",
            (
                Table(*_variant_rows(variants), text_columns=2, highlight=best_rows, badge="best"),
                Paragraph((method,), style="muted"),
                BulletList(
                    tuple(
                        (
                            Strong(e["variant"]),
                            f": trains {', '.join(e['trainable_layers'])} (weights: {e['weights']})",
                        )
                        for e in variants
                    ),
                    style="muted",
                ),
            ),
        ),
        Section("pairs", "Variants compared on the same images", (_pairs_table(comparison["comparisons"]),)),
        Section("covid", "COVID against the rest", (_covid_table(variants),)),
        Section("per-class", "Per-class metrics", (_per_class_table(variants, best),)),
        Section(
            "roc",
            "ROC curves (one class against the rest)",
            (
                Figures(
                    tuple(
                        Figure(
                            roc_curves_svg(e["statistics"]["roc"], _caption(e), salt=f"roc-{e['variant']}"),
                            _caption(e),
                            "roc-curves",
                            {"variant": e["variant"]},
                        )
                        for e in variants
                    ),
                    markdown_note="The ROC curves are figures in report.html (AUCs: per-class table).",
                ),
            ),
        ),
        Section(
            "calibration",
            "Calibration",
            (
                Table(
                    ("variant", f"ECE ({CALIBRATION_BINS} bins)", "Brier score"),
                    tuple(
                        (
                            e["variant"],
                            f"{e['statistics']['calibration']['ece']:.4f}",
                            f"{e['statistics']['calibration']['brier']:.4f}",
                        )
                        for e in variants
                    ),
                ),
                Figures(
                    tuple(
                        Figure(
                            reliability_svg(
                                e["statistics"]["calibration"], _caption(e), salt=f"rel-{e['variant']}"
                            ),
                            _caption(e),
                            "reliability",
                            {"variant": e["variant"]},
                        )
                        for e in variants
                    ),
                    markdown_note="The reliability diagrams are figures in report.html.",
                ),
            ),
        ),
        Section(
            "confusion",
            "Confusion matrices",
            (
                Paragraph(
                    (
                        "Rows are the true class, columns the predicted class; each cell shows the count "
                        "and, as "
                        "number and shade, its share of the true class (the diagonal is the recall).",
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
        Section(
            "gradcam",
            "Where each model looks (Grad-CAM)",
            (
                Paragraph(
                    (
                        "Grad-CAM heat maps of the predicted class over the last convolutional activation "
                        "(out_relu), for a seeded choice of evaluated images: per class one predicted "
                        "right (✓) "
                        "and one wrong (✗) where there is one. Caption: true → predicted (probability).",
                    ),
                    style="muted",
                ),
                Figures(
                    tuple(_gradcam_figure(evaluations[e["variant"]], e) for e in variants),
                    markdown_note="The Grad-CAM panels are pictures in report.html.",
                ),
            ),
        ),
        _audit_section(comparison),
        _protocol_section(comparison),
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
                "predictions.csv; the model card (model_card.md) sums up what this run can and cannot "
                "tell.",
            ),
            style="muted",
        ),
    )
    return Document(TITLE, tuple(lead), sections, footer)


def _variant_rows(variants: list[VariantEntry]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    header = (
        "variant",
        "title",
        "trainable params",
        "train time",
        "eval images",
        "accuracy [95 % CI]",
        "macro-F1 [95 % CI]",
        "weighted-F1",
        "COVID sensitivity [95 % CI]",
    )
    rows = []
    for e in variants:
        intervals, covid = e["statistics"]["intervals"], e["statistics"]["COVID_vs_rest"]["sensitivity"]
        rows.append(
            (
                e["variant"],
                e["title"],
                _int(e["trainable_params"]),
                _duration(e["train_seconds"]),
                f"{_int(e['n_eval'])} ({e['eval_side']})",
                _ci(e["accuracy"], intervals["accuracy"]),
                _ci(e["macro_f1"], intervals["macro_f1"]),
                _f(e["weighted_f1"]),
                _ci(covid["value"], covid["interval"]),
            )
        )
    return header, tuple(rows)


def _pairs_table(pairs: list[dict]) -> Table:
    def diff(d: dict) -> str:
        spread = f" [{d['interval'][0] * 100:+.1f}, {d['interval'][1] * 100:+.1f}]" if d["interval"] else ""
        return f"{d['difference'] * 100:+.1f}{spread}"

    header = (
        "first",
        "second",
        "accuracy difference, points [95 % CI]",
        "macro-F1 difference, points [95 % CI]",
        "images only the first gets right",
        "only the second",
        "McNemar exact p",
    )
    rows = tuple(
        (
            p["first"],
            p["second"],
            diff(p["accuracy"]),
            diff(p["macro_f1"]),
            _int(p["mcnemar"]["only_first_right"]),
            _int(p["mcnemar"]["only_second_right"]),
            f"{p['mcnemar']['p_value']:.4f}",
        )
        for p in pairs
    )
    return Table(header, rows, text_columns=2)


def _covid_table(variants: list[VariantEntry]) -> Table:
    header = (
        "variant",
        "sensitivity [95 % CI]",
        "specificity [95 % CI]",
        "PPV [95 % CI]",
        "NPV [95 % CI]",
        "TP / FN / TN / FP",
    )
    rows = []
    for e in variants:
        t = e["statistics"]["COVID_vs_rest"]
        rows.append(
            (
                e["variant"],
                *(_ci(t[k]["value"], t[k]["interval"]) for k in ("sensitivity", "specificity", "ppv", "npv")),
                f"{t['tp']} / {t['fn']} / {t['tn']} / {t['fp']}",
            )
        )
    return Table(header, tuple(rows))


def _per_class_table(variants: list[VariantEntry], best: str) -> Table:
    header = (
        "variant",
        "class",
        "precision [95 % CI]",
        "recall [95 % CI]",
        "F1",
        "specificity [95 % CI]",
        "ROC-AUC [95 % CI]",
        "support",
    )
    rows = []
    for e in variants:
        intervals, roc = e["statistics"]["intervals"]["per_class"], e["statistics"]["roc"]
        for name in CLASS_NAMES:
            m, i = e["per_class"][name], intervals[name]
            rows.append(
                (
                    e["variant"],
                    name,
                    _ci(m["precision"], i["precision"]),
                    _ci(m["recall"], i["recall"]),
                    _f(m["f1"]),
                    _ci(m["specificity"], i["specificity"]),
                    _ci(roc[name]["auc"], roc[name]["interval"]),
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


def _gradcam_figure(evaluation: Evaluation, entry: VariantEntry) -> Figure:
    cam = evaluation.gradcam()
    captions = [
        f"{'✓' if t == p else '✗'} {CLASS_NAMES[t]} → {CLASS_NAMES[p]} ({c:.2f})"
        for t, p, c in zip(cam.y_true, cam.y_pred, cam.confidence, strict=True)
    ]
    png = gradcam_png(cam.images, cam.heatmaps, captions, _caption(entry)) if len(cam.ids) else b""
    return Figure("", _caption(entry), "gradcam", {"variant": entry["variant"]}, png=png)


def _audit_section(comparison: Comparison) -> Section:
    dataset, split = comparison["dataset"], comparison["split"]
    per_side = split.get("per_class", {})
    sides = [s for s in ("train", "val", "test") if sum(per_side.get(s, {}).values())]
    counts = Table(
        ("class", "images", *sides),
        tuple(
            (name, _int(dataset["per_class"][name]), *(_int(per_side[s][name]) for s in sides))
            for name in CLASS_NAMES
        ),
    )
    across = split.get("groups_across_sides", {})
    cross = dataset.get("cross_class_duplicates", [])
    skipped, excluded = dataset["skipped"], split.get("excluded", [])
    blocks = [
        Paragraph(
            (
                f"{_int(dataset['images'])} images; {_int(len(skipped))} files skipped; "
                f"{_int(dataset['duplicate_groups'])} groups of identical images and "
                f"{_int(dataset.get('near_duplicate_groups', 0))} groups of near-identical ones "
                "(re-encoded or resized copies: pHash within "
                f"{dataset.get('near_duplicate_distance', 'n/a')} "
                "bits), each kept on "
                f"one side of the split: groups found on two sides: {across.get('exact', 'n/a')} exact, "
                f"{across.get('near', 'n/a')} near.",
            )
        ),
        counts,
        Paragraph(
            (
                f"Identical images under two labels: {_int(len(cross))} groups; policy "
                f"'{split.get('cross_class_duplicates', 'n/a')}' ({_int(len(excluded))} images left out "
                "of every "
                "side).",
            )
        ),
    ]
    if cross:
        blocks.append(
            Table(
                ("images", "labels"),
                tuple((", ".join(g["ids"]), ", ".join(g["classes"])) for g in cross[:MAX_LISTED]),
                text_columns=2,
            )
        )
    modes = dataset.get("color_modes", {})
    if modes:
        blocks.append(
            Table(("colour mode as stored", "images"), tuple((m, _int(n)) for m, n in modes.items()))
        )
    subsections = ()
    if skipped:
        listed = [
            Table(
                ("path", "reason"),
                tuple((s["path"], s["reason"]) for s in skipped[:MAX_LISTED]),
                text_columns=2,
            )
        ]
        if len(skipped) > MAX_LISTED:
            listed.append(
                Paragraph(
                    (f"… and {_int(len(skipped) - MAX_LISTED)} more (see comparison.json).",), style="muted"
                )
            )
        subsections = (Section("skipped", "Skipped files", tuple(listed)),)
    return Section("dataset", "Data audit", tuple(blocks), subsections=subsections)


def _protocol_section(comparison: Comparison) -> Section:
    p = comparison["protocol"]
    items = [
        (Strong("Evaluated side: "), p["eval_side_note"]),
        (Strong("Head: "), f"hidden layers {p['head_units']}, dropout {p['dropout']} after each."),
        *((Strong(f"{key}: "), text) for key, text in p["departures_from_study"].items()),
    ]
    synthetic = _synthetic_inputs(comparison)
    if synthetic:
        items.append((Strong("Synthetic inputs: "), f"{synthetic}."))
    return Section("protocol", "Protocol, and where it departs from the study", (BulletList(tuple(items)),))


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


# ---------------------------------------------------------------------------------------------
# The model card


def model_card(comparison: Comparison) -> Document:
    """model_card.md: what was trained on what, for what use, how well, and what was not evaluated."""
    dataset, protocol, ruling = comparison["dataset"], comparison["protocol"], comparison["verdict"]
    variants = comparison["variants"]
    synthetic = _synthetic_inputs(comparison)
    lead = (
        [Paragraph((Strong(SYNTHETIC_WARNING.format(what=synthetic)),), style="warning")] if synthetic else []
    )
    data = (
        f"{_int(dataset['images'])} images "
        f"({', '.join(f'{k} {_int(v)}' for k, v in dataset['per_class'].items())})"
        f" in the layout of the Kaggle COVID-19 Radiography Database"
        + (" — synthetic phantoms made by `cxr demo-data`" if protocol["synthetic_data"] else "")
        + f"; {_int(len(dataset['skipped']))} files skipped, {_int(dataset['duplicate_groups'])} groups of "
        f"identical and {_int(dataset.get('near_duplicate_groups', 0))} of near-identical images kept on "
        "one side."
    )
    metrics = tuple(
        (
            e["variant"],
            e["title"],
            _ci(e["accuracy"], e["statistics"]["intervals"]["accuracy"]),
            _ci(e["macro_f1"], e["statistics"]["intervals"]["macro_f1"]),
            _ci(
                e["statistics"]["COVID_vs_rest"]["sensitivity"]["value"],
                e["statistics"]["COVID_vs_rest"]["sensitivity"]["interval"],
            ),
            f"{e['statistics']['calibration']['ece']:.3f}",
        )
        for e in variants
    )
    first = variants[0]
    sections = (
        Section(
            "model",
            "Model",
            (
                BulletList(
                    (
                        (
                            "MobileNetV2 (weights: ",
                            first["weights"],
                            ") with a head of ",
                            str(protocol["head_units"]),
                            f" units and dropout {protocol['dropout']}; fine-tuned three ways: "
                            + "; ".join(
                                f"{e['variant']} trains {', '.join(e['trainable_layers'])}" for e in variants
                            )
                            + ".",
                        ),
                        (
                            f"{first['epochs']} epochs, batch {first.get('batch_size', 'n/a')}, "
                            f"Adam at {first.get('learning_rate', 'n/a')}, "
                            f"{first.get('image_size', 'n/a')} px input, seed {first.get('seed', 'n/a')}.",
                        ),
                    )
                ),
            ),
        ),
        Section("use", "Intended use", (Paragraph((INTENDED_USE,)),)),
        Section("data", "Data", (Paragraph((data,)), Paragraph((protocol["eval_side_note"],)))),
        Section(
            "metrics",
            "Metrics (95 % intervals)",
            (
                Table(
                    ("variant", "title", "accuracy", "macro-F1", "COVID sensitivity", "ECE"),
                    metrics,
                    text_columns=2,
                ),
                Paragraph((Strong("Verdict: "), ruling["headline"])),
            ),
        ),
        Section("hazards", "Known hazards of this dataset", (BulletList(tuple((h,) for h in HAZARDS)),)),
        Section("not-evaluated", "Not evaluated", (BulletList(tuple((n,) for n in NOT_EVALUATED)),)),
    )
    return Document("Model card: MobileNetV2 transfer learning on chest X-rays", tuple(lead), sections)
