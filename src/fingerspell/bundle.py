"""Save and load model bundles. The only code that knows a bundle's file names.

A bundle is one self-describing folder::

    bundle.json     format version, kind, labels in output order, preprocessing, hand-model
                    sha256, resolved config, metrics summary, source commit
    model.keras     the Keras model, for retraining (optional for serving)
    model.tflite    the serving export, run with LiteRT - no TensorFlow needed
    metrics.json    full evaluation figures
    plots/*.png     training curves, confusion matrix
    MODEL_CARD.md   data, splits and figures in prose

A bundle is written only into a new or empty folder, or over a bundle that holds nothing but a
bundle's files (``check_target``): never over anything else. Bundles are written to a temporary
sibling folder and moved into place, so an interrupted save leaves the previous bundle intact (a writer killed between moving the old bundle aside and
the new one in leaves the old one at ``.NAME.old-PID``; loading puts it back). No pickle anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BundleError, OutputFolderError
from .metrics import brief
from .outputs import check_folder
from .recognisers import KINDS

FORMAT_VERSION = 1
META = "bundle.json"
KERAS = "model.keras"
TFLITE = "model.tflite"
METRICS = "metrics.json"
CARD = "MODEL_CARD.md"
PLOTS = "plots"
NAMES = (META, KERAS, TFLITE, METRICS, CARD, PLOTS)  # everything a bundle folder may hold
DEFAULT_BUNDLE = Path(__file__).parent / "models" / "default"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleMeta:
    """What ``bundle.json`` holds: the schema, in one place. ``to_json`` is what is written."""

    kind: str  # a recogniser kind (recognisers/registry.py)
    labels: list[str]  # in the model's output order
    preprocessing: dict  # the recogniser's record: how inputs are made (``Runtime.from_record``)
    hand_model_sha256: str | None = None  # the hand model the landmarks came from
    config: dict = field(default_factory=dict)  # the resolved TrainParams
    metrics: dict = field(default_factory=dict)  # summary per held-out side; metrics.json has the rest
    split: dict | None = None  # grouping, seed, images and groups per side
    data: dict | None = None  # folders, images per source, skipped files
    source_commit: str | None = None
    created: str | None = None  # ISO 8601, UTC
    versions: dict = field(default_factory=dict)  # fingerspell, tensorflow, keras, python

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d = {"format_version": FORMAT_VERSION, "kind": d.pop("kind"), "labels": d.pop("labels"),
             "num_outputs": len(self.labels), **d}
        return {k: v for k, v in d.items() if v is not None}

    def model_card(self, metrics: dict) -> str:
        """A short human-readable account of the model: data, split, figures, limits."""
        lines = [f"# fingerspell model card: {self.kind}", "",
                 f"Created {self.created} from commit {self.source_commit or 'unknown'} "
                 f"with fingerspell {self.versions.get('fingerspell')}.", "",
                 "## Data", ""]
        for src, n in metrics["data"]["per_source"].items():
            lines.append(f"- `{src}`: {n:,} images")
        lines += [f"- skipped files: {metrics['data']['skipped']}", f"- labels ({len(self.labels)}): {' '.join(self.labels)}",
                  "", "## Split", "",
                  f"Grouping `{metrics['split']['grouping']}` ({', '.join(f'{k}: {v:,}' for k, v in metrics['split']['rules'].items())}), "
                  f"seed {metrics['split']['seed']}; images per side {metrics['split']['images']}, groups per side {metrics['split']['groups']}."]
        if "warning" in metrics["split"]:
            lines += ["", f"**Warning:** {metrics['split']['warning']}."]
        lines += ["", "## Figures (no hand counted as a prediction of `nothing`)", ""]
        for side in ("val", "test"):
            if side in metrics:
                lines.append(f"- {side}: {brief(metrics[side])}")
                for src, m in metrics[side].get("per_source", {}).items():
                    lines.append(f"  - {src}: {m['top1']:.1%} top-1, no hand {m['no_hand_rate']:.1%} (n={m['n']:,})")
        lines += ["", "Held-out splits share people and rooms with training (same sources): they measure new "
                  "images of familiar settings. For people the model has never seen, see the "
                  "leave-one-source-out figures in the project README.", "", "## Detection", ""]
        for src, d in metrics["detection"].items():
            lines.append(f"- {src}: no hand in {d['no_hand_rate']:.1%} of {d['hand_images']:,} hand images; found by {d['found_by']}")
        lines += ["", "## Limits", "", "Static handshapes only: J and Z are motion letters and are recognised from a "
                  "single frame only as well as their still frames allow. `space` and `del` are hand shapes of the "
                  "Kaggle dataset, not ASL letters.", ""]
        return "\n".join(lines)


def resolve(path: str | os.PathLike | None) -> Path:
    """The bundle folder for ``path``; None means the bundled default model."""
    return Path(path).expanduser() if path else DEFAULT_BUNDLE


def load_meta(path: str | os.PathLike | None) -> dict:
    """Read and validate ``bundle.json``.

    Raises:
        BundleError: missing folder or file, bad JSON, other format version, unknown kind,
            or labels that do not match the model's output size.
    """
    folder = resolve(path)
    meta_path = folder / META
    if not folder.exists():
        _recover(folder)
    if not folder.is_dir():
        raise BundleError(f"model bundle {folder} does not exist (give --model a folder written by `fingerspell train`)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{meta_path} is missing: {folder} is not a model bundle") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{meta_path} is corrupt ({exc}); retrain or restore the bundle") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path} is corrupt: expected a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{meta_path} has format version {version!r}; this fingerspell reads version {FORMAT_VERSION}. "
            "Retrain the model with this version, or use the fingerspell that wrote it"
        )
    if meta.get("kind") not in KINDS:
        raise BundleError(f"{meta_path}: unknown model kind {meta.get('kind')!r} (known: {', '.join(KINDS)})")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise BundleError(f"{meta_path}: 'labels' must be a non-empty list of names")
    if len(set(labels)) != len(labels):
        raise BundleError(f"{meta_path}: 'labels' has duplicates")
    if meta.get("num_outputs") != len(labels):
        raise BundleError(
            f"{meta_path}: {len(labels)} labels but the model has {meta.get('num_outputs')} outputs"
        )
    if not (folder / TFLITE).is_file():
        raise BundleError(f"{folder / TFLITE} is missing: the bundle has no serving export")
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


def _written_by_us(folder: Path) -> bool:
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("format_version"), int) and {"kind", "labels"} <= set(meta)


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
    if path.is_dir() and any(path.iterdir()) and not _written_by_us(path):
        check_folder(out, (), "bundle", protected_only=True)  # root, home and current: say so
        held = ", ".join(sorted(p.name for p in path.iterdir())[:3])
        raise OutputFolderError(f"{shown} is not empty and not a fingerspell bundle (it holds {held}); give a new "
                                "or empty folder for the bundle")
    check_folder(out, NAMES, "bundle")
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
        for name in NAMES:
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
        files: relative name -> bytes, text, or a path to copy (``plots/x.png`` allowed).

    Raises:
        OutputFolderError: ``out`` is not a place a bundle may be written (``check_target``).
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
