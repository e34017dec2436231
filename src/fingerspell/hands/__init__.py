"""Frame -> ``Hand | None``, and following a hand from frame to frame. The package's one public face.

* ``Hand`` (one hand's landmarks, the value every stage passes on) and ``Region`` (where a crop
  lies in the camera frame): ``hand.py``.
* ``HandFinder`` (find a hand in an image, or follow one into the next frame, with a
  ``Following`` value that a stream carries), ``HandDetector`` (the same with its own
  workers, for the CLI's extraction and the benchmarks): ``finder.py``, over the MediaPipe
  networks (``workers.py``: ``Workers``, and ``Pool``, a pool of any not-thread-safe objects),
  the retries for hands the palm detector misses (``retries.py``) and the landmark tracker
  (``tracking.py``).
* The hand-model asset, obtained, verified and cached: ``ensure_hand_model`` (``model.py``); and
  the browser's hand landmarker (``@mediapipe/tasks-vision``), the same way:
  ``ensure_browser_assets`` (``browser.py``).

Nothing outside this package imports its modules; they import nothing outside it but
``config`` and ``errors``.
"""

from . import browser
from .browser import ensure_browser_assets
from .finder import Following, HandDetector, HandFinder
from .hand import Hand, Region
from .model import TASK_NAME, TASK_SHA256, cache_dir, ensure_hand_model, sha256_file, verify_task
from .retries import RETRY_KINDS, parse_retry
from .workers import Pool, Workers

__all__ = ["Following", "browser", "ensure_browser_assets", "Hand", "HandDetector", "HandFinder", "Pool", "RETRY_KINDS", "Region", "TASK_NAME",
           "TASK_SHA256", "Workers", "cache_dir", "ensure_hand_model", "parse_retry", "sha256_file", "verify_task"]
