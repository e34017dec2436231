"""Folders a command writes into: new, empty, or holding only what that command wrote before.

fingerspell never deletes or overwrites a file it did not write. Every command that writes a
folder (``train --out``, ``crossval --out``, ``evaluate --out``, ``download --dest``) checks it
here first, before any expensive work, and once more just before writing.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .errors import FingerspellError, OutputFolderError


def protected(path: Path) -> str | None:
    """Why ``path`` (resolved) may never be an output folder, or None.

    The file-system root, the home folder, the current folder and the folders above it are
    refused even when empty: replacing them would pull the ground from under the user's shell.
    """
    cwd = Path.cwd().resolve()
    if path == Path(path.anchor):
        return "the file-system root"
    if path == Path.home().expanduser().resolve():
        return "your home folder"
    if path == cwd:
        return "the current folder"
    if path in cwd.parents:
        return "a folder above the current one"
    return None


def check_folder(path: str | os.PathLike, own: tuple[str, ...] | set[str], what: str,
                 error: type[FingerspellError] = OutputFolderError, *, protected_only: bool = False) -> Path:
    """``path`` resolved, if a command may write its ``what`` there; raises otherwise.

    Args:
        path: the folder the user named.
        own: names (files or folders, directly inside) the command itself writes there: a folder
            holding only these is one it wrote before, and may be rewritten.
        what: what is written, for the message ("bundle", "report").
        error: the error type to raise.
        protected_only: check only that ``path`` is not a protected folder.

    Raises:
        ``error``: the path is a file, a protected folder, or a folder holding anything else.
    """
    shown = str(path)
    path = Path(path).expanduser().resolve()
    reason = protected(path)
    if reason:
        raise error(f"{shown} is {reason}; give a new folder for the {what}, e.g. {Path(shown) / ('my-' + what)}")
    if protected_only or not path.exists():
        return path
    if not path.is_dir():
        raise error(f"{shown} is a file; give a new or empty folder for the {what}")
    others = sorted(p.name for p in path.iterdir() if p.name not in own)
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise error(f"{shown} already holds {listed}, which fingerspell did not write; give a new or empty "
                    f"folder for the {what}")
    return path


def check_new_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` resolved, if a command may write its ``what`` there: a file that does not exist yet,
    in a folder that does. A command never replaces a file the user has.

    Raises:
        OutputFolderError: the file exists, or its folder does not.
    """
    shown = str(path)
    path = Path(path).expanduser().resolve()
    if path.exists():
        raise OutputFolderError(f"{shown} already exists; give a new file name for the {what}")
    if not path.parent.is_dir():
        raise OutputFolderError(f"{path.parent} is not a folder; give the {what} a file name in a folder that exists")
    return path


def replace_file(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a crash leaves the old file (or none), never half of one.

    The caller decides whether ``path`` may be written (``check_new_file``, ``check_folder``).
    """
    path = Path(path)
    # A name of this writer's own, opened exclusively (the user's umask applies, unlike mkstemp's 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
