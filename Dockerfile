# cds-spine: build a wheel (cards/ packed inside), then install it in a slim runtime image.
FROM python:3.11.13-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir "hatchling==1.33.0"
COPY pyproject.toml README.md ./
COPY src/ src/
COPY cards/ cards/
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11.13-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home cds
COPY --from=build /wheels /wheels
# The dependencies exactly as locked in the repository (versions and hashes: `make lock`), then the service.
COPY requirements.lock /wheels/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /wheels/requirements.lock
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /tmp
ENV CDS_SPINE_AUTH=required \
    CDS_SPINE_HOST=0.0.0.0 \
    CDS_SPINE_PORT=8080 \
    CDS_SPINE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CDS_SPINE_PORT', '8080'), timeout=2)"]
CMD ["cds-spine", "serve"]
