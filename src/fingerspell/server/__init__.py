"""The web server: the page, a WebSocket for live video, and POST /predict.

Nothing in the library imports this package; the CLI's ``fingerspell serve`` calls ``run``.
"""

from .app import create_app, params_from_env, run

__all__ = ["create_app", "params_from_env", "run"]
