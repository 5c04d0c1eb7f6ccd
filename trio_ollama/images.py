"""What an image's bytes are, read from their header: checked before a runner sees them.

The runner decodes images with llama.cpp's stb_image, which reads PNG, JPEG, GIF and BMP (not
WebP). Bytes that are none of these, a picture larger than the runner decodes, or a PNG cut
short are refused here with a 400, without a trip to the runner; what only decoding finds
(a corrupt JPEG, say) the runner refuses the same way (`runner.vision.Projector.bitmap`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

INVALID = "invalid image input"
# What a decoded image may be, in pixels: 192 MiB of RGB. The runner refuses larger ones before
# decoding them too (`runner.vision`), for bytes that did not come through here.
MAX_PIXELS = 8192 * 8192
_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG's start-of-frame markers, which hold the size: C0 to CF but for C4 (tables), C8 (reserved)
# and CC (arithmetic coding conditions).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[str, int, int]:
    """The format and the size in pixels that `data`'s header claims; `ValueError` saying why
    there is none."""
    if data.startswith(_PNG):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ValueError("a PNG without its header")
        width, height = struct.unpack(">II", data[16:24])
        # The last chunk, IEND, is 12 bytes; a PNG without it was cut short.
        if b"IEND" not in data[-32:]:
            raise ValueError("a truncated PNG")
        return "png", width, height
    if data.startswith(b"\xff\xd8"):
        return ("jpeg", *_jpeg_size(data))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "gif", width, height
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return "bmp", abs(width), abs(height)  # a negative height is a top-down bitmap
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise ValueError("WebP, which llama.cpp does not read (PNG, JPEG, GIF and BMP only)")
    raise ValueError("not a PNG, JPEG, GIF or BMP image")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise ValueError("a corrupt JPEG")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _SOF:
            if at + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise ValueError("a truncated JPEG (no frame header)")


def check_image(data: bytes, index: int) -> str | None:
    """Why the runner cannot take image `index`, in a client error's words; None if it may."""
    if not data:
        return f"{INVALID}: image {index} is empty"
    try:
        kind, width, height = image_size(data)
    except ValueError as exc:
        return f"{INVALID}: image {index} is {exc}"
    if width == 0 or height == 0:
        return f"{INVALID}: image {index} is a {kind} of {width}x{height} pixels"
    if width * height > MAX_PIXELS:
        return (
            f"{INVALID}: image {index} is {width}x{height} pixels, over the limit of "
            f"{MAX_PIXELS} pixels"
        )
    return None


def check_images(images: Iterable[bytes]) -> str | None:
    """The first problem among a request's images (numbered from 0 in request order)."""
    for index, data in enumerate(images):
        problem = check_image(data, index)
        if problem:
            return problem
    return None
