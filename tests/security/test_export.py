"""The exported DARTS genotypes.py stays inert whatever the study name holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.helpers import hls_tune, write_study


def test_a_name_that_closes_the_docstring_exports_an_inert_file(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    name = f'x""";__import__("pathlib").Path({str(marker)!r}).touch();"""'
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = write_study(tmp_path / "a.toml", n_trials=1, epochs=1)
    created = hls_tune("study", "create", str(study), "--storage", url, "--name", name)
    assert created.returncode == 0, created.stderr
    ran = hls_tune(
        "worker", "--study", name, "--storage", url, "--no-progress",
        "--checkpoint-dir", str(tmp_path / "ck"),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "out"
    result = hls_tune("export", "--study", name, "--storage", url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    (module,) = out.glob("*_genotypes.py")
    imported = subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(module)!r})"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert not marker.exists()
    # a symlink planted at the final name is refused, and --force replaces the link itself
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    best = out / "best.json"
    best.unlink()
    best.symlink_to(victim)
    (out / ".best.json.tmp").symlink_to(victim)
    refused = hls_tune("export", "--study", name, "--storage", url, "--out", str(out))
    assert refused.returncode == 2 and "--force" in refused.stderr, refused.stderr
    forced = hls_tune("export", "--study", name, "--storage", url, "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert victim.read_text() == "precious\n" and not best.is_symlink()
