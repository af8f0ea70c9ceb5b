"""One plain forward pass of a full model over every image of a dataset: the floor `make bench` compares to.

    python bench/forward_pass.py DATASET_DIR MODEL_DIR

The product's own prediction path on pixels (core/data.py predict_probabilities); prints one JSON
object with the images and seconds.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    """Predicts every image of the dataset with the model folder's model.keras and prints the timing."""
    from components.artifacts.dataset import open_dataset
    from components.artifacts.model import read_model_folder
    from components.core.data import predict_probabilities
    from components.core.model import load_model

    dataset = open_dataset(Path(argv[0]))
    model = load_model(read_model_folder(Path(argv[1])).model_file)
    rows = np.arange(len(dataset.index))
    started = time.perf_counter()
    predict_probabilities(model, dataset, rows)
    print(json.dumps({"images": len(rows), "seconds": round(time.perf_counter() - started, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
