"""Bytes or files -> RGB uint8 arrays, with limits checked before any pixel is decoded."""

from __future__ import annotations

import io
import os
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import FrameError

DEFAULT_MAX_PIXELS = 4096 * 4096
# Scans one JPEG may have. A progressive JPEG has ~10 (Pillow and libjpeg write 10; cameras 6-12),
# and each is a pass over the whole image (1-6 ms at 16 megapixels): 19,000 scans of ~30 bytes
# each (679 KB) kept a core busy for a minute. Counted before decoding (the bytes FF DA: an SOS
# marker, or those bytes inside a header segment, so the count errs high, never low).
MAX_JPEG_SCANS = 100
ORIENTATION = 0x0112  # the EXIF tag
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
# The decoders untrusted bytes may reach: the formats of IMAGE_SUFFIXES. Pillow would otherwise try
# some forty, EPS among them (it runs Ghostscript on the bytes where Ghostscript is installed).
DECODE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "GIF", "TIFF")
NOT_AN_IMAGE = "the bytes are not an image PIL can read"


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 formats: tuple[str, ...] = DECODE_FORMATS) -> np.ndarray:
    """Decode JPEG/PNG/... bytes to an RGB uint8 array (H, W, 3), upright per EXIF.

    The pixel count is read from the header and checked before decoding, so a decompression
    bomb costs nothing; so is a JPEG's number of scans (``MAX_JPEG_SCANS``), so that one of
    thousands of tiny scans costs nothing either. Only the decoders of ``formats`` (Pillow's
    names) ever see the bytes.

    Raises:
        FrameError: empty, not an image of ``formats``, truncated, over ``max_pixels``, or a JPEG
            of more than ``MAX_JPEG_SCANS`` scans.
    """
    if not data:
        raise FrameError("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=formats)
            w, h = img.size
            if w * h > max_pixels:
                raise FrameError(f"the image is {w}x{h} pixels, over the limit of {max_pixels:,} pixels")
            if w == 0 or h == 0:
                raise FrameError("the image has no pixels")
            if data[:2] == b"\xff\xd8":  # JPEG, and its multi-picture kin (MPO)
                scans = data.count(b"\xff\xda")
                if scans > MAX_JPEG_SCANS:
                    raise FrameError(f"the JPEG has {scans:,} scans, over the limit of {MAX_JPEG_SCANS}; "
                                     "save it as a baseline or ordinary progressive JPEG")
            img.load()
            # Each step copies 0.9 MB at 640x480, so only where it changes something (~2 ms a frame).
            if img.getexif().get(ORIENTATION, 1) != 1:
                img = ImageOps.exif_transpose(img)
            rgb = img if img.mode == "RGB" else img.convert("RGB")
    except FrameError:
        raise
    except UnidentifiedImageError:
        raise FrameError(f"{NOT_AN_IMAGE} (send JPEG or PNG)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Past Pillow's own limit (89.5 MP) Image.open refuses before the size can be read.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "too large"
        raise FrameError(f"the image is {size}, over the limit of {max_pixels:,} pixels") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise FrameError(f"the image could not be decoded ({exc}); is it truncated?") from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes reach many PIL decoders, each with its own errors
        raise FrameError(f"the image could not be decoded ({type(exc).__name__})") from None
    return np.asarray(rgb)


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file; FrameError names the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FrameError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return decode_image(data, max_pixels)
    except FrameError as exc:
        reason = str(exc)
        if reason.startswith(NOT_AN_IMAGE):  # a file, not a request: say what files are read
            reason = f"not an image file (read: {', '.join(DECODE_FORMATS)})"
        raise FrameError(f"{path}: {reason}") from None


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def hand_box(hand, margin: float | None = None, size: tuple[int, int] | None = None) -> tuple:
    """The box (x0, y0, x1, y1) of a hand's landmarks, in the pixels of an image of ``size``.

    Args:
        hand: a ``Hand``; its landmarks are normalised to its ``image_size``.
        margin: None: the landmarks' own bounding box, in floats (where a far copy places the
            hand). A number: the CNN's crop, a square around them grown by ``margin`` of its
            side on each side, at least 16 px, in whole pixels, clipped to the image.
        size: (width, height) of the image the box is for; by default the one the hand was
            found in (the same picture at another resolution scales the box).
    """
    pts = hand.pixel_points()[:, :2]
    if size is None:
        size = hand.image_size
    else:
        pts = pts * np.array([size[0] / hand.image_size[0], size[1] / hand.image_size[1]])
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    if margin is None:
        return float(x0), float(y0), float(x1), float(y1)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(side / 2, 8)
    box = (int(cx - half), int(cy - half), int(np.ceil(cx + half)), int(np.ceil(cy + half)))
    return (max(0, box[0]), max(0, box[1]), min(size[0], box[2]), min(size[1], box[3]))


def crop_resize(rgb: np.ndarray, size: int, hand=None, margin: float = 0.25) -> np.ndarray:
    """The CNN's input: the hand's box (or the whole image without a hand) resized to size x size."""
    if hand is not None:
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = hand_box(hand, margin, (w, h))
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            rgb = rgb[y0:y1, x0:x1]
    img = Image.fromarray(rgb).resize((size, size), Image.BILINEAR)
    return np.asarray(img)
