"""`make bench`: the main job at full size, ours beside the study's method, measured in one run.

On a 21,165-image, 299 px demo dataset in the real class proportions (made once, kept under
runs/bench/data), with the offline demo backbone at the study's settings (224 px, batch 16, 20
epochs, validation every epoch):

  ours     the product's own commands: cxr ingest → split → featurize → train × 3 (--features) →
           evaluate × 3 (--features) → report; the three train → evaluate chains run two at a time,
           as the pipeline's ParallelFor runs them under kfp.local on this machine
  study    the study's method (bench/study_method.py) per variant on a stratified subset, its cost
           per image-epoch (training and validation apart) extrapolated to the full protocol
  forward  one plain forward pass of a full model over every image (bench/forward_pass.py)
  micro    float32 vs mixed_bfloat16 and one device vs MirroredStrategy (bench/micro.py)

Every step records its wall seconds, CPU seconds and peak RSS (the process's own rusage), the load
average and the machine's busy cores while it ran; the run records the CPU model and versions.
Writes bench/results.json and bench/results.md (README quotes the latter). Settings: BENCH_IMAGES,
BENCH_EPOCHS, BENCH_STUDY_IMAGES, BENCH_STUDY_EPOCHS, BENCH_DIR. `python bench/bench.py --render`
writes results.md again from results.json, measuring nothing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from components.core.study import T4_MINUTES_PER_VARIANT  # noqa: E402 (constants only: no TensorFlow)

RESULTS_JSON = ROOT / "bench" / "results.json"
RESULTS_MD = ROOT / "bench" / "results.md"
IMAGES = int(os.environ.get("BENCH_IMAGES", 21165))
EPOCHS = int(os.environ.get("BENCH_EPOCHS", 20))
STUDY_IMAGES = int(os.environ.get("BENCH_STUDY_IMAGES", 600))
STUDY_EPOCHS = int(os.environ.get("BENCH_STUDY_EPOCHS", 3))
WORK = Path(os.environ.get("BENCH_DIR", ROOT / "runs" / "bench"))
IMAGE_SIZE, BATCH_SIZE, DATA_SEED = 224, 16, 11
VARIANTS = ("model3", "model2", "model1")  # longest first: two at a time, the makespan is shortest
TARGETS = {"p1_minutes": 20, "p1_peak_memory_gb": 8, "p2_ratio": 10, "p3_ratio": 6}


@dataclass
class Step:
    """One measured command."""

    name: str
    command: list[str]
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_gb: float = 0.0
    load_average: dict = field(default_factory=dict)
    busy_cores: dict = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0
    output: str = ""


class Sampler:
    """Samples, once a second, the 1-minute load average, the machine's busy cores and our processes' RSS."""

    def __init__(self):
        self.samples: list[tuple[float, float, float, float]] = []  # (time, load, busy cores, our RSS GB)
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        previous = _cpu_times()
        while not self._stop.wait(1.0):
            now = _cpu_times()
            busy = (now[0] - previous[0]) / max(now[1] - previous[1], 1) * os.cpu_count()
            previous = now
            rss = sum(_rss_gb(pid) for pid in list(self.pids))
            self.samples.append((time.monotonic(), os.getloadavg()[0], busy, rss))

    def window(self, start: float, end: float, column: int) -> dict:
        """Mean and max of one sample column between two times."""
        values = [s[column] for s in self.samples if start <= s[0] <= end] or [float("nan")]
        return {"mean": round(sum(values) / len(values), 2), "max": round(max(values), 2)}

    def peak_rss_gb(self, start: float, end: float) -> float:
        """The most our processes held together at one time between two times."""
        return self.window(start, end, 3)["max"]


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _rss_gb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return int(status.split("VmRSS:")[1].split()[0]) / 1e6 if "VmRSS:" in status else 0.0


def run(step: Step, sampler: Sampler) -> Step:
    """Runs a step's command, measuring it; raises with its output when it fails."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    step.started = time.monotonic()
    process = subprocess.Popen(
        [str(part) for part in step.command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler.pids.add(process.pid)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if not line.startswith(("W0000", "I0000", "WARNING: All log")):
            print(f"  [{step.name}] {line}", end="", flush=True)
    _, status, usage = os.wait4(process.pid, 0)
    sampler.pids.discard(process.pid)
    step.ended = time.monotonic()
    step.output = "".join(lines)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {step.name} failed:\n{step.output[-3000:]}")
    step.wall_seconds = round(step.ended - step.started, 2)
    step.cpu_seconds = round(usage.ru_utime + usage.ru_stime, 1)
    step.peak_rss_gb = round(usage.ru_maxrss / 1e6, 2)
    step.load_average = sampler.window(step.started, step.ended, 1)
    step.busy_cores = sampler.window(step.started, step.ended, 2)
    print(
        f"bench: {step.name}: {step.wall_seconds:.1f} s wall, {step.cpu_seconds:.0f} CPU s, "
        f"{step.peak_rss_gb:.2f} GB peak RSS, load {step.load_average['mean']}",
        flush=True,
    )
    return step


def last_json(text: str) -> dict:
    """The last line of a command's output that is a JSON object."""
    return json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))


