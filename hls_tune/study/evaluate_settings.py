"""The optional ``[evaluate]`` table of a study file: the second stage of a trial, which trains
the derived genotype from scratch with a proxy recipe (`EvaluateSettings`), its keys, the
training sets it may train on, and its parser (`parse_evaluate_table`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from hls_tune.engine.checks import check_choice, check_type
from hls_tune.engine.schedules import MIX_FORMS
from hls_tune.engine.settings import TrainConfig
from hls_tune.errors import ConfigError
from hls_tune.study.tables import reject_unknown


@dataclass(frozen=True)
class EvaluateSettings:
    """The [evaluate] table: the proxy recipe that trains a trial's derived genotype.

    The network trains from scratch on the long-tailed training set (the search's weight
    and α splits together) and is validated every epoch on the search's validation set.
    One recipe for every genotype of a study (`network`), so that a comparison of methods
    compares architectures, not training recipes. The recipe keys have
    `engine.TrainConfig`'s names, types and meaning (and its checks).

    Args:
        network: ``plain`` (default): every genotype's backbone cells (normal, reduce) in
            DARTS' network with the plain loss; a BBN genotype's head cells are not used.
            ``bbn``: every genotype as a BBN network (cumulative learning, the reversed
            sampler, one backbone pass per branch batch) with the μ form `mix_form`; a plain
            genotype's normal cell builds both heads. ``own``: a BBN genotype as BBN with its
            trial's μ form, a plain one as plain (a methods grid then trains the BBN methods'
            architectures with a long-tail method of their own).
        mix_form: the μ(t) form of ``network = "bbn"`` (BBN's parabolic by default).
        channels: C of the first cells.
        layers: cells of the (shared) backbone.
        epochs: training epochs per seed.
        batch_size: images per step (per branch for BBN).
        weight_lr: initial SGD learning rate (cosine-annealed to 0).
        cutout: side of the cutout square in pixels (None: half the image side; 0: off).
        drop_path: final drop-path probability (it grows linearly from 0; 0: off).
        auxiliary_weight: weight of the auxiliary head's loss (0: no auxiliary head).
        seeds: networks trained per trial, with seeds `engine.seed + i`; their
            figures are averaged.
        trains_on: the training sets, each trained `seeds` times: "longtail" (the
            search's long-tailed set; required, its accuracy is the trial's) and
            optionally "balanced" (the same dataset with every class at the head count,
            `engine.datasets.balanced_counterpart`), validated on the same images, so that
            `compare` can rank-correlate the two (IMB-NAS' claim).
    """

    network: str = "plain"
    mix_form: str = "parabolic"
    channels: int = 8
    layers: int = 5
    epochs: int = 10
    batch_size: int = 64
    weight_lr: float = 0.025
    cutout: int | None = None
    drop_path: float = 0.2
    auxiliary_weight: float = 0.4
    seeds: int = 1
    trains_on: tuple[str, ...] = ("longtail",)

    def recipe(self) -> dict[str, Any]:
        """The `TrainConfig` fields this table sets as they are (not network, mix_form,
        seeds and trains_on, which `network_for` and the objective resolve)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("network", "mix_form", "seeds", "trains_on")
        }

    def network_for(self, genotype_is_bbn: bool) -> str:
        """The `TrainConfig.network` a genotype trains as under this table."""
        if self.network == "own":
            return "bbn" if genotype_is_bbn else "plain"
        return self.network


TRAINING_SETS = ("longtail", "balanced")
EVALUATE_NETWORKS = ("plain", "bbn", "own")
EVALUATE_KEYS = tuple(f.name for f in dataclasses.fields(EvaluateSettings))
# Keys an earlier [evaluate] table used for what TrainConfig names otherwise.
_RENAMED = {"lr": "weight_lr", "auxiliary": "auxiliary_weight"}


def parse_evaluate_table(raw: dict[str, Any]) -> EvaluateSettings:
    """The [evaluate] table; every key checked for type and range (`TrainConfig`'s checks
    for the recipe keys, so the table and `hls-tune train` accept the same values)."""
    for old, new in _RENAMED.items():
        if old in raw:
            raise ConfigError(
                f"unknown key evaluate.{old}: it is evaluate.{new} (the name TrainConfig and "
                f"`hls-tune train` use); allowed: {', '.join(EVALUATE_KEYS)}."
            )
    reject_unknown(raw, EVALUATE_KEYS, "evaluate.")
    raw = dict(raw)
    if "trains_on" in raw:
        raw["trains_on"] = _parse_trains_on(raw["trains_on"])
    hints = typing.get_type_hints(EvaluateSettings)
    for key, value in raw.items():
        if key == "trains_on":
            continue
        if key == "network":
            check_choice("evaluate.network", value, EVALUATE_NETWORKS)
            continue
        if key == "mix_form":
            check_choice("evaluate.mix_form", value, MIX_FORMS)
            continue
        if key in ("cutout", "drop_path") and isinstance(value, bool):
            what = "a side in pixels (0: off)" if key == "cutout" else "a probability (0: off)"
            raise ConfigError(f"evaluate.{key} must be {what} but got {value!r}.")
        check_type(f"evaluate.{key}", value, hints[key])
        if hints[key] is int and value < 1:
            raise ConfigError(f"evaluate.{key} must be an integer >= 1 but got {value!r}.")
    settings = EvaluateSettings(**raw)
    if "mix_form" in raw and settings.network != "bbn":
        raise ConfigError(
            f"evaluate.mix_form has no effect unless evaluate.network = \"bbn\" but network is "
            f"{settings.network!r} (own: a BBN genotype keeps its trial's μ form)."
        )
    try:
        TrainConfig(**settings.recipe())
    except ConfigError as error:
        raise ConfigError(f"evaluate.{error}") from None
    return settings


def _parse_trains_on(value: Any) -> tuple[str, ...]:
    """evaluate.trains_on: distinct names of `TRAINING_SETS`, "longtail" among them; returned
    in `TRAINING_SETS` order (the order of the evaluation steps)."""
    allowed = ", ".join(f'"{name}"' for name in TRAINING_SETS)
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(v, str) or v not in TRAINING_SETS for v in value)
        or len(set(value)) != len(value)
    ):
        raise ConfigError(
            f"evaluate.trains_on must be a list of distinct names from {allowed} but got {value!r}."
        )
    if "longtail" not in value:
        raise ConfigError(
            f'evaluate.trains_on must include "longtail" (the architecture trained on the '
            f"long-tailed set gives the trial's accuracy) but got {value!r}."
        )
    return tuple(name for name in TRAINING_SETS if name in value)
