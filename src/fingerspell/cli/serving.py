"""The commands of the serving install: setup, predict, serve.

None of them needs TensorFlow; the parser and the error-to-exit-code handling are in ``cli/__init__.py``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from ..errors import FingerspellError

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def cmd_setup(args):
    from ..errors import HandModelError
    from ..hands import browser, ensure_browser_assets, ensure_hand_model, sha256_file

    path = ensure_hand_model(args.cache_dir)
    print(f"hand model ready: {path} (sha256 {sha256_file(path)})")
    try:  # the page's own hand finding; without it the page sends frames to the server, as before
        folder = ensure_browser_assets(args.cache_dir, tarball=args.tasks_vision)
    except HandModelError as exc:
        print(f"fingerspell setup: the page will find hands on the server: {exc}", file=sys.stderr)
        return 0
    print(f"the page's hand landmarker ready: {folder} ({browser.SPEC}, {browser.INTEGRITY[:20]}...)")
    return 0


def _expand(paths):
    """Image files (in folders too) and missing paths in the order given; video files and landmark
    recordings separately, as (path, "video" | "records").

    A missing path is not an error here: it is reported with the inputs that cannot be read, and
    the others are still predicted.
    """
    from ..images import is_image_name
    from ..records import is_records_file

    images, recordings, missing = [], [], set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            images += sorted(str(f) for f in p.rglob("*") if f.is_file() and is_image_name(f.name))
        elif p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            recordings.append((str(p), "video"))
        elif p.is_file() and is_records_file(p):
            recordings.append((str(p), "records"))
        elif p.is_file():
            images.append(str(p))
        else:
            images.append(raw)
            missing.add(raw)
    if not images and not recordings:
        raise FingerspellError(f"no images, videos or landmark recordings found in {', '.join(paths)}")
    return images, recordings, missing


def _decoder_settings(args):
    """The decoding of videos and the --vocab words: flags checked before any model is loaded.

    Raises:
        ConfigError: --vocab cannot be read (or a decoder setting is refused).
    """
    from ..config import DecoderParams
    from ..decoding import read_words

    decoding = DecoderParams(kind=args.decoder or DecoderParams.kind, lexicon=not args.no_lexicon)
    return decoding, read_words(args.vocab) if args.vocab else ()


def cmd_predict(args):
    from ..errors import FrameError
    from ..images import read_image

    decoding, vocab = _decoder_settings(args)
    images, recordings, missing = _expand(args.paths)
    predictor = None
    if len(missing) < len(images) or recordings:  # a model is loaded only where there is something to read
        from ..predictor import Predictor

        predictor = Predictor.from_bundle(args.model, cache_dir=args.cache_dir)
    results, failed = [], 0

    def report_failure(path, exc):
        nonlocal failed
        failed += 1
        results.append({"path": path, "error": str(exc)})
        if not args.json:  # the error names the file; name it once
            print(f"{path}: error: {str(exc).removeprefix(f'{path}: ')}", file=sys.stderr)

    for path in images:
        try:
            if path in missing:
                raise FrameError(f"{path}: no such file or folder")
            pred = predictor.predict(read_image(path))
        except FrameError as exc:
            report_failure(path, exc)
            continue
        results.append({"path": path, **pred.to_json()})
        if not args.json:
            top = "  ".join(f"{k} {v:.2f}" for k, v in pred.top)
            print(f"{path}: {pred.letter} ({pred.score:.2f})  top-3: {top}")
    if recordings:
        from ..decoding import english, wants_lexicon
        from ..errors import DatasetError
        from ..records import read
        from ..video import spell_records, spell_video

        lexicon = english() if wants_lexicon(decoding) else None
    for path, kind in recordings:
        try:
            if kind == "video":
                text, frames = spell_video(predictor, path, decoding=decoding, lexicon=lexicon, vocab=vocab)
            else:
                text, frames = spell_records(predictor, read(path), path, decoding=decoding, lexicon=lexicon,
                                             vocab=vocab)
        except (FrameError, DatasetError) as exc:
            report_failure(path, exc)
            continue
        results.append({"path": path, "text": text, "frames": frames})
        if not args.json:
            print(f"{path}: {text!r} ({frames} frames)")
    if args.json:
        print(json.dumps(results, indent=1))
    if failed:
        if not args.json:
            print(f"fingerspell predict: error: {failed} of {len(results)} input(s) could not be read", file=sys.stderr)
        return FrameError.exit_code
    return 0


def _records_of(source: str, predictor, args) -> list:
    """The landmark records of one input of ``fingerspell landmarks``."""
    from .. import records

    path = Path(source)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        from ..video import video_hands

        return [records.Record(pred.hand, t_ms) for t_ms, pred in video_hands(predictor, path)]
    if records.is_records_file(path):
        return records.read(path)
    if records.is_arrays_folder(path):
        return records.read_arrays(path)
    from ..config import SplitParams
    from ..dataset import assign_groups, scan
    from ..extract import extract

    ds = assign_groups(scan([source]), SplitParams())
    found = extract([s.path for s in ds.samples], predictor.detect_params, workers=args.workers,
                    cache=args.cache_dir, progress=not args.quiet)
    return [records.Record(e.hand, None, s.label, s.group, {"image": s.path})
            for s, e in zip(ds.samples, found) if e.error is None]


def cmd_landmarks(args):
    from .. import records
    from ..outputs import check_new_file
    from ..predictor import Predictor

    out = check_new_file(args.out, "landmark records")
    for source in args.inputs:
        if not Path(source).exists():
            raise FingerspellError(f"{source} does not exist")
    predictor = Predictor.from_bundle(args.model, cache_dir=args.cache_dir)  # its hand finding, as served
    try:
        found = [rec for source in args.inputs for rec in _records_of(source, predictor, args)]
    finally:
        predictor.close()
    check_new_file(args.out, "landmark records")  # again: it may have appeared while the hands were found
    records.write(out, found)
    hands = sum(r.hand is not None for r in found)
    labels = len({r.label for r in found if r.label is not None})
    print(f"{args.out}: {len(found):,} records, {hands:,} with a hand" + (f", {labels} labels" if labels else ""))


def cmd_teach(args):
    from .. import bundle, records
    from ..predictor import Predictor
    from ..teach import teach

    bundle.check_target(args.out)  # before any work: a folder that may not be written exits 7 now
    for source in args.data:
        if not Path(source).exists():
            raise FingerspellError(f"{source} does not exist")
    landmarks_only = all(records.is_records_file(s) or records.is_arrays_folder(s) for s in args.data)
    # Images and videos need the hands found, as the base model's bundle finds them.
    predictor = None if landmarks_only else Predictor.from_bundle(args.model, cache_dir=args.cache_dir)
    try:
        samples = [rec for source in args.data for rec in _records_of(source, predictor, args)]
    finally:
        if predictor is not None:
            predictor.close()
    report = teach(args.model, samples, args.out)
    n = sum(report.taught.values())
    print(f"{args.out}: taught {n:,} samples of {len(report.taught)} labels in {report.seconds:.1f} s "
          f"(and {report.anchors:,} of other people's hands for the labels not taught)")
    print("  " + ", ".join(f"{k} {v}" for k, v in report.taught.items()))
    if report.new_labels:
        print(f"  new signs: {', '.join(report.new_labels)}")
    if report.base_top1 is not None:  # some samples are of the base model's labels
        print(f"  on these samples: the base model {report.base_top1:.1%}, the taught one {report.taught_top1:.1%} "
              "(they taught it: evaluate on others with `fingerspell evaluate --model OUT --data ...`)")
    for note in report.notes:
        print(f"  note: {note}")
    if report.skipped:
        print(f"  skipped {report.skipped:,} records without a hand or a label")


def cmd_serve(args):
    from ..serve import run
    from ..server import params_from_env

    changes = {k: v for k, v in (("decoder", args.decoder), ("vocab", args.vocab), ("data_dir", args.data_dir),
                                 ("workers", args.workers)) if v is not None}
    if args.no_lexicon:
        changes["lexicon"] = False
    run(host=args.host, port=args.port, model=args.model, tls_cert=args.tls_cert, tls_key=args.tls_key,
        cache_dir=args.cache_dir, allowed_hosts=args.allowed_host,
        params=dataclasses.replace(params_from_env(), **changes))