def machine() -> dict:
    """The CPU model, cores, memory and versions."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    flags = next(
        (line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), []
    )
    # Versions come from a child: importing TensorFlow here would put its memory into every step's
    # measured peak (a forked child starts with its parent's resident pages).
    probe = (
        "import json, keras, numpy, tensorflow as tf; "
        "print(json.dumps([tf.__version__, keras.__version__, numpy.__version__]))"
    )
    tf_version, keras_version, numpy_version = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.splitlines()[-1]
    )
    meminfo = Path("/proc/meminfo").read_text()
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gb": round(int(meminfo.split("MemTotal:")[1].split()[0]) / 1e6, 1),
        "cpu_flags": sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f", "avx2"))),
        "python": platform.python_version(),
        "tensorflow": tf_version,
        "keras": keras_version,
        "numpy": numpy_version,
        "platform": platform.platform(),
    }


def cxr(*args) -> list[str]:
    """A `cxr` command line (the installed console script's module)."""
    return [sys.executable, "-m", "pipelines.cli", *map(str, args)]


def main(argv: list[str]) -> int:
    """Runs the benchmark and writes bench/results.json and bench/results.md (--render: only the latter)."""
    if argv == ["--render"]:
        results = json.loads(RESULTS_JSON.read_text())
        results["t4_estimate"] = t4_estimate(results)
        RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
        RESULTS_MD.write_text(markdown(results))
        return 0
    data, work = WORK / f"data-{IMAGES}", WORK / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: dict = {
        "machine": machine(),
        "settings": {
            "images": IMAGES,
            "epochs": EPOCHS,
            "image_size": IMAGE_SIZE,
            "batch_size": BATCH_SIZE,
            "study_subset_images": STUDY_IMAGES,
            "study_subset_epochs": STUDY_EPOCHS,
            "weights": "demo backbone (64 px)",
        },
        "targets": TARGETS,
    }
    steps: dict[str, Step] = {}
    with Sampler() as sampler:
        setup = [Step("demo-weights", cxr("demo-weights", work / "backbone.weights.h5", "--image-size", 64))]
        if not (data / "README.md.txt").is_file():
            setup.insert(0, Step("demo-data", cxr("demo-data", data, "--total", IMAGES, "--seed", DATA_SEED)))
        for step in setup:
            run(step, sampler)
        weights = work / "backbone.weights.h5"
        common = ("--image-size", IMAGE_SIZE, "--weights", weights)
        started = time.monotonic()
        for step in (
            Step("ingest", cxr("ingest", "--source", data, "--out", work / "dataset")),
            Step("split", cxr("split", "--dataset", work / "dataset", "--out", work / "split")),
            Step(
                "featurize",
                cxr("featurize", "--dataset", work / "dataset", "--out", work / "features", *common),
            ),
        ):
            steps[step.name] = run(step, sampler)

        def chain(variant: str) -> None:
            steps[f"train {variant}"] = run(
                Step(
                    f"train {variant}",
                    cxr(
                        "train",
                        "--dataset",
                        work / "dataset",
                        "--split",
                        work / "split",
                        "--variant",
                        variant,
                        "--out",
                        work / variant,
                        "--features",
                        work / "features",
                        "--epochs",
                        EPOCHS,
                        "--batch-size",
                        BATCH_SIZE,
                        *common,
                    ),
                ),
                sampler,
            )
            steps[f"evaluate {variant}"] = run(
                Step(
                    f"evaluate {variant}",
                    cxr(
                        "evaluate",
                        "--dataset",
                        work / "dataset",
                        "--split",
                        work / "split",
                        "--model",
                        work / variant,
                        "--out",
                        work / f"eval-{variant}",
                        "--features",
                        work / "features",
                    ),
                ),
                sampler,
            )

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(chain, VARIANTS))
        evaluations = [a for v in sorted(VARIANTS) for a in ("--evaluation", work / f"eval-{v}")]
        steps["report"] = run(Step("report", cxr("report", *evaluations, "--out", work / "report")), sampler)
        ended = time.monotonic()

        forward = run(
            Step(
                "forward pass", [sys.executable, "bench/forward_pass.py", work / "dataset", work / "model1"]
            ),
            sampler,
        )
        study = {
            v: run(
                Step(
                    f"study method {v}",
                    [
                        sys.executable,
                        "bench/study_method.py",
                        data,
                        "--variant",
                        v,
                        "--images",
                        STUDY_IMAGES,
                        "--epochs",
                        STUDY_EPOCHS,
                        "--weights",
                        weights,
                    ],
                ),
                sampler,
            )
            for v in sorted(VARIANTS)
        }
        micro = {
            w: run(Step(f"micro {w}", [sys.executable, "bench/micro.py", w]), sampler)
            for w in ("precision", "devices")
        }

    split_summary = json.loads((work / "split" / "summary.json").read_text())
    results["ours"] = ours(steps, sampler, started, ended)
    results["forward_pass"] = last_json(forward.output) | measured(forward)
    results["study_method"] = study_method(study, split_summary, EPOCHS)
    results["micro"] = {w: last_json(s.output) for w, s in micro.items()}
    results["targets_met"] = verdicts(results)
    results["t4_estimate"] = t4_estimate(results)
    comparison = json.loads((work / "report" / "comparison.json").read_text())
    results["best_variant"] = comparison["best_variant"]
    results["accuracy"] = {e["variant"]: round(e["accuracy"], 4) for e in comparison["variants"]}
    records = {v: json.loads((work / v / "train.json").read_text()) for v in sorted(VARIANTS)}
    results["checkpoint_writes"] = {
        v: {"longest_seconds": t["checkpoint_seconds"], "megabytes": round(t["checkpoint_bytes"] / 1e6, 1)}
        for v, t in records.items()
    }
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
    RESULTS_MD.write_text(markdown(results))
    print(RESULTS_MD.read_text())
    return 0


