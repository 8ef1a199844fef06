# Pledgeline reference image (see docker-compose.yml and README.md, "Production").
#
# The project is installed in editable mode from /app on purpose: `pledgeline migrate`
# finds alembic.ini and migrations/ next to the `app` package (app/migrate.py, ROOT =
# the package's parent directory). A plain `pip install .` would put the package in
# site-packages, away from those files, and migrations would not be found.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The tax receipts' PDF font (PLEDGELINE_RECEIPTS_FONT_PATH: DejaVu Sans, for accents
# and the euro sign; app/receipts falls back to Helvetica without it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer.
COPY pyproject.toml ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"

# The project itself: the package, the benchmarks, and the Alembic files it needs.
COPY alembic.ini ./
COPY migrations ./migrations
COPY bench ./bench
COPY app ./app
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin pledgeline \
    && mkdir -p /app/data \
    && chown pledgeline /app/data

USER pledgeline

# Listen on all interfaces inside the container; everything else comes from PLEDGELINE_*.
ENV PLEDGELINE_HOST=0.0.0.0 \
    PLEDGELINE_PORT=8000

EXPOSE 8000

# python:3.11-slim has no curl: ask /healthz with the standard library.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PLEDGELINE_PORT', '8000'), timeout=4)"]

CMD ["sh", "-c", "pledgeline migrate && exec pledgeline serve"]
