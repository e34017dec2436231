"""The web server: the page, a WebSocket for live video, and POST /predict.

Nothing in the library imports this package; the CLI's ``fingerspell serve`` serves
``create_app`` with uvicorn (``fingerspell.serve.run``).
"""

from .app import create_app
from .deps import get_predictor
from .settings import params_from_env

__all__ = ["create_app", "get_predictor", "params_from_env"]
