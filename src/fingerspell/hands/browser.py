"""The browser's hand landmarker: ``@mediapipe/tasks-vision`` from the npm registry, obtained,
verified and cached beside the hand model, as ``ensure_hand_model`` does for the ``.task``.

The page runs MediaPipe's hand landmarker itself (on-device mode) from files its own server
serves: the ES module ``vision_bundle.mjs`` and the wasm builds with and without SIMD. They come
from one pinned release of the npm package, fetched with npm's own client (``npm pack``, which
honours the user's npm settings and mirror), checked against the registry's ``dist.integrity``
(sha512), and only those files are kept, each checked against its pinned sha256. Nothing of it
is committed. Without npm, the same tarball is downloaded from the registry over HTTPS (checked
the same way). Where neither can reach it, a tarball fetched elsewhere is taken instead
(``fingerspell setup --tasks-vision FILE.tgz``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from ..errors import HandModelError
from .model import cache_dir, sha256_file

log = logging.getLogger(__name__)

PACKAGE = "@mediapipe/tasks-vision"
# 0.10.x: the 1.x releases post usage metrics to a remote endpoint every 60 s; 0.10.x do not.
VERSION = "0.10.35"
INTEGRITY = "sha512-HOvadwVRE6JC+45nyYhmnywnr5h/J8KZvOeUNVOG9q/0875pZgItznFB9bRTvLc264YSJqiZ1NsIpCStJw/egg=="
#: the files the page needs (path inside the package) -> sha256
FILES = {
    "vision_bundle.mjs": "55d7ab624fbb70dcc5adc4ae6d7ea9cfcb569139d3dbfbf2b1deafcb966bc0fe",
    "wasm/vision_wasm_internal.js": "e7fd9858e8e8f221d9b96eddc11f8e077f263e0b7bbd79d3cbe882b134274f8c",
    "wasm/vision_wasm_internal.wasm": "6a5c64584c2ab61c763b6e204afbdbc7ce1caf7f5216187322bca8df94f646bc",
    "wasm/vision_wasm_nosimd_internal.js": "438d1fe8ff7f4d946025bc211c291543c037d8a3785ed4eee60f1f521b236296",
    "wasm/vision_wasm_nosimd_internal.wasm": "8a3092d34c79d3f57e6ba8592105e8a90f6b07c27891ffecd14cca428bfd3e31",
    "package.json": "5c96247445e57a2d087758114b116fed7d46eb401342aee19b1acc56d36fe707",  # name, version, licence
}
FOLDER = f"tasks-vision-{VERSION}"
DEFAULT_REGISTRY = "https://registry.npmjs.org/"
MAX_TARBALL = 64 * 1024 * 1024  # the release is 10 MB; a registry answer larger than this is not it
SPEC = f"{PACKAGE}@{VERSION}"


def by_hand(folder: Path) -> str:
    """How to place the assets by hand, in one sentence."""
    return (f"run `npm pack {SPEC}` where the npm registry is reachable and give the file to "
            f"`fingerspell setup --tasks-vision tasks-vision-{VERSION}.tgz` (it is checked, then its files go to "
            f"{folder})")


def check_integrity(blob: bytes, integrity: str | None = None) -> None:
    """Raise HandModelError unless ``blob`` has the Subresource Integrity hash ``integrity``
    (None: the pinned release's)."""
    algorithm, _, expected = (integrity or INTEGRITY).partition("-")
    got = base64.b64encode(hashlib.new(algorithm, blob).digest()).decode("ascii")
    if got != expected:
        raise HandModelError(f"the {SPEC} tarball fails its integrity check ({algorithm} {got[:16]}..., expected "
                             f"{expected[:16]}...): it is not the pinned release")


def missing_files(folder: Path) -> list[str]:
    """The pinned files that ``folder`` lacks or holds with other contents."""
    return [name for name, digest in FILES.items()
            if not (folder / name).is_file() or sha256_file(folder / name) != digest]


def registry() -> str:
    """The npm registry's address: npm's own setting where the environment gives it (a mirror)."""
    url = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or DEFAULT_REGISTRY
    return url if url.endswith("/") else url + "/"


def from_registry(timeout: float) -> bytes:
    """The pinned tarball straight from the registry over HTTPS, for a machine without npm."""
    url = f"{registry()}{PACKAGE}/-/{PACKAGE.split('/')[1]}-{VERSION}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (the registry's https URL)
            blob = resp.read(MAX_TARBALL + 1)
    except (OSError, ValueError) as exc:
        raise HandModelError(f"cannot download {url} ({getattr(exc, 'reason', None) or exc})") from None
    if len(blob) > MAX_TARBALL:
        raise HandModelError(f"{url} is over {MAX_TARBALL // 2**20} MB: not the pinned release")
    return blob


def from_npm(timeout: float) -> bytes:
    """The pinned tarball, by npm's own client (``npm pack``)."""
    npm = shutil.which("npm")
    if npm is None:
        raise HandModelError("npm is not installed")
    with tempfile.TemporaryDirectory(prefix="fingerspell-npm-") as tmp:
        proc = subprocess.run([npm, "pack", SPEC, "--pack-destination", tmp, "--silent"], capture_output=True,
                              text=True, timeout=max(timeout, 60) * 4, cwd=tmp)
        packed = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not packed:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise HandModelError(f"npm pack {SPEC} failed: {last[0]}")
        return packed[0].read_bytes()


def _check_ours(path: Path) -> None:
    """Raise HandModelError where ``path`` exists and holds anything but the pinned files (what
    this module writes there): a folder to be replaced must not take a user's files with it."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise HandModelError(f"{path} is not a folder fingerspell made: move it away, then run `fingerspell setup`")
    wasm = {str(Path(name).parent) for name in FILES} - {"."}
    for item in path.rglob("*"):
        name = item.relative_to(path).as_posix()
        if name not in FILES and not (item.is_dir() and not item.is_symlink() and name in wasm):
            raise HandModelError(f"{path} holds {name}, which fingerspell did not put there: move it away, "
                                 "then run `fingerspell setup`")


def _unpack(blob: bytes, folder: Path) -> Path:
    """The pinned files of the tarball ``blob`` into ``folder`` (replaced whole, atomically).

    Raises:
        HandModelError: the tarball is not the pinned release, or ``folder`` (or the ``.old``
            beside it) holds files this module did not write there; nothing is changed.
    """
    check_integrity(blob)
    old = folder.with_name(folder.name + ".old")
    for path in (folder, old):
        _check_ours(path)
    members = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for name in FILES:
            member = tar.getmember(f"package/{name}")  # read by name: no path from the archive is written
            data = tar.extractfile(member).read()
            if hashlib.sha256(data).hexdigest() != FILES[name]:
                raise HandModelError(f"{name} in the {SPEC} tarball fails its sha256 check")
            members[name] = data
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tasks-vision-", dir=folder.parent))
    try:
        staging.chmod(0o755)  # as readable as the hand model beside it
        for name, data in members.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        shutil.rmtree(old, ignore_errors=True)  # a replaced copy a crash left (checked above)
        if folder.exists():
            os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("browser hand landmarker %s cached at %s", SPEC, folder)
    return folder


def ensure_browser_assets(cache: str | os.PathLike | None = None, *, download: bool = True,
                          tarball: str | os.PathLike | None = None, timeout: float = 15.0) -> Path:
    """The folder of the page's hand-landmarker files, verified; obtained first where needed.

    Args:
        cache: the cache folder (None: ``$FINGERSPELL_CACHE_DIR`` or the user cache).
        download: whether to fetch them (``npm pack``) when they are not cached.
        tarball: a ``.tgz`` of the pinned release to take them from (checked like a download).
        timeout: seconds for the fetch, roughly.

    Raises:
        HandModelError: they are not cached and could not be obtained; the message says how to
            place them by hand.
    """
    folder = cache_dir(cache) / FOLDER
    if tarball is not None:
        try:
            blob = Path(tarball).read_bytes()
        except OSError as exc:
            raise HandModelError(f"cannot read {tarball} ({exc.strerror})") from None
        return _unpack(blob, folder)
    wrong = missing_files(folder)
    if not wrong:
        return folder
    if folder.exists():
        log.warning("the cached browser hand landmarker in %s lacks or fails %s; obtaining it again", folder,
                    ", ".join(wrong))
    if not download:
        raise HandModelError(f"the page's hand landmarker ({SPEC}) is not in {folder}: run `fingerspell setup`")
    failures = []
    for fetch in (from_npm, from_registry):  # npm first: it honours the user's npm settings and proxy
        try:
            return _unpack(fetch(timeout), folder)
        except (OSError, HandModelError, tarfile.TarError, KeyError, subprocess.SubprocessError) as exc:
            failures.append(str(exc))
    raise HandModelError(f"could not obtain the page's hand landmarker ({'; '.join(failures)}); {by_hand(folder)}")
