"""The search benchmark runs end to end on the tiny config and keeps its output contract."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.helpers import REPO_ROOT

pytestmark = pytest.mark.slow  # real processes, end to end

SCRIPT = REPO_ROOT / "benchmarks" / "bench_search.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_search_benchmark_ends_with_the_speedup_line_and_prints_op_times():
    done = _run("--config", "tiny", "--steps", "1", "--warmup", "0", "--threads", "1", "--ops", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"speedup \d+\.\d\d", lines[-1]), lines[-1]
    for variant in ("reference", "fused"):
        header = next(i for i, line in enumerate(lines) if line.startswith(f"# {variant}: "))
        assert re.match(rf"# {variant}: \d+ aten calls, \d+ ms inside ops", lines[header])
        ops = lines[header + 1 : header + 4]
        assert all(re.match(r"#   \w+ +\d+\.\d ms", line) for line in ops), ops


def test_op_times_on_a_gpu_are_refused_as_a_usage_error():
    done = _run("--device", "cuda", "--ops", "3")
    assert done.returncode == 2
    assert "--ops times ops on the CPU only, got --device cuda" in done.stderr


def test_bbn_batches_benchmark_ends_with_the_per_branch_cost_line():
    done = _run("--bbn-batches", "--steps", "1", "--warmup", "0", "--threads", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"per_branch_cost \d+\.\d\d", lines[-1]), lines[-1]
    assert {line.split()[0] for line in lines[-3:-1]} == {"joint", "per_branch"}


WORKERS_SCRIPT = SCRIPT.parent / "bench_workers.py"


def test_workers_benchmark_prints_each_rate_and_ends_with_the_efficiency_line():
    """One worker, one one-epoch trial per run: the output contract, not the figures."""
    env = {k: v for k, v in os.environ.items() if k != "HLS_TUNE_THREADS"}
    tiny = ["--k", "1", "--trials-per-worker", "1", "--epochs", "1"]
    done = subprocess.run(
        [sys.executable, str(WORKERS_SCRIPT), *tiny],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        # One core for the benchmark and its workers: one thread each, fast on a busy host.
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    rate = r"\d+\.\d\d trials/min"
    assert re.fullmatch(rf"automatic: {rate}", lines[-5]), lines
    assert re.fullmatch(rf"hand-tuned \(HLS_TUNE_THREADS=\d+\): {rate}", lines[-4]), lines
    assert re.fullmatch(rf"launch --cpus 1: {rate}", lines[-3]), lines
    assert lines[-2].startswith("# load average after: "), lines
    assert re.fullmatch(r"efficiency \d+\.\d\d", lines[-1]), lines[-1]
