"""The Teach panel's parts that need no browser: learning as you sign (learn.js, run by Node),
the page's markup under its Content-Security-Policy, and the routes the page calls.

The browser tests are ``test_e2e_teach.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from _live import ROOT

STATIC = ROOT / "src" / "fingerspell" / "server" / "static"
NODE = shutil.which("node")

PRELUDE = """
import { WordLearner, sampleOf } from "./learn.js";
import { labelProblem } from "./teach.js";
const hand = (x) => ({ landmarks: Array.from({ length: 21 }, () => [x, 0.5, 0]), handedness: "Right",
                       image_size: [640, 480] });
// events: ["f", label, score, x] a frame's top label and hand; ["s", state] the text state shown.
// Returns what was posted: for each kept word, [label, the x of its hand] per letter.
function run(events) {
  const learner = new WordLearner();
  const posted = [];
  for (const e of events) {
    if (e[0] === "f") learner.frame(e[1], e[2], hand(e[3]));
    else {
      const takes = learner.spelling(e[1]);
      if (takes) posted.push(takes.map((t) => [t.label, t.hands[0].landmarks[0][0], t.hands.length]));
    }
  }
  return posted;
}
"""


def js(tmp_path, expression: str):
    """The JSON value of ``expression``, evaluated by Node beside copies of the page's modules."""
    if NODE is None:
        pytest.skip("Node.js is not installed: learn.js is tested in the browser tests only")
    for module in STATIC.glob("*.js"):
        shutil.copy(module, tmp_path / module.name)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    script = tmp_path / "case.js"
    script.write_text(PRELUDE + f"console.log(JSON.stringify({expression}));\n")
    done = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def state(text: str, letters: str | None = None, signed: str | None = None, chosen: str | None = None) -> list:
    """A words-decoder state: the text, the word being signed, the last word's readings."""
    choice = {"signed": signed, "chosen": chosen, "options": [chosen, signed]} if chosen else None
    return ["s", {"text": text, "word": {"letters": list(letters)} if letters else None, "choice": choice}]


def f(label: str, score: float, x: float) -> list:
    return ["f", label, score, x]


# CAB signed: each letter's best frame (A's second, better one), then the pause ends the word.
CAB = [f("C", 0.9, 0.1), state("", "C"), f("A", 0.8, 0.2), f("A", 0.95, 0.3), state("", "CA"), f("N", 0.6, 0.9),
       f("B", 0.7, 0.4), state("", "CAB"), state("CAB ", signed="CAB", chosen="CAB")]
NEXT = [f("H", 0.9, 0.5), state("CAB ", "H")]  # the next word starts


# --------------------------------------------------------------------------- learning as you sign


def test_a_kept_word_gives_its_letters_the_best_hand_each(tmp_path):
    assert js(tmp_path, f"run({json.dumps(CAB + NEXT)})") == [[["C", 0.1, 1], ["A", 0.3, 1], ["B", 0.4, 1]]]


def test_nothing_is_posted_before_the_next_word_starts(tmp_path):
    assert js(tmp_path, f"run({json.dumps(CAB + [f('H', 0.9, 0.5)])})") == []


@pytest.mark.parametrize("undo", [
    [state("CAB"), state("CA")],  # Backspace into the word
    [state("")],  # Clear
    [state("DOG ")],  # the text replaced (set_text)
], ids=["backspace", "clear", "replaced"])
def test_a_word_undone_before_the_next_one_gives_nothing(tmp_path, undo):
    assert js(tmp_path, f"run({json.dumps(CAB + undo + [f('H', 0.9, 0.5), state(undo[-1][1]['text'], 'H')])})") == []


def test_deleting_only_the_space_after_a_word_keeps_it(tmp_path):
    events = CAB + [state("CAB"), f("H", 0.9, 0.5), state("CAB", "H")]
    assert js(tmp_path, f"run({json.dumps(events)})") == [[["C", 0.1, 1], ["A", 0.3, 1], ["B", 0.4, 1]]]


