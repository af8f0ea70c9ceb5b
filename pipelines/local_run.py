"""`cxr run-local`: the real pipeline on this machine with kfp.local.

With no source it makes the demo dataset (and, for `study.weights: demo`, the offline demo
backbone) under OUT/inputs, then runs every task through kfp.local: SubprocessRunner (this Python
environment) or DockerRunner (the project's images, the training image's CPU build, no network).
OUT is also the pipeline root, which DockerRunner bind-mounts at the same path, so containers see
the inputs. The report is copied to OUT/report.
"""

import os
import shutil
import time
from pathlib import Path

from components.core.errors import CxrError
from components.core.progress import log
from pipelines.config import CONFIG_DIR, load_config
from pipelines.pipeline import make_pipeline, pipeline_arguments

LOCAL_CONFIG = CONFIG_DIR / "local.yaml"
DEMO_IMAGES = 240


def run_local(out: Path, *, source: str | None = None, config_path: Path | None = None,
              overrides: list[str] = (), runner: str = "subprocess", demo_images: int = DEMO_IMAGES) -> Path:
    """Runs the whole pipeline locally and returns the folder holding report.html and comparison.json."""
    import kfp.local

    config = load_config(config_path or LOCAL_CONFIG, overrides)
    out = Path(out).resolve()
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    study = config.study
    if source:
        study.source = str(Path(source).resolve()) if Path(source).exists() else source
    if runner == "docker":
        _check_visible_in_containers(out, {"--source": study.source, "study.weights": study.weights})
    if not study.source:
        from components.core.demo import make_demo_dataset
        log(f"run-local: no --source, writing the demo dataset ({demo_images} images) to {inputs}/demo-data")
        make_demo_dataset(inputs / "demo-data", total=demo_images, seed=0)
        study.source = str(inputs / "demo-data")
    if study.weights == "demo":
        from components.core.demo import make_demo_weights
        study.weights = str(make_demo_weights(inputs / f"demo-backbone-{study.image_size}px.weights.h5",
                                              image_size=study.image_size))

    if runner == "subprocess":
        task_runner = kfp.local.SubprocessRunner(use_venv=False)
    elif runner == "docker":
        # Containers run as the caller's uid so they can write into the bind-mounted OUT; no network.
        task_runner = kfp.local.DockerRunner(network_mode="none", user=f"{os.getuid()}:{os.getgid()}")
        config.images.train_build = "cpu"  # the training image's CPU build (no CUDA here)
    else:
        raise CxrError(f"--runner {runner!r}: choose subprocess or docker")
    kfp.local.init(runner=task_runner, pipeline_root=str(out))
    log(f"run-local: pipeline with {runner} runner; variants {', '.join(study.variants)}, "
        f"{study.epochs} epochs at {study.image_size}px")
    started = time.perf_counter()
    result = make_pipeline(config)(**pipeline_arguments(config))
    comparison_dir = Path(result.output.path)
    report_dir = out / "report"
    if report_dir.exists():
        shutil.rmtree(report_dir)
    shutil.copytree(comparison_dir, report_dir)
    log(f"run-local: finished in {time.perf_counter() - started:.0f} s; report: {report_dir / 'report.html'}")
    return report_dir


def _check_visible_in_containers(out: Path, paths: dict[str, str]) -> None:
    """DockerRunner mounts only OUT: a local path elsewhere would be missing inside the containers."""
    for name, value in paths.items():
        path = Path(value)
        if value and path.exists() and not path.resolve().is_relative_to(out):
            raise CxrError(f"{name} {value} is outside {out}, the only folder DockerRunner mounts; copy it "
                           f"under {out / 'inputs'} or use --runner subprocess")
