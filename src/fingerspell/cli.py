"""The ``fingerspell`` command: setup | download | train | crossval | evaluate | predict | serve.

Thin over the library: it parses flags, configures logging, and turns typed errors into one
line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path

# Quiet the C++ loggers of MediaPipe, LiteRT and TensorFlow before any of them loads.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from . import __version__  # noqa: E402
from .errors import FingerspellError  # noqa: E402

log = logging.getLogger("fingerspell")
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
DEFAULT_DATA = Path("..") / "shared" / "data"


def _add_cache(p):
    p.add_argument("--cache-dir", help="where the hand model and landmark cache live "
                   "(default: $FINGERSPELL_CACHE_DIR or the user cache folder)")


def _add_decoder(p):
    p.add_argument("--decoder", choices=("words", "letters"),
                   help="words: letters from segments, then words from a lexicon (default); letters: the old "
                        "hold-and-release rules, one letter at a time")
    p.add_argument("--no-lexicon", action="store_true", help="write the letters as signed, never a dictionary word")
    p.add_argument("--vocab", metavar="FILE", help="your own words (names, places), one a line: chosen like common words")


def _add_recipe(p):
    """The flags of a training recipe, shared by train and crossval."""
    p.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="folder of class folders, or the Kaggle layout; repeat for several sources")
    p.add_argument("--kind", choices=("landmarks", "cnn"), default="landmarks",
                   help="landmarks (default): hand landmarks into an MLP; cnn: the tutorial's 64x64 CNN baseline")
    p.add_argument("--epochs", type=int, help="training epochs (default: 10 for each of the 3 landmark MLPs, 15 cnn)")
    p.add_argument("--grouping", default="auto", choices=("auto", "kaggle-frames", "signer", "roboflow", "regex", "random"),
                   help="how images are grouped so that near-duplicates never straddle a split; 'random' is "
                        "optimistic and the report says so (default: %(default)s)")
    p.add_argument("--group-regex", help="with --grouping regex: first capture group of the file name is the group")
    p.add_argument("--frame-block", type=int, default=300, help="Kaggle frames per group (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--workers", type=int, default=0, help="landmark-extraction processes (default: one per core)")
    p.add_argument("--limit-per-class", type=int, help="at most this many images per class and folder (quick runs)")
    p.add_argument("--config", help="JSON file of TrainParams fields (flags given override it)")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fingerspell", description="ASL fingerspelling recognition: train, evaluate, predict, serve.")
    ap.add_argument("--version", action="version", version=f"fingerspell {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    ap.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("setup", help="obtain, verify and cache the MediaPipe hand model",
                       description="Obtain hand_landmarker.task (official URL, else the mediapipe==0.10.21 wheel "
                                   "from the package index), verify its sha256 and cache it. First use does this by itself.")
    _add_cache(p)

    p = sub.add_parser("download", help="download the Kaggle ASL Alphabet set (needs Kaggle credentials)")
    p.add_argument("--dest", default="data/asl-alphabet", help="folder to unpack into (default: %(default)s)")

    p = sub.add_parser("train", help="train a recogniser on image folders and write a model bundle")
    _add_recipe(p)
    p.add_argument("--out", required=True, help="bundle folder to write (replaced atomically)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-fraction", type=float, default=0.0)
    _add_cache(p)

    p = sub.add_parser("crossval", help="k-fold figures of a training recipe: every image held out once",
                       description="Group-aware, class-stratified k-fold cross-validation: the recipe is trained "
                                   "once per fold and scores the fold it did not see. Prints each fold, the spread, "
                                   "and the figure over every image. Writes no bundle.")
    _add_recipe(p)
    p.add_argument("--folds", type=int, default=5, help="number of folds (default: %(default)s)")
    p.add_argument("--out", help="write the report JSON and the pooled confusion-matrix PNG into this folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_cache(p)

    p = sub.add_parser("evaluate", help="figures of a bundle on image folders (top-1, macro-F1, per class, confusion)")
    p.add_argument("--model", help="bundle folder (default: the bundled model)")
    p.add_argument("--data", action="append", required=True, metavar="DIR")
    p.add_argument("--out", help="write metrics JSON and confusion-matrix PNG into this folder")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--workers", type=int, default=0)
    _add_cache(p)

    p = sub.add_parser("predict", help="letters in image files or folders; spelled text of video files")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders of images, or video files")
    p.add_argument("--model", help="bundle folder (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per image")
    _add_decoder(p)
    _add_cache(p)

    p = sub.add_parser("serve", help="run the web app (camera page, WebSocket stream, /predict)")
    p.add_argument("--model", help="bundle folder (default: the bundled model)")
    p.add_argument("--host", help="address to bind (default: $FINGERSPELL_HOST or 127.0.0.1, this machine only; "
                   "0.0.0.0 accepts frames from the network)")
    p.add_argument("--port", type=int, help="port (default: $FINGERSPELL_PORT or 5000)")
    p.add_argument("--tls-cert", help="certificate file: serve HTTPS so phones on the network may use their camera")
    p.add_argument("--tls-key", help="private key file for --tls-cert")
    _add_decoder(p)
    _add_cache(p)
    return ap


def _train_params(args):
    from .config import (CnnParams, LandmarkParams, SplitParams, TrainParams, to_dict,
                         train_params_from_dict)

    base = TrainParams()
    if args.config:
        try:
            base = train_params_from_dict(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise FingerspellError(f"--config {args.config}: {exc}") from None
    split = dataclasses.replace(base.split, val_fraction=getattr(args, "val_fraction", base.split.val_fraction),
                                test_fraction=getattr(args, "test_fraction", base.split.test_fraction),
                                seed=args.seed, grouping=args.grouping, group_regex=args.group_regex,
                                frame_block=args.frame_block)
    lp, cp = base.landmarks, base.cnn
    if args.epochs is not None:
        if args.epochs < 1:
            raise FingerspellError("--epochs must be at least 1")
        lp, cp = dataclasses.replace(lp, epochs=args.epochs), dataclasses.replace(cp, epochs=args.epochs)
    return dataclasses.replace(base, kind=args.kind, split=split, landmarks=lp, cnn=cp, seed=args.seed,
                               workers=args.workers, limit_per_class=args.limit_per_class)


def cmd_setup(args):
    from .hands import ensure_hand_model, sha256_file

    path = ensure_hand_model(args.cache_dir)
    print(f"hand model ready: {path} (sha256 {sha256_file(path)})")


def cmd_download(args):
    from .download import download_kaggle

    path = download_kaggle(args.dest)
    print(f"Kaggle ASL Alphabet unpacked in {path}; train with: fingerspell train --data {path} --out my-model")


def cmd_train(args):
    from .metrics import brief
    from .train import train

    params = _train_params(args)
    metrics = train(args.data, args.out, params, cache=args.cache_dir, progress=not args.quiet)
    for side in ("val", "test"):
        if side in metrics:
            print(f"{side} ({metrics['split']['grouping']} grouping): {brief(metrics[side])}")
            for src, m in metrics[side].get("per_source", {}).items():
                print(f"  {src}: {m['top1']:.1%} top-1, no hand {m['no_hand_rate']:.1%} (n={m['n']:,})")
    if "warning" in metrics["split"]:
        print(f"note: {metrics['split']['warning']}")
    print(f"bundle: {Path(args.out).resolve()}")


def cmd_crossval(args):
    from .crossval import cross_validate
    from .metrics import brief

    report = cross_validate(args.data, _train_params(args), args.folds, cache=args.cache_dir,
                            progress=not args.quiet)
    if args.out:
        from .plots import confusion_png

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "crossval.json").write_text(json.dumps(report, indent=1) + "\n")
        confusion_png(report["pooled"], out / "confusion.png", f"{args.kind}, {args.folds} folds, every image held out once")
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for k, m in enumerate(report["folds"]):
        print(f"fold {k + 1}/{len(report['folds'])}: {brief(m)}")
    split = report["split"]
    print(f"every image held out once ({split['grouping']} grouping, seed {split['seed']}): {brief(report['pooled'])}")
    for src, s in report["spread"].items():
        pooled = report["pooled"] if src == "all" else report["pooled"]["per_source"][src]
        print(f"  {src}: {pooled['top1']:.1%} top-1 (n={pooled['n']:,}); folds {s['min']:.1%}-{s['max']:.1%}, "
              f"mean {s['mean']:.1%}, sd {s['std']:.1%}")
    if "warning" in split:
        print(f"note: {split['warning']}")
    if report["data"]["skipped"]:
        print(f"skipped {report['data']['skipped']} unreadable file(s); see --json for the list")


def cmd_evaluate(args):
    from .evaluate import evaluate
    from .metrics import brief
    from .predictor import Predictor

    predictor = Predictor.from_bundle(args.model, cache_dir=args.cache_dir)
    m = evaluate(predictor, args.data, workers=args.workers, cache=args.cache_dir, progress=not args.quiet)
    if args.out:
        from .plots import confusion_png

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(m, indent=1) + "\n")
        confusion_png(m, out / "confusion.png", f"{predictor.kind} on {', '.join(Path(d).name for d in args.data)}")
    if args.json:
        print(json.dumps(m, indent=1))
        return
    print(f"{', '.join(args.data)}: {brief(m)}; top-1 where a hand was found {m['top1_where_hand_found']:.1%}")
    for src, s in m.get("per_source", {}).items():
        print(f"  {src}: {s['top1']:.1%} top-1, no hand {s['no_hand_rate']:.1%} (n={s['n']:,})")
    print(f"{'class':>8} {'prec':>6} {'recall':>6} {'f1':>6} {'n':>5}")
    for c, s in m["per_class"].items():
        print(f"{c:>8} {s['precision']:6.2f} {s['recall']:6.2f} {s['f1']:6.2f} {s['support']:5d}")
    if m["data"]["skipped"]:
        print(f"skipped {m['data']['skipped']} unreadable file(s); see --json for the list")


def _expand(paths):
    """Image files, in folders too; video files separately. Missing paths are errors."""
    from .images import is_image_name

    images, videos = [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            images += sorted(str(f) for f in p.rglob("*") if f.is_file() and is_image_name(f.name))
        elif p.is_file():
            (videos if p.suffix.lower() in VIDEO_SUFFIXES else images).append(str(p))
        else:
            raise FingerspellError(f"{raw}: no such file or folder")
    if not images and not videos:
        raise FingerspellError(f"no images or videos found in {', '.join(paths)}")
    return images, videos


def cmd_predict(args):
    from .errors import FrameError
    from .images import read_image
    from .predictor import Predictor

    images, videos = _expand(args.paths)
    predictor = Predictor.from_bundle(args.model, cache_dir=args.cache_dir)
    results, failed = [], 0
    for path in images:
        try:
            pred = predictor.predict(read_image(path))
        except FrameError as exc:
            failed += 1
            results.append({"path": path, "error": str(exc)})
            if not args.json:
                print(f"{path}: error: {exc}", file=sys.stderr)
            continue
        rec = {"path": path, **pred.to_json()}
        results.append(rec)
        if not args.json:
            top = "  ".join(f"{k} {v:.2f}" for k, v in pred.top)
            print(f"{path}: {pred.letter} ({pred.score:.2f})  top-3: {top}")
    if videos:
        from .config import DecoderParams
        from .decoding import english, read_words
        from .video import spell_video

        decoding = DecoderParams(kind=args.decoder or "words", lexicon=not args.no_lexicon)
        vocab = read_words(args.vocab) if args.vocab else ()
        lexicon = english() if decoding.kind == "words" and decoding.lexicon else None
    for path in videos:
        text, frames = spell_video(predictor, path, decoding=decoding, lexicon=lexicon, vocab=vocab)
        results.append({"path": path, "text": text, "frames": frames})
        if not args.json:
            print(f"{path}: {text!r} ({frames} frames)")
    if args.json:
        print(json.dumps(results, indent=1))
    if failed == len(results):
        return 6
    return 0


def cmd_serve(args):
    import dataclasses

    from .server.app import params_from_env, run

    changes = {k: v for k, v in (("decoder", args.decoder), ("vocab", args.vocab)) if v is not None}
    if args.no_lexicon:
        changes["lexicon"] = False
    run(host=args.host, port=args.port, model=args.model, tls_cert=args.tls_cert, tls_key=args.tls_key,
        cache_dir=args.cache_dir, params=dataclasses.replace(params_from_env(), **changes))


COMMANDS = {"setup": cmd_setup, "download": cmd_download, "train": cmd_train, "crossval": cmd_crossval,
            "evaluate": cmd_evaluate, "predict": cmd_predict, "serve": cmd_serve}


_interrupted = False


def _on_sigint(signum, frame):
    # Remember Ctrl-C: landing inside TensorFlow's graph tracing it can surface as another error.
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args) or 0
    except FingerspellError as exc:
        print(f"fingerspell {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"fingerspell {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        if not _interrupted:
            raise
        print(f"fingerspell {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
