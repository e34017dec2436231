"""Save and load model bundles. The only code that knows a bundle's files (``meta.py``: its schema
and older versions).

A bundle is one self-describing folder::

    bundle.json     format version, kind, labels in output order, preprocessing, hand-model
                    sha256, resolved config, metrics summary, source commit (``BundleMeta``)
    model.keras     the Keras model, for retraining (optional for serving)
    model.tflite    the serving export, run with LiteRT - no TensorFlow needed
    metrics.json    full evaluation figures
    plots/*.png     training curves, confusion matrix
    MODEL_CARD.md   data, splits and figures in prose
    anchors.jsonl   a few training hands of each label (landmark records), for teaching
    personal.npz    a personal model's head over model.tflite (``teach``; ``personal`` in bundle.json)
    KIND.tflite     a second recogniser's serving export, KIND.keras beside it optional
                    (``BundleMeta.extra``; meta.py says how a second recogniser is carried)

``load_meta`` reads bundle.json into a ``BundleMeta`` of today's schema, an older bundle
upgraded, every field validated. A bundle is written only into a new or empty folder, or over a
bundle that holds nothing but a bundle's files (``check_target``): never over anything else.
Bundles are written to a temporary sibling folder and moved into place, so an interrupted save
leaves the previous bundle intact (a writer killed between moving the old bundle aside and the
new one in leaves the old one at ``.NAME.old-PID``; loading puts it back). No pickle anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from ..errors import BundleError, OutputFolderError
from ..outputs import check_folder
from .meta import EXTRA_SUFFIXES, FORMAT_VERSION, BundleMeta, ExtraModel, extra_names

__all__ = ["FORMAT_VERSION", "EXTRA_SUFFIXES", "BundleMeta", "ExtraModel", "extra_names", "META", "KERAS",
           "TFLITE", "METRICS", "CARD", "PLOTS", "PERSONAL", "ANCHORS", "NAMES", "DEFAULT_BUNDLE", "resolve", "load_meta",
           "check_target", "write_bundle", "read_json"]

META = "bundle.json"
KERAS = "model.keras"
TFLITE = "model.tflite"
METRICS = "metrics.json"
CARD = "MODEL_CARD.md"
PLOTS = "plots"
PERSONAL = "personal.npz"  # a personal model's head over model.tflite (teach/personal.py)
ANCHORS = "anchors.jsonl"  # a few training hands a label, landmark records: what teaching keeps for labels not taught
NAMES = (META, KERAS, TFLITE, METRICS, CARD, PLOTS, PERSONAL, ANCHORS)  # what a bundle folder may hold, besides extra_names()
DEFAULT_BUNDLE = Path(__file__).parents[1] / "models" / "default"

log = logging.getLogger(__name__)


def resolve(path: str | os.PathLike | None) -> Path:
    """The bundle folder for ``path``; None means the bundled default model."""
    return Path(path).expanduser() if path else DEFAULT_BUNDLE


def load_meta(path: str | os.PathLike | None) -> BundleMeta:
    """Read ``bundle.json``: upgraded to today's schema and validated (``BundleMeta.from_json``).

    Raises:
        BundleError: missing folder or file, bad JSON, any field ``BundleMeta.from_json``
            refuses, or a serving export (the model's or an extra recogniser's) missing.
    """
    folder = resolve(path)
    meta_path = folder / META
    if not folder.exists():
        _recover(folder)
    if not folder.is_dir():
        raise BundleError(f"model bundle {folder} does not exist (give --model a folder written by `fingerspell train`)")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{meta_path} is missing: {folder} is not a model bundle") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{meta_path} is corrupt ({exc}); retrain or restore the bundle") from None
    meta = BundleMeta.from_json(doc, meta_path)
    if not (folder / TFLITE).is_file():
        raise BundleError(f"{folder / TFLITE} is missing: the bundle has no serving export")
    for i, entry in enumerate(meta.extra):
        if not (folder / entry.file).is_file():
            raise BundleError(f"{folder / entry.file} is missing: {meta_path} extra[{i}] names it as the "
                              f"{entry.kind} recogniser's export")
    return meta


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


def _recover(folder: Path) -> None:
    """Move back the bundle a killed ``write_bundle`` left aside at ``.NAME.old-PID``."""
    for old in sorted(folder.parent.glob(f".{folder.name}.old-*")):
        pid = old.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or _alive(int(pid)) or not (old / META).is_file():
            continue  # a writer still at work, or not a bundle
        try:
            os.replace(old, folder)
        except OSError:
            return
        log.warning("restored %s from %s, left by an interrupted save", folder, old.name)
        return


def _own_names(folder: Path) -> set[str] | None:
    """The names a bundle at ``folder`` may hold (its extra recognisers' files too), or None where
    its ``bundle.json`` is not one fingerspell wrote. Read leniently: a bundle this version
    would refuse to load (a newer one) may still be replaced."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not (isinstance(meta, dict) and isinstance(meta.get("format_version"), int) and {"kind", "labels"} <= set(meta)):
        return None
    extra = meta.get("extra") if isinstance(meta.get("extra"), list) else []
    return set(NAMES).union(*(extra_names(e.get("kind")) for e in extra if isinstance(e, dict)))


def check_target(out: str | os.PathLike) -> Path:
    """``out`` resolved, if a bundle may be written there; call it before training starts.

    A bundle goes into a new or empty folder, or replaces a bundle: a folder whose
    ``bundle.json`` fingerspell wrote and that holds nothing but a bundle's files. Anything
    else is refused, so that no file fingerspell did not write is ever deleted.

    Raises:
        OutputFolderError: ``out`` is a file, a protected folder (root, home, current), a folder
            of other files, or a bundle with files added to it.
    """
    shown = str(out)
    path = Path(out).expanduser().resolve()
    own = _own_names(path) if path.is_dir() else None
    if path.is_dir() and any(path.iterdir()) and own is None:
        check_folder(out, (), "bundle", protected_only=True)  # root, home and current: say so
        held = ", ".join(sorted(p.name for p in path.iterdir())[:3])
        raise OutputFolderError(f"{shown} is not empty and not a fingerspell bundle (it holds {held}); give a new "
                                "or empty folder for the bundle")
    check_folder(out, own or NAMES, "bundle")
    plots = path / PLOTS
    if plots.is_dir():
        extra = sorted(p.name for p in plots.iterdir() if not (p.is_file() and p.suffix == ".png"))
        if extra:
            raise OutputFolderError(f"{shown}/{PLOTS} holds {', '.join(extra[:3])}, which fingerspell did not "
                                    "write; move it out, or give a new or empty folder for the bundle")
    return path


def _remove_bundle(folder: Path) -> None:
    """Delete a bundle moved aside, file by known file: never a file a bundle does not have."""
    try:
        for name in sorted(_own_names(folder) or NAMES):
            p = folder / name
            if p.is_dir() and not p.is_symlink():
                for png in p.glob("*.png"):
                    png.unlink()
                p.rmdir()
            elif p.exists() or p.is_symlink():
                p.unlink()
        folder.rmdir()
    except OSError as exc:
        log.warning("left the replaced bundle at %s (%s)", folder, exc.strerror or exc)


def write_bundle(out: str | os.PathLike, meta: BundleMeta | dict, files: dict[str, bytes | str | Path]) -> Path:
    """Write a bundle atomically.

    Args:
        out: destination folder: new, empty, or a bundle (``check_target``), which is replaced
            only once the new one is complete.
        meta: bundle.json content (a ``BundleMeta``, or its JSON); ``format_version`` is set here.
        files: relative name -> bytes, text, or a path to copy (``plots/x.png`` allowed; an
            extra recogniser's export as its entry's ``file``).

    Raises:
        OutputFolderError: ``out`` is not a place a bundle may be written (``check_target``).
        BundleError: the bundle written would not load (``load_meta``): the old one is then kept.
    """
    out = check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    # mkdtemp makes it private; a bundle is meant to be shared. An empty folder the user made
    # keeps its own mode (group-writable, setgid, ...).
    tmp.chmod(stat.S_IMODE(out.stat().st_mode) if out.is_dir() else 0o755)
    try:
        for name, content in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            elif isinstance(content, str):
                target.write_text(content, encoding="utf-8")
            else:
                target.write_bytes(content)
        meta = meta.to_json() if isinstance(meta, BundleMeta) else {"format_version": FORMAT_VERSION, **meta}
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        load_meta(tmp)  # never move a bundle into place that would not load
        old = None
        if out.exists():
            check_target(out)  # again: the folder may have changed while the model trained
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            _remove_bundle(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_json(path: str | os.PathLike | None, name: str) -> dict:
    """A JSON file of a bundle (``metrics.json``), or {} where it is absent."""
    p = resolve(path) / name
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
