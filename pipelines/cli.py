"""`cxr`: the study's steps, the demo data and the pipeline, from the command line.

Each command calls one plain function (components/ for steps, pipelines/ for the pipeline) and
prints a one-line reason, exiting 2, on bad input. This module imports only the standard library
and light project modules; each command imports what it needs (TensorFlow, pandas, kfp) when it
runs, so `cxr --help` is fast and `cxr compile` / `cxr submit` need only kfp.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from components.core import study
from components.core.errors import CxrError
from components.core.variants import VARIANTS


def _demo_data(a):
    from components.demo.kaggle_layout import make_demo_dataset

    return make_demo_dataset(a.out, total=a.total, size=a.size, seed=a.seed)


def _demo_weights(a):
    from components.demo.backbone import make_demo_weights

    return {"weights": str(make_demo_weights(a.out_file, image_size=a.image_size, seed=a.seed))}


def _ingest(a):
    from components.ingest import ingest

    return ingest(
        a.source,
        a.out,
        stored_size=a.stored_size or None,
        max_pixels=a.max_pixels,
        workers=a.workers,
        follow_links=a.follow_links,
    )


def _split(a):
    from components.split import split

    val, test = study.SPLIT_PRESETS[a.preset or study.DEFAULT_SPLIT_PRESET]
    val = a.val_fraction if a.val_fraction is not None else val
    test = a.test_fraction if a.test_fraction is not None else test
    return split(
        a.dataset,
        a.out,
        val_fraction=val,
        test_fraction=test,
        seed=a.seed,
        cross_class_duplicates=a.cross_class_duplicates,
    )


def _train(a):
    from components.train import train

    return train(
        a.dataset,
        a.split,
        a.out,
        variant=a.variant,
        epochs=a.epochs,
        batch_size=a.batch_size,
        learning_rate=a.learning_rate,
        image_size=a.image_size,
        weights=a.weights,
        weights_sha256=a.weights_sha256,
        seed=a.seed,
        features_dir=a.features,
        feature_cache=a.feature_cache,
        feature_dtype=a.feature_dtype,
        head_units=a.head_units,
        dropout=a.dropout,
        checkpoints=a.checkpoints,
        deterministic=a.deterministic,
    )


def _fingerprint(a):
    from components.core.sources import listing_fingerprint

    return listing_fingerprint(a.source)


def _featurize(a):
    from components.featurize import featurize

    return featurize(
        a.dataset,
        a.out,
        image_size=a.image_size,
        weights=a.weights,
        weights_sha256=a.weights_sha256,
        dtype=a.dtype,
        batch_size=a.batch_size,
    )


def _evaluate(a):
    from components.evaluate import evaluate

    return evaluate(a.dataset, a.split, a.model, a.out, batch_size=a.batch_size, features_dir=a.features)


def _report(a):
    from components.report import report

    comparison = report(a.evaluation, a.out)
    return {"best_variant": comparison["best_variant"], "report": str(Path(a.out) / "report.html")}


def _run_local(a):
    from pipelines.local_run import run_local

    run_local(
        a.out,
        source=a.source,
        config_path=a.config,
        overrides=a.set,
        runner=a.runner,
        verbose=a.verbose or None,
    )
    return None


def _compile(a):
    from pipelines.compile import compile_pipeline
    from pipelines.config import load_config

    return {"pipeline": str(compile_pipeline(load_config(a.config, a.set), a.output))}


def _submit(a):
    from pipelines.config import load_config
    from pipelines.submit import submit

    overrides = (
        list(a.set)
        + ([f"kfp.host={a.host}"] if a.host else [])
        + ([f"kfp.experiment={a.experiment}"] if a.experiment else [])
    )
    return submit(load_config(a.config, overrides), wait=a.wait, timeout_s=a.timeout)


def _units(text: str) -> tuple[int, ...]:
    """A comma-separated list of layer sizes, e.g. "256,128", as a tuple."""
    try:
        units = tuple(int(part) for part in text.split(","))
    except ValueError:
        units = ()
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive layer sizes, e.g. 256,128")
    return units


def build_parser() -> argparse.ArgumentParser:
    """The `cxr` argument parser (one sub-command per step or pipeline action)."""
    parser = argparse.ArgumentParser(
        prog="cxr",
        description="MobileNetV2 transfer learning on chest X-rays, step by step or as a Kubeflow pipeline.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = command("demo-data", _demo_data, "Write a synthetic dataset in the Kaggle layout (demo and tests).")
    p.add_argument("out", type=Path, metavar="OUT", help="dataset folder to write (replaced)")
    p.add_argument("--total", type=int, default=240, help="number of images (default 240)")
    p.add_argument("--size", type=int, default=299, help="image side in pixels (default 299)")
    p.add_argument("--seed", type=int, default=0)

    p = command(
        "demo-weights",
        _demo_weights,
        "Pretrain a MobileNetV2 backbone offline on synthetic images (stand-in for ImageNet).",
    )
    p.add_argument("out_file", type=Path, metavar="OUT_FILE", help="weights file, must end .weights.h5")
    p.add_argument("--image-size", type=int, default=64, help="pretraining image side (default 64)")
    p.add_argument("--seed", type=int, default=0)

    p = command("ingest", _ingest, "Decode and validate every image once into a dataset folder.")
    p.add_argument(
        "--source",
        required=True,
        help="dataset folder, .zip of it, gs://bucket/prefix, or demo:N (N synthetic images)",
    )
    p.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    p.add_argument(
        "--stored-size",
        type=int,
        default=None,
        help="side of the stored pixels (default or 0: the most common image size)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=50_000_000,
        help="skip images with more pixels than this, checked before decoding (default 50M)",
    )
    p.add_argument("--workers", type=int, default=8, help="threads for downloads and decoding (default 8)")
    p.add_argument(
        "--follow-links",
        action="store_true",
        help="follow links to files and folders outside --source (default: skip and list them)",
    )

    p = command("split", _split, "Stratified, seeded hold-out; identical images stay on one side.")
    p.add_argument("--dataset", required=True, type=Path, help="ingested dataset folder")
    p.add_argument("--out", required=True, type=Path, help="split folder to write")
    p.add_argument(
        "--preset",
        choices=sorted(study.SPLIT_PRESETS),
        help=f"{study.DEFAULT_SPLIT_PRESET} (default: the study's method) or study-80-10-10 (its "
        "confusion matrices' protocol)",
    )
    p.add_argument(
        "--val-fraction", type=float, default=None, help=f"validation share (default {study.VAL_FRACTION})"
    )
    p.add_argument(
        "--test-fraction", type=float, default=None, help=f"test share (default {study.TEST_FRACTION})"
    )
    p.add_argument("--seed", type=int, default=study.SPLIT_SEED)
    p.add_argument(
        "--cross-class-duplicates",
        choices=("exclude", "keep"),
        default="exclude",
        help="identical images under two labels: left out of every side (default) or kept",
    )

    def backbone_options(p):
        p.add_argument("--image-size", type=int, default=study.IMAGE_SIZE, help=f"default {study.IMAGE_SIZE}")
        p.add_argument("--weights", default="imagenet", help="imagenet | none | demo | PATH | gs://URI")
        p.add_argument("--weights-sha256", default=None, help="expected sha256 of the weights file")

    p = command(
        "fingerprint",
        _fingerprint,
        "Print a cache key for a source's images (gs:// only listed): study.dataset_fingerprint.",
    )
    p.add_argument("source", metavar="SOURCE", help="dataset folder, .zip or gs://bucket/prefix")

    dtypes = study.FEATURE_DTYPES
    p = command(
        "featurize",
        _featurize,
        "Run MobileNetV2's frozen prefix once over every image: the feature cache train and evaluate read.",
    )
    p.add_argument("--dataset", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="features folder to write")
    backbone_options(p)
    p.add_argument(
        "--dtype",
        choices=dtypes,
        default=dtypes[0],
        help="float32 (default: training on it matches training on pixels bit for bit) or float16 "
        "(half the memory and disk, features rounded)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per forward batch (default 64)")

    p = command("train", _train, "Fine-tune one variant (model1, model2 or model3).")
    p.add_argument("--dataset", required=True, type=Path)
    p.add_argument("--split", required=True, type=Path)
    p.add_argument("--variant", required=True, choices=list(VARIANTS))
    p.add_argument("--out", required=True, type=Path, help="model folder to write")
    p.add_argument("--epochs", type=int, default=study.EPOCHS, help=f"default {study.EPOCHS}")
    p.add_argument(
        "--batch-size",
        type=int,
        default=study.BATCH_SIZE,
        help=f"global batch size (default {study.BATCH_SIZE})",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        default=study.LEARNING_RATE,
        help=f"Adam's learning rate (default {study.LEARNING_RATE})",
    )
    backbone_options(p)
    p.add_argument("--seed", type=int, default=study.SEED, help=f"default {study.SEED}")
    p.add_argument(
        "--head-units",
        type=_units,
        default=study.HEAD_UNITS,
        metavar="N,N",
        help=f"sizes of the head's two hidden layers (default {','.join(map(str, study.HEAD_UNITS))})",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=study.HEAD_DROPOUT,
        help=f"dropout after each hidden layer (default {study.HEAD_DROPOUT})",
    )
    p.add_argument(
        "--features",
        type=Path,
        default=None,
        help="features folder (`cxr featurize`) to train the tail on; default: run the prefix here",
    )
    p.add_argument(
        "--no-feature-cache",
        dest="feature_cache",
        action="store_false",
        help="train the full model on pixels every step (the reference; slow)",
    )
    p.add_argument(
        "--feature-dtype",
        choices=dtypes,
        default=dtypes[0],
        help="dtype of the features this step extracts itself (default float32)",
    )
    p.add_argument(
        "--checkpoints",
        default=None,
        help="folder or gs:// prefix for the per-epoch checkpoints (default OUT/checkpoints); the "
        "same command run again resumes from the newest whole one",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow op determinism: the same seed gives the same weights bit for bit",
    )

    p = command("evaluate", _evaluate, "Predict the held-out images and compute every metric from them.")
    p.add_argument("--dataset", required=True, type=Path)
    p.add_argument("--split", required=True, type=Path)
    p.add_argument("--model", required=True, type=Path, help="folder written by `cxr train`")
    p.add_argument("--out", required=True, type=Path, help="evaluation folder to write")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--features",
        type=Path,
        default=None,
        help="features folder the model was trained from: predict from it (same predictions, faster)",
    )

    p = command("report", _report, "Merge evaluations into comparison.json/csv, report.md and report.html.")
    p.add_argument(
        "--evaluation",
        required=True,
        type=Path,
        action="append",
        help="folder written by `cxr evaluate` (repeat for each variant)",
    )
    p.add_argument("--out", required=True, type=Path)

    def config_options(p, default_config=None):
        p.add_argument(
            "--config",
            type=Path,
            default=default_config,
            help="YAML configuration (pipelines/configs/*.yaml)",
        )
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a setting, e.g. --set study.epochs=3 (repeatable)",
        )

    p = command(
        "run-local",
        _run_local,
        "Run the whole pipeline on this machine with kfp.local (demo data by default).",
    )
    p.add_argument("--source", default=None, help="dataset folder, .zip or gs:// prefix (default: demo data)")
    p.add_argument("--out", type=Path, default=Path("runs/local"), help="run folder (default runs/local)")
    p.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show every line kfp and TensorFlow print (also CXR_VERBOSE=1); they always go to "
        "OUT/run-local.log",
    )
    config_options(p)

    p = command("compile", _compile, "Compile the pipeline YAML with images pinned from configuration.")
    p.add_argument("--output", type=Path, default=Path("pipeline.yaml"))
    config_options(p, default_config=Path(__file__).parent / "configs" / "cluster.yaml")

    p = command("submit", _submit, "Compile and start a run on the Kubeflow Pipelines endpoint (KFP_HOST).")
    p.add_argument("--host", default=None, help="KFP API endpoint (default: $KFP_HOST)")
    p.add_argument("--experiment", default=None)
    p.add_argument("--wait", action="store_true", help="follow the run; exit non-zero unless it succeeds")
    p.add_argument("--timeout", type=float, default=24 * 3600, help="seconds --wait waits at most")
    config_options(p, default_config=Path(__file__).parent / "configs" / "cluster.yaml")

    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cxr` console script."""
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except CxrError as exc:
        print(f"cxr: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cxr: {args.command} interrupted; its output is not whole: run it again", file=sys.stderr)
        return 130
    except OSError as exc:  # a path that is a file where a folder is needed, a full disk, no permission
        print(
            f"cxr: {exc.filename or ''}: {exc.strerror or exc}; check the paths given to "
            f"`cxr {args.command}`",
            file=sys.stderr,
        )
        return 2
    if result is not None:
        print(json.dumps(_brief(result), indent=2, default=str))
    return 0


def _brief(result: dict) -> dict:
    """What a command prints on stdout: its result without the long lists."""
    return {k: v for k, v in result.items() if not (isinstance(v, list) and len(v) > 20)}


if __name__ == "__main__":
    sys.exit(main())
