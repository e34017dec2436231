"""The bundle's schema: ``BundleMeta`` (bundle.json) read and written, and older bundles upgraded.

Reading: ``BundleMeta.from_json`` brings an older bundle.json up to today's schema
(``_upgrade``: the one place that knows what older bundles lacked) and validates every field,
so that code past loading reads attributes of the current schema and never fills in a default
for an old bundle itself. Its errors are one line naming the file and the field.

How a second recogniser is carried: ``extra`` (``"extra"`` in bundle.json, left out when
empty) lists recognisers that run beside the bundle's own, e.g. a motion recogniser for J and
Z next to the handshape one. Each entry (``ExtraModel``) has its kind, its labels in output
order, its preprocessing record, its serving export ``file`` and its metrics summary, e.g.::

    "extra": [{"kind": "motion", "labels": ["J", "Z", "nothing"], "file": "motion.tflite",
               "preprocessing": {"kind": "motion", "frames": 30}, "metrics": {"val": {"top1": 0.9}}}]

An entry's files are named after its kind (``extra_names``: ``motion.tflite``, the export it
names, and ``motion.keras`` for retraining, optional), so that ``check_target`` can tell a
bundle's files from anyone else's. The entries are read, validated and written back; no
recogniser uses them yet. An entry's kind need not be one this fingerspell knows: a reader
serves the bundle's own model and leaves the entries it cannot run, so adding a recogniser
needs no new format version. Any other new top-level field does: unknown fields are refused.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass, field

from ..config import ConfigError, DetectParams, from_dict
from ..errors import BundleError
from ..training.metrics import brief
from ..recognisers import KINDS, get as recogniser

FORMAT_VERSION = 1
EXTRA_SUFFIXES = (".tflite", ".keras")  # an extra recogniser's serving export, and its model for retraining
_EXTRA_KIND = re.compile(r"[a-z][a-z0-9_]*")  # a file name stem: no paths, no dot files


def extra_names(kind) -> tuple[str, ...]:
    """The files an extra recogniser of ``kind`` may have in a bundle (``motion.tflite``, ``motion.keras``);
    none where ``kind`` is not a valid name, so that no path or dot file is ever one of them."""
    if not (isinstance(kind, str) and _EXTRA_KIND.fullmatch(kind)):
        return ()
    return tuple(kind + suffix for suffix in EXTRA_SUFFIXES)


@dataclass(frozen=True)
class ExtraModel:
    """A recogniser carried beside the bundle's own (see the module docstring); no code runs it yet."""

    kind: str  # e.g. "motion"; need not be a kind this fingerspell knows
    labels: list[str]  # in its model's output order
    preprocessing: dict  # its recogniser's record, with "kind" equal to ``kind``
    file: str  # its serving export inside the bundle: always ``KIND.tflite``
    metrics: dict = field(default_factory=dict)  # summary per held-out side

    @classmethod
    def from_json(cls, doc, where: str) -> "ExtraModel":
        """``doc`` validated; ``where`` names it in errors ("bundle.json: extra[0]")."""
        if not isinstance(doc, dict):
            raise BundleError(f"{where} must be an object with kind, labels, preprocessing and file")
        _known_fields(cls, doc, where)
        kind = doc.get("kind")
        if not isinstance(kind, str) or not _EXTRA_KIND.fullmatch(kind) or kind == "model":
            raise BundleError(f"{where}.kind must be a lower-case name other than 'model' (e.g. 'motion'), "
                              f"not {kind!r}")
        if doc.get("file") != f"{kind}.tflite":
            raise BundleError(f"{where}.file must be '{kind}.tflite' (a recogniser's export is named after its kind), "
                              f"not {doc.get('file')!r}")
        pre = _typed(doc, "preprocessing", dict, where, required=True)
        if pre.get("kind") != kind:
            raise BundleError(f"{where}.preprocessing.kind is {pre.get('kind')!r}; it must be the entry's "
                              f"kind {kind!r}")
        return cls(kind=kind, labels=_labels(doc.get("labels"), f"{where}.labels"), preprocessing=pre,
                   file=doc["file"], metrics=_typed(doc, "metrics", dict, where) or {})


