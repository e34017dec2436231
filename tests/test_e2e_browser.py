"""A real Chromium against a real server: the camera, the stream, the page and the spelling.

The first spelling test drives the old hold-and-release decoder (``FINGERSPELL_DECODER=letters``:
its clip's timing is made for those rules); the second the default words decoder, its word
letters, the chosen word and the page's revert.

Chromium's fake camera plays a Y4M clip built here from real hand photos, so the whole path runs:
getUserMedia -> canvas -> JPEG over the WebSocket -> MediaPipe + the classifier -> the spelling
decoder -> the text on the page. The spelling test uses the bundled default model and picks, at
test time, photos that model recognises reliably: it tests streaming, the page and spelling, not
accuracy (the model's own evaluation does that). The other tests need no trained model.

Never runs ``playwright install``: it drives the system Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _live import ServerProcess, blank_frame, free_port, letterbox, read_y4m, rgb_to_ycbcr420, write_y4m
from conftest import KAGGLE, ROBOFLOW, need_data

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# The bundled default model; FINGERSPELL_E2E_MODEL names another trained bundle to use instead.
DEFAULT_BUNDLE = Path(os.environ.get("FINGERSPELL_E2E_MODEL")
                      or Path(__file__).resolve().parents[1] / "src" / "fingerspell" / "models" / "default")
BASE_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run"]
FPS = 15  # the clip's frame rate: 67 ms between frames, inside the decoder's 100 ms flicker bridge
HOLD_S = 1.2  # each letter is shown 3x the decoder's 400 ms hold: room for a slow first frame
GAP_S = 0.6  # blank wall between letters: releases a letter (150 ms) but is no word break (1.5 s)
# Preferred words: short, and most with a double letter, which only spells right if the blank gap
# releases the first. J and Z are motion letters and never used.
WORDS = ("ALL", "BEE", "SEE", "ADD", "ODD", "BOOK", "COOL", "CAB", "BAD", "HI", "OK")
TRIES_PER_LETTER = 24  # photos tried per letter when picking a reliable one
# These tests drive server mode (frames sent, the server finds the hand), the page's mode where it
# cannot find hands itself; on-device mode, its default, is tests/test_e2e_device.py's.
SERVER_MODE = "localStorage.setItem('fingerspell.mode', 'server');"


def launch(playwright, *extra):
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*BASE_ARGS, *extra])


@pytest.fixture(scope="module")
def playwright():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def tiny_server(tiny_bundle, tmp_path_factory):
    server = ServerProcess(tiny_bundle, log_dir=tmp_path_factory.mktemp("server"))
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def browser_on(playwright, server: ServerProcess, *flags):
    """Start ``server`` and a browser; print the server's log if the block fails; close both."""
    browser = None
    try:
        server.start()
        browser = launch(playwright, *flags)
        yield browser
    except BaseException:
        print("---- server log ----\n" + server.logs())
        raise
    finally:
        if browser is not None:
            browser.close()
        server.stop()


def open_page(browser, url: str, init_script: str | None = None):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if init_script:
        page.add_init_script(init_script)
    page.goto(url)
    return page, errors


@pytest.fixture
def signing_page(playwright, request, tmp_path):
    """A factory: ``signing_page(clip, record=(element_id, name), env=None, init_script="")``
    starts a server on the default model (``env``: its extra environment) and a browser whose
    fake camera plays ``clip``, opens the page with each change of the element's text appended to
    ``window[name]`` (and ``init_script`` run first), and returns ``(page, errors)``. Both stop
    after the test; the server's log is printed if it failed.
    """
    failed_before = request.session.testsfailed
    with contextlib.ExitStack() as stack:
        def signing_page(clip: Path, record: tuple[str, str], env: dict | None = None, init_script: str = ""):
            server = ServerProcess(DEFAULT_BUNDLE, log_dir=tmp_path, env=env)
            stack.callback(lambda: request.session.testsfailed > failed_before
                           and print("---- server log ----\n" + server.logs()))
            browser = stack.enter_context(browser_on(playwright, server, "--use-fake-ui-for-media-stream",
                                                     "--use-fake-device-for-media-stream",
                                                     f"--use-file-for-fake-video-capture={clip}"))
            element_id, name = record
            recorder = f"""
                window.{name} = [];
                document.addEventListener("DOMContentLoaded", () => {{
                  const el = document.getElementById("{element_id}");
                  new MutationObserver(() => window.{name}.push(el.textContent)).observe(
                    el, {{childList: true, characterData: true, subtree: true}});
                }});
            """
            return open_page(browser, server.url + "/", SERVER_MODE + init_script + recorder)

        yield signing_page


