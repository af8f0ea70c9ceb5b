"""`cxr compile`: the pipeline YAML for one environment, with its images pinned."""

from pathlib import Path

from kfp import compiler

from components.core.progress import log
from pipelines.config import Config, check_pullable
from pipelines.pipeline import make_pipeline


def compile_pipeline(config: Config, output: Path) -> Path:
    """Compiles the pipeline for `config` into `output` (a KFP IR YAML file) and returns its path."""
    check_pullable(config.images)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(make_pipeline(config), str(output))
    log(f"compile: wrote {output} (images {config.images.cpu}, {config.images.train})")
    return output
