"""The study's model: MobileNetV2 (ImageNet weights) with a three-layer fully connected head.

The three variants differ only in which layers train; everything else is frozen. Layers are chosen
by name. The backbone always runs with BatchNorm in inference mode (`base(x, training=False)`), as
the Keras transfer-learning guide recommends, so a trainable BN layer learns its scale and offset
but keeps its moving statistics.

Model input: float32 (size, size, 1) grayscale pixels in 0..255. Inside the model the channel is
replicated to RGB and scaled to [-1, 1], which is exactly `mobilenet_v2.preprocess_input`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras

from components.core import study
from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.variants import Variant

IMAGENET_NO_TOP_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def build_model(
    variant: Variant,
    *,
    image_size: int = 224,
    weights: str | None = "imagenet",
    head_units: tuple[int, ...] = study.HEAD_UNITS,
    dropout: float = study.HEAD_DROPOUT,
) -> keras.Model:
    """MobileNetV2 + head with exactly the variant's layers trainable.

    Args:
        variant: which layers train (see VARIANTS).
        image_size: square input size in pixels.
        weights: "imagenet" (Keras download or its cache), None (random), or a local weights file.
        head_units: sizes of the two hidden fully connected layers; the third is the softmax output.
        dropout: dropout rate after each hidden fully connected layer.
    """
    backbone = Backbone(image_size, variant.trainable_backbone_layers, weights=weights)
    pixels = keras.Input((image_size, image_size, 1), name="pixels")
    x = backbone(mobilenet_input(pixels))
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    for i, units in enumerate(head_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="head_output")(x)
    return keras.Model(pixels, outputs, name=f"mobilenetv2_{variant.id}")


def mobilenet_input(pixels):
    """Grayscale pixels in 0..255 → MobileNetV2's 3-channel [-1, 1] input (= `preprocess_input`)."""
    rgb = keras.layers.Concatenate(name="gray_to_rgb")([pixels, pixels, pixels])
    return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(rgb)


@keras.saving.register_keras_serializable(package="cxr")
class Backbone(keras.layers.Layer):
    """MobileNetV2 without its top, always called in inference mode.

    A Keras 3 functional model passes its own `training` flag down to nested models, overriding a
    `base(x, training=False)` written at construction, so a trainable BatchNorm layer would
    normalise with batch statistics during fit. This layer pins `training=False` at call time.
    """

    def __init__(self, image_size: int, trainable_layers=(), weights: str | None = None, **kwargs):
        super().__init__(name=kwargs.pop("name", "backbone"), **kwargs)
        self.image_size = image_size
        self.trainable_layers = tuple(trainable_layers)
        self.base = _mobilenet_v2(image_size, weights)
        missing = set(self.trainable_layers) - {layer.name for layer in self.base.layers}
        if missing:
            raise CxrError(f"MobileNetV2 has no layer named {sorted(missing)}; the variant table is wrong")
        for layer in self.base.layers:
            layer.trainable = layer.name in self.trainable_layers

    def call(self, inputs):
        """The backbone's features of `inputs`, BatchNorm in inference mode whatever the caller's mode."""
        return self.base(inputs, training=False)

    def compute_output_shape(self, input_shape):
        """The shape of the backbone's output for `input_shape`."""
        return self.base.compute_output_shape(input_shape)

    def get_config(self):
        """What rebuilds the architecture on load (load_model then restores the weights)."""
        return super().get_config() | {
            "image_size": self.image_size,
            "trainable_layers": list(self.trainable_layers),
        }


def load_model(path: Path) -> keras.Model:
    """Loads a model saved by `cxr train` (the Backbone layer is registered by importing this module)."""
    return keras.models.load_model(path)


def trainable_layer_names(model: keras.Model) -> list[str]:
    """Names of the layers (backbone ones included) that own trainable weights."""
    names = []
    for layer in model.layers:
        inner = layer.base.layers if isinstance(layer, Backbone) else [layer]
        names += [sub.name for sub in inner if sub.trainable_weights]
    return names


def count_params(weights) -> int:
    """Total number of scalars in a list of weights."""
    return int(sum(int(w.numpy().size) for w in weights))


def _mobilenet_v2(image_size: int, weights: str | None) -> keras.Model:
    try:
        return keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3), include_top=False, weights=weights
        )
    except Exception as exc:  # Keras raises plain Exception/URLError/ValueError types here
        if weights == "imagenet":
            raise CxrError(
                f"ImageNet weights could not be downloaded ({type(exc).__name__}); pass --weights "
                f"PATH to a local {IMAGENET_NO_TOP_FILE}, --weights gs://BUCKET/OBJECT, a file made by "
                "`cxr demo-weights`, or --weights none"
            ) from exc
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CxrError(
            f"cannot load backbone weights from {weights} ({first_line}); expected a "
            "MobileNetV2 no-top weights file (.h5 / .weights.h5), e.g. one made by "
            "`cxr demo-weights`"
        ) from exc


def resolve_weights(spec: str, *, image_size: int = 224, sha256: str | None = None) -> str | None:
    """Turns a --weights value into what Keras takes: "imagenet", None or a local file path.

    `spec` is "imagenet", "none", "demo" (the offline demo backbone for `image_size`, built once by
    `cxr demo-weights` logic and cached), a local file or a gs:// URI (downloaded once into the cache).
    A local file is checked against `sha256` when given, else against a `<file>.sha256` sidecar
    when one exists.
    """
    if spec == "imagenet":
        return "imagenet"
    if spec == "demo":
        from components.demo.backbone import demo_backbone_file

        return str(demo_backbone_file(image_size))
    if spec.lower() == "none":
        return None
    if spec.startswith("gs://"):
        from components.core.storage import cache_dir, download_file

        local = cache_dir() / "weights" / hashlib.sha256(spec.encode()).hexdigest()[:16] / Path(spec).name
        if not local.exists():
            download_file(spec, local, expected_sha256=sha256)
        path = local
    else:
        path = Path(spec)
        if not path.is_file():
            raise CxrError(
                f"--weights {spec}: no such file; use imagenet, none, a local weights file or a gs:// URI"
            )
    sidecar = path.with_name(path.name + ".sha256")
    expected = sha256 or (sidecar.read_text().split()[0] if sidecar.is_file() else None)
    if expected and not spec.startswith("gs://"):  # a gs:// download checked it already
        from components.core.storage import file_digest

        actual = file_digest(path, "sha256").hex()
        if actual != expected.lower():
            raise CxrError(
                f"--weights {spec}: sha256 {actual[:12]}… does not match the expected "
                f"{expected[:12]}…; download the file again"
            )
    return str(path)


def weights_file_sha256(resolved: str | None) -> str | None:
    """sha256 of a resolved weights file (resolve_weights' result); None for imagenet (Keras' own) or none."""
    if resolved in (None, "imagenet"):
        return None
    from components.core.storage import file_digest

    return file_digest(Path(resolved), "sha256").hex()
