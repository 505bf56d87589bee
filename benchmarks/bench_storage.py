"""Study throughput on PostgreSQL with 1, 2 and 4 worker processes, and the storage time per epoch.

Each worker is a separate process that opens the storage exactly as `hls-tune worker` does
(`hls_tune.study.worker.open_worker_storage`: Optuna's trial cache, retries, claim-only trial
creation, a 30 s heartbeat and Optuna's retry callback) and runs the worker's loop: fail
stale trials, look for a queued trial, `study.optimize(n_trials=1)`; the study's budget
is queued at creation as `hls-tune study create` does. A trial suggests the eight HLS
parameters and runs
`--epochs` "epochs"; an epoch is a `--epoch-ms` sleep followed by `trial.report` and
`trial.should_prune` (median pruner). The epoch is a sleep, not computation, on purpose: for
the host a GPU epoch is waiting, and a sleep lets four processes overlap on a 2-core machine,
so what limits scaling is the storage and Optuna, which is what this measures. Every trial
runs all its epochs (the pruner is asked, its answer ignored) so all trials cost the same;
the sampler is random so its CPU time does not blur the storage's.

Each worker count runs `--trials` trials split evenly over its processes; the clock starts
when every process has opened the storage (import and connection time excluded) and stops
when the last one finishes. Runs alternate 1, 2, 4 workers `--repeats` times, each on a
fresh study, and the table shows medians. The benchmark creates its own database
`hls_tune_bench_<random>` on the server and drops it afterwards.

Columns:
    trials/s     trials finished per second of wall time.
    scaling      throughput(n) / (n × throughput(1)): 1.0 is ideal, the target is >= 0.9.
    ms/report    time inside trial.report + trial.should_prune per epoch, mean over workers.
    ms/trial     per trial, the storage and Optuna time outside the epochs: fail stale trials,
                 budget count, ask (with the eight suggestions), heartbeat, tell.
    CPU ms/trial CPU time of the worker processes per trial (the database server's not
                 included); `cores` is that CPU over the wall time: when it nears the free
                 cores, the host's CPU, not the storage, limits the scaling. The load average
                 before and after is printed for the same reason.

Usage:
    python benchmarks/bench_storage.py --storage postgresql://postgres@127.0.0.1:5432/postgres
    (--storage: a role allowed to CREATE DATABASE; default $HLS_TUNE_TEST_POSTGRES_URL)

Measured 2026-12-01 on the 2-core x86_64 build host, otherwise idle (load average 1.3 at
the start, 0.7 at the end), PostgreSQL 15.20 on 127.0.0.1 (fsync on), Python 3.11.7,
Optuna 5.0.0, SQLAlchemy 2.1.9, psycopg 3.3.9; default settings, medians of 3:

    workers  trials  seconds  trials/s  scaling  ms/report  ms/trial  CPU ms/trial  cores
          1      48    29.84      1.61    1.000       8.80      33.7          93.6   0.15
          2      48    15.13      3.17    0.986       9.06      38.1          98.1   0.31
          4      48     8.18      5.87    0.912      11.56      59.2         110.8   0.65
    scaling_4 0.912

Before the worker's storage put Optuna's trial cache (`_CachedStorage`, which Optuna's own
`get_storage` adds in front of an RDBStorage) back under the retrying wrapper, every
`should_prune` re-read all finished trials from the database: 64 ms per report, 227 ms per
trial and 431 CPU ms per trial on one worker, and scaling_4 0.514 (2026-11-23, same host
under load). A real epoch takes minutes, so the storage's share of a GPU trial is far
below 1 %.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import secrets
import sys
import time
import warnings
from dataclasses import dataclass

import optuna
import psycopg
import sqlalchemy
from psycopg import sql
from sqlalchemy.engine import make_url

from hls_tune.study.storage import describe, open_storage, redact
from hls_tune.study.study import queue_budget, work_left
from hls_tune.study.worker import open_worker_storage, retry_callback

WORKER_COUNTS = (1, 2, 4)
# As `hls-tune worker`: heartbeat every 30 s, a trial is stale after 3 missed beats.
HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 3 * HEARTBEAT_INTERVAL_S
MAX_RETRIES = 3
TARGET_SCALING = 0.9


@dataclass(frozen=True)
class WorkerTimes:
    """What one worker process measured (monotonic clock, shared by processes on Linux)."""

    trials: int
    started: float
    finished: float
    report_seconds: float
    reports: int
    overhead_seconds: float  # per-trial time outside the epochs
    cpu_seconds: float  # CPU time of the process (all its threads) while timed


@dataclass(frozen=True)
class RunResult:
    workers: int
    trials: int
    seconds: float
    report_ms: float
    trial_overhead_ms: float
    cpu_ms: float  # worker CPU per trial

    @property
    def cores_used(self) -> float:
        return self.cpu_ms * self.trials / 1000 / self.seconds

    @property
    def throughput(self) -> float:
        return self.trials / self.seconds


def _objective(epochs: int, epoch_s: float, timings: dict[str, float]):
    """A trial shaped like hls-tune's: eight HLS suggestions, then epochs that report."""

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("alpha_lr", 1e-4, 1e-2, log=True)
        trial.suggest_categorical("alpha_lr_shape", ["constant", "step", "cosine", "linear"])
        trial.suggest_float("alpha_lr_b1", 0.0, 1.0)
        trial.suggest_float("alpha_lr_span", 0.0, 1.0)
        trial.suggest_float("alpha_lr_floor", 0.0, 1.0)
        trial.suggest_categorical("coupling", ["mixing", "none", "backbone_max"])
        mix_form = trial.suggest_categorical("mix_form", ["parabolic", "cosine", "sigmoid"])
        if mix_form == "sigmoid":
            trial.suggest_float("mix_steepness", 1.0, 20.0)
        accuracy = 0.0
        for epoch in range(epochs):
            time.sleep(epoch_s)  # the GPU epoch: the host waits
            accuracy = 1.0 - 0.5 / (epoch + 1 + trial.number % 3)
            before = time.perf_counter()
            trial.report(accuracy, epoch)
            trial.should_prune()  # asked like the real objective; every trial runs on
            timings["report"] += time.perf_counter() - before
            timings["reports"] += 1
        return accuracy

    return objective