# --------------------------------------------------------------------------- the clip


def test_y4m_frames_are_limited_range_bt601(tmp_path):
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert [int(p.mean()) for p in rgb_to_ycbcr420(black)] == [16, 128, 128]
    assert [int(p.mean()) for p in rgb_to_ycbcr420(white)] == [235, 128, 128]
    y, cb, cr = rgb_to_ycbcr420(red)
    assert (int(y.mean()), int(cb.mean()), int(cr.mean())) == (81, 90, 240)
    assert cb.shape == (2, 2)  # 4:2:0
    path = write_y4m(tmp_path / "c.y4m", [black, white, black], fps=15)
    fields, planes = read_y4m(path)
    assert (fields["W"], fields["H"], fields["F"], fields["C"]) == ("4", "4", "15:1", "420jpeg")
    assert [int(p.mean()) for p in planes] == [16, 235, 16]


def test_letterbox_keeps_the_aspect_and_fills_640x480():
    img = Image.new("RGB", (416, 416), (255, 255, 255))
    frame = letterbox(img)
    assert frame.shape == (480, 640, 3)
    assert frame[:, :80].max() == 0 and frame[:, 80:560].min() == 255  # 480x480 centred


# --------------------------------------------------------------------------- spelling a word


def _as_sent(rgb: np.ndarray) -> np.ndarray:
    """The frame as the server will see it: JPEG at the page's quality, decoded."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=80)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _photos(letter: str) -> list[Path]:
    photos = []
    for folder in (ROBOFLOW, KAGGLE):
        photos += sorted((folder / letter).glob("*.jpg"))[:TRIES_PER_LETTER // 2]
    return photos


def _reliable_frame(predictor, letter: str) -> np.ndarray | None:
    """A 640x480 frame of ``letter`` that the model reads as that letter, frame after frame."""
    for photo in _photos(letter):
        frame = letterbox(photo)
        sent = _as_sent(frame)
        with predictor.stream() as stream:
            preds = [stream.predict(sent, timestamp_ms=i * 1000 // FPS) for i in range(6)]
        if all(p.letter == letter and p.score >= 0.9 for p in preds):
            return frame
    return None


def _pick_word(predictor, words=WORDS, reliable=_reliable_frame) -> tuple[str, dict[str, np.ndarray]]:
    frames: dict[str, np.ndarray | None] = {}

    def good(letter):
        if letter not in frames:
            frames[letter] = reliable(predictor, letter) if letter in predictor.labels else None
        return frames[letter] is not None

    for word in words:
        if all(good(c) for c in word):
            return word, {c: frames[c] for c in word}
    usable = [c for c in "ABCDEFGHIKLMNOPQRSTUVWXY" if good(c)][:3]
    if len(usable) < 2:
        pytest.fail(f"the default model reads too few letters reliably on the photos in {ROBOFLOW}: {usable}")
    word = "".join(usable)
    return word, {c: frames[c] for c in word}


def _clip(word: str, frames: dict[str, np.ndarray], path: Path) -> Path:
    h, w = frames[word[0]].shape[:2]
    wall = blank_frame((w, h))
    sequence = []
    for letter in word:
        sequence += [frames[letter]] * round(HOLD_S * FPS) + [wall] * round(GAP_S * FPS)
    return write_y4m(path, sequence, FPS)


def _reliable_word(words=WORDS, reliable=_reliable_frame) -> tuple[str, dict[str, np.ndarray]]:
    if not (DEFAULT_BUNDLE / "bundle.json").is_file():
        pytest.skip(f"the default model is not built yet ({DEFAULT_BUNDLE} has no bundle.json); "
                    "this test needs a trained model to recognise real hands")
    need_data(ROBOFLOW, KAGGLE)
    from fingerspell.predictor import Predictor

    predictor = Predictor.from_bundle(DEFAULT_BUNDLE)
    try:
        blank = predictor.predict(_as_sent(blank_frame()))
        assert blank.letter == "nothing" or blank.score < 0.6, "the blank wall must not read as a sign"
        return _pick_word(predictor, words, reliable)
    finally:
        predictor.close()


def _wait_for_text(page, word: str, failed_shot: Path, **diagnostics) -> None:
    """Wait until the page's text is ``word``; on failure save a screenshot and print what the page showed."""
    try:
        page.wait_for_function("w => document.getElementById('text').textContent.trim() === w",
                               arg=word, timeout=60_000, polling=50)
    except Exception:
        page.screenshot(path=str(failed_shot))
        print("text:", repr(page.inner_text("#text")), "shown:", page.evaluate("window.__shown.slice(-60)"),
              "status:", page.inner_text("#status"), "camera:", page.inner_text("#camera-message"),
              *(f"{k}: {page.evaluate(v)}" for k, v in diagnostics.items()))
        raise