@dataclass(frozen=True)
class BundleMeta:
    """What ``bundle.json`` holds: the schema, in one place. ``to_json`` is what is written and
    ``from_json`` what is read (an older bundle upgraded to this schema)."""

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
    extra: list[ExtraModel] = field(default_factory=list)  # recognisers carried beside this one; none run yet
    personal: dict | None = None  # a personal model's: what it was taught, over which model (teach/)

    @property
    def num_outputs(self) -> int:
        return len(self.labels)

    @property
    def detect(self) -> DetectParams:
        """How hands are found for this model: its recorded detection settings (today's where it records none)."""
        return from_dict(DetectParams, self.config.get("detect"))

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d = {"format_version": FORMAT_VERSION, "kind": d.pop("kind"), "labels": d.pop("labels"),
             "num_outputs": len(self.labels), **d}
        return {k: v for k, v in d.items() if v is not None and not (k == "extra" and not v)}

    @classmethod
    def from_json(cls, doc, where: str | os.PathLike) -> "BundleMeta":
        """A bundle.json's content, upgraded to today's schema (``_upgrade``) and validated.

        Args:
            doc: the parsed JSON; not changed.
            where: what to name in errors (the file).
        Raises:
            BundleError: one line naming ``where`` and the field: another format version, an
                unknown field or kind, labels that are not unique names or do not match
                ``num_outputs``, preprocessing or detection settings the recogniser cannot read,
                a field of the wrong type, a bad ``extra`` entry.
        """
        if not isinstance(doc, dict):
            raise BundleError(f"{where} is corrupt: expected a JSON object")
        version = doc.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{where} has format version {version!r}; this fingerspell reads version {FORMAT_VERSION}. "
                "Retrain the model with this version, or use the fingerspell that wrote it")
        doc = _upgrade(doc)
        _known_fields(cls, doc, where, also=("format_version", "num_outputs"))
        kind = doc.get("kind")
        if kind not in KINDS:
            raise BundleError(f"{where}: unknown model kind {kind!r} (known: {', '.join(KINDS)})")
        labels = _labels(doc.get("labels"), f"{where}: 'labels'")
        if doc.get("num_outputs") != len(labels):
            raise BundleError(f"{where}: {len(labels)} labels but the model has {doc.get('num_outputs')} outputs")
        pre = _typed(doc, "preprocessing", dict, where, required=True)
        if pre.get("kind") != kind:
            raise BundleError(f"{where}: 'preprocessing.kind' is {pre.get('kind')!r} but the model kind is {kind!r}")
        try:  # the recogniser reads its own record: what it cannot read is refused here, at loading
            recogniser(kind).Runtime.from_record(pre)
        except KeyError as exc:
            raise BundleError(f"{where}: 'preprocessing.{exc.args[0]}' is missing") from None
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{where}: 'preprocessing' not understood by the {kind} recogniser ({exc})") from None
        config = _typed(doc, "config", dict, where) or {}
        if not isinstance(config.get("detect", {}), dict):
            raise BundleError(f"{where}: 'config.detect' must be an object of detection settings")
        try:
            from_dict(DetectParams, config.get("detect"))
        except (ConfigError, TypeError) as exc:
            raise BundleError(f"{where}: config.detect settings not understood ({exc}); a newer fingerspell "
                              "wrote this bundle?") from None
        extra = _typed(doc, "extra", list, where) or []
        entries = [ExtraModel.from_json(e, f"{where}: extra[{i}]") for i, e in enumerate(extra)]
        kinds = [e.kind for e in entries]
        if len(set(kinds)) != len(kinds):
            raise BundleError(f"{where}: 'extra' lists kind {next(k for k in kinds if kinds.count(k) > 1)!r} twice")
        return cls(kind=kind, labels=labels, preprocessing=pre, config=config, extra=entries,
                   hand_model_sha256=_typed(doc, "hand_model_sha256", str, where),
                   metrics=_typed(doc, "metrics", dict, where) or {}, split=_typed(doc, "split", dict, where),
                   data=_typed(doc, "data", dict, where), source_commit=_typed(doc, "source_commit", str, where),
                   created=_typed(doc, "created", str, where), versions=_typed(doc, "versions", dict, where) or {},
                   personal=_personal(doc, where))

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


def _personal(doc: dict, where) -> dict | None:
    """The ``personal`` section: the labels of a personal model, the base's first."""
    section = _typed(doc, "personal", dict, where)
    if section is None:
        return None
    labels = _labels(section.get("labels"), f"{where}: 'personal.labels'")
    if labels[:len(doc["labels"])] != doc["labels"]:
        raise BundleError(f"{where}: 'personal.labels' must start with the model's labels")
    return section


def _upgrade(doc: dict) -> dict:
    """A bundle.json of format version 1 as older fingerspells wrote it -> today's schema (a copy).

    Format version 1 has grown by fields added with a default that changed what new bundles do;
    a bundle that lacks one was made the old way, and each step below fills in that old way,
    naming the bundles it serves. A change that old readers would misread needs a new format
    version instead (and a step from the old one here).
    """
    doc = copy.deepcopy(doc)
    pre = doc.get("preprocessing")
    if isinstance(pre, dict) and doc.get("kind") == "landmarks":
        # Landmark bundles from before the depth option (d85c389, 2026-11-28) fed MediaPipe's z
        # to the model. They record features v1, which Runtime serves as v1: nothing to fill.
        pre.setdefault("depth", True)
    if isinstance(pre, dict) and doc.get("kind") == "cnn":
        # CNN records without crop_to_hand: the CNN then always cropped to the hand.
        pre.setdefault("crop_to_hand", True)
    detect = doc.get("config", {}).get("detect") if isinstance(doc.get("config"), dict) else None
    if isinstance(detect, dict) and detect:
        # Bundles from before refinement (dc8ecc0, 2026-11-28) were trained on hands found without
        # it, and are served so. Other detection settings added since (reframe, stream_retries,
        # near_ms) are how serving looks for a hand, not what the model learnt: old bundles get
        # today's. A bundle that records no detection settings gets today's too.
        detect.setdefault("refine", 0)
    return doc


def _known_fields(cls, doc: dict, where, also: tuple[str, ...] = ()) -> None:
    known = [f.name for f in dataclasses.fields(cls)] + list(also)
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise BundleError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))}); "
                          "written by a newer fingerspell? Use that one, or retrain the model with this one")


def _typed(doc: dict, key: str, kind: type, where, required: bool = False):
    """``doc[key]`` if it is a ``kind`` (None where absent and not ``required``)."""
    value = doc.get(key)
    if value is None and not required:
        return None
    if key not in doc:
        raise BundleError(f"{where}: '{key}' is missing")
    if not isinstance(value, kind):
        what = {dict: "an object", list: "a list", str: "a string"}[kind]
        raise BundleError(f"{where}: '{key}' must be {what}, not {type(value).__name__}")
    return value


def _labels(value, name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(x, str) and x for x in value):
        raise BundleError(f"{name} must be a non-empty list of names")
    if len(set(value)) != len(value):
        raise BundleError(f"{name} has duplicates")
    return list(value)
