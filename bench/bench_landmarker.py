"""On-device mode in the browser: the hand landmarker's speed in headless Chromium, and parity.

The page's hand landmarker (``@mediapipe/tasks-vision``, the files the server serves, CPU
delegate, VIDEO mode, the server's thresholds) runs in Debian's Chromium on every frame of a clip
of real photos (../shared/data; each photo held like a letter, blank frames between), the frames
fetched from the page's own origin as lossless PNG (the camera's pixels). Printed: the time per
640x480 frame and the frames per second that makes, and the load time.

Parity, on the same clip: the server's own path on each frame (JPEG at the page's quality, hands
found with MediaPipe in Python, then the recognisers) against the hands the browser found, pushed
through the same recognisers (``Stream.push``, as the server does with hand messages). Printed:
the share of the frames where both found a hand on which their letters agree (target: 95%), and
each mode's no-hand rate on the photo frames and false hands on the blank ones.

    python bench/bench_landmarker.py                 # the bundled default model
    python bench/bench_landmarker.py --per-letter 4  # a longer clip
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _live import ServerProcess  # noqa: E402
from bench_device import LETTERS, clip, jpeg, percentiles  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
AGREE_TARGET = 0.95
FRAME_MS = 33  # the clip's frame interval (30 frames/s)

RUN = """
async ([info, count, frameMs]) => {
  const started = performance.now();
  const vision = await import(info.module);
  const fileset = await vision.FilesetResolver.forVisionTasks(info.wasm);
  const landmarker = await vision.HandLandmarker.createFromOptions(fileset, {
    baseOptions: { modelAssetPath: info.model, delegate: "CPU" }, runningMode: "VIDEO", numHands: 1,
    ...(info.options || {}) });
  const loadMs = performance.now() - started;
  const hands = [], times = [];
  for (let i = 0; i < count; i++) {
    const bitmap = await createImageBitmap(await (await fetch(`/bench/frame/${i}.png`)).blob());
    const t = performance.now();
    const result = landmarker.detectForVideo(bitmap, (i + 1) * frameMs);
    times.push(performance.now() - t);
    bitmap.close();
    const points = result.landmarks[0];
    hands.push(points ? { landmarks: points.map((p) => [p.x, p.y, p.z]),
                          handedness: result.handedness[0][0].categoryName } : null);
  }
  landmarker.close();
  return { loadMs, hands, times };
}
"""


def in_browser(server: ServerProcess, frames: list[np.ndarray]) -> dict:
    from playwright.sync_api import sync_playwright

    pngs = []
    for rgb in frames:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
        pngs.append(buf.getvalue())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            outside = []
            page.on("request", lambda r: r.url.startswith(server.url) or outside.append(r.url))
            page.route(server.url + "/bench/frame/*",
                       lambda route: route.fulfill(status=200, content_type="image/png",
                                                   body=pngs[int(route.request.url.rsplit("/", 1)[1][:-4])]))
            page.goto(server.url + "/health")
            info = page.evaluate("async () => (await (await fetch('/health')).json()).on_device")
            if not info.get("available"):
                sys.exit(f"the server offers no on-device mode: {info.get('why')} (run fingerspell setup)")
            result = page.evaluate(RUN, [info, len(frames), FRAME_MS])
        finally:
            browser.close()
    if outside:
        sys.exit(f"requests left the page's origin: {outside}")
    return result


def letters_of_hands(predictor, hands: list) -> list[str | None]:
    """Each frame's letter from the browser's hands, as the server reads hand messages."""
    from fingerspell.hands import Hand

    out = []
    with predictor.stream() as stream:
        for i, h in enumerate(hands):
            hand = None if h is None else Hand(np.float32(h["landmarks"]), np.zeros((21, 3), np.float32),
                                               h["handedness"], 1.0, (640, 480), "record")
            out.append(stream.push(hand, (i + 1) * FRAME_MS).letter if hand is not None else None)
    return out


def letters_of_frames(predictor, frames: list[np.ndarray]) -> list[str | None]:
    """Each frame's letter on the server's own path (the JPEG the page would send)."""
    out = []
    with predictor.stream() as stream:
        for i, rgb in enumerate(frames):
            pred = stream.predict_bytes(jpeg(rgb))
            out.append(pred.letter if pred.hand is not None else None)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle folder (default: the bundled default model)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="real photos")
    parser.add_argument("--per-letter", type=int, default=2, help="photos of each letter in the clip")
    args = parser.parse_args(argv)
    from fingerspell.predictor import Predictor

    frames = clip(args.data, args.per_letter)
    blank = np.array([bool((f == f[0, 0]).all()) for f in frames])
    print(f"{len(frames)} frames (640x480; {args.per_letter} photos a letter, {len(LETTERS)} letters, "
          f"{blank.sum()} blank), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    server = ServerProcess(args.model, env={"FINGERSPELL_LEXICON": "false"})
    try:
        server.start()
        t = time.monotonic()
        browser = in_browser(server, frames)
        print(f"browser run: {time.monotonic() - t:.0f} s", flush=True)
    except BaseException:
        print(server.logs())
        raise
    finally:
        server.stop()
    predictor = Predictor.from_bundle(args.model)
    try:
        device = letters_of_hands(predictor, browser["hands"])
        served = letters_of_frames(predictor, frames)
    finally:
        predictor.close()

    device, served = np.array(device, dtype=object), np.array(served, dtype=object)
    both = np.array([d is not None and s is not None for d, s in zip(device, served)])
    agree = float(np.mean(device[both] == served[both])) if both.any() else 0.0
    p50, p95 = percentiles(browser["times"][5:])  # the first frames set the kernels up
    mean = float(np.mean(browser["times"][5:]))

    def no_hand(letters, where):
        return float(np.mean([x is None for x in letters[where]]))

    print()
    print(f"{'measure':<58}{'value':>12}   target")
    print(f"{'landmarker load (module, wasm, model), s':<58}{browser['loadMs'] / 1000:>12.1f}")
    print(f"{'landmarker time per 640x480 frame, p50 (ms)':<58}{p50:>12.1f}")
    print(f"{'landmarker time per 640x480 frame, p95 (ms)':<58}{p95:>12.1f}")
    print(f"{'landmarker frames per second (1000 / mean ms)':<58}{1000 / mean:>12.1f}")
    print(f"{'frames where both modes found a hand':<58}{int(both.sum()):>12d}")
    print(f"{'letters agree on those frames':<58}{agree:>12.1%}   >= {AGREE_TARGET:.0%} "
          f"({'ok' if agree >= AGREE_TARGET else 'MISSED'})")
    print(f"{'no hand on the photo frames: on-device / server':<58}"
          f"{no_hand(device, ~blank):>6.1%} / {no_hand(served, ~blank):.1%}")
    print(f"{'a hand on the blank frames: on-device / server':<58}"
          f"{1 - no_hand(device, blank):>6.1%} / {1 - no_hand(served, blank):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
