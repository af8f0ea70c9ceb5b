"""The study's protocol (DESIGN.md §1): its default settings and named split presets.

This is the one home of these numbers: the steps' keyword defaults, the `cxr` options and the
pipeline configuration (pipelines/config.py) all read them from here.
"""

EPOCHS = 20
T4_MINUTES_PER_VARIANT = 21  # the study's stated training time per model on 2 × NVIDIA T4
BATCH_SIZE = 16  # global: split across devices under MirroredStrategy
LEARNING_RATE = 1e-3  # Adam
IMAGE_SIZE = 224  # model input side in pixels
SEED = 42  # weight initialisation, dropout and the per-epoch order of the training images
SPLIT_SEED = 42
# The head after the backbone's pooling: two hidden fully connected layers (sizes) with dropout after
# each, then the 4-class softmax. The study names three FC layers but not their sizes or any dropout.
HEAD_UNITS = (256, 128)
HEAD_DROPOUT = 0.3

# Named split protocols: (val_fraction, test_fraction), per class.
SPLIT_PRESETS: dict[str, tuple[float, float]] = {
    "holdout-70-30": (0.3, 0.0),  # the study's stated method: 70 % train, 30 % validation
    "study-80-10-10": (0.1, 0.1),  # what its confusion matrices come from: 10 % of each class tested
}
DEFAULT_SPLIT_PRESET = "holdout-70-30"
VAL_FRACTION, TEST_FRACTION = SPLIT_PRESETS[DEFAULT_SPLIT_PRESET]

# The feature cache (components/core/features.py) in float32 trains exactly like the study's pixel
# path; float16 halves its memory and disk and rounds every feature.
FEATURE_DTYPES = ("float32", "float16")
DEFAULT_FEATURE_DTYPE = FEATURE_DTYPES[0]

# Where this project departs from the study's notebook, recorded in every train.json and listed by
# every report.
DEPARTURES = {
    "head": "the head's hidden sizes and dropout are not given by the study; here they are settings "
    "(head_units, dropout)",
    "resize": "stored pixels are resized with area averaging; the study's loader resized bilinearly",
    "batchnorm": "BatchNorm layers that train keep their moving statistics (inference mode, as the Keras "
    "transfer-learning guide recommends); the study does not say",
}
