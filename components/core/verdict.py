"""Which variant is best, by how much, and how sure: pairwise comparisons on the same images.

Every pair of variants is compared on the images both predicted (core/statistics.py compare): the
accuracy and macro-F1 differences with paired bootstrap intervals and McNemar's exact test. The best
variant has the highest macro-F1 (ties: fewer trainable parameters). It is distinguishable when the
interval of its macro-F1 difference to every other variant excludes zero; otherwise the variants
whose interval includes zero are not distinguishable from it on this evaluation, and the cheapest
of them (fewest trainable parameters, then least training time) is named. The tests are not
corrected for multiple comparisons; there are at most three pairs.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from components.core.statistics import CONFIDENCE, compare, excludes_zero

SELECTION_METRIC = "macro_f1"
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "weighted_f1": "weighted-F1"}


def points(difference: float) -> str:
    """A difference of proportions in percentage points: "+2.4"."""
    return f"{difference * 100:+.1f}"


def p_value(p: float) -> str:
    """A p-value in words: "p = 0.003", or "p < 0.001"."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def comparison_sentence(pair: dict) -> str:
    """One pair in words: "model2 vs model1: +2.4 points accuracy (95 % CI +0.9 to +3.9), McNemar p = …"."""
    level = round(CONFIDENCE * 100)

    def part(key: str) -> str:
        d = pair[key]
        interval = d["interval"]
        spread = f" ({level} % CI {points(interval[0])} to {points(interval[1])})" if interval else ""
        return f"{points(d['difference'])} points {METRIC_NAMES[key]}{spread}"

    return (
        f"{pair['first']} vs {pair['second']}: {part('accuracy')}, McNemar "
        f"{p_value(pair['mcnemar']['p_value'])}; {part('macro_f1')}"
    )


def pairwise(
    variants: list[str], y_true: np.ndarray, predictions: dict[str, np.ndarray], classes: int
) -> list[dict]:
    """Every pair (in variant order) compared on the same images."""
    out = []
    for first, second in combinations(variants, 2):
        out.append(
            {"first": first, "second": second}
            | compare(y_true, predictions[first], predictions[second], classes)
        )
    for pair in out:
        pair["sentence"] = comparison_sentence(pair)
    return out


def verdict(entries: list[dict], pairs: list[dict]) -> dict:
    """The best variant and whether the evaluation tells it from the others (see the module docstring).

    Args:
        entries: the variants' comparison.json entries.
        pairs: pairwise() of them.
    """
    best = max(entries, key=lambda e: (e[SELECTION_METRIC], -e["trainable_params"]))
    against: list[dict] = []
    for pair in pairs:
        if best["variant"] in (pair["first"], pair["second"]):
            sign = 1 if pair["first"] == best["variant"] else -1
            other = pair["second"] if sign == 1 else pair["first"]
            interval = pair[SELECTION_METRIC]["interval"]
            oriented = [sign * interval[0], sign * interval[1]] if interval else None
            against.append(
                {
                    "other": other,
                    "difference": sign * pair[SELECTION_METRIC]["difference"],
                    "interval": sorted(oriented) if oriented else None,
                    "p_value": pair["mcnemar"]["p_value"],
                    "pair": pair,
                }
            )
    tied = [a["other"] for a in against if not excludes_zero(a["interval"])]
    candidates = [e for e in entries if e["variant"] in {best["variant"], *tied}]
    cheapest = min(candidates, key=lambda e: (e["trainable_params"], e["train_seconds"]))
    level = round(CONFIDENCE * 100)
    if not against:
        headline = f"{best['variant']} is the only variant evaluated."
    elif not tied:
        headline = (
            f"{best['variant']} is the best variant by {METRIC_NAMES[SELECTION_METRIC]}, and the "
            f"{level} % interval of its lead excludes zero against every other variant."
        )
    else:
        headline = (
            f"{best['variant']} has the highest {METRIC_NAMES[SELECTION_METRIC]}, but it is not "
            f"distinguishable on this evaluation from {', '.join(tied)} (the {level} % interval of the "
            f"difference includes zero); the cheapest of them is {cheapest['variant']} "
            f"({cheapest['trainable_params']:,} trainable parameters, {cheapest['train_seconds']:.0f} s "
            "of training)."
        )
    return {
        "best_variant": best["variant"],
        "selection_metric": SELECTION_METRIC,
        "distinguishable": not tied,
        "not_distinguishable_from": tied,
        "cheapest_equivalent": cheapest["variant"],
        "headline": headline,
        "comparisons": [a["pair"]["sentence"] for a in against],
    }
