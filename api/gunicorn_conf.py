"""gunicorn settings: gevent workers so event streams do not each hold a worker."""
from __future__ import annotations

import os

import gunicorn.http.wsgi

# No version banner: the Server header names the service, not the software and its version.
gunicorn.http.wsgi.SERVER = "pdfq"

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = 1000
timeout = 30
graceful_timeout = 25
keepalive = 5
accesslog = None
errorlog = "-"

# gunicorn's own lines in the same one-JSON-object-per-line format as the app's.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "shared.logs.JsonFormatter"}},
    "handlers": {  # the names gunicorn's defaults refer to, now formatted as JSON
        "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
    },
    "loggers": {"gunicorn.error": {"handlers": ["error_console"], "level": "INFO", "propagate": False}},
}
