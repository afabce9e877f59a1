# One image for every process: web (default), worker and scheduler override the command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

# WeasyPrint's libraries; libharfbuzz-subset0 keeps the fast font subsetter (2.2x faster). Debian's chromium
# (security updates from the distribution) for `engine: chromium`; playwright drives it, never downloads one.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0=1.50.* libpangoft2-1.0-0=1.50.* libharfbuzz-subset0=6.0.* fonts-dejavu-core=2.37-* \
        chromium=1* \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY api ./api
COPY worker ./worker
COPY shared ./shared
COPY templates ./templates
COPY Procfile pyproject.toml ./

RUN useradd --system --uid 10001 --home-dir /app pdfq && mkdir -p /app/data && chown pdfq /app/data
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=4)"]
CMD ["gunicorn", "--config", "api/gunicorn_conf.py", "api.wsgi:app"]