def test_the_page_spells_a_word_signed_at_the_fake_camera(signing_page, tmp_path):
    word, frames = _reliable_word()
    clip = _clip(word, frames, tmp_path / "word.y4m")
    print(f"\nspelling {word!r} from {clip} ({FPS} frames/s); screenshots in {tmp_path}")

    page, errors = signing_page(clip, record=("letter", "__shown"), env={"FINGERSPELL_DECODER": "letters"})
    _wait_for_text(page, word, tmp_path / "e2e-failed.png")
    shown = set(page.evaluate("window.__shown"))
    assert set(word) <= shown, f"letters shown: {sorted(shown)}"
    assert page.inner_text("#status") == "Connected"
    assert float(page.inner_text("#fps")) > 0
    assert not page.locator("#first-steps").is_visible()  # a hand is in view: the letter has the box
    assert errors == []
    shot = tmp_path / "e2e.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")


WORD_HOLD_S = 0.6  # deliberate signing, one letter straight after the other
WORD_REST_S = 8.0  # then the hand down: the word ends, and the clip waits before it loops


def test_the_page_shows_the_word_being_signed_then_the_chosen_word_and_reverts_it(signing_page, tmp_path):
    word, frames = _reliable_word(("CAB", "BAD", "HI", "OK", "CAT", "BIG"))
    wall = blank_frame()
    sequence = [frames[c] for c in word for _ in range(round(WORD_HOLD_S * FPS))]
    clip = write_y4m(tmp_path / "word.y4m", sequence + [wall] * round(WORD_REST_S * FPS), FPS)
    print(f"\nsigning {word!r} from {clip} ({FPS} frames/s)")

    page, errors = signing_page(clip, record=("word", "__word"))
    try:
        # The server has just started: its first word is decoded with the dictionary already,
        # so that very word (the text is nothing else yet) offers other readings.
        page.wait_for_function("w => document.getElementById('text').textContent.trim() !== ''",
                               timeout=90_000, polling=50)
        page.wait_for_function(
            "w => document.getElementById('text').textContent.trim() === w"
            " && document.querySelectorAll('#choices button').length > 0",
            arg=word, timeout=2_000, polling=50)
        seen = page.evaluate("window.__word")
        assert word[:1] in seen and word[:2] in seen, f"the word's letters as they came: {seen[-20:]}"
        button = page.locator("#choices button").first
        candidate = button.get_attribute("data-option")
        assert candidate != word
        button.click()
        page.wait_for_function("c => document.getElementById('text').textContent.trim().endsWith(c)",
                               arg=candidate, timeout=5_000)
        page.locator("body").press("r")  # back to the letters as signed
        page.wait_for_function("w => document.getElementById('text').textContent.trim().endsWith(w)",
                               arg=word, timeout=5_000)
        assert page.evaluate("localStorage.getItem('fingerspell.text')").strip().endswith(word)
        assert errors == []
    except Exception:
        page.screenshot(path=str(tmp_path / "e2e-word-failed.png"))
        print("text:", repr(page.inner_text("#text")), "word:", page.evaluate("window.__word.slice(-30)"),
              "choices:", page.inner_text("#choices"), "status:", page.inner_text("#status"))
        raise


