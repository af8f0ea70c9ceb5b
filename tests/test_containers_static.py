"""Container definitions, checked without Docker: what a build would bake in, and what the make
targets accept. (The images themselves are built and run by the container test tier.)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.shell import BASH3_ENV, bash4_constructs

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ROOT / "containers"
DOCKERFILES = sorted(CONTAINERS.glob("*.Dockerfile"))
FRAGMENT = CONTAINERS / "containers.mk"
TOP_MAKEFILE = ROOT / "Makefile"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            out.append((keyword.upper(), args.strip()))
            pending = ""
    return out


def pins() -> dict[str, str]:
    result = {}
    for line in (CONTAINERS / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: '{line}' is not NAME==VERSION"
            result[canonicalize_name(name)] = version
    return result


def test_both_images_are_defined():
    assert {p.name for p in DOCKERFILES} >= {"cpu.Dockerfile", "train.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_a_build_arg_with_a_pinned_default(dockerfile):
    steps = instructions(dockerfile)
    keyword, args = steps[0]
    assert keyword == "ARG" and args.startswith("BASE_IMAGE="), "the first instruction is ARG BASE_IMAGE=…"
    default = args.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", default), default
    stages = set()
    for keyword, args in steps:
        if keyword == "FROM":
            source, *alias = args.split()
            assert source in ("${BASE_IMAGE}", "$BASE_IMAGE") or source in stages, args
            if alias:
                stages.add(alias[-1])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_no_latest_no_syntax_line_no_entrypoint(dockerfile):
    text = dockerfile.read_text()
    assert ":latest" not in text
    assert not re.search(r"(?im)^\s*#\s*syntax\s*=", text), "a syntax line would pull a frontend image"
    assert "ENTRYPOINT" not in {k for k, _ in instructions(dockerfile)}, "KFP sets the command"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_non_root_user(dockerfile):
    users = [args for keyword, args in instructions(dockerfile) if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root"), users[-1]
    assert user.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_no_credentials_or_index_urls_baked_in(dockerfile):
    for keyword, args in instructions(dockerfile):
        if keyword in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(?i)token|passw|secret|credential|api_?key|access_?key|index_url", args), (
                args
            )
        assert not re.search(r"https?://", args), f"no URLs in {keyword}: index settings are build secrets"
    # Secrets reach RUN steps only as BuildKit secret mounts, never through COPY/ADD.
    text = dockerfile.read_text()
    assert not re.search(r"(?im)^\s*(COPY|ADD)\b.*(cert|pip\.conf|netrc|\.env)", text)
    assert "--mount=type=secret,id=pip_cert" in text and "--mount=type=secret,id=pip_conf" in text


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dependencies_are_installed_before_the_sources_and_pinned(dockerfile):
    steps = instructions(dockerfile)
    runs = [args for keyword, args in steps if keyword == "RUN"]
    deps = next(i for i, r in enumerate(runs) if "--requirement" in r)
    source = next(i for i, r in enumerate(runs) if "--mount=type=bind" in r)
    assert deps < source
    assert "--constraint /opt/venv-constraints.txt" in runs[deps]
    assert "--no-index" in runs[source] and "--no-deps" in runs[source]
    assert "check-pins.py" in runs[source]
    assert "--no-cache-dir" in runs[deps] or "--mount=type=cache,target=/root/.cache/pip" in runs[deps], (
        "pip's cache must not land in a layer"
    )


def test_cpu_and_train_images_share_their_dependency_layers():
    """From the final FROM to the project install both files must read the same, so the CPU
    training image reuses the CPU image's layers.
    """

    def shared(path: Path) -> list[tuple[str, str]]:
        steps = instructions(path)
        start = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
        end = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "--mount=type=bind" in a)
        return steps[start : end + 1]

    assert shared(CONTAINERS / "cpu.Dockerfile") == shared(CONTAINERS / "train.Dockerfile")


def image_env(dockerfile: Path) -> dict[str, str]:
    """The environment an image's containers start with: every ENV of its final stage."""
    steps = instructions(dockerfile)
    final = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    env = {}
    for keyword, args in steps[final:]:
        if keyword == "ENV":
            words = shlex.split(args)
            if "=" not in words[0]:  # the legacy `ENV KEY value` form
                words = [f"{words[0]}={' '.join(words[1:])}"]
            env.update(word.split("=", 1) for word in words)
    return env


