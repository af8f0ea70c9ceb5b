"""The committed bench results render into the tables README quotes (bench/bench.py --render)."""

import json
from pathlib import Path

from bench import bench

RESULTS = Path(bench.RESULTS_JSON)


def test_committed_results_render_with_every_target_and_the_t4_estimate():
    results = json.loads(RESULTS.read_text())
    text = bench.markdown(results | {"t4_estimate": bench.t4_estimate(results)})
    stale = "bench/results.md is stale: run bench/bench.py --render"
    assert text == Path(bench.RESULTS_MD).read_text(), stale
    for target in ("P1:", "P2:", "P3:", "Estimated on 2 × T4"):
        assert target in text
    assert results["settings"]["images"] == 21165 and results["settings"]["epochs"] == 20
