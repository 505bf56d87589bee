"""Servers warn when exposed, and the dashboard checks its artifact directory before serving."""

from __future__ import annotations

import queue
import socket
import threading
import time
from pathlib import Path

import optuna
import pytest

from tests.support.helpers import hls_tune, start_hls_tune
from tests.support.report_study import finished_study


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read_until(process, needle: str, deadline_s: float = 120) -> str:
    """Lines of a started process up to the one holding `needle` (fails if it exits first)."""
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout] + [lines.put("")],
        daemon=True,
    )
    reader.start()
    seen = []
    deadline = time.monotonic() + deadline_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            pytest.fail(f"exited with {process.wait()} before {needle!r}:\n{''.join(seen)}")
        seen.append(line)
        if needle in line:
            return "".join(seen)
    pytest.fail(f"no {needle!r} within {deadline_s} s:\n{''.join(seen)}")


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_storage_proxy_warns_when_bound_beyond_loopback(
    tmp_path: Path, host: str, warned: bool
) -> None:
    pytest.importorskip("grpc")  # the proxy's own optional dependency (extra "proxy")
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="s")
    proxy = start_hls_tune(
        "storage-proxy", "--storage", url, "--host", host, "--port", str(_free_port())
    )
    try:
        output = _read_until(proxy, "gRPC storage proxy for")
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    assert ("warning: binding to 0.0.0.0" in output) is warned, output
    if warned:
        assert "no authentication" in output


def test_dashboard_refuses_a_wrong_artifact_directory_and_creates_nothing(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    study = finished_study(tmp_path_factory)
    empty = tmp_path / "empty"
    empty.mkdir()
    for artifacts, cwd_default in ((str(empty), False), ("", True)):
        result = hls_tune(
            "dashboard",
            "--storage",
            study.url,
            "--port",
            str(_free_port()),
            *(("--artifacts", artifacts) if artifacts else ()),
            cwd=tmp_path,
            timeout=120,
            HLS_TUNE_ARTIFACTS="",
        )  # fmt: skip  (a dashboard that starts anyway runs until the timeout fails it)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--artifacts" in lines[0], lines
        assert str(empty if not cwd_default else tmp_path / "artifacts") in lines[0]
    assert not (tmp_path / "artifacts").exists() and list(empty.iterdir()) == []


def test_dashboard_says_at_start_that_it_found_the_artifacts(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    study = finished_study(tmp_path_factory)
    port = _free_port()
    dashboard = start_hls_tune(
        "dashboard", "--storage", study.url, "--port", str(port),
        "--artifacts", str(study.artifacts),
    )  # fmt: skip
    try:
        output = _read_until(dashboard, "artifacts:")
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
    found = output.strip().splitlines()[-1]
    total = len(list(study.artifacts.iterdir()))
    assert f"{total} of {total} checked artifacts found in {study.artifacts}" in found, output
