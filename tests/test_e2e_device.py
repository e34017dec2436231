"""On-device mode in a real Chromium: the page finds the hand itself and sends only its points.

Chromium's fake camera plays a clip built from real hand photos (as in ``test_e2e_browser.py``);
the page runs MediaPipe's hand landmarker (``@mediapipe/tasks-vision``, served by the server from
the cache ``fingerspell setup`` fills) on the live video and sends hand messages. One server and
one browser for the whole story, to keep the suite lean: on-device mode spells the word and the
server received no image bytes for it; server mode spells it again after the switch, with the
text kept; a switch back in the middle of a word keeps the text too; and no request left the
page's origin. The CPU delegate is used (``fingerspell.delegate``): headless Chromium's GPU is
software WebGL, ~20x slower.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from _live import ServerProcess, blank_frame, write_y4m
from test_e2e_browser import (DEFAULT_BUNDLE, FPS, GAP_S, HOLD_S, _reliable_word, browser_on, open_page,  # noqa: F401
                              playwright)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
FAKE_CAMERA = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
CPU = "localStorage.setItem('fingerspell.delegate', 'CPU');"
RECORD = """
    window.__text = [];
    document.addEventListener("DOMContentLoaded", () => {
      const el = document.getElementById("text");
      new MutationObserver(() => window.__text.push(el.textContent)).observe(
        el, {childList: true, characterData: true, subtree: true});
    });
"""
TEXT_IS = "w => document.getElementById('text').textContent.trim() === w"
LEAD_S = 4.0  # blank wall before the word: longer than the decoder's word break (1.5 s)


def read_clip_frames(word: str, frames: dict):
    """The word's frames: each letter held, a blank wall between letters (as ``_clip``)."""
    wall = blank_frame()
    for letter in word:
        yield from [frames[letter]] * round(HOLD_S * FPS) + [wall] * round(GAP_S * FPS)


def need_assets() -> None:
    """The page's hand landmarker must be cached (``fingerspell setup``); CI must have it."""
    from fingerspell.errors import HandModelError
    from fingerspell.hands import ensure_browser_assets

    try:
        ensure_browser_assets(download=False)
    except HandModelError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs `fingerspell setup`, which must obtain the page's hand landmarker: {exc}")
        pytest.skip(f"the page's hand landmarker is not cached ({exc})")


def metrics(server: ServerProcess) -> dict:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as resp:
        return json.load(resp)


def _texts(page) -> str:
    return page.inner_text("#text").strip()


def _wait_text(page, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function(TEXT_IS, arg=text, timeout=timeout, polling=50)


def test_on_device_mode_spells_with_no_image_sent_and_switching_modes_keeps_the_text(playwright, tmp_path):  # noqa: F811
    need_assets()
    word, frames = _reliable_word()
    # A blank wall first: the hand finder loads meanwhile (~2 s), and each pass of the looping
    # clip ends a word, so the text grows "ALL", "ALL ALL", ...
    clip = write_y4m(tmp_path / "word.y4m", [blank_frame()] * round(LEAD_S * FPS)
                     + list(read_clip_frames(word, frames)), FPS)
    print(f"\nspelling {word!r} from {clip}")
    server = ServerProcess(DEFAULT_BUNDLE, log_dir=tmp_path, env={"FINGERSPELL_DECODER": "letters"})
    with browser_on(playwright, server, *FAKE_CAMERA, f"--use-file-for-fake-video-capture={clip}") as browser:
        page, errors = open_page(browser, server.url + "/", CPU + RECORD)
        outside = []
        page.on("request", lambda r: r.url.startswith(server.url + "/") or outside.append(r.url))
        page.on("websocket", lambda ws: ws.url.startswith(server.url.replace("http", "ws", 1) + "/")
                or outside.append(ws.url))
        try:
            # 1. On-device mode, the default: the word is spelled from hand messages alone.
            page.wait_for_function("() => document.getElementById('on-device').checked", timeout=30_000)
            page.wait_for_function("w => document.getElementById('text').textContent.trim().split(' ').pop() === w",
                                   arg=word, timeout=60_000, polling=50)
            first = _texts(page)
            seen = metrics(server)
            [stream] = seen["streams"]
            print(f"on-device: {stream}; hand found here in {page.inner_text('#device-time')} ms (median)")
            assert stream["mode"] == "device" and stream["hands"] > 20
            assert stream["image_bytes"] == 0 and seen["totals"]["image_bytes"] == 0
            shot = tmp_path / "on-device.png"
            page.screenshot(path=str(shot))
            if os.environ.get("FINGERSPELL_SCREENSHOT"):  # to refresh docs/screenshot-device.png
                shutil.copyfile(shot, os.environ["FINGERSPELL_SCREENSHOT"])

            # 2. Server mode: the text stays, and frames spell the word again after it.
            page.click("#on-device")
            page.wait_for_function("() => !document.getElementById('on-device').checked", timeout=5_000)
            assert _texts(page) == first
            second = f"{first} {word}"
            _wait_text(page, second)
            assert metrics(server)["streams"][0]["image_bytes"] > 0

            # 3. Back to on-device mode in the middle of the next word: nothing is lost.
            _wait_text(page, f"{second} {word[0]}", timeout=30_000)
            page.click("#on-device")
            page.wait_for_function("() => document.getElementById('on-device').checked", timeout=5_000)
            _wait_text(page, f"{second} {word}")
            assert metrics(server)["streams"][0]["mode"] == "device"
            assert errors == []
            assert outside == [], f"requests left the page's origin: {outside}"
        except Exception:
            page.screenshot(path=str(tmp_path / "on-device-failed.png"))
            print("text:", repr(page.inner_text("#text")), "changes:", page.evaluate("window.__text.slice(-30)"),
                  "note:", page.inner_text("#mode-note"), "status:", page.inner_text("#status"),
                  "notice:", page.inner_text("#notice"), "errors:", errors)
            raise
