"""What a trial records: its user attributes (what a person reads at a glance) and system
attributes (settings, genotype, metrics, curves), and the evaluation stage's training
configs and figures. No state: `objective.Objective` calls these."""

from __future__ import annotations

from typing import Any

from hls_tune import engine
from hls_tune.engine.results import EpochMetrics, SearchResult
from hls_tune.engine.schedules import ALPHA_GROUPS, LEVELS, SHAPES, MixingRatio, level_key
from hls_tune.study.config import EvaluateSettings
from hls_tune.study.study import CONFIG_ATTR, GENOTYPE_ATTR, HISTORY_ATTR, METRICS_ATTR, SOURCE_ATTR


def history_attrs(history: tuple[EpochMetrics, ...] | list[EpochMetrics]) -> dict[str, Any]:
    """Per-epoch curves stored on a trial: metric values, the training and validation loss
    (and each BBN branch's), μ, each group's α-LR and each group's α movement."""
    attrs: dict[str, Any] = {
        "val_accuracy_per_epoch": [m.val_accuracy for m in history],
        "val_balanced_accuracy_per_epoch": [m.val_balanced_accuracy for m in history],
        "train_loss_per_epoch": [m.train_loss for m in history],
        "val_loss_per_epoch": [m.val_loss for m in history],
        "mixing_ratio_per_epoch": [m.mixing_ratio for m in history],
    }
    if history and history[0].branch_losses is not None:
        for branch in history[0].branch_losses:
            attrs[f"branch_loss_{branch}_per_epoch"] = [
                (m.branch_losses or {}).get(branch) for m in history
            ]
    if history:
        for group in history[0].alpha_lrs:
            attrs[f"alpha_lr_{group}_per_epoch"] = [m.alpha_lrs[group] for m in history]
        for group in history[0].alpha_movement:
            attrs[f"alpha_movement_{group}_per_epoch"] = [
                m.alpha_movement.get(group) for m in history
            ]
    return attrs


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def followed_b2_attrs(config: engine.SearchConfig) -> dict[str, float]:
    """The second breakpoint of every level some α group follows and whose shape reads it
    (``backbone_alpha_lr_b2``: the study samples its span, a person reads b2); none for
    the methods with one constant α rate."""
    if config.method != "hls" or config.schedule is None:
        return {}
    schedule = config.schedule
    levels = sorted({schedule.level(g) for g in ALPHA_GROUPS}, key=LEVELS.index)
    return {
        level_key(level, "b2"): _rounded(getattr(schedule, level).b2)
        for level in levels
        if "b2" in SHAPES[getattr(schedule, level).shape].reads
    }


def glance_attrs(result: SearchResult) -> dict[str, Any]:
    """The user attributes of a complete trial: what a person reads at a glance."""
    metrics = result.metrics()
    attrs = {
        key: _rounded(metrics[key])
        for key in (
            "val_accuracy",
            "val_balanced_accuracy",
            "test_accuracy",
            "test_balanced_accuracy",
            "epochs_run",
        )
    }
    attrs["shot_accuracy"] = {k: _rounded(v) for k, v in result.shot_accuracy.items()}
    # measurements `compare` ranks and sums: kept to the bit
    attrs["supernet_val_balanced_accuracy"] = result.val_balanced_accuracy
    attrs["search_seconds"] = result.seconds
    attrs |= followed_b2_attrs(result.config)
    if result.source is not None:  # adapt_head: which shared source supernet, built here?
        attrs["source_supernet"] = {
            k: v for k, v in result.source.items() if k in ("key", "built", "epochs", "seconds")
        }
    return attrs


def result_system_attrs(result: SearchResult) -> dict[str, Any]:
    """The system attributes of a complete trial: settings, genotype, metrics, curves."""
    return {
        CONFIG_ATTR: result.config.to_dict(),
        GENOTYPE_ATTR: result.genotype.to_dict(),
        METRICS_ATTR: result.metrics(),
        HISTORY_ATTR: history_attrs(result.history),
    } | ({} if result.source is None else {SOURCE_ATTR: result.source})


def evaluate_train_config(
    config: engine.SearchConfig, genotype: engine.Genotype, settings: EvaluateSettings, index: int
) -> engine.TrainConfig:
    """The `TrainConfig` of evaluation seed `index` of a trial searched with `config`.

    Same data, augmentation and device as the search; the network (`[evaluate] network`:
    plain, bbn, or the genotype's own) with its μ form (bbn: `[evaluate] mix_form`; own:
    the trial's), size and recipe from [evaluate]; seed `config.seed + index`.
    """
    own = settings.network == "own"
    return engine.TrainConfig(
        data=config.data,
        network=settings.network_for(genotype.is_bbn),
        **settings.recipe(),
        head_cells=config.head_cells,
        crop_padding=config.crop_padding,
        flip=config.flip,
        mixing=config.schedule.mixing if own else MixingRatio(settings.mix_form),
        device=config.device,
        seed=config.seed + index,
        eval_batch_size=config.eval_batch_size,
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def architecture_attrs(runs: list[Any]) -> dict[str, Any]:
    """The [evaluate] stage's user attributes: means over seeds (see CONTRACT of compare)."""

    def last(run: Any, name: str) -> float:
        value = getattr(run.history[-1], name) if run.history else None
        return float("nan") if value is None else float(value)

    balanced = [last(r, "val_balanced_accuracy") for r in runs]
    groups = runs[0].shot_accuracy.keys()
    return {
        "architecture_val_balanced_accuracy": _mean(balanced),
        "architecture_val_balanced_accuracy_seeds": balanced,
        "architecture_val_accuracy": _mean([last(r, "val_accuracy") for r in runs]),
        "architecture_test_accuracy": _mean([r.test_accuracy for r in runs]),
        "architecture_test_balanced_accuracy": _mean([r.test_balanced_accuracy for r in runs]),
        "architecture_shot_accuracy": {
            g: _mean([r.shot_accuracy[g] for r in runs]) for g in groups
        },
        "architecture_params": int(runs[0].params),
        "architecture_madds": int(runs[0].multiply_adds),
        "evaluate_seconds": sum(r.seconds for r in runs),
    }


# The figures of the architecture trained on the balanced set, recorded with the prefix
# ``architecture_balanced_`` (its size is the same network's).
BALANCED_FIGURES = (
    "architecture_val_balanced_accuracy",
    "architecture_val_balanced_accuracy_seeds",
    "architecture_test_balanced_accuracy",
    "architecture_shot_accuracy",
)


def evaluation_attrs(runs: dict[str, list[Any]]) -> dict[str, Any]:
    """The user attributes of the evaluation stage: the long-tailed trainings' figures, and
    the balanced trainings' under ``architecture_balanced_`` (their time added)."""
    attrs = architecture_attrs(runs["longtail"])
    if runs["balanced"]:
        balanced = architecture_attrs(runs["balanced"])
        attrs |= {
            key.replace("architecture_", "architecture_balanced_", 1): balanced[key]
            for key in BALANCED_FIGURES
        }
        attrs["evaluate_seconds"] += balanced["evaluate_seconds"]
    return attrs


def evaluation_runs(settings: EvaluateSettings) -> list[tuple[str, int]]:
    """(training set, seed index) of each evaluation run, in the order they run:
    every seed on the long-tailed set, then every seed on the balanced set."""
    return [(name, index) for name in settings.trains_on for index in range(settings.seeds)]
