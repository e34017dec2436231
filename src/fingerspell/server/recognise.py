"""What one frame, or one hand found in the page, of a stream becomes: its prediction, the
decoder's new state, and its answer. Each runs in a worker thread, for the stream
(``stream._Connection``: its ``stream``, ``decoder``, ``personal`` model and ``settings``);
the decoder only under the connection's decoder lock, which the stream holds around the call.
"""

from __future__ import annotations

import numpy as np

from ..hands import Region
from ..predictor import Prediction
from .device import HandMessage, mirrored
from .settings import SERVE_FORMATS


def frame(conn, number: int, data: bytes, mirror: bool, region: Region | None) -> tuple[Prediction, dict]:
    """The frame's prediction and its answer; the server's one mirroring path.

    With ``mirror`` the stream recognises the frame flipped left to right (and looks afresh for
    the hand when that changes); the answer's landmarks are flipped back, into the frame the
    client sent, so the page draws them where the hand is. With ``region`` the frame is that part
    of the camera frame (mirrored with the frame), and the landmarks are the whole camera frame's.
    """
    stream = conn.stream
    if not conn.warmed:
        # A detector's first frame costs ~10x a normal one (kernels set up): paid on a blank
        # frame, once a stream, and only by a stream that sends frames. (The tracker warms itself.)
        stream.predict(np.zeros((480, 640, 3), dtype=np.uint8))
        conn.warmed = True
    stream.personal = conn.personal  # what Predictor.recognise reads; set where this thread reads it
    pred = stream.predict_bytes(data, conn.settings.params.max_pixels, SERVE_FORMATS, mirror=mirror, region=region)
    conn.settings.save_frame(f"ws{conn.cid}-{number:06d}", data)
    return pred, answer(number, pred, mirror)


def hand(conn, number: int, message: HandMessage, mirror: bool, t_ms: float) -> dict:
    """A hand message's answer, its spelling included: pushed as found (mirrored with ``mirror``,
    as a frame would be), then into the decoder at ``t_ms``, in one call (a hand takes ~0.2 ms:
    one thread hop, not two). The answer leaves out ``hand``: the page has the hand it sent, and
    its 63 numbers were two thirds of the answer's bytes and most of the time spent writing it."""
    conn.stream.personal = conn.personal
    pred = conn.stream.push(mirrored(message.hand) if mirror else message.hand, message.t_ms)
    out = answer(number, pred, mirror, hand=False)
    out["spelling"] = update(conn, pred, t_ms)
    return out


def update(conn, pred: Prediction, t_ms: float) -> dict:
    """The frame into the decoder, and its new state."""
    conn.decoder.update(pred, t_ms, conn.stream.position)
    return conn.decoder.state()


def answer(number: int, pred: Prediction, mirror: bool, hand: bool = True) -> dict:
    """A frame's answer (``hand=False``: without the hand, which its sender has); a mirrored
    frame's landmarks and a J or Z's fingertip path are flipped back into the frame the client sent."""
    out = {"type": "prediction", "frame": number, **pred.to_json(hand=hand)}
    if mirror:
        unmirror((out["hand"]["landmarks"] if out.get("hand") else []) + out.get("path", []))
    return out


def unmirror(points: list) -> None:
    """[x, y, ...] points as fractions of a mirrored frame -> of the frame as sent, in place."""
    for point in points:
        point[0] = round(1.0 - point[0], 4)
