"""Report figures, drawn headless: inline-ready SVG strings and small PNG panels.

Confusion matrices, training curves, ROC curves and reliability diagrams are SVG; Grad-CAM panels
are PNG (heat maps are pictures: thousands of SVG cells would not do). SVG figures come from
matplotlib's Agg canvas with text kept as <text> elements, no date stamp and element ids salted per
figure, so several figures can share one HTML page and the same input always gives the same bytes.
"""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#d62728"


def confusion_matrix_svg(matrix, class_names, title: str, *, salt: str) -> str:
    """A confusion matrix heat map: counts, with each cell shaded and labelled by its share of the row.

    Args:
        matrix: square counts, rows = true class, columns = predicted class.
        class_names: the label of each row/column.
        title: the figure title.
        salt: a string unique to this figure within a page (keeps SVG element ids distinct).

    Returns:
        An `<svg …>…</svg>` element (no XML prolog) ready to inline into HTML.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
    labels = [name.replace(" ", "\n").replace("_", "\n") for name in class_names]

    fig = _figure(4.0, 4.0)
    ax = fig.add_subplot()
    # Vector cells (pcolormesh), not imshow: imshow embeds a base64 PNG inside the SVG.
    ax.pcolormesh(shares, cmap="Blues", vmin=0.0, vmax=1.0, edgecolors="white", linewidth=1)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    for t in range(counts.shape[0]):
        for p in range(counts.shape[1]):
            ax.text(
                p + 0.5,
                t + 0.5,
                f"{counts[t, p]}\n{shares[t, p]:.0%}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if shares[t, p] > 0.55 else "#222222",
            )
    ticks = np.arange(len(class_names)) + 0.5
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _svg(fig, salt)


def training_curves_svg(history: dict, title: str, *, salt: str) -> str:
    """Loss and accuracy per epoch, training vs validation, side by side.

    Args:
        history: Keras history ({"loss", "accuracy", "val_loss", "val_accuracy"} → per-epoch lists);
            missing series are left out.
        title: the figure title.
        salt: a string unique to this figure within a page (keeps SVG element ids distinct).

    Returns:
        An `<svg …>…</svg>` element (no XML prolog) ready to inline into HTML.
    """
    fig = _figure(6.2, 2.6)
    axes = fig.subplots(1, 2)
    for ax, metric, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        drawn = False
        for key, name, color in ((metric, "train", TRAIN_COLOR), (f"val_{metric}", "validation", VAL_COLOR)):
            values = [float(v) for v in history.get(key) or []]
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(
                    epochs,
                    values,
                    color=color,
                    label=name,
                    marker="o" if len(values) <= 30 else None,
                    markersize=3,
                    linewidth=1.5,
                )
                drawn = True
        if drawn:
            ax.legend(fontsize=8, frameon=False)
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            ax.text(0.5, 0.5, "no history recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _svg(fig, salt)


CLASS_COLORS = ("#d62728", "#ff7f0e", "#2ca02c", "#9467bd")  # CLASS_NAMES order


def roc_curves_svg(roc: dict, title: str, *, salt: str) -> str:
    """One-vs-rest ROC curves of one variant, one line per class with its AUC in the legend.

    Args:
        roc: class name → {"auc", "interval", "fpr", "tpr"} (core/statistics.py roc_summary).
        title: the figure title.
        salt: a string unique to this figure within a page.
    """
    fig = _figure(3.6, 3.4)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle=":")
    for (name, curve), color in zip(roc.items(), CLASS_COLORS, strict=False):
        if curve["auc"] is None:
            continue
        ax.plot(curve["fpr"], curve["tpr"], color=color, linewidth=1.5, label=f"{name} {curve['auc']:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate (1 − specificity)")
    ax.set_ylabel("true-positive rate (sensitivity)")
    ax.legend(fontsize=7, frameon=False, loc="lower right", title="AUC", title_fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _svg(fig, salt)


def reliability_svg(calibration: dict, title: str, *, salt: str) -> str:
    """A reliability diagram: accuracy against mean confidence per confidence bin, bar width = bin.

    Args:
        calibration: core/statistics.py calibration() of one variant.
        title: the figure title.
        salt: a string unique to this figure within a page.
    """
    fig = _figure(3.6, 3.4)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle=":", label="perfect")
    bins = calibration["reliability"]
    ax.bar(
        [b["low"] for b in bins],
        [b["accuracy"] for b in bins],
        width=[b["high"] - b["low"] for b in bins],
        align="edge",
        color=TRAIN_COLOR,
        alpha=0.75,
        edgecolor="white",
        label="accuracy",
    )
    ax.plot(
        [b["confidence"] for b in bins],
        [b["accuracy"] for b in bins],
        "o",
        color=VAL_COLOR,
        markersize=3,
        label="mean confidence",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(f"top-class probability ({calibration['bins']} bins)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title(f"{title}\nECE {calibration['ece']:.3f}, Brier {calibration['brier']:.3f}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _svg(fig, salt)


def gradcam_png(images, heatmaps, captions: list[str], title: str) -> bytes:
    """A panel of images with their Grad-CAM heat maps overlaid, as a small PNG.

    Args:
        images: uint8 (n, side, side) grayscale images.
        heatmaps: (n, h, w) heat maps in [0, 1], stretched over each image.
        captions: one line under each image.
        title: the panel title.
    """
    columns = min(4, max(1, len(images)))
    rows = max(1, -(-len(images) // columns))
    fig = _figure(1.9 * columns, 2.1 * rows + 0.3)
    for i, (image, heatmap, caption) in enumerate(zip(images, heatmaps, captions, strict=True)):
        ax = fig.add_subplot(rows, columns, i + 1)
        side = image.shape[0]
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, extent=(0, side, side, 0))
        ax.imshow(
            heatmap,
            cmap="jet",
            alpha=0.4,
            vmin=0,
            vmax=1,
            extent=(0, side, side, 0),
            interpolation="bilinear",
        )
        ax.set_title(caption, fontsize=7)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, metadata={"Software": None})
    return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _svg(fig: Figure, salt: str) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = re.sub(r"\A.*?(?=<svg\b)", "", buffer.getvalue(), flags=re.S).strip()
    # Prefix every element id (and every reference to one) so figures sharing a page never collide.
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", salt)
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    return re.sub(
        r'(href="#|url\(#)([^")]+)',
        lambda m: f"{m.group(1)}{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(0),
        text,
    )
