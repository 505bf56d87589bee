"""adapt_head's balanced source supernet (SPEC §5): searched once, cached, shared.

The source search depends only on the source settings (the fields whose declared role is
`source`, `engine.records`), so it runs once per source: `source_supernet` keeps it in a
content-addressed cache shared by every trial and target (one process builds it under an
exclusive lock, the others wait and load it).

Choices **(ours)**: the balanced source is `data.dataset` with every class at the head
count, the target's validation and test images left out (so the metric that drives the
study is not measured on images the source search trained on); the cache key therefore
includes a digest of those held-out images, and only targets that hold out the same
images share one source. The validation images are drawn from the images each imbalance
ratio leaves unused, so today every ratio builds its own source.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from hls_tune.engine.checkpoint import (
    CheckpointFile,
    UnusableCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from hls_tune.engine.data import LongTailData, concat_images, load_source
from hls_tune.engine.datasets import balanced_split, image_key
from hls_tune.engine.epochs import RunHooks, run_epochs
from hls_tune.engine.records import fields_with_role
from hls_tune.engine.search import Search, build_supernet
from hls_tune.engine.settings import DataConfig, SearchConfig
from hls_tune.errors import ConfigError

# Bumped whenever the source search's code changes what it computes (a cached source of an
# older format is rebuilt, never reused).
SOURCE_FORMAT = 2
SOURCE_KIND = "adapt_source"
# What determines the source search is derived from the fields' declared roles
# (`engine.records`): `source` fields of the search and data settings, and the precision;
# every other setting (adapt_mode, head_epochs, reweight, the imbalance ratio ...) only
# concerns the target, so targets share one source. Execution settings (device, kernels)
# travel with the source config but never enter its key.
SOURCE_SETTINGS = fields_with_role(SearchConfig, "source", "precision")
SOURCE_DATA_SETTINGS = fields_with_role(DataConfig, "source")
EXECUTION_SETTINGS = fields_with_role(SearchConfig, "execution")


def balanced_source(config: SearchConfig, target: LongTailData) -> LongTailData:
    """The balanced source data of an adapt_head run.

    `source_dataset = "balanced"` takes `data.dataset`'s training set; another name loads
    that dataset (from `source_root`, else `data.root`) at the target's image size. Images
    identical to a target validation or test image are removed, then every class keeps
    the same number of images (the smallest class count, capped by `data.max_per_class`)
    and the set is split into weight, α and validation parts like the target.

    Args:
        config: the adapt_head settings.
        target: the long-tailed target data.

    Raises:
        ConfigError: the source cannot be loaded, or its images have another number of
            channels than the target's.
    """
    data = config.data
    if config.source_dataset == "balanced":
        name, root, size = data.dataset, data.root, data.image_size
    else:
        name, root = config.source_dataset, config.source_root or data.root
        size = target.image_size
    source = load_source(
        name,
        root,
        image_size=size,
        download=data.download,
        test_per_class=data.test_per_class,
        seed=data.seed,
    )
    if source.train.in_channels != target.in_channels:
        raise ConfigError(
            f"source_dataset {config.source_dataset!r} has {source.train.in_channels}-channel "
            f"images but the target {data.dataset!r} has {target.in_channels}."
        )
    return balanced_split(source, data, target)


def source_config(config: SearchConfig) -> SearchConfig:
    """The plain DARTS search config of the source: only the source settings of `config`
    (and its execution settings); everything that concerns the target at its default."""
    data = DataConfig(**{k: getattr(config.data, k) for k in SOURCE_DATA_SETTINGS})
    values = {k: getattr(config, k) for k in (*SOURCE_SETTINGS, *EXECUTION_SETTINGS)}
    return SearchConfig(method="darts", data=data, **values)


def source_key(config: SearchConfig, target: LongTailData) -> str:
    """The cache key of the source search: a hash of exactly what determines it (the
    source settings, the precision, the source format and the set of target images it must
    leave out)."""
    settings = source_config(config).to_dict()
    for key in EXECUTION_SETTINGS:
        settings.pop(key)
    settings["source_format"] = SOURCE_FORMAT
    held_out = hashlib.sha256()
    for key in sorted(image_key(image) for image in concat_images(target.val, target.test).images):
        held_out.update(key)
    settings["held_out_images"] = held_out.hexdigest()
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclasses.dataclass(frozen=True)
class SourceSupernet:
    """The balanced source search's supernet, as the cache holds it.

    Args:
        key: `source_key` of the settings it was searched with.
        state: the supernet's state dict (weights and α, source classifier).
        in_channels: image channels of the source.
        num_classes: classes of the source.
        mean: per-channel mean the source images were normalised with.
        std: per-channel standard deviation, likewise.
        history: the source search's `EpochMetrics.to_dict()` per epoch (validated on the
            source's own validation split).
        seconds: the source search's time.
        built: whether this call searched it (False: loaded from the cache).
    """

    key: str
    state: dict[str, torch.Tensor]
    in_channels: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    history: list[dict[str, Any]]
    seconds: float
    built: bool

    def summary(self) -> dict[str, Any]:
        """A small JSON-ready summary: key, built, epochs, seconds and genotype."""
        return {
            "key": self.key,
            "built": self.built,
            "epochs": len(self.history),
            "seconds": self.seconds,
            "genotype": self.history[-1]["genotype"] if self.history else None,
        }

    def to_state(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values.pop("built")
        return {"format": SOURCE_FORMAT, "kind": SOURCE_KIND, **values}

    @classmethod
    def from_state(cls, state: dict[str, Any], key: str) -> SourceSupernet:
        if (
            state.get("format") != SOURCE_FORMAT
            or state.get("kind") != SOURCE_KIND
            or state.get("key") != key
        ):
            raise ConfigError(
                f"the cached source supernet {key} was not written by this version; delete it."
            )
        values = {f.name: state[f.name] for f in dataclasses.fields(cls) if f.name != "built"}
        values["mean"], values["std"] = tuple(values["mean"]), tuple(values["std"])
        return cls(**values, built=False)


def _search_source(
    config: SearchConfig,
    target: LongTailData,
    key: str,
    device: torch.device,
    checkpoint: CheckpointFile | None,
    hooks: RunHooks,
) -> SourceSupernet:
    """Runs the source search (resuming a dead builder's `checkpoint` when there is one)."""
    darts = source_config(config)
    source = balanced_source(config, target)
    # The source search answers to the caller's stop signal and notices; its epochs are
    # not the adaptation's, so they are neither reported nor shown as the run's progress.
    search = Search(
        darts, source, device, RunHooks(should_stop=hooks.should_stop, on_notice=hooks.on_notice)
    )
    outcome = run_epochs(search, darts.epochs, checkpoint)
    return SourceSupernet(
        key=key,
        state={k: v.detach().cpu() for k, v in search.model.state_dict().items()},
        in_channels=source.in_channels,
        num_classes=source.num_classes,
        mean=tuple(source.mean),
        std=tuple(source.std),
        history=[m.to_dict() for m in outcome.history],
        seconds=outcome.seconds,
        built=True,
    )


def _load_source(config: SearchConfig, path: Path, key: str) -> SourceSupernet:
    """A cached source, checked whole: header, and a state dict that fits the source's
    supernet (so a damaged or planted file is refused before a model is touched)."""
    try:
        source = SourceSupernet.from_state(load_checkpoint(path), key)
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, UnusableCheckpoint):
            raise
        raise UnusableCheckpoint(f"the cached source supernet {path} is damaged.") from None
    expected = build_supernet(source_config(config), source.in_channels, source.num_classes)
    wanted = expected.state_dict()
    if set(source.state) != set(wanted) or any(
        not isinstance(source.state[k], torch.Tensor) or source.state[k].shape != v.shape
        for k, v in wanted.items()
    ):
        raise UnusableCheckpoint(f"the cached source supernet {path} holds another network.")
    return source