def measured(step: Step) -> dict:
    """A step's measurements for results.json."""
    return {k: v for k, v in asdict(step).items() if k not in ("command", "output", "started", "ended")}


def ours(steps: dict[str, Step], sampler: Sampler, started: float, ended: float) -> dict:
    """Our run: every step, the end-to-end span, the training-and-evaluation span and the peak memory."""
    first_train = min(s.started for n, s in steps.items() if n.startswith("train"))
    last_evaluate = max(s.ended for n, s in steps.items() if n.startswith("evaluate"))
    return {
        "steps": {name: measured(step) for name, step in steps.items()},
        "end_to_end_seconds": round(ended - started, 1),
        "train_and_evaluate_seconds": round(last_evaluate - first_train, 1),
        "featurize_seconds": steps["featurize"].wall_seconds,
        "cpu_seconds": round(sum(s.cpu_seconds for s in steps.values()), 1),
        "peak_memory_gb": sampler.peak_rss_gb(started, ended),
        "load_average": sampler.window(started, ended, 1),
        "busy_cores": sampler.window(started, ended, 2),
    }


def study_method(study: dict[str, Step], split_summary: dict, epochs: int) -> dict:
    """The study's method per variant: measured on the subset, extrapolated per image-epoch to the split."""
    n_train, n_val = split_summary["counts"]["train"], split_summary["counts"]["val"]
    out = {}
    for variant, step in study.items():
        m = last_json(step.output)
        steady = sum(m["epoch_seconds"][1:]) / len(m["epoch_seconds"][1:])  # the first epoch also traces
        per_val_image = m["val_seconds"] / m["n_val"]
        per_train_image = (steady - m["val_seconds"]) / m["n_train"]
        out[variant] = (
            m
            | measured(step)
            | {
                "train_seconds_per_image": round(per_train_image, 5),
                "val_seconds_per_image": round(per_val_image, 5),
                "extrapolated_seconds": round(
                    epochs * (per_train_image * n_train + per_val_image * n_val), 1
                ),
                "extrapolated_to": {"n_train": n_train, "n_val": n_val, "epochs": epochs},
            }
        )
    return out


