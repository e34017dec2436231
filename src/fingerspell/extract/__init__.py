"""Landmarks for many image files, and for far copies of them, cached.

    pool   extract(): the hand in each file, found in worker processes (``Extracted`` each)
    cache  LandmarkCache: record key -> the hand found; the record's bytes (``encode_hand``)
    far    extract_far(): the hands in far copies of photos, and the frames those copies are
"""

from .cache import LandmarkCache, decode_hand, encode_hand, settings_key
from .far import extract_far, far_frame
from .pool import Extracted, extract

__all__ = ["Extracted", "LandmarkCache", "decode_hand", "encode_hand", "extract", "extract_far", "far_frame",
           "settings_key"]
