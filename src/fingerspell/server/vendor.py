"""The page's own hand finding (on-device mode): its files, served from this origin, and whether
it can run here.

``GET /vendor/tasks-vision-<version>/<file>`` serves the pinned ``@mediapipe/tasks-vision`` files
that ``fingerspell setup`` cached (``hands.browser``), and ``GET /vendor/hand_landmarker.task`` the
hand model the server itself finds hands with, so the page loads nothing from another origin and
finds the hands the server would. ``/health``'s ``on_device`` tells the page where they are, or
why on-device mode is not offered (the page then sends frames, as before).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import HandModelError
from ..hands import browser, ensure_browser_assets

log = logging.getLogger(__name__)

ASSETS = f"/vendor/{browser.FOLDER}"
MODEL = "/vendor/hand_landmarker.task"
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json"}
# The files' names carry their version, so a browser may keep them; the model's name does not.
KEEP = {"Cache-Control": "public, max-age=604800, immutable"}

router = APIRouter()


class OnDevice:
    """Whether the page may find hands itself: the asset folder, or why not."""

    def __init__(self, folder: Path | None, why: str | None, model: Path | None, detect=None):
        self.folder, self.why, self.model = folder, why, model
        # The server's own thresholds, so that the page finds the hands the server would.
        self.options = {} if detect is None else {
            "minHandDetectionConfidence": detect.min_detection_confidence,
            "minHandPresenceConfidence": detect.min_presence_confidence,
            "minTrackingConfidence": detect.min_tracking_confidence}

    @classmethod
    def resolve(cls, predictor, cache_dir=None) -> "OnDevice":
        """Look for the cached assets (never fetches: ``fingerspell setup`` and ``serve`` do)."""
        model = getattr(predictor, "hand_model", None)
        runtime = getattr(predictor, "runtime", None)
        if getattr(runtime, "reads_pixels", False):
            return cls(None, f"the served model ({predictor.kind}) reads pixels, which never leave the page "
                             "in on-device mode", model)
        if model is None:
            return cls(None, "the served model has no hand model file to give the page", None)
        try:
            folder = ensure_browser_assets(cache_dir, download=False)
        except HandModelError as exc:
            log.warning("on-device mode is off: %s", exc)
            return cls(None, str(exc), model)
        return cls(folder, None, model, getattr(predictor, "detect_params", None))

    def to_json(self) -> dict:
        if self.folder is None:
            return {"available": False, "why": self.why}
        return {"available": True, "package": browser.SPEC, "module": f"{ASSETS}/vision_bundle.mjs",
                "wasm": f"{ASSETS}/wasm", "model": MODEL, "options": self.options}


@router.get(ASSETS + "/{name:path}", include_in_schema=False)
async def tasks_vision(name: str, request: Request):
    device: OnDevice = request.app.state.on_device
    if device.folder is None or name not in browser.FILES:
        raise StarletteHTTPException(404)
    return FileResponse(device.folder / name, media_type=TYPES[Path(name).suffix], headers=KEEP)


@router.get(MODEL, include_in_schema=False)
async def hand_model(request: Request):
    device: OnDevice = request.app.state.on_device
    if device.folder is None:
        raise StarletteHTTPException(404)
    return FileResponse(device.model, media_type="application/octet-stream", headers={"Cache-Control": "no-cache"})
