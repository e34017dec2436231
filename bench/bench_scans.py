"""A progressive JPEG of thousands of tiny scans: the decoding work it costs, before and after the scan limit.

Each scan of a progressive JPEG is a pass over the whole image, so a file of a few hundred KB
can hold thousands of them (``tests/_live.py``'s ``scan_bomb``: Pillow's 10 scans, then the last
repeated). A frame is recognised on one of the server's worker threads (one per core, at least
2); while bombs keep those busy, every other stream's frames and ``/predict`` images wait, so the
"before" column is also how long an innocent stream's frame waits behind one bomb per worker.

Prints one row per image: its size and scans, the seconds Pillow takes to decode it (``before``:
what the server did, Pillow called directly) and the seconds ``decode_image`` takes now
(``after``: refused from a count of its scans, or decoded where within ``MAX_JPEG_SCANS``).

    python bench/bench_scans.py                    # 4096x4096, 800 scans (10-25 s before on 2 busy cores)
    python bench/bench_scans.py --side 2048 --scans 500
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from _live import scan_bomb  # noqa: E402
from fingerspell.errors import FrameError  # noqa: E402
from fingerspell.images import MAX_JPEG_SCANS, decode_image  # noqa: E402


def seconds(fn) -> tuple[float, str]:
    """(seconds ``fn()`` took, what came of it)."""
    t = time.perf_counter()
    try:
        fn()
        outcome = "decoded"
    except FrameError as exc:
        outcome = f"refused: {exc}"
    return time.perf_counter() - t, outcome


def pil_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.load()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=4096, help="the image's width and height (default 4096: max_pixels)")
    ap.add_argument("--scans", type=int, default=800, help="scans in the bomb (default 800)")
    args = ap.parse_args(argv)
    rows = [("ordinary progressive", 10), ("at the limit", MAX_JPEG_SCANS), ("scan bomb", args.scans)]
    print(f"{'image':<22}{'size':>11}{'scans':>8}{'bytes':>10}{'before s':>10}{'after s':>10}  after")
    for name, scans in rows:
        data = scan_bomb(args.side, scans)
        before, _ = seconds(lambda: pil_decode(data))
        after, outcome = seconds(lambda: decode_image(data))
        print(f"{name:<22}{f'{args.side}x{args.side}':>11}{scans:>8,}{len(data):>10,}{before:>10.3f}{after:>10.3f}"
              f"  {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
