#!/usr/bin/env bash
# Validate image references: REGISTRY/NAME:TAG with an explicit tag that is not `latest`.
# Usage: containers/check-image-ref.sh IMAGE...   (exit 1 with a one-line reason on the first bad one)
# Runs while make reads its files, with whatever bash the machine has (macOS: 3.2).
set -euo pipefail
tag_pattern='^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'
repo_pattern='^[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$'
for ref in "$@"; do
    tag="${ref##*:}"
    if [[ "$ref" != *:* || "$tag" == */* ]]; then
        echo "image reference '$ref' has no valid tag: tag images explicitly (IMAGE_TAG: letters, digits, _ . -), never implicitly :latest" >&2
        exit 1
    fi
    case "$tag" in
    [Ll][Aa][Tt][Ee][Ss][Tt])
        echo "image reference '$ref' uses the tag 'latest': set IMAGE_TAG to a version (default: the git SHA)" >&2
        exit 1
        ;;
    esac
    if ! [[ "$tag" =~ $tag_pattern ]]; then
        echo "image reference '$ref': tag '$tag' is not a valid Docker tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})" >&2
        exit 1
    fi
    repo="${ref%:*}"
    if ! [[ "$repo" =~ $repo_pattern ]]; then
        echo "image reference '$ref': repository '$repo' is not valid (lower case, REGISTRY[:PORT]/PATH, no trailing /)" >&2
        exit 1
    fi
done
