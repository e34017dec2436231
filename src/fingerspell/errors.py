"""Typed errors. The library raises these; the CLI turns them into one line and an exit code."""


class FingerspellError(Exception):
    """Base class for every error a user can fix. The message says what to do."""

    exit_code = 1


class DatasetError(FingerspellError):
    """A data folder is missing, empty, or has no usable class folders."""

    exit_code = 3


class BundleError(FingerspellError):
    """A model bundle is missing, corrupt, or of another format version."""

    exit_code = 4


class OutputFolderError(FingerspellError):
    """An output folder (``train --out``, ``evaluate --out``, ``crossval --out``, ``download --dest``)
    may not be written: it is a file, the root, home or current folder, or holds files fingerspell
    did not write. One code for every command, so a script can tell this from a bad model."""

    exit_code = 7


class HandModelError(FingerspellError):
    """The MediaPipe hand model could not be obtained, verified or loaded."""

    exit_code = 5


class FrameError(FingerspellError):
    """An image or video frame could not be decoded, or breaks a size limit."""

    exit_code = 6
