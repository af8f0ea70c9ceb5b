# Container images — included by the top-level Makefile (`include containers/containers.mk`),
# or used alone: `make -f containers/containers.mk TARGET`.
#
# Images (all three share one tag; names from pipelines/images.env):
#   CPU_IMAGE        ingest, split, evaluate, report, `cxr`
#   TRAIN_IMAGE      train, TensorFlow + CUDA (NVIDIA T4 nodes)
#   TRAIN_CPU_IMAGE  train, TensorFlow CPU (local runs, tests)
# The same references as pipelines/config.py (images.registry, images.tag), so a pipeline
# compiled with the same IMAGE_REGISTRY/IMAGE_TAG uses the images built here.
#
# Settings (make variables, the environment or .env):
#   IMAGE_REGISTRY    where the images live; default DEFAULT_IMAGE_REGISTRY (local-only names such
#                     as localhost/cxr-kfp/cxr-kfp-cpu:0a87c8b1f2e3). Set a real one to push,
#                     e.g. europe-west4-docker.pkg.dev/PROJECT/REPO
#   IMAGE_TAG         default: the 12-character git SHA, `-dirty` when tracked files have
#                     uncommitted changes. Never `latest` (KFP caches on the image reference).
#   BASE_IMAGE        base image of every build; empty = the Dockerfiles' pinned public
#                     python:3.11 slim bookworm. build-images-local uses LOCAL_BASE_IMAGE.
#   LOCAL_BASE_IMAGE  the offline debootstrap base; default cxr-kfp-base:bookworm
#   TF_VARIANT        gpu | cpu: which training image build-image-train builds (default gpu)
#   DOCKER            docker client; default /usr/bin/docker when present (BuildKit is required)
#   DOCKER_BUILD_NETWORK  network of RUN steps during builds; default host
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_CERT: how pip inside the builds
#                     reaches its index (default: this machine's pip configuration); passed as
#                     build secrets, never stored in an image.

CONTAINERS_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
# Image names and the default registry (DEFAULT_IMAGE_REGISTRY, *_IMAGE_NAME): one home, shared
# with pipelines/config.py.
include $(CONTAINERS_DIR)/../pipelines/images.env

DOCKER ?= $(firstword $(wildcard /usr/bin/docker) docker)
IMAGE_REGISTRY ?= $(DEFAULT_IMAGE_REGISTRY)
ifeq ($(origin IMAGE_TAG),undefined)
IMAGE_TAG := $(shell $(CONTAINERS_DIR)/image-tag.sh 2>/dev/null)
endif
BASE_IMAGE ?=
LOCAL_BASE_IMAGE ?= cxr-kfp-base:bookworm
TF_VARIANT ?= gpu
DOCKER_BUILD_NETWORK ?= host

CPU_IMAGE = $(IMAGE_REGISTRY)/$(CPU_IMAGE_NAME):$(IMAGE_TAG)
TRAIN_IMAGE = $(IMAGE_REGISTRY)/$(TRAIN_IMAGE_NAME):$(IMAGE_TAG)
TRAIN_CPU_IMAGE = $(IMAGE_REGISTRY)/$(TRAIN_CPU_IMAGE_NAME):$(IMAGE_TAG)

# --- Flags are checked when make reads this file, so `make -n` rejects them too.
ifeq ($(filter cpu gpu,$(TF_VARIANT)),)
$(error TF_VARIANT must be cpu or gpu, not '$(TF_VARIANT)')
endif
ifneq ($(words $(TF_VARIANT)),1)
$(error TF_VARIANT must be cpu or gpu, not '$(TF_VARIANT)')
endif
ifneq ($(filter latest Latest LATEST,$(IMAGE_TAG)),)
$(error IMAGE_TAG must not be '$(IMAGE_TAG)': use a version, by default the git SHA (KFP caches on the image tag))
endif
_CXR_IMAGE_GOALS := build-images build-images-local build-image-cpu build-image-train \
    build-image-train-gpu build-image-train-cpu push-images smoke-images image-refs
