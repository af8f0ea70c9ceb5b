#!/usr/bin/env bash
# Print the default image tag: the short git SHA of HEAD, with `-dirty` when the work tree has
# uncommitted changes (tracked or untracked files). KFP's cache keys on the image reference, so
# every commit gets its own tag; a -dirty tag is reused across edits: rebuild before relying on it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sha="$(git rev-parse --short=7 HEAD 2>/dev/null)" || { echo "image-tag: not a git checkout with a commit; set IMAGE_TAG" >&2; exit 1; }
if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
    sha="$sha-dirty"
fi
echo "$sha"
