"""User words (``vocab``): a stream's memory and the event loop's stall, an earlier revision's code against this tree's.

Three measurements, each printed as a table row for ``--base`` (``git archive REV``, unpacked in
a temporary folder; ``main`` by default) and for this working tree:

1. Word choice in this process: ``choose`` for a 38-letter word against 1,000 user words, main's
   scan with ``_distance`` against the index (``UserWords``), for near-duplicates (one or two
   letters from the word: every one a candidate) and for words three or four letters away (none).
2. A live server's memory (uvicorn in a subprocess, a scripted predictor instead of the model, so
   no MediaPipe; no English list here, the stall's server loads it): RSS before a stream, after that stream's worst ``vocab``,
   and 1 s after it closes (no garbage collection asked for). Main's worst is ``--essays`` words
   of 1.9 MB each (the probe sent 1,000; 200 by default on a shared machine); this tree's is
   1,000 words of 64 letters, the most it accepts (the essays are refused: the row says so).
3. The event loop's stall: stream A sends 1,000 near-duplicates of a 38-letter word, signs that
   word (scripted letter frames at 30 frames/s, ~16 s) and ends it with ``space``, while another
   client polls ``/health``: the slowest ``/health`` answer while the word is chosen, against
   the median before.

    python bench/bench_vocab.py --base REV     # ~2 minutes; REV: a revision before the user-word limits
    python bench/bench_vocab.py --essays 1000  # the base's worst as the probe sent it (1.9 GB of words)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the live-server helpers the tests use
if "--serve" not in sys.argv:  # a server takes the code its PYTHONPATH names (main's or this tree's)
    sys.path.insert(0, str(ROOT / "src"))

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTER_MS = 420  # each scripted letter held this long
FPS = 30


def word_of(n: int, seed: int = 0) -> str:
    rng, out = random.Random(seed), ""
    while len(out) < n:
        out += rng.choice([c for c in LETTERS if not out.endswith(c)])
    return out


def variants(word: str, n: int, changes: tuple[int, int], seed: int = 0) -> list[str]:
    """``n`` distinct words with ``changes`` letters of ``word`` replaced (substitutions)."""
    rng, out = random.Random(seed), set()
    while len(out) < n:
        w = list(word)
        for i in rng.sample(range(len(w)), rng.randint(*changes)):
            w[i] = rng.choice([c for c in LETTERS if c != word[i]])
        out.add("".join(w))
    return sorted(out)


# --------------------------------------------------------------------------- a scripted server


def serve(port: int, lexicon: bool) -> None:
    """The app with a predictor that reads each frame's letter from its bytes (``b"L:A"``)."""
    import uvicorn

    from fingerspell.config import ServeParams
    from fingerspell.decoding import Position
    from fingerspell.predictor import Prediction
    from fingerspell.server import create_app

    def predict(data: bytes) -> Prediction:
        letter = data[2:3].decode() if data.startswith(b"L:") else "nothing"
        top = [(letter, 0.9), ("Q", 0.07)] if letter != "nothing" else [("nothing", 1.0)]
        return Prediction(letter, top[0][1], top, None, {"total": 0.0})

    class Stream:
        position = Position(0.5, 0.5, 0.2)

        def predict(self, rgb, *args, **kwargs):
            return predict(b"")

        def predict_bytes(self, data, *args, **kwargs):
            return predict(data)

        def close(self):
            pass

    class Scripted:
        kind, labels, hand_model_sha256 = "landmarks", list(LETTERS) + ["nothing"], "0" * 64

        def stream(self):
            return Stream()

        def predict_bytes(self, data, *args, **kwargs):
            return predict(data)

        def info(self):
            return {"kind": self.kind, "labels": self.labels, "bundle": "scripted",
                    "hand_model_sha256": self.hand_model_sha256, "metrics": {}}

        def close(self):
            pass

    app = create_app(predictor=Scripted(), params=ServeParams(lexicon=lexicon, max_connections=4))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class Server:
    def __init__(self, src: Path, lexicon: bool = False):
        from _live import free_port

        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(src), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port)] + ["--lexicon"] * lexicon, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server on {src} did not start: {self.proc.stderr.read().decode()[-2000:]}")

    def health(self) -> float:
        t = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=30) as r:
            r.read()
        return (time.perf_counter() - t) * 1000

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def socket(self):
        from websockets.sync.client import connect

        return connect(f"ws://127.0.0.1:{self.port}/ws", max_size=None, open_timeout=30)

    def wait_closed(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=30) as r:
                if json.loads(r.read())["open_streams"] == 0:
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def command(ws, doc) -> dict:
    ws.send(json.dumps(doc))
    return json.loads(ws.recv(timeout=120))


# --------------------------------------------------------------------------- the measurements