# --------------------------------------------------------------------------- a hand at arm's length


CAMERA = (1280, 720)  # the fake camera's frame: what the page asks a camera for
SMALL_AT, SMALL_SIDE = (760, 220), 288  # the photo's square in it: a hand ~150-250 px across
CROP_MARGIN, CROP_MIN, CROP_MAX_SENT = 2.2, 160, 512  # the page's (camera.js)
RECORD_SOCKET = """
    window.__regions = [];
    window.__hands = [];
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      if (typeof data === "string" && data.includes('"region"')) window.__regions.push(JSON.parse(data));
      if (!this.__heard) {
        this.__heard = true;
        this.addEventListener("message", (event) => {
          const m = JSON.parse(event.data);
          if (m.type === "prediction" && m.hand) window.__hands.push(m.hand.landmarks);
        });
      }
      return send.call(this, data);
    };
"""


def _small_frame(photo) -> np.ndarray:
    """A 1280x720 camera frame: the photo as a 288 px square right of centre, wall around it."""
    frame = blank_frame(CAMERA).copy()
    (x, y), side = SMALL_AT, SMALL_SIDE
    frame[y:y + side, x:x + side] = letterbox(photo, (side, side), fill=tuple(int(c) for c in frame[0, 0]))
    return frame


def _page_crop(hand, frame_w: int, frame_h: int) -> tuple[int, int, int]:
    """The square (x, y, side) camera.js cuts around ``hand``."""
    pts = hand.landmarks[:, :2] * (frame_w, frame_h)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    side = round(max(CROP_MIN, (x1 - x0) * CROP_MARGIN, (y1 - y0) * CROP_MARGIN))
    x = round(min(max((x0 + x1 - side) / 2, 0), frame_w - side))
    y = round(min(max((y0 + y1 - side) / 2, 0), frame_h - side))
    return x, y, side