def test_a_picked_reading_is_the_kept_word_and_only_its_letters_learn(tmp_path):
    events = CAB + [state("CAT ", signed="CAB", chosen="CAT"), f("H", 0.9, 0.5), state("CAT ", "H")]
    assert js(tmp_path, f"run({json.dumps(events)})") == [[["C", 0.1, 1], ["A", 0.3, 1]]]  # no frame had T on top


def test_a_custom_sign_keeps_the_word_before_it_and_learns_as_itself_not_its_letters(tmp_path):
    events = CAB + [f("A", 0.99, 0.6), f("ANNA", 0.9, 0.7), state("CAB ANNA "), f("H", 0.9, 0.5),
                    state("CAB ANNA ", "H")]
    assert js(tmp_path, f"run({json.dumps(events)})") == [[["C", 0.1, 1], ["A", 0.3, 1], ["B", 0.4, 1]],
                                                         [["ANNA", 0.7, 1]]]


def test_the_letters_decoder_ends_words_in_its_text(tmp_path):
    events = [f("H", 0.9, 0.1), {"text": "H"}, f("I", 0.8, 0.2), {"text": "HI"}, {"text": "HI "},
              f("O", 0.9, 0.3), {"text": "HI O"}]
    events = [e if isinstance(e, list) else ["s", e] for e in events]
    assert js(tmp_path, f"run({json.dumps(events)})") == [[["H", 0.1, 1], ["I", 0.2, 1]]]


def test_a_word_whose_letters_were_never_on_top_gives_nothing(tmp_path):
    events = [f("X", 0.9, 0.1), state("", "H"), state("HI ", signed="HI", chosen="HI"), state("HI ", "O")]
    assert js(tmp_path, f"run({json.dumps(events)})") == []


def test_a_mirrored_answer_is_stored_as_the_model_saw_it(tmp_path):
    sample = js(tmp_path, "sampleOf({landmarks: [[0.25, 0.5, 0.1]], handedness: 'Left', score: 0.9}, true, [1280, 720])")
    assert sample == {"landmarks": [[0.75, 0.5, 0.1]], "handedness": "Left", "image_size": [1280, 720]}
    plain = js(tmp_path, "sampleOf({landmarks: [[0.25, 0.5, 0.1]], handedness: 'Right'}, false, [640, 480])")
    assert plain["landmarks"] == [[0.25, 0.5, 0.1]]


@pytest.mark.parametrize("label,problem", [
    ("Anna", ""), ("G", ""), ("", "Type"), ("a/b", "slashes"), ("a\\\\b", "slashes"), ("..", "slashes"),
    ("x" * 65, "at most 64"),
])
def test_a_typed_label_is_checked_before_a_take(tmp_path, label, problem):
    said = js(tmp_path, f"labelProblem({json.dumps(label)})")
    assert (said == "") if not problem else (problem in said), said


# --------------------------------------------------------------------------- the markup and the routes


def test_the_page_holds_no_inline_script_style_or_handler_that_its_csp_would_refuse():
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    for module in STATIC.glob("*.js"):
        code = module.read_text(encoding="utf-8")
        assert "innerHTML" not in code and "eval(" not in code and "new Function" not in code, module.name
        assert not re.search(r"setAttribute\(\s*[\"']style", code), module.name


@pytest.mark.parametrize("module", ["teach.js", "teach_profile.js"])
def test_every_element_the_teach_panel_uses_is_in_the_page(module):
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'\bid="([\w-]+)"', html))
    used = set(re.findall(r'\$\("([\w-]+)"\)', (STATIC / module).read_text(encoding="utf-8")))
    assert used and used <= ids, used - ids


def test_the_routes_the_page_calls_are_the_servers():
    profiles = pytest.importorskip("fingerspell.server.profiles", reason="the server's profile routes are not here")
    served = {(method, route.path) for route in profiles.router.routes for method in route.methods}
    called = set(re.findall(r'request\("([A-Z]+)", `?"?(/[\w/]+)', (STATIC / "profile.js").read_text(encoding="utf-8")))
    assert len(called) >= 10 and called <= served, called - served
