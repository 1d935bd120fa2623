"""Images attached to a chat message: read, checked and ready for any backend.

A file is accepted only if Pillow can decode all of it: a renamed text file, a truncated
download or a decompression bomb gets one sentence instead of reaching a server that
would answer with an opaque 500. PNG, JPEG, WebP and GIF go as they are; any other format
Pillow reads (BMP, TIFF, ...) is re-encoded as PNG, which every vision server accepts.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput

MAX_IMAGES = 4  # per message
SENT_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass(frozen=True, slots=True)
class Image:
    data: bytes
    mime: str
    name: str

    def __repr__(self) -> str:  # never a wall of bytes in a log or a test failure
        return f"Image({self.name!r}, {self.mime}, {len(self.data):,} bytes)"

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.base64()}"


def size(n: float, digits: int = 1) -> str:
    """A file size as people read it.

    >>> size(10 * 2**20), size(1.5 * 2**20), size(10.04 * 2**20, 2), size(160_000)
    ('10 MB', '1.5 MB', '10.04 MB', '156 KB')
    """
    if n < 2**20:
        return f"{n / 1024:.0f} KB"
    return f"{n / 2**20:.{digits}f}".rstrip("0").removesuffix(".") + " MB"


def read_image(path: str | Path, max_bytes: int) -> Image:
    """The image at `path`, decoded once to prove it is one, or `BadInput` saying why not."""
    from PIL import Image as Pillow
    from PIL import UnidentifiedImageError

    path = Path(path)
    name = path.name
    try:
        length = path.stat().st_size
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        raise BadInput(f"The attachment {name} could not be read.", hint="Attach it again.") from None
    if length > max_bytes:
        digits = next((d for d in (1, 2, 3) if size(length, d) != size(max_bytes, d)), 0)
        shown, limit = (
            (size(length, digits), size(max_bytes, digits)) if digits else (f"{length:,} bytes", f"{max_bytes:,} bytes")
        )
        raise BadInput(
            f"The image {name} is {shown}; the limit is {limit} per image.",
            hint="Attach a smaller image, or raise MAX_IMAGE_MB.",
        )
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Pillow.DecompressionBombWarning)
            with Pillow.open(io.BytesIO(data)) as picture:
                picture.load()  # decodes every pixel: a truncated file fails here
                kind = picture.format or ""
                if kind not in SENT_AS_IS:
                    out = io.BytesIO()
                    picture.save(out, "PNG")
                    return Image(out.getvalue(), "image/png", name)
    except (Pillow.DecompressionBombWarning, Pillow.DecompressionBombError):
        raise BadInput(f"The image {name} has too many pixels to be sent.", hint="Attach a smaller image.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadInput(
            f"The attachment {name} is not an image that can be read.",
            hint="Attach a PNG, JPEG, WebP or GIF picture.",
        ) from None
    return Image(data, SENT_AS_IS[kind], name)
