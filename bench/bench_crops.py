"""Hand crops on a stream: the whole frame scaled down, crops that carry the followed hand, crops that detect afresh.

A Roboflow photo per letter is pasted as a ``--photo`` px square on a 1280x720 wall and moved 8 px
right (and up to 40 px up and down) a frame, for 40 frames. Three ways of sending it:
  * whole:  the frame scaled to 640x360, as the page sends it with no hand known;
  * carry:  after the first frame, the page's crop around the last answer's hand (2.2 times its
            size, at least 160 px, sent at most 512x512) with its Region; the stream carries the
            followed hand into each new crop's coordinates (``Stream._frame``);
  * forget: the same crops, but the stream detects afresh whenever the crop moves.
It prints per letter and way: frames with a hand, frames tracked (no palm detector), frames read
right, and the median and mean time of detect + classify.

    python bench/bench_crops.py               # a ~150 px hand in the camera frame
    python bench/bench_crops.py --photo 200   # a ~100 px one
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from _live import letterbox  # noqa: E402
from fingerspell.hands import Region  # noqa: E402
from fingerspell.predictor import Predictor  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "roboflow_letters_train"
FRAME_W, FRAME_H = 1280, 720
WALL = (200, 196, 188)
FRAMES = 40


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def clip(photo: Path, side: int) -> list[np.ndarray]:
    img = Image.fromarray(letterbox(photo, (side, side), WALL))
    frames = []
    for i in range(FRAMES):
        frame = Image.new("RGB", (FRAME_W, FRAME_H), WALL)
        frame.paste(img, (300 + 8 * i, 200 + int(40 * np.sin(i / 5))))
        frames.append(np.asarray(frame))
    return frames


def page_crop(hand) -> tuple[int, int, int]:
    """The square (x, y, side) the page (camera.js) cuts around a hand."""
    pts = hand.landmarks[:, :2] * (FRAME_W, FRAME_H)
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    side = round(max(160, (x1 - x0) * 2.2, (y1 - y0) * 2.2))
    x = round(min(max((x0 + x1 - side) / 2, 0), FRAME_W - side))
    y = round(min(max((y0 + y1 - side) / 2, 0), FRAME_H - side))
    return x, y, side


def run(predictor: Predictor, frames: list[np.ndarray], way: str, letter: str) -> str:
    found = tracked = right = 0
    ms = []
    with predictor.stream() as stream:
        last = None
        for frame in frames:
            region = None
            if way == "whole" or last is None:
                image = np.asarray(Image.fromarray(frame).resize((640, 360), Image.BILINEAR))
            else:
                x, y, side = page_crop(last)
                sent = min(side, 512)
                image = np.asarray(Image.fromarray(frame[y:y + side, x:x + side]).resize((sent, sent), Image.BILINEAR))
                region = Region(x, y, side, side, FRAME_W, FRAME_H)
                if way == "forget":  # nothing followed: the crop is searched afresh
                    stream.following = stream.following.lost()
            t = time.perf_counter()
            pred = stream.predict_bytes(jpeg(image), region=region)
            ms.append((time.perf_counter() - t) * 1e3)
            last = pred.hand
            found += pred.hand is not None
            tracked += pred.hand is not None and pred.hand.attempt == "tracked"
            right += pred.letter == letter
    ms = ms[2:]  # the first frames set up kernels
    return (f"{letter} {way:6s} hand {found}/{FRAMES}  tracked {tracked}  right {right}/{FRAMES}  "
            f"detect+classify median {np.median(ms):.1f} ms, mean {np.mean(ms):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=int, default=300, help="the photo's side in the 1280x720 frame, px")
    parser.add_argument("--letters", default="ABLVY")
    args = parser.parse_args()
    predictor = Predictor.from_bundle()
    try:
        for letter in args.letters:
            frames = clip(sorted((DATA / letter).glob("*.jpg"))[3], args.photo)
            for way in ("whole", "carry", "forget"):
                print(run(predictor, frames, way, letter), flush=True)
    finally:
        predictor.close()


if __name__ == "__main__":
    main()