def load_choose(src: Path):
    """``choose`` and ``UserWords`` (where there is one) from ``src``'s channel.py (lexicon.py in
    trees before the channel had a module of its own), beside this tree's package (its relative
    imports take this tree's config and lexicon)."""
    folder = src / "fingerspell" / "decoding"
    path = folder / "channel.py" if (folder / "channel.py").is_file() else folder / "lexicon.py"
    spec = importlib.util.spec_from_file_location(f"fingerspell.decoding._lexicon_{abs(hash(str(src)))}", path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "fingerspell.decoding"
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def choice_ms(module, words: list[str], word: str) -> tuple[float, str]:
    from fingerspell.config import DecoderParams

    evidence = [module.Evidence(c, {c: 0.6, "Q": 0.3, "X": 0.1}, 400.0, i * 450.0, i * 450.0 + 400.0)
                for i, c in enumerate(word)]
    vocab = module.UserWords(words) if hasattr(module, "UserWords") else dict.fromkeys(words, 1)
    t = time.perf_counter()
    chosen = module.choose(evidence, 400.0, None, DecoderParams(), vocab).chosen
    return (time.perf_counter() - t) * 1000, chosen


def memory(server: Server, vocab: list[list[str]]) -> dict:
    before = server.rss_mb()
    ws = server.socket()  # closed explicitly below: the table is about what the close lets go of
    refused = 0
    for words in vocab:
        answer = command(ws, {"type": "vocab", "words": words})
        refused += answer["type"] == "error"
        if answer["type"] == "error" and refused == 1:
            first_error = answer["error"]
    after = server.rss_mb()
    ws.close()
    server.wait_closed()
    time.sleep(1.0)
    closed = server.rss_mb()
    out = {"rss_before": before, "rss_vocab": after, "rss_closed": closed, "refused": refused}
    if refused:
        out["error"] = first_error
    return out


def stall(server: Server, name: str) -> dict:
    ws = server.socket()
    command(ws, {"type": "vocab", "words": variants(name, 999, (1, 2)) + [name]})
    step = 1.0 / FPS
    t = time.perf_counter()
    for ch in name:
        for _ in range(round(LETTER_MS / 1000 * FPS)):
            ws.send(b"L:" + ch.encode())
            json.loads(ws.recv(timeout=60))
            t += step
            time.sleep(max(0.0, t - time.perf_counter()))
    base = [server.health() for _ in range(20)]
    polls, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            started = time.perf_counter()
            polls.append((started, server.health()))
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.1)
    sent = time.perf_counter()
    state = command(ws, {"type": "space"})
    answered = time.perf_counter()
    time.sleep(0.1)
    stop.set()
    poller.join()
    ws.close()
    during = [ms for started, ms in polls if started <= answered and started + ms / 1000 >= sent] or [0.0]
    return {"word_end_ms": (answered - sent) * 1000, "health_median_ms": statistics.median(base),
            "health_max_ms": max(during), "polls": len(during), "chosen": state["spelling"]["text"].strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="main", help="the git revision to compare with (default: %(default)s)")
    ap.add_argument("--essays", type=int, default=200, help="1.9 MB words the base's stream gets (the probe: 1000)")
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--lexicon", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve, args.lexicon)

    tmp = tempfile.TemporaryDirectory(prefix="bench-vocab-main-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "src"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(tmp.name, filter="data")
    trees = {args.base[:10]: Path(tmp.name) / "src", "this tree": ROOT / "src"}
    name = word_of(38)

    print("\n1. word choice: a 38-letter word against 1,000 user words (in this process, ms)")
    print(f"{'code':<10} {'near-duplicates':>16} {'3-4 letters away':>17}")
    for label, src in trees.items():
        module = load_choose(src)
        near, chosen = choice_ms(module, variants(name, 1000, (1, 2)), name)
        far, _ = choice_ms(module, variants(name, 1000, (3, 4)), name)
        print(f"{label:<10} {near:>16.0f} {far:>17.0f}")

    # 1.9 MB of letters each, all distinct
    essay = [["A" * 1_900_000 + "".join(LETTERS[i // 26 ** k % 26] for k in range(4))] for i in range(args.essays)]
    names = [["".join(random.Random(i).choice(LETTERS) for _ in range(64)) for i in range(k, k + 1000)]
             for k in (0,)]
    print("\n2. server memory (MB RSS; scripted predictor, no model)")
    print(f"{'code':<10} {'vocab sent':<26} {'before':>7} {'after vocab':>12} {'1 s after close':>16}  refused")
    for label, src in trees.items():
        for what, vocab in ((f"{args.essays} x 1.9 MB words", essay), ("1,000 x 64 letters", names)):
            server = Server(src)
            try:
                m = memory(server, vocab)
            finally:
                server.stop()
            note = f"{m['refused']} ({m['error'][:60]}...)" if m["refused"] else "0"
            print(f"{label:<10} {what:<26} {m['rss_before']:>7.0f} {m['rss_vocab']:>12.0f} {m['rss_closed']:>16.0f}  {note}")

    print("\n3. event loop while a 38-letter word ends against 1,000 near-duplicate user words (ms)")
    print(f"{'code':<10} {'word end':>9} {'/health median before':>22} {'/health slowest during':>23} {'polls':>6}  chosen")
    for label, src in trees.items():
        server = Server(src, lexicon=True)  # as the probe ran it; the list loads while the word is signed
        try:
            s = stall(server, name)
        finally:
            server.stop()
        print(f"{label:<10} {s['word_end_ms']:>9.0f} {s['health_median_ms']:>22.1f} {s['health_max_ms']:>23.1f} "
              f"{s['polls']:>6}  {'the word' if s['chosen'] == name else s['chosen']}")


if __name__ == "__main__":
    main()
