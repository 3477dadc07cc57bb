"""Encoded images (PNG, JPEG) as the RGB pixels models take, and what the traffic log keeps
of an image instead of its pixels: size, format, mean brightness and a content hash.

Decoding is Pillow's.  A file that is not a PNG or JPEG image, or one larger than the pixel
limit (a decompression bomb), is a :class:`~engine.errors.DataError` saying what was found.

>>> import io, numpy as np
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.fromarray(np.full((4, 6, 3), 200, np.uint8)).save(buffer, "PNG")
>>> image = decode_image(buffer.getvalue())
>>> image.pixels.shape, image.format, round(image.brightness, 1)
((4, 6, 3), 'PNG', 200.0)
>>> decode_image(b"not an image")
Traceback (most recent call last):
...
engine.errors.DataError: expected a PNG or JPEG image, found 12 bytes that are neither
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from engine.errors import DataError

#: Formats accepted (Pillow's names).
FORMATS = ("PNG", "JPEG")
#: Default limit on the pixels of one image (about 40 megapixels).
MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class DecodedImage:
    """An image's RGB pixels ``(height, width, 3)`` uint8 and what the log keeps of it."""

    pixels: np.ndarray
    format: str
    encoded_bytes: int
    sha256: str

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def brightness(self) -> float:
        """Mean pixel value over the three channels, in [0, 255]."""
        return float(self.pixels.mean(dtype=np.float64))


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS, digest: str | None = None) -> DecodedImage:
    """Decode a PNG or JPEG image to RGB pixels (grey, palette and alpha images are converted).

    ``digest`` is the SHA-256 of ``data`` when the caller has it already.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in FORMATS:
                raise DataError(f"expected a PNG or JPEG image, found a {image.format} image")
            if image.width * image.height > max_pixels:
                raise DataError(f"expected an image of at most {max_pixels} pixels, found {image.width}x{image.height}")
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            pixels = np.asarray(rgb, dtype=np.uint8)
    except UnidentifiedImageError:
        raise DataError(f"expected a PNG or JPEG image, found {len(data)} bytes that are neither") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"could not decode the image ({len(data)} bytes): {e}") from None
    return DecodedImage(pixels, str(image.format), len(data), digest or hashlib.sha256(data).hexdigest())
