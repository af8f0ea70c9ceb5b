# The CPU image: ingest, split, evaluate and report steps, and the `cxr` command line.
#
#   make build-images          # or, offline on the debootstrap base: make build-images-local
#   docker run --rm --network none IMAGE cxr --help
#
# Built with BuildKit (DOCKER_BUILDKIT=1) from the project root as context. pip reaches its index
# with what the build passes as secrets, never baked in: `pip_cert` (a CA bundle) and `pip_conf`
# (a pip.conf with index settings), both optional; see containers/build-image.sh.
# No ENTRYPOINT: KFP sets each task's command. Runs as the non-root user `cxr` (uid 1000).
#
# Everything from the final FROM to the project install is the same text as in train.Dockerfile,
# so the CPU training image reuses these layers (build cache and disk) instead of repeating them.

# A pinned public Python 3.11 on Debian bookworm; any Debian/Ubuntu image with python3 (3.11),
# its venv module, useradd and CA certificates works too (make base-image builds one offline).
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

# The requirement list: only pyproject.toml's dependency lists reach the next stage, so edits to
# its other sections (tool settings, metadata) keep the dependency layer cached.
FROM ${BASE_IMAGE} AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c 'import sys, tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"][sys.argv[1]]))' cpu >/tmp/requirements.txt

FROM ${BASE_IMAGE}
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8

# The runtime user, and the KFP launcher's artifact mount points (/gcs, /minio, /s3) writable by
# it: the launcher creates paths under them as the container's user.
RUN groupadd --gid 1000 cxr \
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash cxr \
 && mkdir -p /gcs /minio /s3 \
 && chown cxr:cxr /gcs /minio /s3

# Dependencies, before the sources so that a source edit rebuilds only the last layer. Every
# version comes from containers/constraints.txt. pip's download cache lives in a BuildKit cache
# mount, never in the image.
COPY containers/constraints.txt /opt/venv-constraints.txt
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_conf \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -s /run/secrets/pip_conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip_conf; fi; \
    python3 -m venv "$VIRTUAL_ENV"; \
    pip install --quiet --constraint /opt/venv-constraints.txt pip setuptools wheel; \
    pip install --quiet --constraint /opt/venv-constraints.txt --requirement /tmp/requirements.txt; \
    rm -f /tmp/requirements.txt

# The project itself: offline (no index), no dependency changes, then every installed version
# checked against the pins.
RUN --mount=type=bind,target=/src,rw \
    set -eu; \
    pip install --quiet --no-index --no-deps --no-build-isolation /src; \
    pip check; \
    python3 /src/containers/check-pins.py /opt/venv-constraints.txt cxr-kfp; \
    python3 -c 'import components, pipelines, kfp'

ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="cxr-kfp-cpu" \
      org.opencontainers.image.description="cxr-kfp CPU steps: ingest, split, evaluate, report, cxr CLI" \
      org.opencontainers.image.revision="${GIT_SHA}"

USER 1000:1000
WORKDIR /home/cxr
CMD ["cxr", "--help"]
