"""Near duplicates: the pHash threshold keeps re-encoded and resized copies together, distinct ones apart."""

import io

import numpy as np
import pytest
from PIL import Image

from components.core.duplicates import (
    NEAR_DUPLICATE_DISTANCE,
    hamming,
    near_duplicate_groups,
    perceptual_hash,
)
from components.demo.phantom import demo_arrays


@pytest.fixture(scope="module")
def phantoms():
    images, _ = demo_arrays(600, 299, seed=21)
    return images


def copies(pixels: np.ndarray) -> dict[str, np.ndarray]:
    image = Image.fromarray(pixels)
    out = {}
    for quality in (90, 75):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        out[f"jpeg {quality}"] = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))
    out["resized to 224"] = np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR))
    out["resized to 512"] = np.asarray(image.resize((512, 512), Image.Resampling.BICUBIC))
    return out


def test_copies_are_within_the_threshold(phantoms):
    for pixels in phantoms[:40]:
        original = perceptual_hash(pixels)
        for name, copy in copies(pixels).items():
            assert hamming(original, perceptual_hash(copy)) <= NEAR_DUPLICATE_DISTANCE, name


def test_distinct_images_are_beyond_it_with_room(phantoms):
    hashes = [perceptual_hash(p) for p in phantoms]
    closest = min(hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :])
    assert closest > 2 * NEAR_DUPLICATE_DISTANCE, closest
    assert (near_duplicate_groups(hashes, np.full(len(hashes), -1)) == -1).all()


def test_a_cropped_copy_is_not_caught(phantoms):
    """The stated limit: pHash is not scale-invariant; two pixels off each border make another image."""
    for pixels in phantoms[:40]:
        side = pixels.shape[0]
        cropped = np.asarray(Image.fromarray(pixels).crop((2, 2, side - 2, side - 2)))
        assert hamming(perceptual_hash(pixels), perceptual_hash(cropped)) > NEAR_DUPLICATE_DISTANCE


def test_groups_are_transitive_and_include_exact_duplicates(phantoms):
    a, b, c = phantoms[1], phantoms[2], phantoms[3]
    hashes = [
        perceptual_hash(x)
        for x in (a, copies(a)["jpeg 75"], copies(copies(a)["jpeg 75"])["resized to 224"], b, c, c)
    ]
    exact = np.array([-1, -1, -1, -1, 0, 0])
    groups = near_duplicate_groups(hashes, exact)
    assert groups[0] == groups[1] == groups[2] != -1
    assert groups[3] == -1 and groups[4] == groups[5] != -1 and groups[4] != groups[0]
