"""The work of the study, in plain Python: no Kubeflow here.

    ingest.py split.py train.py evaluate.py report.py   one step each: paths and values in, files out,
                                                        called by the `cxr` command line, the tests and
                                                        the KFP ops (pipelines/ops.py)
    artifacts/   what passes between steps: one module per artifact (files, writer, reader, schema)
    core/        the shared ML core (classes, images, sources, storage, model, input pipeline,
                 training, metrics, plots, report rendering)
    demo/        offline stand-ins for the Kaggle dataset and ImageNet weights

Steps import artifacts and core, never each other.
"""
