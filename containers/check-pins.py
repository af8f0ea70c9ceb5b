"""Fail the image build when an installed distribution is missing from, or differs from, the pins.

Usage (inside the image build): python check-pins.py CONSTRAINTS [IGNORE ...]

Every distribution in the running interpreter's environment except IGNORE (the project itself)
must appear in CONSTRAINTS with the same version, so an image never carries a version nobody
chose. When pyproject.toml gains a dependency, regenerate the pins: `make constraints`.
"""

import sys
from importlib import metadata


def canonical(name: str) -> str:
    """Lower-case, with `_` and `.` as `-`, so `Foo_Bar` in a pin matches an installed `foo-bar`."""
    return name.lower().replace("_", "-").replace(".", "-")


def main(constraints: str, *ignore: str) -> int:
    """Print every installed distribution the constraints file does not pin as installed; 1 if any."""
    pins = {}
    with open(constraints, encoding="utf-8") as lines:
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                pins[canonical(name)] = version.strip()
    skip = {canonical(n) for n in ignore}
    bad = []
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name in skip:
            continue
        if pins.get(name) != dist.version:
            bad.append(f"{name}=={dist.version} (pinned: {pins.get(name, 'not pinned')})")
    if bad:
        print(f"check-pins: versions not in {constraints} (run `make constraints`):", file=sys.stderr)
        print("\n".join(f"  {b}" for b in sorted(bad)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