def _reliable_small_frame(predictor, letter: str) -> np.ndarray | None:
    """A camera frame with a small ``letter`` in it that the page's way reads as that letter: the
    whole frame (scaled to 640x360) finds the hand, then crops around it read the letter."""
    from fingerspell.hands import Region

    for photo in _photos(letter):
        frame = _small_frame(photo)
        whole = _as_sent(np.asarray(Image.fromarray(frame).resize((640, 360), Image.BILINEAR)))
        with predictor.stream() as stream:
            pred = stream.predict(whole, timestamp_ms=0)
            preds = []
            for i in range(1, 6):
                if pred.hand is None:
                    break
                x, y, side = _page_crop(pred.hand, *CAMERA)
                crop = Image.fromarray(frame[y:y + side, x:x + side])
                sent = min(side, CROP_MAX_SENT)
                crop = _as_sent(np.asarray(crop.resize((sent, sent), Image.BILINEAR)))
                pred = stream.predict(crop, timestamp_ms=i * 1000 // FPS, region=Region(x, y, side, side, *CAMERA))
                preds.append(pred)
        if len(preds) == 5 and all(p.letter == letter and p.score >= 0.9 for p in preds):
            return frame
    return None


def test_the_page_sends_crops_around_a_small_hand_and_still_spells_the_word(signing_page, tmp_path):
    word, frames = _reliable_word(reliable=_reliable_small_frame)
    clip = _clip(word, frames, tmp_path / "far.y4m")
    saved = tmp_path / "frames"
    print(f"\nspelling {word!r} with a small hand in a {CAMERA[0]}x{CAMERA[1]} clip {clip}")

    page, errors = signing_page(clip, record=("letter", "__shown"), init_script=RECORD_SOCKET,
                                env={"FINGERSPELL_DECODER": "letters", "FINGERSPELL_SAVE_FRAMES_DIR": str(saved)})
    _wait_for_text(page, word, tmp_path / "e2e-far-failed.png", regions="window.__regions.length")
    page.screenshot(path=str(tmp_path / "e2e-far.png"))
    assert page.evaluate("[document.getElementById('video').videoWidth, document.getElementById('video').videoHeight]") \
        == list(CAMERA)
    regions = page.evaluate("window.__regions")
    hands = np.array(page.evaluate("window.__hands"))
    assert errors == []

    # The page sent crops: squares around the hand, in the camera frame's pixels.
    sides = sorted(r["w"] for r in regions)
    print(f"{len(regions)} hand crops sent, sides {sides[0]}-{sides[-1]} px (median {sides[len(sides) // 2]})")
    assert len(regions) >= 10
    (x, y), photo = SMALL_AT, SMALL_SIDE
    for r in regions:
        assert (r["frame_w"], r["frame_h"]) == CAMERA and r["w"] == r["h"]
        assert CROP_MIN <= r["w"] <= 0.8 * CAMERA[1]
        assert r["x"] <= x + photo and r["x"] + r["w"] >= x and r["y"] <= y + photo and r["y"] + r["h"] >= y

    # They reached the server (which saves what it receives): whole frames scaled to 640x360,
    # crops at the camera's resolution up to 512x512.
    sizes = [Image.open(p).size for p in sorted(saved.iterdir())]
    crops = [s for s in sizes if s != (640, 360)]
    print(f"the server received {len(sizes)} frames: {len(crops)} crops, sizes {sorted(set(crops))}")
    assert len(crops) >= 10
    assert all(w == h and w <= CROP_MAX_SENT for w, h in crops), sorted(set(crops))

    # And the hands the server found in them came back in the whole frame's terms: on the photo.
    assert len(hands) >= len(crops) // 2
    centres = hands[:, :, :2].mean(axis=1) * CAMERA
    assert (centres >= (x, y)).all() and (centres <= (x + photo, y + photo)).all(), centres


# --------------------------------------------------------------------------- camera problems


REJECT = """
    navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException("refused by the test", "%s"));
"""


@pytest.mark.parametrize("init_script,expected", [
    (REJECT % "NotAllowedError", "Camera access was refused"),
    (REJECT % "NotFoundError", "No camera was found"),
    (REJECT % "NotReadableError", "another application may be using it"),
    ('Object.defineProperty(window, "isSecureContext", {get: () => false});', "only on secure pages"),
], ids=["refused", "missing", "busy", "insecure"])
def test_the_page_explains_why_there_is_no_camera(playwright, tiny_server, init_script, expected):
    browser = launch(playwright, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    try:
        page, errors = open_page(browser, tiny_server.url + "/", init_script)
        message = page.locator("#camera-message")
        message.wait_for(state="visible", timeout=10_000)
        assert expected in message.inner_text()
        if expected == "only on secure pages":
            assert "localhost" in message.inner_text() and "HTTPS" in message.inner_text()
        else:
            assert page.locator("#start-camera").is_visible()
        page.wait_for_function("() => document.getElementById('status').textContent === 'Connected'", timeout=10_000)
        assert errors == []
    finally:
        browser.close()


# --------------------------------------------------------------------------- the first look


def test_before_a_hand_appears_the_first_steps_stand_where_the_user_looks(playwright, tiny_server, tmp_path):
    # The fake camera's test pattern has no hand in it.
    browser = launch(playwright, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    try:
        page, errors = open_page(browser, tiny_server.url + "/", SERVER_MODE)
        page.wait_for_function("() => document.getElementById('fps').textContent !== '–'", timeout=15_000)
        steps = page.locator("#first-steps")
        assert steps.is_visible()
        assert "Hold one hand up" in steps.inner_text()
        box = steps.bounding_box()
        assert box is not None and box["y"] + box["height"] <= 900, f"below the fold at 1100x900: {box}"
        page.screenshot(path=str(tmp_path / "first-look.png"))
        steps.get_by_role("link", name="How to use").click()
        page.wait_for_function("() => location.hash === '#help'", timeout=5_000)
        assert errors == []
    finally:
        browser.close()


# --------------------------------------------------------------------------- reconnecting


def test_the_page_reconnects_after_a_restart_and_keeps_the_text(playwright, tiny_bundle, tmp_path):
    port = free_port()
    server = ServerProcess(tiny_bundle, port=port, log_dir=tmp_path)
    # The fake camera's test pattern has no hand, so nothing is ever committed by signing.
    with browser_on(playwright, server, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream") as browser:
        page, errors = open_page(browser, server.url + "/", SERVER_MODE +
                                 "if (!sessionStorage.getItem('seeded')) { sessionStorage.setItem('seeded', '1');"
                                 " localStorage.setItem('fingerspell.text', 'HELLO'); }")
        text = page.locator("#text")
        page.wait_for_function("() => document.getElementById('status').textContent === 'Connected'", timeout=15_000)
        page.wait_for_function("() => document.getElementById('fps').textContent !== '–'", timeout=15_000)
        assert text.inner_text() == "HELLO"

        server.stop()
        page.wait_for_function("() => document.getElementById('status').textContent.includes('reconnecting')",
                               timeout=10_000)
        page.click("#delete")  # edited while the server is down: kept in the page
        assert text.inner_text() == "HELL"

        server.start()
        page.wait_for_function("() => document.getElementById('status').textContent === 'Connected'", timeout=30_000)
        page.wait_for_function("() => document.getElementById('fps').textContent !== '–'", timeout=15_000)
        page.wait_for_timeout(500)  # frame answers carry the server's text: it must be the page's
        assert text.inner_text() == "HELL"
        page.locator("body").press("Backspace")  # answered by the server, from the text it was given
        page.wait_for_function("() => document.getElementById('text').textContent === 'HEL'", timeout=5_000)
        page.wait_for_timeout(300)
        assert text.inner_text() == "HEL"
        assert page.evaluate("localStorage.getItem('fingerspell.text')") == "HEL"
        assert errors == []


# --------------------------------------------------------------------------- /docs offline


def test_the_docs_list_the_routes_with_the_network_cut_off(playwright, tiny_server):
    """Swagger UI comes from the server itself: every request that leaves loopback is refused."""
    # Belt and braces: a proxy that is not there (Chromium never proxies loopback) and a route.
    browser = launch(playwright, "--proxy-server=http://127.0.0.1:9")
    try:
        context = browser.new_context()
        outside: list[str] = []

        def only_loopback(route):
            host = route.request.url.split("/")[2].rsplit(":", 1)[0] if "://" in route.request.url else ""
            if host in ("127.0.0.1", "localhost", "[::1]"):
                return route.continue_()
            outside.append(route.request.url)
            return route.abort("internetdisconnected")

        context.route("**/*", only_loopback)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(tiny_server.url + "/docs")
        page.wait_for_selector(".opblock", timeout=20_000)
        listed = page.locator(".opblock-summary-path").all_inner_texts()
        assert {"/predict", "/health"} <= {p.strip() for p in listed}, listed
        assert outside == [], f"/docs asked the network for {outside}"
        assert errors == [], errors
    finally:
        browser.close()
