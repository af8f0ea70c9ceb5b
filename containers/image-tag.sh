#!/usr/bin/env bash
# Print the default image tag: the 12-character git SHA of HEAD, with `-dirty` when tracked files
# have uncommitted changes. Must agree with pipelines/config.py:git_tag(), which names the images
# a compiled pipeline uses. KFP's cache keys on the image reference, so every commit gets its own
# tag; a -dirty tag is reused across edits: rebuild before relying on it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sha="$(git rev-parse --short=12 HEAD 2>/dev/null)" || { echo "image-tag: not a git checkout with a commit; set IMAGE_TAG" >&2; exit 1; }
if [[ -n "$(git --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    sha="$sha-dirty"
fi
echo "$sha"
