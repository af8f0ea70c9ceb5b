"""The study as one Kubeflow pipeline.

    ingest ─► split ─► [featurize] ─► ParallelFor(variants, parallelism=3) { train ─► evaluate } ─► report

With `study.weights: demo` a demo-backbone step pretrains the offline stand-in for ImageNet once and
hands it to every train task. With a shared feature pass (placement.feature_pass; by default when
train has no GPUs) a featurize step runs MobileNetV2's frozen prefix once for all variants and every
train and evaluate task reads its features; otherwise each train task runs the prefix on its GPUs.
Train tasks checkpoint every epoch under kfp.checkpoint_root/<run id>/<variant> (config.py), so a
retry after a preemption resumes from the last whole epoch instead of starting over.

The pipeline is built from a Config: parameter defaults come from `config.study`, each component's
image from `config.images`, placement from `config.placement`. The train task alone asks for GPUs.
"""

import dataclasses

from kfp import dsl

from pipelines.config import Config
from pipelines.ops import build_components
from pipelines.placement import place_cpu_task, place_featurize_task, place_train_task

VARIANT_PARALLELISM = 3


def make_pipeline(config: Config):
    """The @dsl.pipeline for `config` (images, placement and parameter defaults baked in)."""
    study, placement = config.study, config.placement
    ops = build_components(config.images.cpu, config.images.train)
    demo_backbone = study.weights == "demo"

    @dsl.pipeline(
        pipeline_root=config.kfp.pipeline_root or None,
        pipeline_config=dsl.PipelineConfig(active_deadline_seconds=config.kfp.run_deadline_seconds),
        name=config.kfp.pipeline_name,
        description="MobileNetV2 fine-tuned three ways on chest X-rays, compared on one hold-out.",
    )
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
        head_units: list = study.head_units,
        dropout: float = study.dropout,
        cross_class_duplicates: str = study.cross_class_duplicates,
    ) -> dsl.Artifact:
        ingest = ops.ingest(source=source, dataset_fingerprint=dataset_fingerprint, stored_size=stored_size)
        place_cpu_task(ingest.set_display_name("ingest"), placement)
        split = ops.split(
            dataset=ingest.outputs["dataset"],
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            seed=split_seed,
            cross_class_duplicates=cross_class_duplicates,
        )
        place_cpu_task(split.set_display_name("split"), placement)
        backbone = {}
        if demo_backbone:
            pretrain = ops.demo_backbone(image_size=image_size)
            place_cpu_task(pretrain.set_display_name("demo-backbone"), placement)
            backbone = {"backbone": pretrain.outputs["backbone"]}
        features = {}
        if placement.shared_feature_pass:
            featurize = ops.featurize(
                dataset=ingest.outputs["dataset"], image_size=image_size, weights=weights, **backbone
            )
            place_featurize_task(featurize.set_display_name("featurize"), placement)
            features = {"features": featurize.outputs["features"]}
        with dsl.ParallelFor(items=variants, parallelism=VARIANT_PARALLELISM, name="variants") as variant:
            train = ops.train(
                dataset=ingest.outputs["dataset"],
                split_ids=split.outputs["split_ids"],
                variant=variant,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                image_size=image_size,
                weights=weights,
                seed=seed,
                head_units=head_units,
                dropout=dropout,
                checkpoint_root=config.kfp.train_checkpoints,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                **backbone,
                **features,
            )
            place_train_task(train.set_display_name("train"), placement)
            evaluate = ops.evaluate(
                dataset=ingest.outputs["dataset"],
                split_ids=split.outputs["split_ids"],
                model=train.outputs["model"],
                **features,
            )
            place_cpu_task(evaluate.set_display_name("evaluate"), placement)
        report = ops.report(evaluations=dsl.Collected(evaluate.outputs["evaluation"]))
        place_cpu_task(report.set_display_name("report"), placement)
        return report.outputs["comparison"]

    return cxr_pipeline


def pipeline_arguments(config: Config) -> dict:
    """The run's parameter values from the configuration (what `submit` and `run-local` pass)."""
    return dataclasses.asdict(config.study)