def test_image_env_reads_both_env_forms(tmp_path):
    dockerfile = tmp_path / "x.Dockerfile"
    dockerfile.write_text('FROM a AS b\nENV OLD=1\nFROM b\nENV A=1 \\\n    B="two words"\nENV C 3 4\n')
    assert image_env(dockerfile) == {"A": "1", "B": "two words", "C": "3 4"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_leave_gpu_visibility_to_the_device_plugin(dockerfile):
    """A pod sees the GPUs it requested (nvidia.com/gpu), not every GPU of the node."""
    assert "NVIDIA_VISIBLE_DEVICES" not in image_env(dockerfile)


def test_training_image_finds_the_node_driver():
    env = image_env(CONTAINERS / "train.Dockerfile")
    assert "/usr/local/nvidia/lib64" in env["LD_LIBRARY_PATH"].split(":"), "GKE mounts the driver there"
    assert env["PATH"].startswith("/opt/venv/bin:"), "the venv stays first on PATH"


def test_training_image_variants():
    text = (CONTAINERS / "train.Dockerfile").read_text()
    assert "ARG TF_VARIANT=gpu" in text
    assert 'case "$TF_VARIANT" in cpu|gpu)' in text


def test_constraints_pin_kfp_and_tensorflow():
    p = pins()
    assert p["kfp"].startswith("2.17.")
    assert p["kfp-kubernetes"].startswith("2.17.")
    assert p["tensorflow-cpu"].startswith("2.21.")
    assert p["tensorflow"].startswith("2.21."), "the GPU image installs tensorflow[and-cuda]"
    assert p["tensorflow"] == p["tensorflow-cpu"]
    assert any(name.startswith("nvidia-cudnn") for name in p), "the CUDA wheels of the GPU image are pinned"
    for name in ("pip", "setuptools", "wheel"):
        assert name in p


def test_constraints_hold_runtime_packages_only():
    p = pins()
    assert "cxr-kfp" not in p
    for dev_tool in ("pytest", "ruff", "gcp-storage-emulator", "kubernetes-validate"):
        assert dev_tool not in p, f"{dev_tool} is a dev tool, not an image dependency"


def test_constraints_satisfy_every_image_requirement():
    """When pyproject.toml's dependencies change, `make constraints` must follow."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    p = pins()
    extras = project["optional-dependencies"]
    reqs = project["dependencies"] + extras["cpu"] + extras["gpu"]
    for line in reqs:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in p, f"{req.name} is not pinned in containers/constraints.txt (make constraints)"
        assert req.specifier.contains(p[name], prereleases=True), (
            f"{req.name}=={p[name]} does not satisfy '{line}' (make constraints)"
        )


LINUX = {
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "python_version": "3.11",
    "python_full_version": "3.11.13",
    "implementation_name": "cpython",
    "extra": "",
}


def image_requirements(dockerfile: Path, variant: str, tmp_path: Path) -> list[Requirement]:
    """The requirement list a build writes, by running the Dockerfile's own extraction program."""
    (run,) = [args for keyword, args in instructions(dockerfile) if keyword == "RUN" and "tomllib" in args]
    program = re.search(r"python3 -c '([^']+)'", run).group(1)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    program = program.replace("/tmp/pyproject.toml", str(tmp_path / "pyproject.toml"))
    out = subprocess.run([sys.executable, "-c", program, variant], capture_output=True, text=True, check=True)
    return [Requirement(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("dockerfile", ["cpu.Dockerfile", "train.Dockerfile"])
@pytest.mark.parametrize("machine,tensorflow", [("x86_64", "tensorflow-cpu"), ("aarch64", "tensorflow")])
def test_cpu_images_install_a_tensorflow_the_platform_has_pinned(tmp_path, dockerfile, machine, tensorflow):
    """tensorflow-cpu has no linux-aarch64 wheel; plain tensorflow (same release, same dependencies) has."""
    reqs = image_requirements(CONTAINERS / dockerfile, "cpu", tmp_path)
    environment = {**LINUX, "platform_machine": machine}
    chosen = [r for r in reqs if r.marker is None or r.marker.evaluate(environment)]
    assert [canonicalize_name(r.name) for r in chosen if r.name.startswith("tensorflow")] == [tensorflow]
    p = pins()
    for req in chosen:
        assert req.specifier.contains(p[canonicalize_name(req.name)]), f"{req} vs the pin"
    assert p["tensorflow"] == p["tensorflow-cpu"]


def test_dockerignore_keeps_the_context_small():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [r.strip() for r in ignore if r.strip() and not r.startswith("#")]
    assert rules[0] == "*", "an allowlist: only what the images need is sent"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert {
        "pyproject.toml",
        "components",
        "pipelines",
        "containers/constraints.txt",
        "containers/check-pins.py",
    } <= allowed
    assert not allowed & {".venv", ".git", "tests", "runs", ".env"}
    assert "**/__pycache__" in rules


def test_no_mirror_or_index_host_is_written_into_the_container_files():
    files = [*CONTAINERS.iterdir(), ROOT / ".dockerignore"]
    for path in files:
        if path.is_file():
            text = path.read_text()
            for host in ("deb.debian.org", "pypi.org", "pythonhosted.org", "snapshot.debian.org"):
                assert host not in text, f"{path.name} names {host}: read it from the machine's config"


@pytest.mark.parametrize("script", sorted(CONTAINERS.glob("*.sh")), ids=lambda p: p.name)
def test_scripts_are_strict_bash(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", sorted(CONTAINERS.glob("*.sh")), ids=lambda p: p.name)
def test_scripts_run_on_bash_3_2(script):
    """check-image-ref.sh and image-tag.sh run while make reads its files: a bash 4 construct there
    stops every make target on macOS before anything runs.
    """
    assert bash4_constructs(script.read_text()) == []


def test_the_bash_3_2_check_finds_what_bash_3_2_lacks(tmp_path):
    script = """#!/usr/bin/env bash
set -euo pipefail
# a comment may say mapfile or ${tag,,}
extra=()
lower="${1,,}"
mapfile -t lines < <(printf 'a\\n')
declare -A seen
echo "${lines[@]}" "${extra[@]}" ${extra[@]+"${extra[@]}"} "${lower@Q}" |& cat
"""
    found = sorted(f.split(": ", 1)[1] for f in bash4_constructs(script))
    assert found == sorted(
        [
            "case modification (${var,,} ${var^^})",
            "mapfile / readarray",
            "associative array, nameref or global declare",
            "transformation (${var@Q})",
            "|& or &>> redirection",
            'extra may be empty: expand it as ${extra[@]+"${extra[@]}"}',
        ]
    )
    (tmp_path / "m.sh").write_text(script)
    ran = subprocess.run(
        ["bash", str(tmp_path / "m.sh"), "X"], env={**os.environ, **BASH3_ENV}, capture_output=True, text=True
    )
    assert ran.returncode != 0 and "mapfile: command not found" in ran.stderr, "BASH3_ENV takes mapfile away"


def test_scripts_pass_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck is missing: `make test-tools` installs it"
    result = subprocess.run(
        ["shellcheck", *map(str, sorted(CONTAINERS.glob("*.sh")))], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("localhost/cxr-kfp-cpu:0a87c8b", True),
        ("localhost/cxr-kfp-cpu:0a87c8b-dirty", True),
        ("localhost:5000/cxr-kfp-train:v1.2", True),
        ("europe-west4-docker.pkg.dev/proj/repo/cxr-kfp-train:abc", True),
        ("localhost/cxr-kfp-cpu:latest", False),
        ("localhost/cxr-kfp-cpu", False),
        ("localhost:5000/cxr-kfp-cpu", False),
        ("localhost/cxr-kfp-cpu:", False),
        ("Localhost/CXR:1", False),
    ],
)
def test_image_references_are_checked(ref, ok):
    result = subprocess.run(
        [str(CONTAINERS / "check-image-ref.sh"), ref],
        capture_output=True,
        text=True,
        env={**os.environ, **BASH3_ENV},
    )
    assert (result.returncode == 0) == ok, result.stderr
    if not ok:
        assert len(result.stderr.strip().splitlines()) == 1, "one-line reason"


# --- make: flags are validated when make reads the files, so `make -n` rejects them.


def make_n(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-n", "-f", str(TOP_MAKEFILE), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **BASH3_ENV},
    )


def test_top_level_makefile_includes_the_fragment():
    assert re.search(r"(?m)^-?include containers/containers\.mk\s*$", TOP_MAKEFILE.read_text())


@pytest.mark.parametrize(
    "args",
    [
        ("build-images", "TF_VARIANT=rocm"),
        ("build-image-train", "TF_VARIANT=cpu gpu"),
        ("build-images", "IMAGE_TAG=latest"),
        ("build-images-local", "IMAGE_TAG=LATEST"),
        ("build-images", "IMAGE_TAG=a/b"),
        ("push-images", "IMAGE_TAG=v1"),
        ("push-images", "IMAGE_REGISTRY=localhost/cxr-kfp", "IMAGE_TAG=v1"),
    ],
)
def test_make_rejects_bad_flags(args):
    result = make_n(*args)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "***" in message
    assert any(word in message for word in ("TF_VARIANT", "IMAGE_TAG", "IMAGE_REGISTRY", "tag")), message


def test_make_builds_the_three_images_with_one_tag():
    result = make_n("build-images", "IMAGE_REGISTRY=registry.example/team", "IMAGE_TAG=v1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("cxr-kfp-cpu", "cxr-kfp-train", "cxr-kfp-train-cpu"):
        assert f"registry.example/team/{name}:v1" in out
    assert "cpu.Dockerfile" in out and "TF_VARIANT=gpu" in out and "TF_VARIANT=cpu" in out
    assert "BASE_IMAGE=''" in out, "empty BASE_IMAGE: the Dockerfiles' public default"


def test_make_local_builds_use_the_offline_base():
    result = make_n("build-images-local", "IMAGE_TAG=v1")
    assert result.returncode == 0, result.stderr
    assert "base-image.sh 'cxr-kfp-base:bookworm'" in result.stdout
    builds = [line for line in result.stdout.splitlines() if "build-image.sh" in line]
    assert len(builds) == 2 and all("BASE_IMAGE='cxr-kfp-base:bookworm'" in b for b in builds)
    assert "localhost/cxr-kfp/cxr-kfp-cpu:v1" in builds[0]
    assert "localhost/cxr-kfp/cxr-kfp-train-cpu:v1" in builds[1]


def test_make_default_images_are_the_ones_the_pipeline_config_names():
    """Built with no settings, the images carry the references a pipeline compiled with no
    settings uses (registry and git-SHA tag), so compile and build agree.
    """
    from pipelines.config import ImagesConfig

    result = make_n("image-refs")
    assert result.returncode == 0, result.stderr
    images = ImagesConfig()
    assert f"CPU_IMAGE={images.cpu}'" in result.stdout
    assert f"TRAIN_IMAGE={images.train}'" in result.stdout


def test_make_push_accepts_a_real_registry():
    result = make_n("push-images", "IMAGE_REGISTRY=europe-west4-docker.pkg.dev/p/r", "IMAGE_TAG=v1")
    assert result.returncode == 0, result.stderr
    assert "europe-west4-docker.pkg.dev/p/r/cxr-kfp-train:v1" in result.stdout