def source_supernet(
    config: SearchConfig,
    target: LongTailData,
    *,
    cache_dir: str | Path | None,
    device: torch.device,
    hooks: RunHooks | None = None,
    poll_seconds: float = 0.5,
) -> SourceSupernet:
    """The balanced source supernet of an adapt_head run: loaded from `cache_dir` when
    it holds one for these source settings, else searched and stored there.

    Safe for concurrent processes on one file system: the builder holds an exclusive
    `fcntl.flock` on `source-KEY.lock` (the kernel releases it when the builder dies, so
    a lock never goes stale), writes `source-KEY.pt` by an atomic rename, and
    checkpoints its search in `source-KEY.partial.pt` after every epoch; the others wait
    for the lock, then load the finished file, or resume the search of a builder that
    died. A cached file that cannot be used (damaged, planted, another format) is set
    aside with one notice and rebuilt. Without `cache_dir` the source is searched in memory.

    Raises:
        SearchInterrupted: `hooks.should_stop` asked to stop (while waiting or searching).
        ConfigError: bad source settings.
    """
    hooks = hooks or RunHooks()
    key = source_key(config, target)
    if cache_dir is None:
        return _search_source(config, target, key, device, None, hooks)
    directory = Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"source-{key}.pt"
    while True:
        if final.exists():
            try:
                return _load_source(config, final, key)
            except UnusableCheckpoint as error:
                unusable: UnusableCheckpoint | None = error
        else:
            unusable = None
        descriptor = os.open(directory / f"source-{key}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process is building it
                hooks.before_step(0, 0)
                time.sleep(poll_seconds)
                continue
            if unusable is not None:
                if final.exists():  # still the unusable file (nobody rebuilt it meanwhile)
                    try:
                        return _load_source(config, final, key)
                    except UnusableCheckpoint:
                        os.replace(final, final.with_name(f"{final.name}.unusable"))
                        hooks.notice(f"{unusable} It was set aside; the source is searched again.")
            elif final.exists():  # built while this process waited
                continue
            partial = CheckpointFile(directory / f"source-{key}.partial.pt", restart_unusable=True)
            built = _search_source(config, target, key, device, partial, hooks)
            save_checkpoint(built.to_state(), final)
            partial.path.unlink(missing_ok=True)
            return built
        finally:
            os.close(descriptor)  # releases the lock
