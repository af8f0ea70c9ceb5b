"""Reading one image file: header first, then a single decode to 8-bit grayscale, with reasons to skip.

Every image is opened with Pillow. `read_header` parses only the header (Pillow's `Image.open` is
lazy), so the size is known, and refused when too large, before any pixel is decoded.
`decode_gray` decodes once and converts to 8-bit grayscale:

- L, 1 (0/255), P (through its palette) and RGB use Pillow's conversion (ITU-R 601-2 luma for
  colour); LA, RGBA and palette transparency: the alpha channel is ignored, as `tf.io.decode_png(
  channels=1)` does, so the colour values are kept as stored.
- 16-bit grayscale (I;16*, and I, read as 16-bit values clipped to 0..65535) is scaled to 0..255
  with rounding, round(v × 255 / 65535), never clipped at 255.
- The format is detected from the content (a JPEG saved under a .png name is read as JPEG).

A file that cannot be used raises `ImageSkip` with a stable reason code (SKIP_REASONS) and a
human-readable detail.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

# Stable codes of summary["skipped"][i]["reason"].
EMPTY = "empty"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED = "truncated"
TOO_LARGE = "too_large"
UNKNOWN_CLASS = "unknown_class"
TRAILING_DATA = "trailing_data"  # bytes after the image's end: not a clean image file
BAD_NAME = "bad_name"  # a path that is not valid UTF-8 or holds control characters
SUSPICIOUS_ARCHIVE_MEMBER = "suspicious_archive_member"  # a zip member expanding far beyond its size
LINK_OUTSIDE_SOURCE = "link_outside_source"  # a symbolic link out of the source folder (not followed)
SKIP_REASONS = (
    EMPTY,
    NOT_AN_IMAGE,
    TRUNCATED,
    TOO_LARGE,
    UNKNOWN_CLASS,
    TRAILING_DATA,
    BAD_NAME,
    SUSPICIOUS_ARCHIVE_MEMBER,
    LINK_OUTSIDE_SOURCE,
)

# Raster formats an X-ray may arrive in; anything else in an images/ folder is not an image.
FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What Pillow's decoders raise on a broken file (a MemoryError or a bug of ours is not among them).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
# Opening also runs a format plugin's header parser, which can index past a corrupt header's end.
_HEADER_ERRORS = (*_DECODE_ERRORS, IndexError, KeyError, TypeError)


class ImageSkip(Exception):
    """A file that is not used as a sample: `reason` is one of SKIP_REASONS, `detail` says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Header:
    """What an image file says about itself before decoding."""

    width: int
    height: int
    mode: str
    format: str


def read_header(fp: BinaryIO, *, max_pixels: int) -> Header:
    """Reads the size, mode and format of an image without decoding its pixels.

    Args:
        fp: a seekable binary stream positioned at the start of the file.
        max_pixels: largest width × height accepted.

    Returns:
        The image's header.

    Raises:
        ImageSkip: not_an_image, truncated (a known signature but an unreadable header) or too_large.
    """
    with _open(fp, max_pixels) as im:
        return Header(im.width, im.height, im.mode, im.format or "unknown")


@dataclass(frozen=True)
class Decoded:
    """One decoded image: its header and its pixels as 8-bit grayscale at original size."""

    header: Header
    pixels: np.ndarray  # uint8 (height, width)


def decode_gray(data: bytes, *, max_pixels: int) -> Decoded:
    """Decodes a whole image file to 8-bit grayscale, verifying it is complete.

    Args:
        data: the file's bytes.
        max_pixels: largest width × height accepted.

    Returns:
        The header and the (height, width) uint8 pixels.

    Raises:
        ImageSkip: empty, not_an_image, truncated (decoding fails part-way, a PNG chunk has a bad
            CRC or the file ends early) or too_large.
    """
    if not data:
        raise ImageSkip(EMPTY, "the file has 0 bytes")
    with _open(io.BytesIO(data), max_pixels) as im:
        header = Header(im.width, im.height, im.mode, im.format or "unknown")
        if im.format == "PNG":
            _check_png_chunks(data)
        try:
            im.load()
        except _DECODE_ERRORS as exc:
            raise ImageSkip(TRUNCATED, f"decoding failed part-way ({_describe(exc)})") from exc
        try:
            pixels = to_gray8(im)
        except (ValueError, OSError) as exc:
            raise ImageSkip(
                NOT_AN_IMAGE, f"colour mode {im.mode} cannot be converted to grayscale ({_describe(exc)})"
            ) from exc
    if pixels.shape != (header.height, header.width):
        raise ImageSkip(
            TRUNCATED,
            f"decoded {pixels.shape[1]}x{pixels.shape[0]} pixels but the "
            f"header says {header.width}x{header.height}",
        )
    return Decoded(header, pixels)


