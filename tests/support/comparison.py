"""A complete trial as the objective records it, for the comparison tests."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution

from hls_tune.study.study import CONFIG_ATTR, METRICS_ATTR, OWN_TRIAL_ATTR


def _trial(method: str, ratio: float, seed: int, value: float, few: float | None = 0.5, **arch):
    """A complete trial as the objective records it; `arch` adds [evaluate] attributes
    (architecture_val=..., balanced=..., lt=...)."""
    shots = {"many": 0.9, "medium": 0.7} | ({} if few is None else {"few": few})
    system = {
        OWN_TRIAL_ATTR: True,
        CONFIG_ATTR: {"method": method, "seed": seed, "data": {"imbalance_ratio": ratio}},
        METRICS_ATTR: {"test_accuracy": value - 0.1, "test_balanced_accuracy": value - 0.2},
    }
    attrs = {
        "shot_accuracy": shots,
        "supernet_val_balanced_accuracy": value,
        "search_seconds": 100.0 + seed,
    }
    if "architecture_val" in arch:
        a = arch["architecture_val"]
        attrs |= {
            "architecture_val_balanced_accuracy": a,
            "architecture_val_balanced_accuracy_seeds": [a, a],
            "architecture_test_accuracy": a - 0.01,
            "architecture_test_balanced_accuracy": a - 0.02,
            "architecture_shot_accuracy": {"many": a + 0.1, "medium": a, "few": a - 0.1},
            "architecture_params": arch.get("params", 10_000),
            "architecture_madds": 200_000,
            "evaluate_seconds": 50.0,
        }
    if "balanced" in arch:  # [evaluate] trains_on = ["longtail", "balanced"]
        attrs["architecture_balanced_val_balanced_accuracy"] = arch["balanced"]
    return optuna.trial.create_trial(
        value=value,
        params={"method": method},
        distributions={"method": CategoricalDistribution(["darts", "hls", "adapt_head"])},
        user_attrs=attrs,
        system_attrs=system,
    )
