"""Exact and near duplicates: which images must stay on one side of every split.

Exact duplicates share their decoded pixels (images.pixel_sha256). Near duplicates are re-encoded or
resized copies: their perceptual hashes (imagehash's pHash with a 32 × 32 DCT block, 1,024 bits) lie
within NEAR_DUPLICATE_DISTANCE bits. Measured on demo phantoms (tests/test_duplicates.py): JPEG
re-encodes (quality 75) and resizes of an image stay within 24 bits, 1,500 distinct images are at
least 122 bits apart; the threshold, 48 bits, sits between with room on both sides. pHash is not
scale-invariant: a cropped copy is not caught (two pixels off each border of a 299 px image move
it by 66 to 118 bits; one pixel by 30 to 64).

Groups are the connected components of "exact duplicate of" or "within the threshold of"; a group id
is -1 for an image on its own. Candidate pairs come from the pigeonhole principle: two hashes within
T bits agree exactly on at least one of T + 1 disjoint bit ranges, so only images sharing one range
are compared.
"""

from __future__ import annotations

import numpy as np

HASH_SIZE = 32  # pHash side: HASH_SIZE² bits
NEAR_DUPLICATE_DISTANCE = 48
_BLOCK = 256  # rows of a bucket compared at once (bounds the memory of a large bucket)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def perceptual_hash(pixels: np.ndarray) -> str:
    """The pHash of 8-bit grayscale pixels at their original size, as hex.

    The image is first reduced to pHash's working size (4 × HASH_SIZE) with Pillow's BILINEAR filter,
    which averages every source pixel when shrinking: imagehash's own LANCZOS reduction costs four
    times as much and moves no measured distance across the threshold.
    """
    import imagehash
    from PIL import Image

    side = 4 * HASH_SIZE
    small = Image.fromarray(pixels).resize((side, side), Image.Resampling.BILINEAR)
    return str(imagehash.phash(small, hash_size=HASH_SIZE))


def hamming(a: str, b: str) -> int:
    """Bits in which two hex hashes differ."""
    return int(
        _POPCOUNT[np.frombuffer(bytes.fromhex(a), np.uint8) ^ np.frombuffer(bytes.fromhex(b), np.uint8)].sum()
    )


def group_ids(keys: list) -> np.ndarray:
    """Group ids of equal keys (exact duplicates: equal pixel hashes); -1 for a key seen once.

    Ids are numbered in order of each group's first row, so they are deterministic.
    """
    first: dict = {}
    counts: dict = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    out = np.full(len(keys), -1, dtype=np.int64)
    for row, key in enumerate(keys):
        if counts[key] > 1:
            out[row] = first.setdefault(key, len(first))
    return out


def near_duplicate_groups(
    hashes: list[str], exact: np.ndarray, max_distance: int = NEAR_DUPLICATE_DISTANCE
) -> np.ndarray:
    """Group ids of images within `max_distance` bits of each other or exact duplicates, transitively."""
    n = len(hashes)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    for group in np.unique(exact[exact >= 0]):
        members = np.flatnonzero(exact == group)
        for j in members[1:]:
            join(members[0], j)
    if n > 1:
        bits = np.unpackbits(np.frombuffer(bytes.fromhex("".join(hashes)), np.uint8).reshape(n, -1), axis=1)
        packed = np.packbits(bits, axis=1)
        for chunk in np.array_split(np.arange(bits.shape[1]), max_distance + 1):
            weights = 1 << np.arange(len(chunk), dtype=np.int64)
            keys = bits[:, chunk].astype(np.int64) @ weights
            order = np.argsort(keys, kind="stable")
            boundaries = np.flatnonzero(np.diff(keys[order])) + 1
            for bucket in np.split(order, boundaries):
                for start in range(0, len(bucket) - 1, _BLOCK):
                    rows, others = bucket[start : start + _BLOCK], bucket[start + 1 :]
                    distances = _POPCOUNT[packed[rows][:, None, :] ^ packed[others][None, :, :]].sum(axis=2)
                    for a, b in zip(*np.nonzero(distances <= max_distance), strict=True):
                        if others[b] != rows[a]:
                            join(int(rows[a]), int(others[b]))
    roots = [root(i) for i in range(n)]
    return group_ids(roots)
