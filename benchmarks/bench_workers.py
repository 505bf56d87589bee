"""Study throughput of k CPU workers on one host: the automatic thread count against the
thread count set by hand to cores / k, and `launch --cpus k`; prints trials per minute for
each, then `efficiency <automatic / hand-tuned>`.
"""

# Measured on: see docs/performance.md ("Workers on one host").
#
# Each run creates its own study in a fresh SQLite file from the digits demo study
# (`hls_tune/studies/digits_lt_demo.toml`) with the same settings: the budget is
# k × --trials-per-worker, the engine runs --epochs epochs, and the pruner is off so that
# every trial does the same work. The seeded sampler gives trial n the same parameters in
# every run. The runs:
#   automatic   k `hls-tune worker --device cpu` processes started by hand, without
#               HLS_TUNE_THREADS: each sizes its torch threads itself.
#   hand-tuned  the same k processes with HLS_TUNE_THREADS = max(1, cores // k).
#   launch      `hls-tune launch --cpus k` (informational; not part of the ratio).
# The workers register in a private directory (HLS_TUNE_WORKER_DIR), so that other
# hls-tune workers on the host do not change the automatic count. The time of a run is
# from starting its processes to the last one's exit (imports and data preparation
# included, as a user sees it); trials per minute = finished trials / that time.
# `--repeats R` alternates automatic and hand-tuned runs R times and sums them, which
# cancels slow drifts in the host's load.
#
# Usage:
#   python benchmarks/bench_workers.py --k 2 --trials-per-worker 2 --epochs 2

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import optuna
from optuna.trial import TrialState


def study_text(n_trials: int, epochs: int) -> str:
    """The demo study with this budget and epoch count and no pruner."""
    text = resources.files("hls_tune").joinpath("studies/digits_lt_demo.toml").read_text()
    edits = [
        (r"(?m)^n_trials = \d+", f"n_trials = {n_trials}"),
        (r"(?m)^epochs = \d+", f"epochs = {epochs}"),
        (r"(?ms)^\[study\.pruner\]\n.*?\n\n", '[study.pruner]\ntype = "none"\n\n'),
        (r'(?m)^device = "auto"', 'device = "cpu"'),
    ]
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text, count=1)
        if count != 1:
            raise SystemExit(f"the demo study file no longer matches {pattern!r}")
    return text


def _env(registry: Path, threads: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HLS_TUNE_THREADS", "OMP_NUM_THREADS")}
    env |= {
        "HLS_TUNE_WORKER_DIR": str(registry),
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONUNBUFFERED": "1",
    }
    if threads is not None:
        env["HLS_TUNE_THREADS"] = str(threads)
    return env


def run(mode: str, k: int, text: str, work: Path, threads: int | None) -> tuple[int, float]:
    """One run: a fresh study, k workers (or launch); returns finished trials and seconds."""
    work.mkdir(parents=True)
    (work / "study.toml").write_text(text)
    url = f"sqlite:///{work / 'study.db'}"
    env = _env(work / "workers", threads)
    hls_tune = [sys.executable, "-m", "hls_tune"]
    subprocess.run(
        [*hls_tune, "study", "create", str(work / "study.toml"), "--storage", url],
        env=env,
        check=True,
        capture_output=True,
    )
    common = ["--storage", url, "--checkpoint-dir", str(work / "ckpt"), "--no-artifacts"]
    if mode == "launch":
        commands = [[*hls_tune, "launch", "--study", "digits-lt-demo", "--cpus", str(k), *common]]
    else:
        worker = [*hls_tune, "worker", "--study", "digits-lt-demo", "--device", "cpu"]
        commands = [[*worker, "--no-progress", *common] for _ in range(k)]
    started = time.monotonic()
    processes = []
    for i, command in enumerate(commands):
        log = open(work / f"{mode}-{i}.log", "w")  # noqa: SIM115 (closed with its process)
        processes.append((subprocess.Popen(command, env=env, stdout=log, stderr=log), log))
    for process, log in processes:
        code = process.wait()
        log.close()
        if code:
            raise SystemExit(f"{mode}: a worker exited with {code}; see {log.name}")
    seconds = time.monotonic() - started
    study = optuna.load_study(study_name="digits-lt-demo", storage=url)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return len(done), seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k", type=int, default=2, help="CPU workers")
    parser.add_argument("--trials-per-worker", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial")
    parser.add_argument("--repeats", type=int, default=1, help="automatic/hand-tuned pairs")
    parser.add_argument("--no-launch", action="store_true", help="skip the launch run")
    args = parser.parse_args(argv)
    for name in ("k", "trials_per_worker", "epochs", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cores = len(os.sched_getaffinity(0))
    hand = max(1, cores // args.k)
    text = study_text(args.k * args.trials_per_worker, args.epochs)
    print(
        f"# {args.k} CPU workers on {cores} cores; {args.k * args.trials_per_worker} trials "
        f"of {args.epochs} epochs per run; repeats {args.repeats}"
    )
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    totals = {"automatic": [0, 0.0], "hand-tuned": [0, 0.0]}
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for r in range(args.repeats):
            for mode, threads in (("automatic", None), ("hand-tuned", hand)):
                trials, seconds = run(mode, args.k, text, Path(tmp) / f"{mode}-{r}", threads)
                totals[mode][0] += trials
                totals[mode][1] += seconds
                print(f"# {mode} run {r}: {trials} trials in {seconds:.1f} s")
        rates = {mode: 60 * t / s for mode, (t, s) in totals.items()}
        print(f"automatic: {rates['automatic']:.2f} trials/min")
        print(f"hand-tuned (HLS_TUNE_THREADS={hand}): {rates['hand-tuned']:.2f} trials/min")
        if not args.no_launch:
            trials, seconds = run("launch", args.k, text, Path(tmp) / "launch", None)
            print(f"launch --cpus {args.k}: {60 * trials / seconds:.2f} trials/min")
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"efficiency {rates['automatic'] / rates['hand-tuned']:.2f}")


if __name__ == "__main__":
    main()
