"""Live-server helpers for tests and the bench: a server in a subprocess, and Y4M clips for Chromium's fake camera."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
FRAME_SIZE = (640, 480)


def letterbox(path_or_image, size=FRAME_SIZE, fill=(0, 0, 0)) -> np.ndarray:
    """An RGB uint8 frame of ``size`` (w, h): the image scaled to fit, centred, borders filled."""
    img = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    img = ImageOps.exif_transpose(img).convert("RGB")
    scale = min(size[0] / img.width, size[1] / img.height)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
    canvas = Image.new("RGB", size, fill)
    canvas.paste(img, ((size[0] - img.width) // 2, (size[1] - img.height) // 2))
    return np.asarray(canvas)


def blank_frame(size=FRAME_SIZE, colour=(200, 196, 188)) -> np.ndarray:
    """A plain wall: no hand, so the spelling decoder releases the letter before it."""
    return np.full((size[1], size[0], 3), colour, dtype=np.uint8)


def scan_bomb(side: int, scans: int) -> bytes:
    """A ``side`` x ``side`` progressive JPEG of ``scans`` scans: Pillow's own 10, then its last
    (a refinement of the luma's AC coefficients, ~12-33 bytes) repeated. Each scan is a pass over
    the whole image, so the decoding work grows with ``scans`` while the file barely does."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (128, 100, 90)).save(buf, "JPEG", quality=75, progressive=True)
    data = buf.getvalue()
    last = data[data.rindex(b"\xff\xda"):-2]  # the last scan, up to the end-of-image marker
    return data[:-2] + last * (scans - data.count(b"\xff\xda")) + data[-2:]


def rgb_to_ycbcr420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range (Y 16-235, Cb/Cr 16-240), chroma averaged over 2x2 blocks.

    Chromium reads Y4M as limited range; full-range values would come out washed out.
    """
    x = rgb.astype(np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    h, w = y.shape

    def sub(c):
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    to8 = lambda c: np.clip(np.rint(c), 0, 255).astype(np.uint8)  # noqa: E731
    return to8(y), to8(sub(cb)), to8(sub(cr))


def write_y4m(path: Path, frames, fps: int) -> Path:
    """Write RGB frames (all one even size) as a 4:2:0 Y4M clip at ``fps`` frames per second."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    if w % 2 or h % 2:
        raise ValueError(f"Y4M 4:2:0 needs an even frame size, got {w}x{h}")
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for frame in frames:
            if frame.shape[:2] != (h, w):
                raise ValueError("all frames must have one size")
            y, cb, cr = rgb_to_ycbcr420(frame)
            f.write(b"FRAME\n")
            f.write(y.tobytes())
            f.write(cb.tobytes())
            f.write(cr.tobytes())
    return path


def read_y4m(path: Path) -> tuple[dict, list[np.ndarray]]:
    """Header fields and Y planes (for the helper's own test)."""
    data = Path(path).read_bytes()
    header, _, rest = data.partition(b"\n")
    fields = {tok[:1].decode(): tok[1:].decode() for tok in header.split()[1:]}
    w, h = int(fields["W"]), int(fields["H"])
    size = w * h * 3 // 2
    planes, pos = [], 0
    while pos < len(rest):
        assert rest[pos:pos + 6] == b"FRAME\n"
        pos += 6
        planes.append(np.frombuffer(rest[pos:pos + w * h], dtype=np.uint8).reshape(h, w))
        pos += size
    return fields, planes


# --------------------------------------------------------------------------- a real server


def upgrade(port: int, rcvbuf: int | None = None, host: str | None = None,
            origin: str | None = None) -> tuple[socket.socket, bytes]:
    """A raw socket asking for /ws, and the head of the answer (what follows it is left unread)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: it sets the window
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Origin: {origin}\r\n" if origin else ""
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: {f'127.0.0.1:{port}' if host is None else host}\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)  # byte by byte: nothing after the head is taken from the socket
        if not chunk:
            break
        head += chunk
    return s, head


def seconds_until_closed(s: socket.socket, pieces, interval: float, limit: float) -> float | None:
    """Send ``pieces`` one every ``interval`` s; seconds until the server closed, or None within ``limit``."""
    s.settimeout(interval)
    t = time.monotonic()
    for piece in pieces:
        if time.monotonic() - t > limit:
            return None
        try:
            s.sendall(piece)
            if s.recv(100) == b"":
                return time.monotonic() - t
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``fingerspell.serve.run`` in a subprocess on a free port; logs go to a file.

    Use as a context manager: it waits until /health answers and stops the server on exit.
    """

    def __init__(self, model: Path | str | None, port: int | None = None, env: dict | None = None,
                 startup_timeout: float = 60.0, log_dir: Path | None = None, workers: int = 1):
        """``log_dir``: where ``server.log`` goes (a test's ``tmp_path``); None: a private temporary
        folder, removed with everything in it when the object is garbage-collected. ``workers``:
        server processes on the port (``fingerspell serve --workers``)."""
        self.model = model
        self.workers = workers
        self.port = port or free_port()
        self.env = env or {}
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        if log_dir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="fingerspell-server-")
            log_dir = Path(self._own_dir.name)
        self.log_path = Path(log_dir) / f"server-{self.port}.log"
        self.log_path.touch()
        self.started_in: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        code = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr); "
                "from fingerspell.serve import run; "
                f"run('127.0.0.1', {self.port}, {str(self.model)!r} if {self.model is not None} else None, "
                f"log_level='info', workers={self.workers})")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "PYTHONUNBUFFERED": "1", **self.env}
        t = time.monotonic()
        with open(self.log_path, "ab") as log:  # appended: a restarted server keeps the old log
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT,
                                         env=env, cwd=ROOT)
        self.wait_healthy()
        self.started_in = time.monotonic() - t
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not up after {self.startup_timeout} s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def logs(self) -> str:
        text = self.log_path.read_text(errors="replace")
        # MediaPipe's and LiteRT's start-up chatter hides what matters.
        keep = [line for line in text.splitlines() if not line.startswith(("I0000", "W0000", "INFO: [", "INFO: Created"))]
        return "\n".join(keep[-200:])

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class PeakRss:
    """The highest resident memory of a process (a psutil.Process) while the block runs.

    Sampled every ``interval`` seconds; the peak carries over if the object is used again.
    """

    def __init__(self, ps, interval: float = 0.05):
        self.ps, self.interval, self.mb = ps, interval, 0.0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self.mb = max(self.mb, self.ps.memory_info().rss / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