ifneq ($(filter $(_CXR_IMAGE_GOALS),$(MAKECMDGOALS)),)
ifeq ($(strip $(IMAGE_TAG)),)
$(error IMAGE_TAG is empty: not a git checkout with a commit? Set IMAGE_TAG=VERSION)
endif
_CXR_REF_ERROR := $(shell $(CONTAINERS_DIR)/check-image-ref.sh '$(CPU_IMAGE)' 2>&1)
ifneq ($(_CXR_REF_ERROR),)
$(error $(_CXR_REF_ERROR))
endif
endif
ifneq ($(filter push-images,$(MAKECMDGOALS)),)
ifneq ($(filter localhost localhost/%,$(IMAGE_REGISTRY)),)
$(error push-images needs a real registry: set IMAGE_REGISTRY (e.g. europe-west4-docker.pkg.dev/PROJECT/REPO), not '$(IMAGE_REGISTRY)')
endif
endif

# $(call _cxr_build,DOCKERFILE,IMAGE,BASE,EXTRA-ARGS)
_cxr_build = BASE_IMAGE='$(3)' DOCKER='$(DOCKER)' DOCKER_BUILD_NETWORK='$(DOCKER_BUILD_NETWORK)' \
    $(CONTAINERS_DIR)/build-image.sh $(CONTAINERS_DIR)/$(1) '$(2)' $(4)

.PHONY: docker-install docker-engine base-image build-images build-images-local build-image-cpu build-image-train \
    build-image-train-gpu build-image-train-cpu push-images smoke-images image-refs constraints

docker-install: ## Install docker.io and debootstrap from Debian packages when missing (root)
	@$(CONTAINERS_DIR)/install-docker.sh

docker-engine: ## Start a Docker engine (dockerd, as root) unless one answers; wait until it does
	@DOCKER='$(DOCKER)' $(CONTAINERS_DIR)/docker-engine.sh

base-image: docker-engine ## Build the offline base image (debootstrap bookworm + python3) once
	@DOCKER='$(DOCKER)' $(CONTAINERS_DIR)/base-image.sh '$(LOCAL_BASE_IMAGE)'

build-image-cpu: docker-engine ## Build the CPU image (ingest, split, evaluate, report, cxr) on BASE_IMAGE; for kind with build-image-train-cpu
	@$(call _cxr_build,cpu.Dockerfile,$(CPU_IMAGE),$(BASE_IMAGE))

build-image-train-gpu: docker-engine ## Build the GPU training image (TensorFlow + CUDA wheels, several GB)
	@$(call _cxr_build,train.Dockerfile,$(TRAIN_IMAGE),$(BASE_IMAGE),--build-arg TF_VARIANT=gpu)

build-image-train-cpu: docker-engine ## Build the CPU variant of the training image
	@$(call _cxr_build,train.Dockerfile,$(TRAIN_CPU_IMAGE),$(BASE_IMAGE),--build-arg TF_VARIANT=cpu)

build-image-train: build-image-train-$(TF_VARIANT) ## Build the training image for TF_VARIANT=gpu|cpu

build-images: build-image-cpu build-image-train-gpu build-image-train-cpu ## Build all three images (cpu, train, train-cpu)

build-images-local: base-image ## Offline, no registry: the two CPU images on a debootstrap base (root, debootstrap; the container tests use it)
	@$(call _cxr_build,cpu.Dockerfile,$(CPU_IMAGE),$(LOCAL_BASE_IMAGE))
	@$(call _cxr_build,train.Dockerfile,$(TRAIN_CPU_IMAGE),$(LOCAL_BASE_IMAGE),--build-arg TF_VARIANT=cpu)

smoke-images: docker-engine ## Check the CPU images offline: non-root, `cxr --help`, imports
	@DOCKER='$(DOCKER)' $(CONTAINERS_DIR)/smoke-images.sh '$(CPU_IMAGE)' '$(TRAIN_CPU_IMAGE)'

push-images: docker-engine ## Push cpu and train (and train-cpu if built) to IMAGE_REGISTRY
	@DOCKER='$(DOCKER)' $(CONTAINERS_DIR)/push-images.sh '$(CPU_IMAGE)' '$(TRAIN_IMAGE)' '$(TRAIN_CPU_IMAGE)?'

image-refs: ## Print the image references the current settings give (CPU_IMAGE=… lines)
	@echo 'CPU_IMAGE=$(CPU_IMAGE)'
	@echo 'TRAIN_IMAGE=$(TRAIN_IMAGE)'
	@echo 'TRAIN_CPU_IMAGE=$(TRAIN_CPU_IMAGE)'

constraints: ## Regenerate containers/constraints.txt (image pins) from the dev venv
	@VENV='$(or $(VENV),.venv)' $(CONTAINERS_DIR)/gen-constraints.sh
