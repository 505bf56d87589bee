"""hls_tune/study/artifacts.py: where the artifact store lives."""

from __future__ import annotations

from hls_tune.study.artifacts import ARTIFACTS_ENV, artifacts_dir, open_artifact_store


def test_the_artifact_directory_comes_from_the_option_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    assert artifacts_dir() == tmp_path / "artifacts"
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path / "from-env"))
    assert artifacts_dir() == tmp_path / "from-env"
    assert artifacts_dir("given") == tmp_path / "given"
    store = open_artifact_store()
    assert (tmp_path / "from-env").is_dir() and store is not None