def _worker(
    url: str,
    study_name: str,
    n_trials: int,
    epochs: int,
    epoch_s: float,
    ready: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,
) -> None:
    """One worker process: open the storage like `hls-tune worker`, wait, run n_trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat
    storage = open_worker_storage(
        url,
        heartbeat_interval=HEARTBEAT_INTERVAL_S,
        grace_period=GRACE_PERIOD_S,
        failed_trial_callback=retry_callback(MAX_RETRIES),
    )
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=os.getpid()),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    )
    timings = {"report": 0.0, "reports": 0}
    objective = _objective(epochs, epoch_s, timings)
    overhead = 0.0
    ready.wait()
    started = time.monotonic()
    cpu_started = time.process_time()
    for _ in range(n_trials):
        before = time.perf_counter()
        report_before = timings["report"]
        optuna.storages.fail_stale_trials(study)
        work_left(study, running=False)
        study.optimize(objective, n_trials=1, gc_after_trial=False)
        elapsed = time.perf_counter() - before
        overhead += elapsed - epochs * epoch_s - (timings["report"] - report_before)
    finished = time.monotonic()
    cpu_seconds = time.process_time() - cpu_started
    results.put(
        WorkerTimes(
            trials=n_trials,
            started=started,
            finished=finished,
            report_seconds=timings["report"],
            reports=int(timings["reports"]),
            overhead_seconds=overhead,
            cpu_seconds=cpu_seconds,
        )
    )


def run(
    url: str,
    storage: optuna.storages.BaseStorage,
    workers: int,
    trials: int,
    epochs: int,
    epoch_s: float,
    tag: str,
) -> RunResult:
    """Runs `trials` trials on a fresh study with `workers` processes; returns the timings."""
    study_name = f"bench-{tag}-w{workers}"
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    queue_budget(study, trials)  # as `hls-tune study create`: workers claim queued trials
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(workers)
    results = context.Queue()
    shares = [trials // workers + (1 if i < trials % workers else 0) for i in range(workers)]
    processes = [
        context.Process(
            target=_worker,
            args=(url, study_name, share, epochs, epoch_s, ready, results),
            daemon=True,
        )
        for share in shares
    ]
    for process in processes:
        process.start()
    times = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        if process.exitcode != 0:
            raise SystemExit(f"a worker process exited with {process.exitcode}")
    seconds = max(t.finished for t in times) - min(t.started for t in times)
    done = sum(t.trials for t in times)
    return RunResult(
        workers=workers,
        trials=done,
        seconds=seconds,
        report_ms=1000 * sum(t.report_seconds for t in times) / sum(t.reports for t in times),
        trial_overhead_ms=1000 * sum(t.overhead_seconds for t in times) / done,
        cpu_ms=1000 * sum(t.cpu_seconds for t in times) / done,
    )


def _admin_connection(admin_url: str) -> psycopg.Connection:
    libpq_url = make_url(admin_url).set(drivername="postgresql")
    return psycopg.connect(
        libpq_url.render_as_string(hide_password=False), autocommit=True, connect_timeout=10
    )


def _create_database(admin_url: str) -> tuple[str, str]:
    name = f"hls_tune_bench_{secrets.token_hex(6)}"
    with _admin_connection(admin_url) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        (server_version,) = admin.execute("SHOW server_version").fetchone()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, server_version


def _drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    with _admin_connection(admin_url) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _table(rows: list[RunResult]) -> list[str]:
    one = next(r for r in rows if r.workers == 1)
    header = (
        "workers",
        "trials",
        "seconds",
        "trials/s",
        "scaling",
        "ms/report",
        "ms/trial",
        "CPU ms/trial",
        "cores",
    )
    body = [
        (
            str(r.workers),
            str(r.trials),
            f"{r.seconds:.2f}",
            f"{r.throughput:.2f}",
            f"{r.throughput / (r.workers * one.throughput):.3f}",
            f"{r.report_ms:.2f}",
            f"{r.trial_overhead_ms:.1f}",
            f"{r.cpu_ms:.1f}",
            f"{r.cores_used:.2f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *body]
    ]


def _median_result(results: list[RunResult]) -> RunResult:
    """The run with the median throughput (its own seconds and storage times)."""
    ordered = sorted(results, key=lambda r: r.throughput)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--storage",
        default=os.environ.get("HLS_TUNE_TEST_POSTGRES_URL", ""),
        help="Admin URL of a PostgreSQL server (a role allowed to CREATE DATABASE); "
        "default: $HLS_TUNE_TEST_POSTGRES_URL.",
    )
    parser.add_argument("--trials", type=int, default=48, help="Trials per worker count.")
    parser.add_argument("--epochs", type=int, default=10, help="Reported epochs per trial.")
    parser.add_argument("--epoch-ms", type=float, default=50.0, help="Sleep per epoch.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per worker count.")
    parser.add_argument(
        "--pg-options",
        default="",
        help="libpq `options` added to the storage URL as users would add them to "
        "HLS_TUNE_STORAGE, e.g. '-c synchronous_commit=off'.",
    )
    args = parser.parse_args()
    if not args.storage:
        parser.error("give --storage postgresql://USER@HOST/DB or set HLS_TUNE_TEST_POSTGRES_URL")
    if not args.storage.startswith(("postgresql", "postgres:")):
        parser.error(f"--storage must be a postgresql:// URL but got {redact(args.storage)!r}")

    url, server_version = _create_database(args.storage)
    admin_url = args.storage
    if args.pg_options:
        url = make_url(url).update_query_dict({"options": args.pg_options})
        url = url.render_as_string(hide_password=False)
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Optuna's tables, as `hls-tune study create` makes them.
        storage = open_storage(url, create=True)
        print(f"# storage benchmark: {describe(url)}, PostgreSQL {server_version}")
        print(
            f"# {os.cpu_count()} cores ({platform.machine()}, load average "
            f"{os.getloadavg()[0]:.1f}), Python {platform.python_version()}, "
            f"Optuna {optuna.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
            f"psycopg {psycopg.__version__}"
        )
        print(
            f"# {args.trials} trials × {args.epochs} epochs × {args.epoch_ms:g} ms sleep "
            f"(a GPU epoch is a wait for the host, so processes overlap even on few cores); "
            f"median of {args.repeats}"
            + (f"; connection options {args.pg_options!r}" if args.pg_options else "")
        )
        runs: dict[int, list[RunResult]] = {n: [] for n in WORKER_COUNTS}
        for repeat in range(args.repeats):
            for workers in WORKER_COUNTS:
                result = run(
                    url,
                    storage,
                    workers,
                    args.trials,
                    args.epochs,
                    args.epoch_ms / 1000,
                    str(repeat),
                )
                runs[workers].append(result)
                print(
                    f"  run {repeat + 1}/{args.repeats}, {workers} workers: "
                    f"{result.throughput:.2f} trials/s",
                    file=sys.stderr,
                    flush=True,
                )
        rows = [_median_result(runs[n]) for n in WORKER_COUNTS]
        for line in _table(rows):
            print(line)
        one, four = rows[0], rows[-1]
        ideal = 1000 / (args.epochs * args.epoch_ms)
        print(f"# one worker reaches {one.throughput / ideal:.3f} of the sleep-only {ideal:.2f}/s")
        scaling_4 = four.throughput / (four.workers * one.throughput)
        print(
            f"# load average after: {os.getloadavg()[0]:.1f}; target: scaling_4 >= {TARGET_SCALING}"
        )
        print(f"scaling_4 {scaling_4:.3f}")
    finally:
        _drop_database(admin_url, url)


if __name__ == "__main__":
    main()
