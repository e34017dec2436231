"""On-device mode's message: a hand the page found itself, in place of a frame.

``{"type": "hand", "v": 1, "t_ms": 1234, "hand": null | HAND}``, where HAND is a landmark
record's ``hand`` object (``records.hand_from_json``): the page runs MediaPipe's hand landmarker
on its own video and sends what it found in each frame, so no image leaves the device. The
stream answers it as it answers a frame (``{"type": "prediction", "frame": n, ...}``), through
the same ``Stream.push``, recognisers and decoder. The protocol is ``docs/protocol.md``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..hands import Hand
from ..records import hand_from_json

VERSION = 1  # of the hand message; the landmark records' hand object is version 1 too
MODES = ("server", "device")  # where a stream's hands are found: frames sent, or hands sent
MAX_T_MS = 2**53  # a whole number of milliseconds JSON carries exactly
HAND_IN_SERVER_MODE = ('a hand message in server mode: this stream recognises frames; send {"type": "config", '
                       '"mode": "device"} first')
FRAME_IN_DEVICE_MODE = ('a frame in on-device mode: this stream takes hand messages; send {"type": "config", '
                        '"mode": "server"} first to send frames')


@dataclasses.dataclass(frozen=True)
class HandMessage:
    """A checked hand message: the hand (None: none in that frame) and its time."""

    hand: Hand | None
    t_ms: int


def parse_hand_message(doc: dict) -> HandMessage:
    """The hand message ``doc`` (already known to be ``{"type": "hand", ...}``), checked.

    Raises:
        ValueError: a field is missing or wrong; the message names it.
    """
    version = doc.get("v")
    if version != VERSION:
        shown = "missing" if version is None else repr(version)[:20]
        raise ValueError(f'hand message version {shown}: this server reads "v": {VERSION}')
    t_ms = doc.get("t_ms")
    if not (isinstance(t_ms, int) and not isinstance(t_ms, bool) and 0 <= t_ms < MAX_T_MS):
        raise ValueError('"t_ms" must be a whole number of milliseconds, 0 or more (the frame\'s time)')
    if "hand" not in doc:
        raise ValueError('a hand message needs "hand": null (no hand in the frame) or a hand object')
    return HandMessage(hand_from_json(doc["hand"]), t_ms)


def mirrored(hand: Hand | None) -> Hand | None:
    """The hand as found in the frame flipped left to right: x flipped, the other hand.

    What the server's mirroring does to a frame (``config`` ``mirror``), done to a hand: a left
    hand reads as the right hand the model learned.
    """
    if hand is None:
        return None
    points = np.array(hand.landmarks, dtype=np.float32, copy=True)
    points[:, 0] = 1.0 - points[:, 0]
    other = {"Left": "Right", "Right": "Left"}.get(hand.handedness, hand.handedness)
    return dataclasses.replace(hand, landmarks=points, handedness=other)
