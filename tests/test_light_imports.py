"""Compiling and submitting need only kfp: `cxr compile`, `cxr submit` and `cxr --help` where the ML
stack cannot be imported (laptops and CI runners with kfp and without 600 MB of TensorFlow).
"""

import json
import subprocess
import sys
import textwrap

import yaml

from tests.fakes import KfpScenario, fake_kfp

ML_STACK = ("tensorflow", "keras", "sklearn", "matplotlib", "pandas", "scipy")

# Runs `cxr ARGS` in a fresh interpreter whose imports of BLOCKED packages raise ImportError, and
# prints (on the last line) which of WATCHED got imported anyway.
RUNNER = textwrap.dedent("""
    import importlib.abc, json, sys
    blocked, watched, args = json.loads(sys.argv[1])

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ImportError(f"{name} is not installed here")
            return None

    sys.meta_path.insert(0, Blocker())
    from pipelines.cli import main
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    imported = {m.split(".")[0] for m in sys.modules} & set(watched)
    print(json.dumps({"code": code, "imported": sorted(imported)}))
""")


def cxr_without(blocked, args, watched=ML_STACK, env=None):
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps([list(blocked), list(watched), args])],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done


def test_compile_needs_no_ml_stack(tmp_path):
    result, done = cxr_without(
        ML_STACK,
        [
            "compile",
            "--config",
            "pipelines/configs/cluster.yaml",
            "--output",
            str(tmp_path / "p.yaml"),
            "--set",
            "images.tag=t1",
            "--set",
            "images.registry=registry.example/team",
        ],
    )
    assert result["code"] == 0, done.stderr[-3000:]
    spec = next(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    assert {"exec-train-op", "exec-evaluate-op", "exec-report-op"} <= set(spec["deploymentSpec"]["executors"])
    # The kind profile compiles the demo-backbone step too.
    result, done = cxr_without(
        ML_STACK,
        [
            "compile",
            "--config",
            "pipelines/configs/kind.yaml",
            "--output",
            str(tmp_path / "k.yaml"),
            "--set",
            "images.tag=t1",
            "--set",
            "images.registry=registry.example/team",
        ],
    )
    assert result["code"] == 0, done.stderr[-3000:]


def test_submit_needs_no_ml_stack():
    with fake_kfp(KfpScenario()) as (host, scenario):
        result, done = cxr_without(
            ML_STACK,
            [
                "submit",
                "--host",
                host,
                "--set",
                "images.tag=t1",
                "--set",
                "study.source=gs://bucket/data",
                "--set",
                "images.registry=registry.example/team",
                "--set",
                "study.dataset_fingerprint=f1",
            ],
        )
    assert result["code"] == 0, done.stderr[-3000:]
    assert any(
        r["method"] == "POST" and r["path"].startswith("/apis/v2beta1/runs") for r in scenario.requests
    )


def test_help_imports_nothing_heavy():
    result, done = cxr_without((), ["--help"], watched=(*ML_STACK, "numpy", "kfp", "yaml", "PIL"))
    assert result == {"code": 0, "imported": []}, done.stderr[-3000:]
    assert "run-local" in done.stdout and "compile" in done.stdout
