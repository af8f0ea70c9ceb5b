"""`cxr run-local`: the real pipeline on this machine with kfp.local.

With no source it makes the demo dataset under OUT/inputs; with `study.weights: demo` the pipeline's
own demo-backbone step builds the offline backbone once (cached between runs). Every task runs
through kfp.local: SubprocessRunner (this Python environment) or DockerRunner (the project's images,
the training image's CPU build, no network). OUT is also the pipeline root, which DockerRunner
bind-mounts at the same path, so containers see the inputs. The report is copied to OUT/report.

The console shows each task's start, our progress lines and its result (pipelines/console.py);
everything, kfp's and TensorFlow's output included, goes to OUT/run-local.log, and `verbose` (or
CXR_VERBOSE=1) shows it all on the console too.
"""

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from components.core.errors import CxrError
from components.core.progress import LOG_TAG_ENV, log
from pipelines.config import CONFIG_DIR, load_config
from pipelines.console import task_console
from pipelines.pipeline import make_pipeline, pipeline_arguments

LOCAL_CONFIG = CONFIG_DIR / "local.yaml"
DEMO_IMAGES = 240
LOG_FILE = "run-local.log"
TMP_FOLDER = ".tmp"  # temporary files of the run, removed when it ends
VERBOSE_ENV = "CXR_VERBOSE"
# SubprocessRunner runs no image; the tag only names what the compiled spec would use.
SUBPROCESS_IMAGE_TAG = "local"


def run_local(
    out: Path,
    *,
    source: str | None = None,
    config_path: Path | None = None,
    overrides: list[str] = (),
    runner: str = "subprocess",
    demo_images: int = DEMO_IMAGES,
    verbose: bool | None = None,
) -> Path:
    """Runs the whole pipeline locally and returns the folder holding report.html and comparison.json."""
    import kfp.local

    config = load_config(config_path or LOCAL_CONFIG, overrides)
    verbose = os.environ.get(VERBOSE_ENV, "") not in ("", "0") if verbose is None else verbose
    out = Path(out).resolve()
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    study = config.study
    if source:
        study.source = str(Path(source).resolve()) if Path(source).exists() else source
    if runner == "docker":
        _check_visible_in_containers(out, {"--source": study.source, "study.weights": study.weights})
        config.images.train_build = "cpu"  # the training image's CPU build (no CUDA here)
        # Containers see only OUT: the demo backbone cache goes there, seeded from this machine's.
        container_cache = _seed_container_cache(out / "cache")
        task_runner = kfp.local.DockerRunner(
            network_mode="none",
            user=f"{os.getuid()}:{os.getgid()}",
            environment={"CXR_CACHE_DIR": str(container_cache), LOG_TAG_ENV: "1"},
        )
    elif runner == "subprocess":
        config.images.tag = config.images.tag or SUBPROCESS_IMAGE_TAG
        task_runner = kfp.local.SubprocessRunner(use_venv=False)
    else:
        raise CxrError(f"--runner {runner!r}: choose subprocess or docker")
    _check_local_source(study.source)
    if not study.source:
        from components.demo.kaggle_layout import make_demo_dataset

        log(f"run-local: no --source, writing the demo dataset ({demo_images} images) to {inputs}/demo-data")
        make_demo_dataset(inputs / "demo-data", total=demo_images, seed=0)
        study.source = str(inputs / "demo-data")

    kfp.local.init(runner=task_runner, pipeline_root=str(out))
    pipeline = make_pipeline(config)
    started = time.perf_counter()
    with _temporary_files_under(out / TMP_FOLDER), task_console(out / LOG_FILE, verbose=verbose) as console:
        console.echo(
            f"run-local: {runner} runner; variants {', '.join(study.variants)}, {study.epochs} "
            f"epochs at {study.image_size}px; full log: {out / LOG_FILE}"
        )
        try:
            result = pipeline(**pipeline_arguments(config))
        except RuntimeError as exc:
            raise CxrError(f"run-local: {console.failure()} (full log: {out / LOG_FILE})") from exc
    report_dir = out / "report"
    if report_dir.exists():
        shutil.rmtree(report_dir)
    shutil.copytree(Path(result.output.path), report_dir)
    from components.artifacts.comparison import HTML_FILE, read_comparison
    from components.report import console_summary

    log(f"run-local: finished in {time.perf_counter() - started:.0f} s; report: {report_dir / HTML_FILE}")
    for line in console_summary(read_comparison(report_dir)):
        log(line)
    return report_dir


@contextlib.contextmanager
def _temporary_files_under(folder: Path):
    """Points this process's and its tasks' temporary files (kfp's included) into `folder`, removed after."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # re-read TMPDIR
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
        tempfile.tempdir = None
        shutil.rmtree(folder, ignore_errors=True)


def _check_local_source(source: str) -> None:
    """A local --source must exist before any task starts (gs:// and demo:N are checked by ingest)."""
    from components.core.sources import local_path

    path = local_path(source) if source else None
    if path is not None and not path.exists():
        raise CxrError(
            f"--source {source}: no such folder or .zip; give the dataset folder, a .zip or gs://..."
        )


def _seed_container_cache(cache: Path) -> Path:
    """OUT/cache for the containers, holding this machine's built demo backbones (so none is rebuilt)."""
    from components.core.storage import cache_dir

    built = cache_dir() / "demo-weights"
    if built.is_dir():
        shutil.copytree(built, cache / "demo-weights", dirs_exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _check_visible_in_containers(out: Path, paths: dict[str, str]) -> None:
    """DockerRunner mounts only OUT: a local path elsewhere would be missing inside the containers."""
    for name, value in paths.items():
        path = Path(value)
        if value and path.exists() and not path.resolve().is_relative_to(out):
            raise CxrError(
                f"{name} {value} is outside {out}, the only folder DockerRunner mounts; copy it "
                f"under {out / 'inputs'} or use --runner subprocess"
            )
