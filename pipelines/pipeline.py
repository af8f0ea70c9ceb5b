"""The study as one Kubeflow pipeline.

    ingest ─► split ─► ParallelFor(variants, parallelism=3) { train ─► evaluate } ─► report

The pipeline is built from a Config: parameter defaults come from `config.study`, every task's
image and placement from `config.images` and `config.placement`. The train task alone asks for GPUs.
"""

import dataclasses

from kfp import dsl

from components.evaluate import evaluate_op
from components.ingest import ingest_op
from components.report import report_op
from components.split import split_op
from components.train import train_op
from pipelines.config import Config
from pipelines.placement import place_cpu_task, place_train_task

VARIANT_PARALLELISM = 3


def make_pipeline(config: Config):
    """The @dsl.pipeline for `config` (images, placement and parameter defaults baked in)."""
    study, images, placement = config.study, config.images, config.placement
    cpu_image, train_image = images.cpu, images.train

    @dsl.pipeline(name=config.kfp.pipeline_name,
                  description="MobileNetV2 fine-tuned three ways on chest X-rays, compared on one hold-out.")
    def cxr_pipeline(
        source: str = study.source,
        dataset_fingerprint: str = study.dataset_fingerprint,
        stored_size: int = study.stored_size,
        val_fraction: float = study.val_fraction,
        test_fraction: float = study.test_fraction,
        split_seed: int = study.split_seed,
        image_size: int = study.image_size,
        epochs: int = study.epochs,
        batch_size: int = study.batch_size,
        learning_rate: float = study.learning_rate,
        weights: str = study.weights,
        seed: int = study.seed,
        variants: list = study.variants,
    ) -> dsl.Artifact:
        ingest = ingest_op(source=source, dataset_fingerprint=dataset_fingerprint, stored_size=stored_size)
        place_cpu_task(ingest.set_display_name("ingest"), cpu_image, placement)
        split = split_op(dataset=ingest.outputs["dataset"], val_fraction=val_fraction,
                         test_fraction=test_fraction, seed=split_seed)
        place_cpu_task(split.set_display_name("split"), cpu_image, placement)
        with dsl.ParallelFor(items=variants, parallelism=VARIANT_PARALLELISM, name="variants") as variant:
            train = train_op(dataset=ingest.outputs["dataset"], split_ids=split.outputs["split_ids"],
                             variant=variant, epochs=epochs, batch_size=batch_size,
                             learning_rate=learning_rate, image_size=image_size, weights=weights, seed=seed)
            place_train_task(train.set_display_name("train"), train_image, placement)
            evaluate = evaluate_op(dataset=ingest.outputs["dataset"], split_ids=split.outputs["split_ids"],
                                   model=train.outputs["model"])
            place_cpu_task(evaluate.set_display_name("evaluate"), cpu_image, placement)
        report = report_op(evaluations=dsl.Collected(evaluate.outputs["evaluation"]))
        place_cpu_task(report.set_display_name("report"), cpu_image, placement)
        return report.outputs["comparison"]

    return cxr_pipeline


def pipeline_arguments(config: Config) -> dict:
    """The run's parameter values from the configuration (what `submit` and `run-local` pass)."""
    return dataclasses.asdict(config.study)
