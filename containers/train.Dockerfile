# The training image: the `train` step with TensorFlow for NVIDIA GPUs (default), or its CPU
# variant for local tests.
#
#   make build-images                          # cxr-kfp-train (CUDA) and cxr-kfp-train-cpu
#   make build-images-local                    # the CPU variant only, on the offline base
#   docker build --build-arg TF_VARIANT=cpu …  # what the CPU variant is
#
# TF_VARIANT=gpu installs `.[gpu]` = tensorflow[and-cuda]: CUDA 12 and cuDNN 9 come as pip wheels
# (versions in containers/constraints.txt), so the base needs no CUDA. The NVIDIA driver comes
# from the node: GKE mounts it at /usr/local/nvidia, the NVIDIA container toolkit injects it
# elsewhere. TensorFlow 2.21's kernels (sm_60/70/80/89 + PTX) run on T4s (compute capability 7.5).
# TF_VARIANT=cpu installs `.[cpu]` = tensorflow-cpu, the same code path on machines without GPUs.
#
# Built with BuildKit from the project root as context; pip's certificate and index settings
# arrive as the optional secrets `pip_cert` and `pip_conf` (containers/build-image.sh), never
# baked in. No ENTRYPOINT: KFP sets each task's command. Runs as `cxr` (uid 1000).
#
# Everything from the final FROM to the project install is the same text as in cpu.Dockerfile,
# so with TF_VARIANT=cpu this image reuses the CPU image's layers (build cache and disk).

# A pinned public Python 3.11 on Debian bookworm; any Debian/Ubuntu image with python3 (3.11),
# its venv module, useradd and CA certificates works too (make base-image builds one offline).
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

# The requirement list for the variant: only pyproject.toml's dependency lists reach the next
# stage, so edits to its other sections (tool settings, metadata) keep the dependency layer cached.
FROM ${BASE_IMAGE} AS requirements
# gpu: tensorflow[and-cuda] (CUDA wheels, several GB); cpu: tensorflow-cpu.
ARG TF_VARIANT=gpu
COPY pyproject.toml /tmp/pyproject.toml
RUN case "$TF_VARIANT" in cpu|gpu) ;; *) echo "TF_VARIANT must be cpu or gpu, not '$TF_VARIANT'" >&2; exit 2;; esac; \
    python3 -c 'import sys, tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"][sys.argv[1]]))' "$TF_VARIANT" >/tmp/requirements.txt

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

# Where GPU nodes put the NVIDIA driver (GKE: /usr/local/nvidia), and which driver libraries the
# NVIDIA container toolkit mounts. Which GPUs a container sees is the device plugin's choice, from
# the pod's nvidia.com/gpu request: an image that set NVIDIA_VISIBLE_DEVICES would see every GPU of
# the node on runtimes that honour it, requested or not.
ENV PATH=/opt/venv/bin:/usr/local/nvidia/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

ARG TF_VARIANT=gpu
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="cxr-kfp-train" \
      org.opencontainers.image.description="cxr-kfp train step (TensorFlow ${TF_VARIANT})" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      io.github.cxr-kfp.tf-variant="${TF_VARIANT}"

USER 1000:1000
WORKDIR /home/cxr
CMD ["cxr", "train", "--help"]
