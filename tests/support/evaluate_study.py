"""The tiny study with an [evaluate] table, as a file's text."""

from __future__ import annotations

from tests.support.helpers import TINY_STUDY

EVALUATE = """
[evaluate]
channels = 4
layers = 3
epochs = {epochs}
batch_size = 32
weight_lr = 0.05
cutout = 0
drop_path = 0.0
auxiliary_weight = 0.0
seeds = {seeds}
"""


def _text(
    study_lines: str = "", evaluate: str = EVALUATE.format(epochs=2, seeds=1), pruner: str = "none"
) -> str:
    base = TINY_STUDY.format(name="t", n_trials=1, epochs=2, pruner=pruner)
    return base.replace("[study]\n", "[study]\n" + study_lines, 1) + evaluate