def verdicts(r: dict) -> dict:
    """The issue's targets against this run: P1 (time, memory), P2 (total and per variant), P3."""
    o, study = r["ours"], r["study_method"]
    share = o["featurize_seconds"] / len(study)
    per_variant = {}
    for v, s in study.items():
        ours_v = (
            o["steps"][f"train {v}"]["wall_seconds"] + o["steps"][f"evaluate {v}"]["wall_seconds"] + share
        )
        per_variant[v] = round(s["extrapolated_seconds"] / ours_v, 1)
    total_ratio = sum(s["extrapolated_seconds"] for s in study.values()) / o["end_to_end_seconds"]
    p3 = (o["train_and_evaluate_seconds"] + o["featurize_seconds"]) / r["forward_pass"]["seconds"]
    t = r["targets"]
    return {
        "p1_end_to_end_minutes": round(o["end_to_end_seconds"] / 60, 1),
        "p1_met": o["end_to_end_seconds"] / 60 <= t["p1_minutes"]
        and o["peak_memory_gb"] <= t["p1_peak_memory_gb"],
        "p1_peak_memory_gb": o["peak_memory_gb"],
        "p2_total_ratio": round(total_ratio, 1),
        "p2_ratio_per_variant": per_variant,
        "p2_met": total_ratio >= t["p2_ratio"],
        "p3_ratio_to_one_forward_pass": round(p3, 2),
        "p3_met": p3 <= t["p3_ratio"],
    }


def t4_estimate(r: dict) -> dict:
    """Minutes per variant on 2 × T4, estimated: our CPU times scaled by the study's own CPU-to-T4 factor.

    The study states its method takes T4_MINUTES_PER_VARIANT per variant on two T4s; this run measured
    (extrapolated) the same method on this CPU, so their ratio is how much faster the T4 pair runs
    that work. Our steps are assumed to gain as much: optimistic for the tail, whose small steps use a
    GPU less well than full forward passes do, and pessimistic in that our CPU figures were taken with
    two chains sharing the cores. An estimate, not a measurement.
    """
    o, out = r["ours"], {}
    for v, s in r["study_method"].items():
        factor = s["extrapolated_seconds"] / (60 * T4_MINUTES_PER_VARIANT)
        ours_seconds = (
            o["featurize_seconds"]  # on a cluster each train task runs the prefix on its own two T4s
            + o["steps"][f"train {v}"]["wall_seconds"]
            + o["steps"][f"evaluate {v}"]["wall_seconds"]
        )
        out[v] = {
            "cpu_to_t4_factor": round(factor, 2),
            "ours_cpu_minutes": round(ours_seconds / 60, 1),
            "ours_t4_minutes": round(ours_seconds / factor / 60, 1),
            "study_t4_minutes": T4_MINUTES_PER_VARIANT,
        }
    return out


