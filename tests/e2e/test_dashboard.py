"""`hls-tune dashboard` as a real process, looked at by a real headless Chromium.

The browser test needs Chromium (`apt-get install chromium`; CI's `.ci/run` installs it) and
is skipped, saying so, where none is installed; in CI (`CI=true`) it fails instead. The
screenshot is kept under the test's tmp_path and, when HLS_TUNE_TEST_OUTPUTS names a
directory, copied there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from PIL import Image

from tests.support.browser import Browser, find_chromium
from tests.support.helpers import hls_tune, missing_component, start_hls_tune
from tests.support.report_study import expected_artifacts, finished_study

pytestmark = pytest.mark.slow

OUTPUTS_ENV = "HLS_TUNE_TEST_OUTPUTS"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, timeout: float = 10.0) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.headers.get("Content-Type", ""), response.read()


@contextlib.contextmanager
def running_dashboard(*args: str):
    """Starts `hls-tune dashboard ARGS` on a free port; yields (base URL, process)."""
    port = _free_port()
    process = start_hls_tune("dashboard", "--port", str(port), *args)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"dashboard exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                _get(f"{base}/api/studies", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("dashboard did not answer within 60 s")
                time.sleep(0.3)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


_ARTIFACT_SECTION = """(() => {
  const heading = Array.from(document.querySelectorAll('h5'))
    .find(h => h.textContent.trim() === 'Artifacts');
  return heading && heading.nextElementSibling ? heading.nextElementSibling.innerText : '';
})()"""

_LOADED_ARTIFACT_IMAGES = """Array.from(document.images)
  .filter(i => i.src.includes('/artifacts/') && i.complete && i.naturalWidth > 0)
  .map(i => i.src)"""


def test_a_trials_page_lists_its_artifacts_and_its_images_load_in_chromium(
    tmp_path_factory, tmp_path
):
    if find_chromium() is None:
        missing_component("no Chromium (apt-get install chromium)")
    study = finished_study(tmp_path_factory)
    trials = optuna.load_study(study_name=study.name, storage=study.url).get_trials()
    best = max(trials, key=lambda t: (t.value, -t.number))
    expected = expected_artifacts()
    args = ("--storage", study.url, "--artifacts", str(study.artifacts))
    with running_dashboard(*args) as (base, _process):
        _, body = _get(f"{base}/api/studies")
        (summary,) = json.loads(body)["study_summaries"]
        page = f"{base}/dashboard/studies/{summary['study_id']}/trials?numbers={best.number}"
        with Browser(tmp_path / "chromium-profile") as browser:
            browser.navigate(page)
            # The SPA renders after its API calls; wait for every artifact card's name.
            section = browser.wait_for(
                f"(() => {{ const s = {_ARTIFACT_SECTION};"
                f" return {json.dumps(sorted(expected))}.every(n => s.includes(n)) && s; }})()",
                timeout=45,
            )
            assert all(name in section for name in expected)
            text = browser.evaluate("document.body.innerText")
            assert f"Trial {best.number}: complete" in text  # the markdown note, rendered
            images = browser.wait_for(_LOADED_ARTIFACT_IMAGES, timeout=30)
            browser.evaluate(
                "Array.from(document.querySelectorAll('h5'))"
                ".find(h => h.textContent.trim() === 'Artifacts').scrollIntoView()"
            )
            browser.evaluate("window.scrollTo(0, window.scrollY)")
            time.sleep(0.5)  # let the scrolled-to cards paint
            shot = browser.screenshot(tmp_path / "dashboard-trial.png")
        # Each artifact image the browser loaded is served by the dashboard; PNGs are PNGs.
        png_seen = False
        for src in images:
            content_type, data = _get(src)
            if content_type == "image/png":
                assert data.startswith(b"\x89PNG\r\n\x1a\n")
                with Image.open(io.BytesIO(data)) as image:
                    image.verify()
                png_seen = True
        assert png_seen, images
    with Image.open(shot) as image:
        image.verify()
    outputs = os.environ.get(OUTPUTS_ENV)
    if outputs:
        Path(outputs).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(outputs) / shot.name)


def test_dashboard_warns_off_loopback_and_names_its_artifact_directory(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(storage=url, study_name="empty")
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the warning and the banner
    # come first, then binding fails with one line and exit code 1, exposing nothing.
    result = hls_tune(
        "dashboard",
        "--storage",
        url,
        "--host",
        "192.0.2.1",
        "--port",
        str(_free_port()),
        cwd=tmp_path,
        timeout=120,
        HLS_TUNE_ARTIFACTS="",  # the default, whatever the environment says
    )
    assert result.returncode == 1, result.stderr
    assert "warning: binding to 192.0.2.1" in result.stderr
    assert f"artifacts in {tmp_path / 'artifacts'}" in result.stderr
    assert not (tmp_path / "artifacts").exists()  # the dashboard creates nothing
    assert "error: cannot serve on 192.0.2.1" in result.stderr
    assert "Traceback" not in result.stderr