def to_gray8(im: Image.Image) -> np.ndarray:
    """The pixels of a loaded Pillow image as 8-bit grayscale (see the module docstring)."""
    if im.mode.startswith("I;16") or im.mode == "I":
        values = np.asarray(im).astype(np.int64)
        values = np.clip(values, 0, 65535)
        return ((values * 255 + 32767) // 65535).astype(np.uint8)
    if im.mode == "L":
        return np.asarray(im, dtype=np.uint8)
    if im.mode in ("LA", "La"):
        return np.asarray(im.getchannel(0), dtype=np.uint8)
    if im.mode in ("RGBA", "RGBa", "PA"):
        im = im.convert("RGB") if im.mode != "PA" else im.convert("RGBA").convert("RGB")
    try:
        return np.asarray(im.convert("L"), dtype=np.uint8)
    except ValueError:  # a mode Pillow cannot take to L directly
        return np.asarray(im.convert("RGB").convert("L"), dtype=np.uint8)


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resizes 8-bit grayscale pixels to size × size (aspect ratio not kept, like Keras' loaders).

    Pillow's BILINEAR filter; when shrinking, Pillow widens the filter by the scale factor, so it
    averages every source pixel (area-like) rather than sampling.
    """
    if pixels.shape == (size, size):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def pixel_sha256(pixels: np.ndarray) -> str:
    """Hash of decoded 8-bit pixels at original size.

    The size is hashed too, so only images with identical size and pixels share it.
    """
    height, width = pixels.shape
    digest = hashlib.sha256(f"{width}x{height}\n".encode())
    digest.update(np.ascontiguousarray(pixels, dtype=np.uint8).data)
    return digest.hexdigest()


def _open(fp: BinaryIO, max_pixels: int) -> Image.Image:
    start = fp.read(16)
    if not start:
        raise ImageSkip(EMPTY, "the file has 0 bytes")
    fp.seek(0)
    try:
        im = Image.open(fp, formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageSkip(TOO_LARGE, _describe(exc)) from exc
    except UnidentifiedImageError as exc:
        known = next((name for sig, name in _SIGNATURES.items() if start.startswith(sig)), None)
        if known:
            raise ImageSkip(TRUNCATED, f"{known} signature but the header is incomplete or corrupt") from exc
        raise ImageSkip(
            NOT_AN_IMAGE, f"Pillow cannot identify it as an image (first bytes {start[:8]!r})"
        ) from exc
    except _HEADER_ERRORS as exc:
        raise ImageSkip(TRUNCATED, f"unreadable header ({_describe(exc)})") from exc
    if im.width * im.height > max_pixels:
        im.close()
        raise ImageSkip(
            TOO_LARGE,
            f"{im.width}x{im.height} = {im.width * im.height:,} pixels is over the limit of {max_pixels:,}",
        )
    return im


def _check_png_chunks(data: bytes) -> None:
    """Walks the PNG chunks: each must fit in the file and match its CRC, up to IEND.

    Pillow skips the CRC of image-data chunks, so a flipped bit there would otherwise pass.
    """
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise ImageSkip(TRUNCATED, "the file ends before the PNG IEND chunk")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length + 4
        if end > len(data):
            raise ImageSkip(TRUNCATED, f"the file ends inside a PNG {kind.decode('latin-1')!r} chunk")
        stored_crc = struct.unpack(">I", data[end - 4 : end])[0]
        if zlib.crc32(memoryview(data)[pos + 4 : end - 4]) != stored_crc:
            raise ImageSkip(TRUNCATED, f"bad CRC in a PNG {kind.decode('latin-1')!r} chunk at byte {pos}")
        if kind == b"IEND":
            if end != len(data):
                raise ImageSkip(TRAILING_DATA, f"{len(data) - end:,} bytes after the PNG IEND chunk")
            return
        pos = end


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
