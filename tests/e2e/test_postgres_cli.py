"""PostgreSQL promises checked through real processes: a password never printed, whichever
way the URL is given, and at most two connections per worker."""

from __future__ import annotations

import time

import pytest

from tests.support.helpers import hls_tune, start_hls_tune, write_study

PASSWORD = "Tun3r-s3cret"


@pytest.mark.parametrize(
    "args",
    [
        ("study", "show", "tiny"),
        ("worker", "--study", "tiny", "--no-progress"),
        ("export", "--study", "tiny", "--out", "genotypes"),
    ],
    ids=lambda args: args[0],
)
@pytest.mark.parametrize("given_by", ["flag", "env"])
def test_an_unreachable_postgres_url_is_reported_without_its_password(tmp_path, args, given_by):
    url = f"postgresql://tuner:{PASSWORD}@127.0.0.1:1/hls"  # nothing listens on port 1
    if given_by == "flag":
        result = hls_tune(*args, "--storage", url, cwd=tmp_path)
    else:
        result = hls_tune(*args, cwd=tmp_path, HLS_TUNE_STORAGE=url)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "tuner:***@127.0.0.1:1/hls" in output, output
    assert PASSWORD not in output and "s3cret" not in output, output
    assert "Traceback" not in output
    assert not any(tmp_path.iterdir()), "written before the storage was reached"


@pytest.mark.postgres
@pytest.mark.parametrize("given_by", ["flag", "env"])
def test_a_wrong_database_on_a_live_server_is_reported_without_its_password(
    tmp_path, postgres_server, given_by
):
    from sqlalchemy.engine import make_url

    url = (
        make_url(postgres_server.admin_url)
        .set(password=PASSWORD, database="hls_tune_no_such_db")
        .render_as_string(hide_password=False)
    )
    study = write_study(tmp_path / "study.toml")
    args = ("study", "create", str(study))
    if given_by == "flag":
        result = hls_tune(*args, "--storage", url, cwd=tmp_path)
    else:
        result = hls_tune(*args, cwd=tmp_path, HLS_TUNE_STORAGE=url)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "hls_tune_no_such_db" in output and ":***@" in output, output
    assert PASSWORD not in output, output


@pytest.mark.parametrize("given_by", ["flag", "env"])
def test_an_unencoded_at_sign_in_the_password_is_refused_without_printing_any_of_it(
    tmp_path, given_by
):
    # The driver would read "s3cret@db.example" as the host and quote it in its error.
    url = "postgresql://tuner:Tun3r@s3cret@db.example:5432/hls"
    args = ("study", "show", "tiny")
    if given_by == "flag":
        result = hls_tune(*args, "--storage", url, cwd=tmp_path)
    else:
        result = hls_tune(*args, cwd=tmp_path, HLS_TUNE_STORAGE=url)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "%40" in output and "tuner:***@db.example:5432/hls" in output, output
    assert "Tun3r" not in output and "s3cret" not in output, output
    assert len(output.strip().splitlines()) == 1, output


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_holds_at_most_two_connections_while_its_trial_runs(tmp_path, postgres_url):
    import psycopg

    created = hls_tune(
        "study",
        "create",
        str(write_study(tmp_path / "study.toml", n_trials=1, epochs=4)),
        cwd=tmp_path,
        HLS_TUNE_STORAGE=postgres_url,
    )
    assert created.returncode == 0, created.stderr
    worker = start_hls_tune(
        "worker",
        "--study",
        "tiny",
        "--no-progress",
        "--no-artifacts",
        "--heartbeat-interval",
        "1",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        cwd=tmp_path,
        HLS_TUNE_STORAGE=postgres_url,
    )
    counts: list[int] = []
    deadline = time.monotonic() + 300
    try:
        with psycopg.connect(postgres_url, autocommit=True) as probe:

            def running() -> bool:
                row = probe.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'")
                return row.fetchone()[0] > 0

            def worker_connections() -> int:
                row = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                return row.fetchone()[0]

            while not running():
                assert worker.poll() is None, worker.communicate()[0]
                assert time.monotonic() < deadline, "timed out waiting for the trial to run"
                time.sleep(0.05)
            # Sample for as long as the trial runs (epochs, reports, heartbeats).
            while running():
                counts.append(worker_connections())
                assert time.monotonic() < deadline, "timed out waiting for the trial to end"
                time.sleep(0.05)
        output, _ = worker.communicate(timeout=300)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output
    assert counts, "the trial ended before a sample"
    assert 1 <= max(counts) <= 2, counts
