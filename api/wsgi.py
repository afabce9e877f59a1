"""The WSGI entry point for gunicorn: `gunicorn api.wsgi:app`."""
from __future__ import annotations

from api import create_app
from shared.logs import configure_logging

configure_logging()
app = create_app()
