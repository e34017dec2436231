"""A profile's personal model on disk: written as ``model.new/``, swapped in as ``model/``, given
away as a zip. The caller (``Profile``) holds the profile's lock around each of these."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

MODEL, NEW_MODEL, OLD_MODEL = "model", "model.new", "model.old"
ZIP_FOLDER = "fingerspell-personal"  # the one folder in the zip GET /profile/model gives

T = TypeVar("T")


def stamp(folder: Path) -> tuple | None:
    """What changes whenever a new model is swapped in (by this process or another); None: no model."""
    try:
        st = (folder / MODEL).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def has_model(folder: Path) -> bool:
    """Whether ``folder`` (a profile's) holds a model; first puts back the one an interrupted swap
    left as ``model.old``, or drops it beside a whole new one."""
    model, old = folder / MODEL, folder / OLD_MODEL
    if old.is_dir():
        if model.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, model)
    return model.is_dir()


@contextmanager
def training_folder(folder: Path, lock) -> Iterator[Path]:
    """``model.new``, new and empty, for a training to write into; whatever ``install`` did not
    take is removed afterwards (under ``lock``: the training itself runs without it)."""
    new = folder / NEW_MODEL
    with lock:
        shutil.rmtree(new, ignore_errors=True)  # an earlier try's, never swapped in
    try:
        yield new
    finally:
        with lock:
            shutil.rmtree(new, ignore_errors=True)


def install(folder: Path, load: Callable[[Path], T], commit: Callable[[], None]) -> T:
    """Swap ``model.new`` in as ``model``, ``load`` it, then ``commit`` (the profile's settings).

    The previous model is kept aside until both have succeeded, and put back if either fails.

    Returns:
        What ``load`` returned.
    Raises:
        FileNotFoundError: there is no ``model.new``.
    """
    model, new, old = folder / MODEL, folder / NEW_MODEL, folder / OLD_MODEL
    if not new.is_dir():
        raise FileNotFoundError(f"{new} was not written")
    had = has_model(folder)
    if had:
        os.replace(model, old)
    os.replace(new, model)
    try:
        loaded = load(model)
        commit()
    except BaseException:
        os.replace(model, new)
        if had:
            os.replace(old, model)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return loaded


def zip_model(folder: Path) -> bytes:
    """The model as a zip of one folder, ``fingerspell-personal/``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((folder / MODEL).rglob("*")):
            if path.is_file():
                zf.write(path, Path(ZIP_FOLDER) / path.relative_to(folder / MODEL))
    return buf.getvalue()
