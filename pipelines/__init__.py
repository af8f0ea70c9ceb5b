"""Kubeflow: the ops, the pipeline, its configuration and the compile / submit / run-local commands.

Nothing here imports TensorFlow, pandas or scikit-learn at module level: compiling and submitting
need only kfp; the ops import their steps (components/) when a task runs.
"""