def markdown(r: dict) -> str:
    """bench/results.md: the tables README quotes."""
    m, o, v, t = r["machine"], r["ours"], r["targets_met"], r["targets"]

    def yes(met: bool) -> str:
        return "yes" if met else "no"

    lines = [
        "# `make bench` results",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gb']} GB; TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}, Python {m['python']}. CPU flags: {', '.join(m['cpu_flags']) or 'none listed'}.",
        "",
        f"Data: {r['settings']['images']:,} demo images (299 px, real class proportions), "
        f"{r['settings']['epochs']} epochs at {r['settings']['image_size']} px, "
        f"batch {r['settings']['batch_size']}, validation every epoch; weights: {r['settings']['weights']}.",
        "",
        "| target | this run | met |",
        "|---|---|---|",
        f"| P1: ingest → report ≤ {t['p1_minutes']} min, peak memory ≤ {t['p1_peak_memory_gb']} GB"
        f" | {v['p1_end_to_end_minutes']} min, {v['p1_peak_memory_gb']} GB | {yes(v['p1_met'])} |",
        f"| P2: ≥ {t['p2_ratio']}× the study's method in total | {v['p2_total_ratio']}× "
        f"(per variant: {', '.join(f'{k} {x}×' for k, x in sorted(v['p2_ratio_per_variant'].items()))}) | "
        f"{yes(v['p2_met'])} |",
        f"| P3: featurize + train + evaluate ≤ {t['p3_ratio']}× one forward pass | "
        f"{v['p3_ratio_to_one_forward_pass']}× ({r['forward_pass']['seconds']:.0f} s for the pass) | "
        f"{yes(v['p3_met'])} |",
        "",
        "Ours, step by step (train → evaluate chains two at a time; load average mean "
        f"{o['load_average']['mean']}, busy cores mean {o['busy_cores']['mean']} of {m['cores']}):",
        "",
        "| step | wall s | CPU s | peak RSS GB | load avg (mean/max) | busy cores (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in o["steps"].items():
        lines.append(
            f"| {name} | {s['wall_seconds']:.1f} | {s['cpu_seconds']:.0f} | {s['peak_rss_gb']:.2f} | "
            f"{s['load_average']['mean']}/{s['load_average']['max']} | {s['busy_cores']['mean']} |"
        )
    lines += [
        "",
        f"The study's method, measured on a {r['settings']['study_subset_images']}-image stratified subset "
        f"({r['settings']['study_subset_epochs']} epochs; the first, which traces the graph, left out) and "
        "extrapolated per image-epoch to the full split:",
        "",
        "| variant | s / training image | s / validation image | extrapolated to the full protocol | CPU s "
        "(subset) | load avg |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in sorted(r["study_method"].items()):
        lines.append(
            f"| {name} | {s['train_seconds_per_image']:.4f} | {s['val_seconds_per_image']:.4f} | "
            f"{s['extrapolated_seconds'] / 60:.0f} min | {s['cpu_seconds']:.0f} | "
            f"{s['load_average']['mean']} |"
        )
    p, d = r["micro"]["precision"], r["micro"]["devices"]["tail_model3"]
    lines += [
        "",
        "Choices measured in the same run (bench/micro.py):",
        "",
        f"- Prefix pass: float32 {p['prefix']['float32']['images_per_s']} images/s, mixed_bfloat16 "
        f"{p['prefix']['mixed_bfloat16']['images_per_s']} images/s (features differ by up to "
        f"{p['prefix']['max_abs_feature_difference']} of {p['prefix']['max_abs_feature']}).",
        f"- model3 tail training: float32 {p['tail_model3']['float32']['train_images_per_s']} images/s, "
        f"mixed_bfloat16 {p['tail_model3']['mixed_bfloat16']['train_images_per_s']} images/s.",
        f"- model3 tail on one device {d['one_device']['train_images_per_s']} images/s, mirrored over two "
        f"logical CPUs {d['mirrored_two_logical_cpus']['train_images_per_s']} images/s.",
        "- Checkpoint writes (what a SIGTERM waits for; GKE gives spot pods about 15 s), longest of the "
        "run, to a local folder: "
        + ", ".join(
            f"{v} {c['longest_seconds']:.2f} s for {c['megabytes']} MB"
            for v, c in sorted(r["checkpoint_writes"].items())
        )
        + ".",
        "",
        "Estimated on 2 × T4 (not measured: our CPU times scaled by how much faster the study says two T4s "
        f"ran its method, {T4_MINUTES_PER_VARIANT} min per variant, than this run measured it here; see "
        "t4_estimate in bench/bench.py for what the assumption over- and underestimates):",
        "",
        "| variant | featurize + train + evaluate here | CPU → 2 × T4 factor | estimate on 2 × T4 "
        "| the study on 2 × T4 |",
        "|---|---|---|---|---|",
    ]
    for name, e in sorted(r["t4_estimate"].items()):
        lines.append(
            f"| {name} | {e['ours_cpu_minutes']} min | {e['cpu_to_t4_factor']}× | "
            f"≈ {e['ours_t4_minutes']} min | {e['study_t4_minutes']} min |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
