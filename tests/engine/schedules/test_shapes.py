"""hls_tune/engine/schedules/shapes.py: each shape reads exactly the parameters its registry
entry names; the study layer samples those and no others (`study.keys.shape_uses`)."""

from __future__ import annotations

import pytest

from hls_tune.engine.schedules import SHAPES, LevelSchedule

TS = [i / 40 for i in range(41)]
# (b1, b2, floor) values that move every breakpoint and the floor of every shape
BASE = {"b1": 0.2, "b2": 0.7, "floor": 0.3}
MOVED = {"b1": 0.4, "b2": 0.9, "floor": 0.05}


def _curve(shape: str, **params: float) -> list[float]:
    return [LevelSchedule(shape, **BASE | params).value(t) for t in TS]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_shape_reads_exactly_the_parameters_its_registry_names(shape):
    reads = set(SHAPES[shape].reads)
    for param, moved in MOVED.items():
        changed = _curve(shape, **{param: moved}) != _curve(shape)
        verb = "reads" if changed else "ignores"
        assert changed is (param in reads), f"{shape} {verb} {param}"
