"""Shared ML core: class names, errors, progress, dataset artifact, storage, images, model, metrics."""
