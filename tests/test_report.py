"""The report step: comparison.json contract, CSV/Markdown/HTML outputs, checks on its inputs."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.artifacts import evaluation
from components.artifacts.evaluation import KIND as EVALUATION_KIND
from components.artifacts.evaluation import VariantEntry
from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.metrics import labels_from_confusion_matrix
from components.report import STUDY_CONFUSION_MATRICES, report, study_reference

CHROMIUM = Path("/usr/bin/chromium")
DATASET = {
    "images": 64,
    "per_class": {"COVID": 16, "Lung_Opacity": 16, "Normal": 24, "Viral Pneumonia": 8},
    "skipped": [
        {"path": "COVID/images/COVID-99.png", "reason": "not a PNG file", "detail": "text"},
        {"path": "Normal/images/Normal-7.png", "reason": "image is 0×0 pixels", "detail": "empty"},
    ],
    "duplicate_groups": 3,
    "color_modes": {"L": 60, "RGB": 4},
    "cross_class_duplicates": [
        {"ids": ["COVID/images/COVID-3.png", "Normal/images/Normal-9.png"], "classes": ["COVID", "Normal"]}
    ],
    "near_duplicate_groups": 1,
    "near_duplicate_distance": 48,
    "synthetic": True,
}
MATRICES = {  # model2 has the best macro-F1
    "model1": [[3, 1, 0, 0], [1, 3, 0, 0], [0, 1, 5, 0], [0, 0, 0, 2]],
    "model2": [[4, 0, 0, 0], [0, 4, 0, 0], [0, 1, 5, 0], [0, 0, 0, 2]],
    "model3": [[4, 0, 0, 0], [1, 2, 1, 0], [1, 0, 5, 0], [0, 0, 1, 1]],
}
SPLIT = {
    "val_fraction": 0.1,
    "test_fraction": 0.1,
    "seed": 42,
    "counts": {"train": 48, "val": 0, "test": 16},
    "per_class": {
        "train": {"COVID": 12, "Lung_Opacity": 12, "Normal": 18, "Viral Pneumonia": 6},
        "val": dict.fromkeys(CLASS_NAMES, 0),
        "test": {"COVID": 4, "Lung_Opacity": 4, "Normal": 6, "Viral Pneumonia": 2},
    },
    "groups_across_sides": {"exact": 0, "near": 0},
    "cross_class_duplicates": "exclude",
    "excluded": [],
}
TITLES = {"model1": "FC head", "model2": "FC head + last conv", "model3": "FC head + last 2 conv"}
PARAMS = {"model1": 100, "model2": 300, "model3": 600}


def write_evaluation(
    folder: Path, variant: str, matrix, *, trainable_params: int | None = None, dataset: dict = DATASET
) -> Path:
    """An evaluation folder as `evaluate` writes it, for predictions that give `matrix`."""
    y_true, y_pred = labels_from_confusion_matrix(matrix)
    probs = np.full((len(y_true), len(CLASS_NAMES)), 0.1)
    probs[np.arange(len(y_pred)), y_pred] = 0.7
    train = {
        "variant": variant,
        "title": TITLES.get(variant, variant),
        "trainable_layers": ["head_output"],
        "trainable_params": trainable_params or PARAMS.get(variant, 1),
        "total_params": 1000,
        "epochs": 3,
        "train_seconds": 12.5,
        "weights": "demo",
    }
    history = {
        "loss": [1.0, 0.7, 0.5],
        "accuracy": [0.5, 0.7, 0.8],
        "val_loss": [1.1, 0.8, 0.7],
        "val_accuracy": [0.45, 0.65, 0.7],
    }
    evaluation.write_evaluation(
        folder,
        ids=[f"img-{i}.png" for i in range(len(y_true))],
        y_true=y_true,
        probabilities=probs,
        train=train,
        history=history,
        eval_side="test",
        split_fingerprint="split-1",
        dataset=dataset,
        split=SPLIT,
        gradcam=gradcam_examples(y_true, y_pred, probs),
    )
    return folder


def gradcam_examples(y_true, y_pred, probabilities) -> evaluation.GradCam:
    """Two examples with a heat map peaking in one corner (what evaluate stores)."""
    rows = [0, int(np.flatnonzero(y_true != y_pred)[0])]
    images = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (2, 32, 1))
    heatmaps = np.zeros((2, 4, 4), np.float32)
    heatmaps[:, 0, 0] = 1.0
    return evaluation.GradCam(
        [f"img-{i}.png" for i in rows],
        y_true[rows],
        y_pred[rows],
        probabilities[rows, y_pred[rows]],
        images,
        heatmaps,
    )


@pytest.fixture
def evaluations(tmp_path) -> list[Path]:
    # Given out of order: the report sorts variants by id.
    return [write_evaluation(tmp_path / "eval" / v, v, MATRICES[v]) for v in ("model3", "model1", "model2")]


def test_report_writes_the_comparison_contract_and_all_outputs(evaluations, tmp_path):
    out = tmp_path / "report"
    comparison = report(evaluations, out)
    assert json.loads((out / "comparison.json").read_text()) == comparison
    assert list(comparison) == [
        "schema_version",
        "class_names",
        "selection_metric",
        "best_variant",
        "dataset",
        "variants",
        "verdict",
        "comparisons",
        "protocol",
        "split",
        "statistics",
    ]
    assert comparison["schema_version"] == 2
    assert comparison["class_names"] == list(CLASS_NAMES)
    assert comparison["selection_metric"] == "macro_f1"
    assert comparison["best_variant"] == "model2"
    assert comparison["dataset"] == DATASET
    assert [v["variant"] for v in comparison["variants"]] == ["model1", "model2", "model3"]
    for entry in comparison["variants"]:
        assert set(VariantEntry.__required_keys__) <= set(entry)
        assert list(entry["per_class"]) == list(CLASS_NAMES)
        assert all(
            set(m) == {"precision", "recall", "f1", "specificity", "support"}
            for m in entry["per_class"].values()
        )
        assert set(entry["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert entry["confusion_matrix"] == MATRICES[entry["variant"]]

    table = pd.read_csv(out / "comparison.csv")
    assert list(table.columns[:10]) == [
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
    ]
    per_class_columns = [f"{m}_{c}" for c in CLASS_NAMES for m in ("recall", "specificity")]
    assert set(per_class_columns) <= set(table.columns)
    assert list(table["variant"]) == ["model1", "model2", "model3"]
    assert table["accuracy"].tolist() == pytest.approx([13 / 16, 15 / 16, 12 / 16])

    # 16 images tell none of these variants apart: the verdict says so, and names the cheaper.
    ruling = comparison["verdict"]
    assert ruling["best_variant"] == "model2" and not ruling["distinguishable"]
    assert ruling["cheapest_equivalent"] == "model1"
    assert [p["first"] + "/" + p["second"] for p in comparison["comparisons"]] == [
        "model1/model2",
        "model1/model3",
        "model2/model3",
    ]
    markdown = (out / "report.md").read_text()
    assert markdown.index(
        "**Verdict:** model2 has the highest macro-F1, but it is not distinguishable"
    ) < markdown.index("## Variants")
    assert "model1 vs model2: -12.5 points accuracy (95 % CI" in markdown
    assert "| **model2** (best) | FC head + last conv |" in markdown
    assert markdown.count("| true \\ predicted |") == 3  # one confusion table per variant
    assert "COVID/images/COVID-99.png | not a PNG file" in markdown
    assert (
        "3 groups of identical images" in markdown
        and "groups found on two sides: 0 exact, 0 near" in markdown
    )
    assert "Published reference: the Lab 4 study (not this run)" in markdown

    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower()
    # The only pictures are the Grad-CAM panels, inline PNGs.
    assert re.findall(r'<img[^>]*src="([a-z]+:[a-z/]+);', page) == ["data:image/png"] * 3
    assert len(re.findall(r'<figure class="gradcam" data-variant="model\d"><img', page)) == 3
    for v in ("model1", "model2", "model3"):
        assert len(re.findall(rf'<figure class="confusion-matrix" data-variant="{v}"><svg\b', page)) == 1
        assert len(re.findall(rf'<figure class="training-curves" data-variant="{v}"><svg\b', page)) == 1
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids must be unique across the inline figures"
    assert '<tr class="highlight"><td class="text">model2<span class="badge">best</span>' in page
    assert "not a PNG file" in page and "image is 0×0 pixels" in page
    assert "not this run" in page

    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(first) == {
        "comparison.json",
        "comparison.csv",
        "report.md",
        "report.html",
        "model_card.md",
        "artifact.json",
    }
    card = (out / "model_card.md").read_text()
    for part in (
        "## Intended use",
        "not for diagnosis",
        "All Viral Pneumonia images are paediatric",
        "no patient ids",
        "## Not evaluated",
        "external data",
        "Synthetic data: says nothing",
    ):
        assert part in card, part
    report(evaluations, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_a_macro_f1_tie_goes_to_fewer_trainable_params(tmp_path):
    same = MATRICES["model2"]
    folders = [
        write_evaluation(tmp_path / "a", "model1", same, trainable_params=500),
        write_evaluation(tmp_path / "b", "model2", same, trainable_params=200),
    ]
    assert report(folders, tmp_path / "out")["best_variant"] == "model2"


def test_the_study_reference_is_computed_from_its_published_confusion_matrices():
    reference = {r["variant"]: r for r in study_reference()}
    assert list(reference) == list(STUDY_CONFUSION_MATRICES) == ["model1", "model2", "model3"]
    assert all(r["n_eval"] == 2117 for r in reference.values())
    supports = [r["per_class"][c]["support"] for r in reference.values() for c in CLASS_NAMES]
    assert supports == [362, 602, 1019, 134] * 3
    assert reference["model2"]["accuracy"] == pytest.approx(1909 / 2117)
    # The study's own rounded classification report for model2.
    assert [round(reference["model2"]["per_class"][c]["precision"], 2) for c in CLASS_NAMES] == [
        0.96,
        0.87,
        0.89,
        0.97,
    ]
    assert [round(reference["model3"]["per_class"][c]["recall"], 2) for c in CLASS_NAMES] == [
        0.93,
        0.85,
        0.85,
        0.94,
    ]


def test_report_rejects_inconsistent_or_missing_input(evaluations, tmp_path):
    def rejected(folders, message):
        with pytest.raises(CxrError, match=message) as caught:
            report(folders, tmp_path / "out")
        assert "\n" not in str(caught.value)
        return str(caught.value)

    rejected([], "no evaluation folders")
    rejected([tmp_path / "nowhere"], "no such folder")

    twin = write_evaluation(tmp_path / "twin", "model1", MATRICES["model1"])
    message = rejected([*evaluations, twin], "appears twice")
    assert str(twin) in message

    other = write_evaluation(
        tmp_path / "other", "model4", MATRICES["model1"], dataset=DATASET | {"duplicate_groups": 4}
    )
    assert str(other / "dataset.json") in rejected([*evaluations, other], "different datasets")

    metrics = evaluations[0] / "metrics.json"
    entry = json.loads(metrics.read_text())
    metrics.write_text(json.dumps(entry | {"accuracy": entry["accuracy"] + 0.01}))
    rejected(evaluations, r"metrics.json is not the file `cxr evaluate` wrote")  # artifact.json's sha256

    def rewrite(obj):  # a writer that closed a wrong file with a right manifest: the checks behind it
        metrics.write_text(json.dumps(obj))
        EVALUATION_KIND.write_manifest(metrics.parent)

    rewrite(entry | {"accuracy": entry["accuracy"] + 0.01})
    assert str(metrics) in rejected(evaluations, "not trace/sum of its confusion matrix")

    rewrite(entry | {"macro_f1": 0.99})
    rejected(evaluations, "macro_f1 disagrees with .*predictions.csv")

    rewrite({k: v for k, v in entry.items() if k != "history"})
    rejected(evaluations, r"lacks \['history'\]")

    rewrite(entry | {"eval_side": "val"})
    rejected(evaluations[::-1], "eval_side 'val' differs")
    rewrite(entry | {"split_fingerprint": "another-split"})
    rejected(evaluations, "split_fingerprint .* differs .*same --split")

    rewrite(entry)
    (evaluations[0] / "predictions.csv").unlink()
    rejected(evaluations, "evaluation artifact lacks predictions.csv")


def test_report_html_renders_in_a_real_browser(evaluations, tmp_path):
    """Headless Chromium (Playwright): no console errors, a screenshot, numbers read back as page text."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install it (`apt-get install -y chromium`) to check report.html")
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report"
    comparison = report(evaluations, out)
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "request",
            lambda r: (
                problems.append(f"request {r.url}") if not r.url.startswith(("file:", "data:")) else None
            ),
        )
        page.goto((out / "report.html").as_uri())
        text = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        shown = page.evaluate("[...document.querySelectorAll('figure img')].map(i => i.naturalWidth > 0)")
        verdict_leads = page.evaluate(
            "document.querySelector('.callout').compareDocumentPosition(document.querySelector('h2'))"
            " & Node.DOCUMENT_POSITION_FOLLOWING"
        )
        browser.close()
    assert problems == []
    assert (tmp_path / "report.png").stat().st_size > 100_000  # a page of tables and figures, not a blank one
    assert shown == [True, True, True]  # every Grad-CAM panel decoded
    best = next(v for v in comparison["variants"] if v["variant"] == "model2")
    assert verdict_leads and "Verdict:" in text  # the verdict comes before the first section
    assert f"{best['macro_f1']:.4f} [{best['statistics']['intervals']['macro_f1'][0]:.3f}," in text
    assert "COVID/images/COVID-99.png" in text and "Synthetic data: says nothing about chest X-rays" in text


def test_the_comparison_schema_is_written_down_for_every_field():
    """components/artifacts/comparison.py documents comparison.json; no typed field goes unmentioned."""
    from components.artifacts import comparison
    from components.artifacts.dataset import DatasetObject, SkippedFile
    from components.core.metrics import ClassMetrics

    documented = set(re.findall(r"\w+", comparison.__doc__))
    for schema in (comparison.Comparison, VariantEntry, DatasetObject, SkippedFile, ClassMetrics):
        assert set(schema.__annotations__) <= documented, schema.__name__
