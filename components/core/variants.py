"""The study's three fine-tuning variants: which MobileNetV2 layers each one trains (by name)."""

from dataclasses import dataclass

from components.core.errors import CxrError


@dataclass(frozen=True)
class Variant:
    """One fine-tuning variant: its id, a title for reports and the backbone layers it trains."""

    id: str
    title: str
    trainable_backbone_layers: tuple[str, ...]


VARIANTS: dict[str, Variant] = {
    v.id: v
    for v in (
        Variant("model1", "FC head", ()),
        Variant("model2", "FC head + last conv", ("Conv_1", "Conv_1_bn")),
        Variant(
            "model3",
            "FC head + last 2 conv",
            ("block_16_project", "block_16_project_BN", "Conv_1", "Conv_1_bn"),
        ),
    )
}


def get_variant(variant_id: str) -> Variant:
    """The variant called `variant_id`; a clear error naming the valid ids otherwise."""
    if variant_id not in VARIANTS:
        raise CxrError(f"unknown variant {variant_id!r}: choose one of {', '.join(VARIANTS)}")
    return VARIANTS[variant_id]
