"""What a kfp.local run left in its pipeline root, read in one place.

kfp.local writes each task's outputs (artifact URIs and metadata: what the Kubeflow UI would show) to
`<pipeline root>/<run name>/.../<task name>/executor_output.json`. Tests read them through `task_outputs`
so that layout is known here only.
"""

import json
from pathlib import Path


def task_outputs(pipeline_root: Path) -> dict[str, list[dict]]:
    """Task name → the output artifacts of each of its executions, as {output name: artifact dict}.

    A task of a ParallelFor has one entry per iteration (in no particular order).
    """
    outputs: dict[str, list[dict]] = {}
    for path in sorted(Path(pipeline_root).rglob("executor_output.json")):
        artifacts = json.loads(path.read_text()).get("artifacts", {})
        outputs.setdefault(path.parent.name, []).append(
            {name: value["artifacts"][0] for name, value in artifacts.items()}
        )
    return outputs
