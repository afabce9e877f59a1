"""The WSGI entry point for gunicorn: `gunicorn api.wsgi:app`."""
from __future__ import annotations

import os

from api import create_app
from shared.logs import configure_logging

configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
app = create_app()
