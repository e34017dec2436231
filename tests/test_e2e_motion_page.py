"""The page draws the fingertip's path while a J or Z is read from motion (a real Chromium).

The server's side of a J or Z (the path in each answer) is tested in ``test_motion.py`` and
``test_device.py``; here the page's WebSocket is answered by the test itself (Playwright's
``route_web_socket``), with answers that carry a path and answers that do not, and the overlay's
pixels are read where the path runs.
"""

from __future__ import annotations

import json
import re

import pytest

from _live import ServerProcess
from test_e2e_browser import SERVER_MODE, browser_on, open_page, playwright  # noqa: F401

pytestmark = pytest.mark.e2e

PATH = [[0.2, 0.3], [0.5, 0.3], [0.2, 0.7], [0.5, 0.7]]  # a Z, as fractions of the frame
STATE = {"text": "", "pending": None, "progress": 0.0, "word": None, "choice": None, "committed": []}
PIXEL = """([x, y]) => {
  const c = document.getElementById('overlay');
  return Array.from(c.getContext('2d').getImageData(Math.round(x * c.width), Math.round(y * c.height), 1, 1).data);
}"""


def prediction(path: list | None) -> dict:
    out = {"type": "prediction", "frame": 1, "letter": "Z", "confidence": 0.9, "top": [{"label": "Z", "score": 0.9}],
           "hand": None, "timings_ms": {"total": 1.0}, "spelling": STATE, "mirror": False}
    if path:
        out["path"] = path
    return out


def test_the_page_draws_the_fingertip_path_of_a_j_or_z_and_clears_it_after(playwright, tiny_bundle, tmp_path):  # noqa: F811
    with_path = {"on": True}

    def answer(route):
        def on_message(message):
            if isinstance(message, bytes) or json.loads(message).get("type") == "hand":
                route.send(json.dumps(prediction(PATH if with_path["on"] else None)))
            else:
                route.send(json.dumps({"type": "state", "spelling": STATE, "mirror": False, "mode": "server"}))
        route.on_message(on_message)

    server = ServerProcess(tiny_bundle, log_dir=tmp_path)
    with browser_on(playwright, server, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream") as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.add_init_script(SERVER_MODE)
        page.route_web_socket(re.compile(r".*/ws$"), answer)
        page.goto(server.url + "/")
        page.wait_for_function("() => document.getElementById('letter').textContent.includes('Z')", timeout=30_000)
        midway = [(PATH[0][0] + PATH[1][0]) / 2, PATH[0][1]]  # on the Z's top stroke
        page.wait_for_function(f"() => ({PIXEL})({json.dumps(midway)})[3] > 0", timeout=10_000)
        r, g, b, a = page.evaluate(PIXEL, midway)
        assert (r, g, b) == (255, 196, 0) and a > 60, (r, g, b, a)  # the path's amber, faded: its oldest stroke
        assert page.evaluate(PIXEL, [0.8, 0.1])[3] == 0  # and nothing where the path is not
        with_path["on"] = False  # the movement is over: the next answers carry no path
        page.wait_for_function(f"() => ({PIXEL})({json.dumps(midway)})[3] === 0", timeout=10_000)
        assert errors == []
